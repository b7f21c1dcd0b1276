import { logIncompleteGammaTails } from './incompleteGamma';
import { type TailProbability, tailFromLog } from './tail';
import { requireFinite, requirePositive } from './validate';

const CERTAIN: TailProbability = { p: 1, log10p: 0 };
const IMPOSSIBLE: TailProbability = { p: 0, log10p: Number.NEGATIVE_INFINITY };

function validate(fn: string, s: number, n: number): void {
  requireFinite(fn, 's', s);
  requirePositive(fn, 'n', n);
}

/**
 * P[G >= s] for G ~ Gamma(shape n, scale 1), the regularized upper incomplete gamma Q(n, s) (DLMF 8.2.4).
 * The shape may be any positive real, so chi-square with odd df is covered; s <= 0 is below the support.
 * Tiny shapes are the exception: for n << 1 and s < n + 1 the tail is ~n and has relative error ~1e-16/n.
 */
export function gammaUpperTail(s: number, n: number): TailProbability {
  validate('gammaUpperTail', s, n);
  if (s <= 0) return CERTAIN;
  return tailFromLog(logIncompleteGammaTails(n, s).logUpper);
}

/** P[G <= s], the regularized lower incomplete gamma P(n, s) (DLMF 8.2.4). */
export function gammaLowerTail(s: number, n: number): TailProbability {
  validate('gammaLowerTail', s, n);
  if (s <= 0) return IMPOSSIBLE;
  return tailFromLog(logIncompleteGammaTails(n, s).logLower);
}
