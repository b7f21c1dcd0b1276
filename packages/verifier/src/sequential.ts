import type { NullLaw } from '@tracemark/watermark';
import { fail } from './errors';
import { logGamma } from './stats/index';

/**
 * Anytime-valid sequential tests: e-processes for the scored-token stream of a detector.
 *
 * An e-process E_n is a non-negative process with E[E_τ] ≤ 1 under H0 at every stopping time τ; by Ville's
 * inequality P_H0[sup_n E_n ≥ 1/α] ≤ α. An investigator may therefore look after every token and stop as soon
 * as E_n ≥ 1/α without inflating the false-positive rate, which the fixed-size p-value does not allow
 * (testing it after every token and stopping at the first p ≤ α rejects a true H0 far more often than α).
 *
 * Each process here is a mixture, over a prior on the alternative, of likelihood ratios against the scheme's
 * exact null law: a non-negative martingale under H0 with E_0 = 1.
 *  - bernoulli(γ) green counts (KGW, Unigram): the beta-binomial mixture
 *      E_n = B(a + k, b + n − k) / B(a, b) / (γ^k (1 − γ)^(n − k)),
 *    k greens in n scored tokens, with a Beta(a, b) prior on the green rate.
 *  - binomial(m, p) bit counts (SynthID): the same over the m·n bits.
 *  - exponential scores (Gumbel-max): Exp(θ) against Exp(1) with a Gamma(a, b) prior on the rate θ,
 *      E_n = e^S b^a Γ(n + a) / (Γ(a) (S + b)^(n + a)),  S the score sum.
 * The anytime-valid p-value after n tokens is min(1, 1 / max_{t ≤ n} E_t).
 */
export interface EProcessOptions {
  /**
   * Prior strength c: the Beta prior on the green rate is Beta(c·γ, c·(1 − γ)), centred on the null rate (and
   * the Gamma prior on the exponential rate has shape and rate c). Larger c helps small effects and costs a
   * little for large ones. Default 100.
   */
  priorStrength?: number;
}

export interface SequentialState {
  /** Scored tokens so far, and the sum of their scores (green count, bit count or exponential sum). */
  scored: number;
  scoreSum: number;
  /** log10 of the current e-value, and of the largest so far. */
  log10EValue: number;
  log10MaxEValue: number;
  /** Anytime-valid p-value: min(1, 1 / max E). */
  log10AnytimePValue: number;
}

export const DEFAULT_PRIOR_STRENGTH = 100;

const LN10 = Math.LN10;

export class EProcess {
  readonly nullLaw: NullLaw;
  readonly priorStrength: number;
  #scored = 0;
  #sum = 0;
  #logE = 0;
  #maxLogE = 0;
  // bernoulli/binomial: prior Beta(a, b), null rate p, trials per token.
  readonly #a: number;
  readonly #b: number;
  readonly #logP: number;
  readonly #logQ: number;
  readonly #trials: number;
  /** Successes and trials seen, for the incremental beta-binomial update. */
  #k = 0;
  #n = 0;

  constructor(nullLaw: NullLaw, options: EProcessOptions = {}) {
    const c = options.priorStrength ?? DEFAULT_PRIOR_STRENGTH;
    if (!(Number.isFinite(c) && c > 0)) fail('E_INVALID_OPTIONS', `priorStrength must be > 0; got ${c}`);
    this.nullLaw = nullLaw;
    this.priorStrength = c;
    if (nullLaw.kind === 'exponential') {
      this.#a = c;
      this.#b = c;
      this.#logP = 0;
      this.#logQ = 0;
      this.#trials = 1;
    } else {
      const p = nullLaw.p;
      this.#a = c * p;
      this.#b = c * (1 - p);
      this.#logP = Math.log(p);
      this.#logQ = Math.log1p(-p);
      this.#trials = nullLaw.kind === 'binomial' ? nullLaw.trials : 1;
    }
  }

  /**
   * Adds one scored token: its score under the scheme (1/0 green for bernoulli, the count of 1-bits for
   * binomial, the exponential score for Gumbel). Returns the new natural log of the e-value.
   */
  push(score: number): number {
    this.#scored++;
    this.#sum += score;
    if (this.nullLaw.kind === 'exponential') {
      this.#logE = this.#logGammaMixture();
    } else if (this.#trials === 1) {
      // One Bernoulli trial: the beta-binomial predictive ratio, exact and O(1).
      const total = this.#a + this.#b + this.#n;
      this.#logE +=
        score >= 1
          ? Math.log((this.#a + this.#k) / total) - this.#logP
          : Math.log((this.#b + this.#n - this.#k) / total) - this.#logQ;
      this.#k += score >= 1 ? 1 : 0;
      this.#n += 1;
    } else {
      this.#k += score;
      this.#n += this.#trials;
      this.#logE = this.#logBetaMixture();
    }
    if (this.#logE > this.#maxLogE) this.#maxLogE = this.#logE;
    return this.#logE;
  }

  /** Whether the e-process has reached 1/α at any point so far (the test may stop there). */
  rejects(alpha: number): boolean {
    return this.#maxLogE >= -Math.log(alpha);
  }

  get state(): SequentialState {
    return {
      scored: this.#scored,
      scoreSum: this.#sum,
      log10EValue: this.#logE / LN10,
      log10MaxEValue: this.#maxLogE / LN10,
      log10AnytimePValue: Math.min(0, -this.#maxLogE / LN10),
    };
  }

  #logBetaMixture(): number {
    const a = this.#a;
    const b = this.#b;
    const k = this.#k;
    const n = this.#n;
    return logBeta(a + k, b + n - k) - logBeta(a, b) - k * this.#logP - (n - k) * this.#logQ;
  }

  #logGammaMixture(): number {
    const a = this.#a;
    const b = this.#b;
    const s = this.#sum;
    const n = this.#scored;
    return s + a * Math.log(b) + logGamma(n + a) - logGamma(a) - (n + a) * Math.log(s + b);
  }
}

function logBeta(a: number, b: number): number {
  return logGamma(a) + logGamma(b) - logGamma(a + b);
}

/** Runs an e-process over a score stream; `alpha` stops it at the first token where E ≥ 1/α. */
export function sequentialTest(
  scores: ArrayLike<number>,
  nullLaw: NullLaw,
  options: EProcessOptions & { alpha?: number } = {},
): SequentialState & { rejected: boolean; stoppedAt: number | null } {
  const eProcess = new EProcess(nullLaw, options);
  const alpha = options.alpha;
  for (let i = 0; i < scores.length; i++) {
    eProcess.push(scores[i]);
    if (alpha !== undefined && eProcess.rejects(alpha)) {
      return { ...eProcess.state, rejected: true, stoppedAt: i + 1 };
    }
  }
  return {
    ...eProcess.state,
    rejected: alpha !== undefined && eProcess.rejects(alpha),
    stoppedAt: null,
  };
}
