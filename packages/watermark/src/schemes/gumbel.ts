/**
 * Gumbel-max / exponential-minimum sampling (Aaronson 2022, "Watermarking GPT outputs";
 * analysed by Fernandez et al. 2023, "Three Bricks to Consolidate Watermarks for LLMs", §2).
 *
 * Each candidate t gets a keyed uniform r_t from the context seed; the chosen token is
 * argmax r_t^(1/p_t). Over the key's randomness this draws exactly from p (distortion-free),
 * and for a fixed key and context it is deterministic. The score of a token is −ln(1 − r_t),
 * which is Exp(1) for text that the key did not choose.
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
}

export const GUMBEL_DEFAULTS = { contextWidth: 4, hashing: 'left' } as const;

export function readGumbelSpec(reader: SpecReader): GumbelSpec {
  const base = reader.base();
  const spec: GumbelSpec = {
    scheme: 'gumbel',
    ...base,
    contextWidth: reader.integer('contextWidth', 1, MAX_CONTEXT_WIDTH, GUMBEL_DEFAULTS.contextWidth),
    hashing: reader.choice('hashing', ['left', 'min'] as const, GUMBEL_DEFAULTS.hashing),
  };
  reader.done();
  return spec;
}

export class GumbelScheme extends SchemeBase<GumbelSpec> implements Scheme<GumbelSpec> {
  readonly #prf: ContextPrf;
  /** Only where the key is more than the plain window (MinHash, SelfHash with h > 1); see ContextPrf. */
  readonly contextKey?: Scheme['contextKey'];
  readonly inputKey?: Scheme['inputKey'];

  constructor(spec: GumbelSpec, key: SchemeKey) {
    super(
      spec,
      { contextWidth: spec.contextWidth, distortionFree: true, nullLaw: { kind: 'exponential' } },
      key,
    );
    this.#prf = new ContextPrf(key, spec.vocabSize, spec.contextWidth, spec.hashing);
    const prf = this.#prf;
    if (prf.hasContextKey) this.contextKey = (sequence, end, out) => prf.contextKey(sequence, end, out);
    if (prf.hasInputKey) this.inputKey = (sequence, index, out) => prf.inputKey(sequence, index, out);
  }

  /**
   * argmax_t r_t^(1/p_t) = argmax_t ln(r_t) / q_t with q_t = exp(logit_t − max): the softmax
   * normaliser is a positive factor common to all candidates, so it is never computed.
   */
  choose(
    sequence: ArrayLike<number>,
    logits: Float32Array,
    ids: Int32Array | null,
    count: number,
    _uniform: () => number,
  ): number {
    const prf = this.#prf;
    prf.seed(sequence, sequence.length);
    const { lo, hi } = prf;
    let max = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < count; i++) if (logits[i] > max) max = logits[i];
    let best = -1;
    let bestKey = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < count; i++) {
      const q = Math.exp(logits[i] - max);
      if (q === 0) continue;
      const token = ids === null ? i : ids[i];
      const key = Math.log(seededUniform(lo, hi, token)) / q;
      if (key > bestKey) {
        bestKey = key;
        best = token;
      }
    }
    return best;
  }

  score(sequence: ArrayLike<number>, index: number): number {
    const token = sequence[index];
    const prf = this.#prf;
    prf.checkToken(token);
    prf.seed(sequence, index);
    return -Math.log1p(-seededUniform(prf.lo, prf.hi, token));
  }
}
