import { sampleCategorical } from './sampler';
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
   * Logit-bias schemes whose green list after a window is a function of that window alone (KGW with left or
   * min hashing, Unigram, the reference lefthash schemes); absent where a candidate seeds its own list
   * (SelfHash) or the bias is not a constant added to green tokens. SupportBiasScheme relies on it.
   */
  readonly windowGreen?: WindowGreenList;

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

/**
 * The green list of a logit-bias scheme whose bias depends on the window only: `biasLogits(sequence, …)` adds
 * `delta` to the logit of every candidate that `green(sequence, …)` marks and changes no other logit, so a
 * caller that finds the green candidates itself and adds `delta` to them gets the very same float32 bits.
 */
export interface WindowGreenList {
  /** The bias `biasLogits` adds to each green candidate's logit. */
  readonly delta: number;
  /**
   * Sets `out[i]` to 1 when token `ids[i]` (i < count) is green after the last `contextWidth` tokens of
   * `sequence`, else to 0, and returns how many are green. Candidates sorted by id are cheapest.
   */
  green(sequence: ArrayLike<number>, ids: ArrayLike<number>, count: number, out: Uint8Array): number;
}

/**
 * `WindowGreenList.green` for green lists drawn 32 tokens at a time: `out[i]` is the bit of `ids[i]` in
 * `word(⌊ids[i] / 32⌋)`, one word per run of a 32-token block (candidates sorted by id are cheapest); returns how
 * many are set. KGW's organisation list and the account layer share it.
 */
export function markBlockBits(
  word: (block: number) => number,
  ids: ArrayLike<number>,
  count: number,
  out: Uint8Array,
): number {
  let block = -1;
  let bits = 0;
  let found = 0;
  for (let i = 0; i < count; i++) {
    const t = ids[i];
    if (t >>> 5 !== block) {
      block = t >>> 5;
      bits = word(block);
    }
    const green = (bits >>> (t & 31)) & 1;
    out[i] = green;
    found += green;
  }
  return found;
}

/** What a scheme reports about its key: SchemeKey has these fields; interop schemes describe their spec's key. */
export interface KeyIdentity {
  readonly fingerprint: string;
  readonly masterFingerprint: string;
  readonly tenant: string | undefined;
}

/** The identity fields that a scheme fixes itself, beside its spec and key. */
export interface SchemeTraits {
  readonly contextWidth: number;
  readonly distortionFree: boolean;
  readonly nullLaw: NullLaw;
}

/**
 * The identity fields of a Scheme, filled once from the spec, the scheme's traits and its key, so that every
 * scheme (native, interop, wrapper) declares them in one place and in one order.
 */
export abstract class SchemeBase<S extends BaseSpec = BaseSpec> {
  readonly spec: S;
  readonly vocabSize: number;
  readonly contextWidth: number;
  readonly distortionFree: boolean;
  readonly nullLaw: NullLaw;
  readonly keyFingerprint: string;
  readonly masterFingerprint: string;
  readonly tenant: string | undefined;

  protected constructor(spec: S, traits: SchemeTraits, key: KeyIdentity) {
    this.spec = spec;
    this.vocabSize = spec.vocabSize;
    this.contextWidth = traits.contextWidth;
    this.distortionFree = traits.distortionFree;
    this.nullLaw = traits.nullLaw;
    this.keyFingerprint = key.fingerprint;
    this.masterFingerprint = key.masterFingerprint;
    this.tenant = key.tenant;
  }
}

/**
 * A logit-bias scheme (KGW and its reproductions): `biasLogits` shapes the distribution, and the token is the
 * ordinary categorical draw from the biased logits.
 */
export abstract class LogitBiasScheme<S extends BaseSpec = BaseSpec> extends SchemeBase<S> {
  choose(
    _sequence: ArrayLike<number>,
    logits: Float32Array,
    ids: Int32Array | null,
    count: number,
    uniform: () => number,
  ): number {
    return sampleCategorical(logits, ids, count, uniform());
  }
}
