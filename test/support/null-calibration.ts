import { binomialLowerTail, binomialUpperTail } from '@tracemark/verifier';
import type { NullLaw } from '@tracemark/watermark';

/**
 * The exact size of the level-α test on `scored` tokens: P_H0[p ≤ α]. For a discrete null law the
 * p-value takes few values and the size is the tail at the smallest count k* whose tail is ≤ α, which
 * can be well below α for short texts; for the continuous Gamma law it is α itself.
 */
export class AttainedSize {
  readonly law: NullLaw;
  readonly alpha: number;
  readonly #cache = new Map<number, number>();

  constructor(law: NullLaw, alpha: number) {
    this.law = law;
    this.alpha = alpha;
  }

  of(scored: number): number {
    let size = this.#cache.get(scored);
    if (size === undefined) {
      size = this.#compute(scored);
      this.#cache.set(scored, size);
    }
    return size;
  }

  #compute(scored: number): number {
    const law = this.law;
    if (scored === 0) return 0;
    if (law.kind === 'exponential') return this.alpha;
    const trials = law.kind === 'binomial' ? law.trials * scored : scored;
    // The tail P[X ≥ k] decreases in k: bisect for the smallest k with tail ≤ α (k = trials + 1: none).
    let lo = 0;
    let hi = trials + 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (binomialUpperTail(mid, trials, law.p).p <= this.alpha) hi = mid;
      else lo = mid + 1;
    }
    return binomialUpperTail(lo, trials, law.p).p;
  }
}

/** Both binomial tails of `observed` out of `trials` at rate `rate`. */
export function binomialTails(
  observed: number,
  trials: number,
  rate: number,
): { lower: number; upper: number } {
  return {
    lower: binomialLowerTail(observed, trials, rate).p,
    upper: binomialUpperTail(observed, trials, rate).p,
  };
}
