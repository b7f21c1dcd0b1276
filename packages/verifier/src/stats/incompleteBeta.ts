import { logBinomialDensity } from './saddlePoint';
import { log1mExp } from './tail';

/** Natural logs of the regularized incomplete beta function I_x(a, b) and of 1 - I_x(a, b). */
export type LogBetaTails = { logLower: number; logUpper: number };

const EPS = Number.EPSILON;
const TINY = 1e-300;

// The continued fraction needs O(√max(a, b)) terms when x is near the mean a/(a+b).
function maxIterations(a: number, b: number): number {
  return 1000 + Math.ceil(100 * Math.sqrt(Math.max(a, b)));
}

function clampAwayFromZero(v: number): number {
  return Math.abs(v) < TINY ? TINY : v;
}

// Continued fraction for I_x(a, b) · a B(a, b) / (x^a (1-x)^b), evaluated by modified Lentz (Numerical
// Recipes 3rd ed. §6.4, betacf; DLMF §8.17(v)). Converges fast for x < (a+1)/(a+b+2).
function betaContinuedFraction(a: number, b: number, x: number): number {
  const limit = maxIterations(a, b);
  let c = 1;
  let d = 1 / clampAwayFromZero(1 - ((a + b) * x) / (a + 1));
  let h = d;
  for (let m = 1; m <= limit; m++) {
    const m2 = 2 * m;
    const even = (m * (b - m) * x) / ((a - 1 + m2) * (a + m2));
    d = 1 / clampAwayFromZero(1 + even * d);
    c = clampAwayFromZero(1 + even / c);
    h *= d * c;
    const odd = (-(a + m) * (a + b + m) * x) / ((a + m2) * (a + 1 + m2));
    d = 1 / clampAwayFromZero(1 + odd * d);
    c = clampAwayFromZero(1 + odd / c);
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) <= EPS) return h;
  }
  throw new Error(`incomplete beta continued fraction did not converge for a=${a}, b=${b}, x=${x}`);
}

/**
 * ln I_x(a, b) and ln[1 - I_x(a, b)] for a, b > 0 and 0 <= x <= 1, with y = 1 - x passed separately so
 * a tiny y keeps its precision. The symmetry I_x(a, b) = 1 - I_y(b, a) picks the side where the continued
 * fraction converges; that side is computed in log space so it never underflows, the other is its complement.
 */
export function logIncompleteBetaTails(a: number, b: number, x: number, y: number): LogBetaTails {
  if (x === 0) return { logLower: Number.NEGATIVE_INFINITY, logUpper: 0 };
  if (y === 0) return { logLower: 0, logUpper: Number.NEGATIVE_INFINITY };
  // x^a y^b / B(a, b) = a b/(a+b) · [binomial density of a successes in a+b trials].
  const logKernel = logBinomialDensity(a, a + b, x, y) - Math.log(a + b);
  if (x < (a + 1) / (a + b + 2)) {
    const logLower = logKernel + Math.log(b * betaContinuedFraction(a, b, x));
    return { logLower, logUpper: log1mExp(logLower) };
  }
  const logUpper = logKernel + Math.log(a * betaContinuedFraction(b, a, y));
  return { logLower: log1mExp(logUpper), logUpper };
}
