import { logGamma } from './logGamma';

// Saddle-point forms of the binomial and Poisson densities (Loader 2000, "Fast and Accurate Computation of
// Binomial Probabilities"; as in R's dbinom_raw/dpois_raw). They are the prefactors of the incomplete beta
// and gamma functions: the naive a·ln x - x - ln Γ(a) cancels terms of size ~a ln a and loses ~1e-9 in
// ln p at a ~ 1e5, while stirlerr and bd0 are each computed to full relative accuracy.

const LN_SQRT_2PI = 0.5 * Math.log(2 * Math.PI);
const LN_2PI = Math.log(2 * Math.PI);
const STIRLING_SERIES_FROM = 15;
const S0 = 1 / 12;
const S1 = 1 / 360;
const S2 = 1 / 1260;
const S3 = 1 / 1680;
const S4 = 1 / 1188;

/** stirlerr(n) = ln Γ(n+1) - [(n + 1/2) ln n - n + ln √(2π)], the error of Stirling's formula. */
function stirlingError(n: number): number {
  if (n <= STIRLING_SERIES_FROM) return logGamma(n + 1) - (n + 0.5) * Math.log(n) + n - LN_SQRT_2PI;
  // Asymptotic series (DLMF 5.11.1); fewer terms suffice as n grows.
  const nn = n * n;
  if (n > 500) return (S0 - S1 / nn) / n;
  if (n > 80) return (S0 - (S1 - S2 / nn) / nn) / n;
  if (n > 35) return (S0 - (S1 - (S2 - S3 / nn) / nn) / nn) / n;
  return (S0 - (S1 - (S2 - (S3 - S4 / nn) / nn) / nn) / nn) / n;
}

/** bd0(x, m) = x ln(x/m) + m - x, the deviance term; a series in (x-m)/(x+m) avoids cancellation near m. */
function devianceTerm(x: number, m: number): number {
  if (Math.abs(x - m) >= 0.1 * (x + m)) return x * Math.log(x / m) + m - x;
  const v = (x - m) / (x + m);
  const v2 = v * v;
  let sum = (x - m) * v;
  let term = 2 * x * v;
  for (let j = 3; ; j += 2) {
    term *= v2;
    const next = sum + term / j;
    if (next === sum) return next;
    sum = next;
  }
}

/**
 * ln[Γ(n+1) / (Γ(x+1) Γ(n-x+1)) · p^x · q^(n-x)] for real 0 <= x <= n, with q = 1 - p passed separately
 * so that a tiny p or q keeps its precision.
 */
export function logBinomialDensity(x: number, n: number, p: number, q: number): number {
  if (p === 0) return x === 0 ? 0 : Number.NEGATIVE_INFINITY;
  if (q === 0) return x === n ? 0 : Number.NEGATIVE_INFINITY;
  // At the ends of the support n ln q (or n ln p) would drop the digits of a small p (or q) inside ln(1 - p).
  if (x === 0) {
    if (n === 0) return 0;
    return p < 0.1 ? -devianceTerm(n, n * q) - n * p : n * Math.log(q);
  }
  if (x === n) return q < 0.1 ? -devianceTerm(n, n * p) - n * q : n * Math.log(p);
  const y = n - x;
  const logCore =
    stirlingError(n) - stirlingError(x) - stirlingError(y) - devianceTerm(x, n * p) - devianceTerm(y, n * q);
  return logCore - 0.5 * (LN_2PI + Math.log(x) + Math.log1p(-x / n));
}

/** ln[e^(-λ) λ^x / Γ(x+1)] for real x >= 0. */
export function logPoissonDensity(x: number, lambda: number): number {
  if (lambda === 0) return x === 0 ? 0 : Number.NEGATIVE_INFINITY;
  if (x === 0) return -lambda;
  return -stirlingError(x) - devianceTerm(x, lambda) - 0.5 * (LN_2PI + Math.log(x));
}
