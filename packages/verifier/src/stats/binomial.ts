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
