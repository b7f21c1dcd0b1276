import { logIncompleteBetaTails } from './incompleteBeta';
import { type TailProbability, tailFromLog } from './tail';
import { requireInteger, requireNonNegativeInteger, requireProbability } from './validate';

const CERTAIN: TailProbability = { p: 1, log10p: 0 };
const IMPOSSIBLE: TailProbability = { p: 0, log10p: Number.NEGATIVE_INFINITY };

function validate(fn: string, k: number, n: number, p: number): void {
  requireInteger(fn, 'k', k);
  requireNonNegativeInteger(fn, 'n', n);
  requireProbability(fn, 'p', p);
}

/**
 * P[X >= k] for X ~ Binomial(n, p), as I_p(k, n-k+1) (DLMF 8.17.5), so the tail is one continued fraction
 * instead of a sum of up to n terms, and log10p stays finite far below 1e-300.
 */
export function binomialUpperTail(k: number, n: number, p: number): TailProbability {
  validate('binomialUpperTail', k, n, p);
  if (k <= 0) return CERTAIN;
  if (k > n) return IMPOSSIBLE;
  return tailFromLog(logIncompleteBetaTails(k, n - k + 1, p, 1 - p).logLower);
}

/** P[X <= k] = 1 - I_p(k+1, n-k), the complementary side of the same incomplete beta function. */
export function binomialLowerTail(k: number, n: number, p: number): TailProbability {
  validate('binomialLowerTail', k, n, p);
  if (k < 0) return IMPOSSIBLE;
  if (k >= n) return CERTAIN;
  return tailFromLog(logIncompleteBetaTails(k + 1, n - k, p, 1 - p).logUpper);
}

/**
 * The central interval of Binomial(n, p) at `level`: the smallest `lower` with P[X < lower] ≤ (1 − level)/2
 * and the largest `upper` with P[X > upper] ≤ (1 − level)/2. A count outside it is evidence, at that level,
 * that the true rate is not p (the check of an observed false-positive count against α).
 */
export function binomialCountInterval(n: number, p: number, level: number): { lower: number; upper: number } {
  requireNonNegativeInteger('binomialCountInterval', 'n', n);
  requireProbability('binomialCountInterval', 'p', p);
  requireProbability('binomialCountInterval', 'level', level);
  const tail = (1 - level) / 2;
  // Linear scans from the mean: the tails fall geometrically, so a few dozen steps suffice for any n here.
  let upper = Math.min(n, Math.floor(n * p));
  while (upper < n && binomialUpperTail(upper + 1, n, p).p > tail) upper++;
  let lower = Math.max(0, Math.ceil(n * p));
  while (lower > 0 && binomialLowerTail(lower - 1, n, p).p > tail) lower--;
  return { lower, upper };
}
