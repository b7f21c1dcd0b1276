import type { BaseSpec } from './spec';

/**
 * The law of one scored token's score when the text was not made with this key (H0).
 * The verifier turns the sum of N such scores into an exact p-value:
 *  - bernoulli: N trials → Binomial(N, p) upper tail of the green count;
 *  - exponential: Exp(1) each → Gamma(N, 1) upper tail of the score sum;
 *  - binomial: `trials` fair-or-p bits each → Binomial(trials · N, p) upper tail of the bit sum.
 */
export type NullLaw =
  | { kind: 'bernoulli'; p: number }
  | { kind: 'exponential' }
  | { kind: 'binomial'; trials: number; p: number };

/**
 * A keyed watermark scheme: one definition serves embedding and scoring.
 *
 * `sequence` is the token sequence so far (prompt and generated); the PRF context is its last
 * `contextWidth` tokens. Candidate sets are given as `logits[0..count)` already divided by the temperature,
 * with `ids[i]` the token of candidate i, or `ids = null` when the candidates are the whole vocabulary.
 * A logit of −Infinity marks a token that cannot be chosen.
 */
export interface Scheme<S extends BaseSpec = BaseSpec> {
  readonly spec: S;
  readonly vocabSize: number;
  readonly contextWidth: number;
  /** True when, over the randomness of the key, the output distribution equals the model's. */
  readonly distortionFree: boolean;
  readonly nullLaw: NullLaw;
  /** Fingerprint of this scheme's derived key (safe to print). */
  readonly keyFingerprint: string;
  /** Fingerprint of the master key it was derived from. */
  readonly masterFingerprint: string;
  readonly tenant: string | undefined;

  /** Logit-bias schemes: add the watermark bias in place, before truncation (top-k/top-p). */
  biasLogits?(
    sequence: ArrayLike<number>,
    logits: Float32Array,
    ids?: Int32Array | null,
    count?: number,
  ): void;

  /**
   * Choose the next token among the candidates. Logit-bias schemes sample the (already biased)
   * distribution with `uniform`; distortion-free schemes let the keyed randomness decide.
   */
  choose(
    sequence: ArrayLike<number>,
    logits: Float32Array,
    ids: Int32Array | null,
    count: number,
    uniform: () => number,
  ): number;

  /** Score of `sequence[index]` given its context `sequence[index − contextWidth .. index)`. */
  score(sequence: ArrayLike<number>, index: number): number;

  /**
   * Scores of `sequence[positions[j]]` into `out[j]` for j < count: the same numbers as `score`, in one
   * call, so that a scheme can keep its hot loop in one place. Optional; the verifier scores through it.
   */
  scoreMany?(sequence: Uint32Array, positions: Int32Array, count: number, out: Float64Array): void;

  /**
   * Writes into `out` a 64-bit key of everything that determines the PRF seed after the window ending
   * before `end`. Without it, the whole window is the key.
   */
  contextKey?(sequence: ArrayLike<number>, end: number, out: Uint32Array): void;

  /**
   * Writes into `out` a 64-bit key of everything that determines the score of `sequence[index]`; positions
   * with distinct keys have independent scores under H0. Without it, (window, token) is the key.
   */
  inputKey?(sequence: ArrayLike<number>, index: number, out: Uint32Array): void;
}
