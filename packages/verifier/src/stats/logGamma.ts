import { requirePositive } from './validate';

// Lanczos approximation with g = 671/128 and 14 terms (Numerical Recipes 3rd ed. §6.1, gammln); the
// coefficients are NR's, written as the shortest decimals of the same doubles.
const LANCZOS_G = 671 / 128;
const LANCZOS_C0 = 0.9999999999999971;
const LANCZOS_COEFFICIENTS = [
  57.15623566586292, -59.59796035547549, 14.136097974741746, -0.4919138160976202, 3.399464998481189e-5,
  4.652362892704858e-5, -9.837447530487956e-5, 1.580887032249125e-4, -2.1026444172410488e-4,
  2.1743961811521265e-4, -1.643181065367639e-4, 8.441822398385275e-5, -2.6190838401581408e-5,
  3.6899182659531625e-6,
];
const SQRT_TWO_PI = Math.sqrt(2 * Math.PI);

/**
 * ln Γ(x) for x > 0. Relative error ~1e-15 away from the zeros of ln Γ at 1 and 2, where the error is
 * ~1e-15 absolute instead: no Lanczos sum resolves ln Γ(1 + ε) ≈ -γε relative to its own size.
 */
export function logGamma(x: number): number {
  requirePositive('logGamma', 'x', x);
  const t = x + LANCZOS_G;
  let series = LANCZOS_C0;
  for (let j = 0; j < LANCZOS_COEFFICIENTS.length; j++) series += LANCZOS_COEFFICIENTS[j] / (x + j + 1);
  return (x + 0.5) * Math.log(t) - t + Math.log((SQRT_TWO_PI * series) / x);
}
