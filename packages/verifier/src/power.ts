import { fail } from './errors';
import { binomialUpperTail, normalUpperTail } from './stats/index';

/**
 * Sample sizes of the fixed-size green-count test: how many scored tokens the exact one-sided binomial test at
 * level α needs to reach a given power when the green rate under the alternative is γ + effect.
 *
 * The test of n tokens rejects when the green count is at least its critical value c_n, the smallest c with
 * P_γ[X ≥ c] ≤ α. Its power P_{γ+ε}[X ≥ c_n] is a saw-tooth in n (c_n moves in unit steps), so the answer is
 * the first n whose power reaches the target, found by a scan with both tails exact. The scan starts past the
 * largest n at which the randomized UMP test (which is at least as powerful as the exact test, and whose power
 * never decreases in n) still falls short: no smaller n can do it.
 */
export interface PowerQuery {
  /** Green rate under H0 (the scheme's γ). */
  gamma: number;
  /** Increase of the green rate under the alternative: p1 = γ + effect. */
  effect: number;
  alpha: number;
  power: number;
}

export interface PowerResult extends PowerQuery {
  /** Smallest number of scored tokens for which the exact test has the requested power. */
  tokens: number;
  /** The critical green count at that size, the test's actual size P_γ[X ≥ c] and its power there. */
  criticalCount: number;
  actualAlpha: number;
  actualPower: number;
  /** The normal-approximation sample size ((z_α √(γ(1−γ)) + z_β √(p1(1−p1))) / effect)², rounded up. */
  normalApproximation: number;
}

/** Sizes above this are refused: the exact scan would take too long, and no probe gathers that much. */
export const MAX_POWER_TOKENS = 2e9;

export function validatePowerQuery(query: PowerQuery): void {
  const { gamma, effect, alpha, power } = query;
  if (!(gamma > 0 && gamma < 1)) fail('E_INVALID_OPTIONS', `gamma must be in (0, 1); got ${gamma}`);
  if (!(effect > 0 && gamma + effect < 1))
    fail('E_INVALID_OPTIONS', `effect must be > 0 with gamma + effect < 1; got ${effect}`);
  if (!(alpha > 0 && alpha < 0.5)) fail('E_INVALID_OPTIONS', `alpha must be in (0, 0.5); got ${alpha}`);
  if (!(power > alpha && power < 1)) fail('E_INVALID_OPTIONS', `power must be in (alpha, 1); got ${power}`);
}

/** The exact binomial test's power at n: critical count, size and power. */
export function exactBinomialPower(
  n: number,
  gamma: number,
  p1: number,
  alpha: number,
): { criticalCount: number; actualAlpha: number; power: number } {
  const c = criticalCount(n, gamma, alpha, initialCritical(n, gamma, alpha));
  return {
    criticalCount: c,
    actualAlpha: c > n ? 0 : binomialUpperTail(c, n, gamma).p,
    power: c > n ? 0 : binomialUpperTail(c, n, p1).p,
  };
}

export function requiredTokens(query: PowerQuery): PowerResult {
  validatePowerQuery(query);
  const { gamma, effect, alpha, power } = query;
  const p1 = gamma + effect;
  const normal = normalApproximation(query);
  if (normal > MAX_POWER_TOKENS) {
    fail(
      'E_INVALID_OPTIONS',
      `the effect is too small: about ${normal.toExponential(2)} tokens would be needed (the limit is ${MAX_POWER_TOKENS.toExponential(0)})`,
    );
  }
  // Largest n at which even the randomized test falls short: a lower bound for the exact answer.
  let low = 0;
  let high = Math.max(1, Math.ceil(normal));
  while (randomizedPower(high, gamma, p1, alpha) < power) {
    low = high;
    high *= 2;
    if (high > 2 * MAX_POWER_TOKENS) fail('E_INVALID_OPTIONS', 'no sample size reaches that power');
  }
  while (high - low > 1) {
    const mid = Math.floor((low + high) / 2);
    if (randomizedPower(mid, gamma, p1, alpha) < power) low = mid;
    else high = mid;
  }
  // Scan up from there: the critical count moves by 0 or 1 per added token.
  let n = low + 1;
  let c = criticalCount(n, gamma, alpha, initialCritical(n, gamma, alpha));
  for (;;) {
    if (c <= n) {
      const reached = binomialUpperTail(c, n, p1).p;
      if (reached >= power) {
        return {
          ...query,
          tokens: n,
          criticalCount: c,
          actualAlpha: binomialUpperTail(c, n, gamma).p,
          actualPower: reached,
          normalApproximation: Math.ceil(normal),
        };
      }
    }
    n++;
    c = criticalCount(n, gamma, alpha, c);
  }
}

/** Smallest c with P_γ[X ≥ c] ≤ α for X ~ Binomial(n, γ), searching up from `from` (≤ the answer). */
function criticalCount(n: number, gamma: number, alpha: number, from: number): number {
  let c = Math.max(0, from);
  while (c <= n && binomialUpperTail(c, n, gamma).p > alpha) c++;
  return c;
}

/**
 * The critical count by bisection: below the mean the tail exceeds α (< ½), so search up from there,
 * galloping to a count whose tail is ≤ α, then halving the interval.
 */
function initialCritical(n: number, gamma: number, alpha: number): number {
  let low = Math.floor(n * gamma); // P[X ≥ low] ≥ ½ > α
  if (low > n || binomialUpperTail(low, n, gamma).p <= alpha) return 0;
  let step = Math.max(1, Math.ceil(Math.sqrt(n * gamma * (1 - gamma))));
  let high = low + step;
  while (high <= n && binomialUpperTail(high, n, gamma).p > alpha) {
    low = high;
    step *= 2;
    high = low + step;
  }
  high = Math.min(high, n + 1);
  while (high - low > 1) {
    const mid = Math.floor((low + high) / 2);
    if (binomialUpperTail(mid, n, gamma).p > alpha) low = mid;
    else high = mid;
  }
  return high;
}

/** Power of the randomized UMP level-α test: it never decreases in n and bounds the exact test's power. */
function randomizedPower(n: number, gamma: number, p1: number, alpha: number): number {
  const c = criticalCount(n, gamma, alpha, initialCritical(n, gamma, alpha));
  // Reject for X ≥ c, and for X = c − 1 with the probability that brings the size to α exactly.
  if (c === 0) return 1;
  const above = c > n ? 0 : binomialUpperTail(c, n, gamma).p;
  const atOrAbove = binomialUpperTail(c - 1, n, gamma).p;
  const phi = (alpha - above) / (atOrAbove - above);
  const powerAbove = c > n ? 0 : binomialUpperTail(c, n, p1).p;
  const powerAt = binomialUpperTail(c - 1, n, p1).p - powerAbove;
  return powerAbove + phi * powerAt;
}

export function normalApproximation(query: PowerQuery): number {
  const { gamma, effect, alpha, power } = query;
  const p1 = gamma + effect;
  const zAlpha = normalQuantileUpper(alpha);
  const zBeta = normalQuantileUpper(1 - power);
  const root = (zAlpha * Math.sqrt(gamma * (1 - gamma)) + zBeta * Math.sqrt(p1 * (1 - p1))) / effect;
  return root * root;
}

/**
 * z with P[Z ≥ z] = q for Z ~ N(0, 1): Acklam's rational approximation (relative error 1.2e-9), then two
 * Newton steps on the exact tail.
 */
export function normalQuantileUpper(q: number): number {
  if (!(q > 0 && q < 1)) fail('E_INVALID_OPTIONS', `a tail probability must be in (0, 1); got ${q}`);
  let z = -acklam(q);
  for (let i = 0; i < 2; i++) {
    const tail = normalUpperTail(z).p;
    const density = Math.exp(-0.5 * z * z) / Math.sqrt(2 * Math.PI);
    if (density === 0) break;
    z += (tail - q) / density;
  }
  return z;
}

/** Acklam's approximation of the standard normal quantile Φ⁻¹(p). */
function acklam(p: number): number {
  const a = [
    -39.69683028665376, 220.9460984245205, -275.9285104469687, 138.357751867269, -30.66479806614716,
    2.506628277459239,
  ];
  const b = [
    -54.47609879822406, 161.5858368580409, -155.6989798598866, 66.80131188771972, -13.28068155288572,
  ];
  const c = [
    -0.007784894002430293, -0.3223964580411365, -2.400758277161838, -2.549732539343734, 4.374664141464968,
    2.938163982698783,
  ];
  const d = [0.007784695709041462, 0.3224671290700398, 2.445134137142996, 3.754408661907416];
  const low = 0.02425;
  if (p < low) {
    const q = Math.sqrt(-2 * Math.log(p));
    return (
      (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
      ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
    );
  }
  if (p > 1 - low) {
    const q = Math.sqrt(-2 * Math.log1p(-p));
    return -(
      (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
      ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1)
    );
  }
  const q = p - 0.5;
  const r = q * q;
  return (
    ((((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q) /
    (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1)
  );
}
