/**
 * Gumbel-max / exponential-minimum sampling (Aaronson 2022, "Watermarking GPT outputs";
 * analysed by Fernandez et al. 2023, "Three Bricks to Consolidate Watermarks for LLMs", §2).
 *
 * Each candidate t gets a keyed uniform r_t from the context seed; the chosen token is
 * argmax r_t^(1/p_t). Over the key's randomness this draws exactly from p (distortion-free),
 * and for a fixed key and context it is deterministic. The score of a token is −ln(1 − r_t),
 * which is Exp(1) for text that the key did not choose.
 *
 * With a fixed key, argmax sampling is a deterministic function of the context: texts from different
 * prompts that meet on one window go on identically, and `n > 1` samples of a prompt can be equal. The
 * `softness` τ > 0 samples instead from softmax((ln p_t + G_t) / τ), G_t = −ln(−ln r_t) the same keyed
 * Gumbel noise (GumbelSoft: Fu et al., "GumbelSoft: Diversified Language Model Watermarking via the
 * GumbelMax-trick", ACL 2024). The score and its null law are unchanged; each step is then no longer
 * distortion-free. Measured in docs/evaluation.md.
 */
import type { SchemeKey } from '../keys';
import { seededUniform } from '../mix';
import { ContextPrf } from '../prf';
import { type Scheme, SchemeBase } from '../scheme';
import { type BaseSpec, MAX_CONTEXT_WIDTH, type SpecReader } from '../spec';

export interface GumbelSpec extends BaseSpec {
  scheme: 'gumbel';
  contextWidth: number;
  hashing: 'left' | 'min';
  /**
   * GumbelSoft temperature τ ≥ 0; 0 is argmax sampling (distortion-free, deterministic per context). It
   * shapes sampling only, like a temperature: the key is derived without it (`gumbelKeyedSpec`), so texts
   * written with any τ are detected with the same key, including those written before the field existed.
   */
  softness: number;
}

/**
 * softness 0.4: the smallest τ of the sweep in docs/evaluation.md ("Gumbel across requests") whose texts
 * repeat across requests no more than plain sampling's, at no loss of detection power from 25 tokens.
 */
export const GUMBEL_DEFAULTS = { contextWidth: 4, hashing: 'left', softness: 0.4 } as const;

export function readGumbelSpec(reader: SpecReader): GumbelSpec {
  const base = reader.base();
  const spec: GumbelSpec = {
    scheme: 'gumbel',
    ...base,
    contextWidth: reader.integer('contextWidth', 1, MAX_CONTEXT_WIDTH, GUMBEL_DEFAULTS.contextWidth),
    hashing: reader.choice('hashing', ['left', 'min'] as const, GUMBEL_DEFAULTS.hashing),
    softness: reader.number('softness', { min: 0, max: 100, closedMin: true }, GUMBEL_DEFAULTS.softness),
  };
  reader.done();
  return spec;
}

/** The fields a Gumbel key is derived from: the spec without the sampling-only `softness`. */
export function gumbelKeyedSpec(spec: GumbelSpec): Omit<GumbelSpec, 'softness'> {
  const { softness: _sampling, ...keyed } = spec;
  return keyed;
}

/**
 * The Gumbel-max trick on keyed uniforms r_t = seededUniform(lo, hi, t): argmax_t r_t^(1/p_t), computed as
 * argmax_t ln(r_t) / q_t with q_t = exp(logit_t − max), since the softmax normaliser is a positive factor common
 * to all candidates. Over the seed's randomness the winner is drawn exactly from p. Gumbel-max draws its seed
 * from the context, EXP-edit from the key position. Returns the token id; −1 when no candidate has a finite logit.
 */
export function exponentialMinimum(
  lo: number,
  hi: number,
  logits: Float32Array,
  ids: Int32Array | null,
  count: number,
): number {
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < count; i++) if (logits[i] > max) max = logits[i];
  let best = -1;
  let bestKey = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < count; i++) {
    const q = Math.exp(logits[i] - max);
    if (!(q > 0)) continue;
    const token = ids === null ? i : ids[i];
    const key = Math.log(seededUniform(lo, hi, token)) / q;
    if (key > bestKey) {
      bestKey = key;
      best = token;
    }
  }
  return best;
}

export class GumbelScheme extends SchemeBase<GumbelSpec> implements Scheme<GumbelSpec> {
  readonly #prf: ContextPrf;
  /** Only where the key is more than the plain window (MinHash, SelfHash with h > 1); see ContextPrf. */
  readonly contextKey?: Scheme['contextKey'];
  readonly inputKey?: Scheme['inputKey'];
  #weights = new Float64Array(0);

  constructor(spec: GumbelSpec, key: SchemeKey) {
    super(
      spec,
      {
        contextWidth: spec.contextWidth,
        distortionFree: spec.softness === 0,
        nullLaw: { kind: 'exponential' },
      },
      key,
    );
    this.#prf = new ContextPrf(key, spec.vocabSize, spec.contextWidth, spec.hashing);
    const prf = this.#prf;
    if (prf.hasContextKey) this.contextKey = (sequence, end, out) => prf.contextKey(sequence, end, out);
    if (prf.hasInputKey) this.inputKey = (sequence, index, out) => prf.inputKey(sequence, index, out);
  }

  /** Argmax sampling (softness 0) is the exponential minimum under the context's seed; τ > 0 is GumbelSoft. */
  choose(
    sequence: ArrayLike<number>,
    logits: Float32Array,
    ids: Int32Array | null,
    count: number,
    uniform: () => number,
  ): number {
    const softness = this.spec.softness;
    if (softness > 0) return this.#chooseSoft(sequence, logits, ids, count, softness, uniform());
    const prf = this.#prf;
    prf.seed(sequence, sequence.length);
    return exponentialMinimum(prf.lo, prf.hi, logits, ids, count);
  }

  /**
   * GumbelSoft: draw t with probability ∝ exp((logit_t − max + G_t) / τ), G_t = −ln(−ln r_t), in one pass
   * (the running-maximum form of a categorical draw from log-weights, so no weight overflows).
   */
  #chooseSoft(
    sequence: ArrayLike<number>,
    logits: Float32Array,
    ids: Int32Array | null,
    count: number,
    softness: number,
    u: number,
  ): number {
    const prf = this.#prf;
    prf.seed(sequence, sequence.length);
    const { lo, hi } = prf;
    let max = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < count; i++) if (logits[i] > max) max = logits[i];
    if (this.#weights.length < count) this.#weights = new Float64Array(count);
    const weights = this.#weights;
    let top = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < count; i++) {
      const x = logits[i] - max;
      if (x === Number.NEGATIVE_INFINITY) {
        weights[i] = Number.NEGATIVE_INFINITY;
        continue;
      }
      const token = ids === null ? i : ids[i];
      const w = (x - Math.log(-Math.log(seededUniform(lo, hi, token)))) / softness;
      weights[i] = w;
      if (w > top) top = w;
    }
    let total = 0;
    for (let i = 0; i < count; i++) total += Math.exp(weights[i] - top);
    let target = u * total;
    let last = -1;
    for (let i = 0; i < count; i++) {
      const w = Math.exp(weights[i] - top);
      if (w === 0) continue;
      last = i;
      target -= w;
      if (target < 0) break;
    }
    return ids === null ? last : ids[last];
  }

  score(sequence: ArrayLike<number>, index: number): number {
    const token = sequence[index];
    const prf = this.#prf;
    prf.checkToken(token);
    prf.seed(sequence, index);
    return -Math.log1p(-seededUniform(prf.lo, prf.hi, token));
  }
}
