/**
 * SynthID-Text tournament sampling (Dathathri et al., "Scalable watermarking for identifying large
 * language model outputs", Nature 634, 2024), in its non-distortionary vectorised form with two leaves
 * per match: for each of the m layers, with keyed g-values g_l(t) ∈ {0, 1},
 *   p_t ← p_t · (1 + g_l(t) − Σ_u p_u g_l(u))
 * which is the exact law of the tournament winner (Supplementary Information, Algorithm 2 / the
 * `update_scores` step of google-deepmind/synthid-text). Over the key's randomness E[p'] = p.
 *
 * Candidates are the sampler's set (top-k after temperature). The score of a token is the number of its
 * m g-values that are 1: Binomial(m, ½) for text the key did not choose.
 */
import type { SchemeKey } from '../keys';
import { seededHash32 } from '../mix';
import { ContextPrf } from '../prf';
import { type Scheme, SchemeBase } from '../scheme';
import { type BaseSpec, MAX_CONTEXT_WIDTH, type SpecReader } from '../spec';

export interface SynthIdSpec extends BaseSpec {
  scheme: 'synthid';
  /** Context tokens that seed the g-values (SynthID's ngram_len − 1). */
  contextWidth: number;
  /** Tournament layers m ∈ 1..64. */
  depth: number;
}

export const SYNTHID_DEFAULTS = { contextWidth: 4, depth: 30 } as const;

export function readSynthIdSpec(reader: SpecReader): SynthIdSpec {
  const base = reader.base();
  const spec: SynthIdSpec = {
    scheme: 'synthid',
    ...base,
    contextWidth: reader.integer('contextWidth', 1, MAX_CONTEXT_WIDTH, SYNTHID_DEFAULTS.contextWidth),
    depth: reader.integer('depth', 1, 64, SYNTHID_DEFAULTS.depth),
  };
  reader.done();
  return spec;
}

/** Salts that make the two 32-bit g-value words of a token independent hashes of the same seed. */
const LAYER_SALT_LOW = 0x27d4eb2f;
const LAYER_SALT_HIGH = 0x165667b1;

function popcount32(x: number): number {
  x -= (x >>> 1) & 0x55555555;
  x = (x & 0x33333333) + ((x >>> 2) & 0x33333333);
  x = (x + (x >>> 4)) & 0x0f0f0f0f;
  return Math.imul(x, 0x01010101) >>> 24;
}

export class SynthIdScheme extends SchemeBase<SynthIdSpec> implements Scheme<SynthIdSpec> {
  readonly #prf: ContextPrf;
  /** Masks of the live bits in the low (layers 0..31) and high (32..63) g-value words. */
  readonly #lowMask: number;
  readonly #highMask: number;
  #probs = new Float64Array(0);
  #gLow = new Uint32Array(0);
  #gHigh = new Uint32Array(0);

  constructor(spec: SynthIdSpec, key: SchemeKey) {
    super(
      spec,
      {
        contextWidth: spec.contextWidth,
        distortionFree: true,
        nullLaw: { kind: 'binomial', trials: spec.depth, p: 0.5 },
      },
      key,
    );
    this.#prf = new ContextPrf(key, spec.vocabSize, spec.contextWidth, 'left');
    this.#lowMask = spec.depth >= 32 ? 0xffffffff : (2 ** spec.depth - 1) >>> 0;
    this.#highMask = spec.depth <= 32 ? 0 : (2 ** (spec.depth - 32) - 1) >>> 0;
  }

  /** g-values of `token` for layers 0..31 (bit l is layer l). */
  #gValuesLow(lo: number, hi: number, token: number): number {
    return (seededHash32(lo ^ LAYER_SALT_LOW, hi, token) & this.#lowMask) >>> 0;
  }

  /** g-values of `token` for layers 32..63. */
  #gValuesHigh(lo: number, hi: number, token: number): number {
    return this.#highMask === 0 ? 0 : (seededHash32(lo ^ LAYER_SALT_HIGH, hi, token) & this.#highMask) >>> 0;
  }

  choose(
    sequence: ArrayLike<number>,
    logits: Float32Array,
    ids: Int32Array | null,
    count: number,
    uniform: () => number,
  ): number {
    const prf = this.#prf;
    prf.seed(sequence, sequence.length);
    const { lo, hi } = prf;
    if (this.#probs.length < count) {
      this.#probs = new Float64Array(count);
      this.#gLow = new Uint32Array(count);
      this.#gHigh = new Uint32Array(count);
    }
    const p = this.#probs;
    const gLow = this.#gLow;
    const gHigh = this.#gHigh;
    let max = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < count; i++) if (logits[i] > max) max = logits[i];
    let total = 0;
    for (let i = 0; i < count; i++) {
      const q = Math.exp(logits[i] - max);
      p[i] = q;
      total += q;
      const token = ids === null ? i : ids[i];
      gLow[i] = q === 0 ? 0 : this.#gValuesLow(lo, hi, token);
      gHigh[i] = q === 0 ? 0 : this.#gValuesHigh(lo, hi, token);
    }
    // One pass per layer: apply layer l's update and, on the updated p, sum the mass of layer l + 1.
    let mean = 0;
    for (let i = 0; i < count; i++) {
      p[i] /= total;
      mean += p[i] * (gLow[i] & 1);
    }
    const depth = this.spec.depth;
    for (let layer = 0; layer < depth; layer++) {
      const words = layer < 32 ? gLow : gHigh;
      const bit = layer & 31;
      const nextWords = layer + 1 < 32 ? gLow : gHigh;
      const nextBit = (layer + 1) & 31;
      const keep = 1 - mean;
      // Two partial sums halve the chain of dependent additions, the critical path of this loop.
      let even = 0;
      let odd = 0;
      let i = 0;
      for (; i + 1 < count; i += 2) {
        const a = p[i] * (keep + ((words[i] >>> bit) & 1));
        const b = p[i + 1] * (keep + ((words[i + 1] >>> bit) & 1));
        p[i] = a;
        p[i + 1] = b;
        even += a * ((nextWords[i] >>> nextBit) & 1);
        odd += b * ((nextWords[i + 1] >>> nextBit) & 1);
      }
      if (i < count) {
        const a = p[i] * (keep + ((words[i] >>> bit) & 1));
        p[i] = a;
        even += a * ((nextWords[i] >>> nextBit) & 1);
      }
      mean = even + odd;
    }
    // Inverse CDF on the tournament winner's law; the products keep Σ p = 1 up to rounding.
    const target = uniform();
    let cumulative = 0;
    let last = 0;
    for (let i = 0; i < count; i++) {
      if (p[i] <= 0) continue;
      last = i;
      cumulative += p[i];
      if (cumulative > target) return ids === null ? i : ids[i];
    }
    return ids === null ? last : ids[last];
  }

  score(sequence: ArrayLike<number>, index: number): number {
    const token = sequence[index];
    const prf = this.#prf;
    prf.checkToken(token);
    prf.seed(sequence, index);
    return (
      popcount32(this.#gValuesLow(prf.lo, prf.hi, token)) +
      popcount32(this.#gValuesHigh(prf.lo, prf.hi, token))
    );
  }
}
