import { describe, expect, it } from 'vitest';
import {
  binomialCountInterval,
  binomialLowerTail,
  binomialUpperTail,
  chiSquareUpperTail,
  gammaLowerTail,
  gammaUpperTail,
  holmAdjust,
  holmAdjustLog10,
  kolmogorovSmirnovUniform,
  logGamma,
  normalUpperTail,
  type TailProbability,
} from '../src/stats/index';
import vectors from './fixtures/pvalues.json';

const P_REL_TOL = 1e-9;
const LOG10P_ABS_TOL = 1e-6;
const NORMAL_RANGE_FLOOR = 1e-300;

type Reference = { p: number; log10p: number };

function expectMatchesReference(got: TailProbability, want: Reference): void {
  expect(Math.abs(got.log10p - want.log10p)).toBeLessThanOrEqual(LOG10P_ABS_TOL);
  if (want.p > NORMAL_RANGE_FLOOR) {
    expect(Math.abs(got.p - want.p) / want.p).toBeLessThanOrEqual(P_REL_TOL);
  } else {
    expect(got.p).toBeLessThanOrEqual(NORMAL_RANGE_FLOOR);
  }
}

function expectRelativelyClose(got: number, want: number, tolerance: number): void {
  expect(Math.abs(got - want) / Math.abs(want)).toBeLessThanOrEqual(tolerance);
}

// C(n, k) p^k (1-p)^(n-k) by a running product: exact enough for the small n used here.
function binomialPmf(k: number, n: number, p: number): number {
  let choose = 1;
  for (let i = 1; i <= k; i++) choose = (choose * (n - k + i)) / i;
  return choose * p ** k * (1 - p) ** (n - k);
}

describe('reference vectors (test/fixtures/pvalues.json)', () => {
  it.each(vectors.binomialUpperTail)('binomialUpperTail k=$k n=$n p=$gamma', (v) => {
    expectMatchesReference(binomialUpperTail(v.k, v.n, v.gamma), v);
  });

  it.each(vectors.gammaUpperTail)('gammaUpperTail s=$s n=$n', (v) => {
    expectMatchesReference(gammaUpperTail(v.s, v.n), v);
  });

  it.each(vectors.normalUpperTail)('normalUpperTail z=$z', (v) => {
    expectMatchesReference(normalUpperTail(v.z), v);
  });
});

describe('binomial tails', () => {
  it('returns certainty and impossibility at the edges of the support', () => {
    expect(binomialUpperTail(0, 10, 0.25)).toEqual({ p: 1, log10p: 0 });
    expect(binomialUpperTail(-3, 10, 0.25)).toEqual({ p: 1, log10p: 0 });
    expect(binomialUpperTail(11, 10, 0.25)).toEqual({ p: 0, log10p: Number.NEGATIVE_INFINITY });
    expect(binomialUpperTail(0, 0, 0.5)).toEqual({ p: 1, log10p: 0 });
    expect(binomialUpperTail(1, 0, 0.5)).toEqual({ p: 0, log10p: Number.NEGATIVE_INFINITY });
    expect(binomialLowerTail(-1, 10, 0.25)).toEqual({ p: 0, log10p: Number.NEGATIVE_INFINITY });
    expect(binomialLowerTail(10, 10, 0.25)).toEqual({ p: 1, log10p: 0 });
  });

  it('handles p = 0 and p = 1', () => {
    expect(binomialUpperTail(1, 10, 0)).toEqual({ p: 0, log10p: Number.NEGATIVE_INFINITY });
    expect(binomialUpperTail(10, 10, 1)).toEqual({ p: 1, log10p: 0 });
    expect(binomialLowerTail(0, 10, 0)).toEqual({ p: 1, log10p: 0 });
    expect(binomialLowerTail(9, 10, 1)).toEqual({ p: 0, log10p: Number.NEGATIVE_INFINITY });
  });

  it('keeps log10p finite and exact far below 1e-300 (k = n gives p^n)', () => {
    expect(binomialUpperTail(100000, 100000, 0.25).log10p).toBeCloseTo(100000 * Math.log10(0.25), 8);
    expect(binomialUpperTail(2000, 2000, 0.5).log10p).toBeCloseTo(2000 * Math.log10(0.5), 10);
    expect(binomialLowerTail(0, 5000, 0.75).log10p).toBeCloseTo(5000 * Math.log10(0.25), 10);
  });

  it('agrees with a direct sum of the pmf for n = 30', () => {
    for (let k = 0; k <= 30; k++) {
      let upper = 0;
      for (let j = k; j <= 30; j++) upper += binomialPmf(j, 30, 0.3);
      expectRelativelyClose(binomialUpperTail(k, 30, 0.3).p, upper, 1e-12);
    }
  });

  it.each([
    [3, 10, 0.25],
    [8, 21, 0.25],
    [50, 100, 0.5],
    [13, 14, 0.3],
    [5200, 20000, 0.25],
  ])('upper(k) + lower(k-1) = 1 and upper(k) + lower(k) = 1 + pmf(k) for k=%i n=%i p=%f', (k, n, p) => {
    const upper = binomialUpperTail(k, n, p).p;
    expect(upper + binomialLowerTail(k - 1, n, p).p).toBeCloseTo(1, 14);
    if (n <= 100) expect(upper + binomialLowerTail(k, n, p).p).toBeCloseTo(1 + binomialPmf(k, n, p), 14);
  });
});

describe('gamma tails', () => {
  it('is certain below the support', () => {
    expect(gammaUpperTail(0, 3)).toEqual({ p: 1, log10p: 0 });
    expect(gammaUpperTail(-1, 3)).toEqual({ p: 1, log10p: 0 });
    expect(gammaLowerTail(0, 3)).toEqual({ p: 0, log10p: Number.NEGATIVE_INFINITY });
  });

  it('matches the closed forms for shapes 1 and 2, far below 1e-300 too', () => {
    expectRelativelyClose(gammaUpperTail(3, 1).p, Math.exp(-3), 1e-14);
    expectRelativelyClose(gammaUpperTail(3, 2).p, Math.exp(-3) * 4, 1e-14);
    expect(gammaUpperTail(10000, 1).log10p).toBeCloseTo(-10000 / Math.LN10, 9);
    expect(gammaUpperTail(10000, 2).log10p).toBeCloseTo((Math.log(10001) - 10000) / Math.LN10, 9);
  });

  it('accepts a non-integer shape', () => {
    // Q(2.5, 3) from mpmath at 40 digits.
    expectRelativelyClose(gammaUpperTail(3, 2.5).p, 0.3062189184132784, 1e-13);
  });

  it.each([
    [10, 10],
    [25, 10],
    [3, 2.5],
    [0.2, 0.5],
    [250000, 248200],
  ])('lower + upper = 1 for s=%f n=%f', (s, n) => {
    expect(gammaLowerTail(s, n).p + gammaUpperTail(s, n).p).toBeCloseTo(1, 14);
  });
});

describe('normal upper tail', () => {
  it('is symmetric: P[Z >= z] + P[Z >= -z] = 1', () => {
    for (const z of [0.1, 1, 1.7, 2.5, 5]) {
      expect(normalUpperTail(z).p + normalUpperTail(-z).p).toBeCloseTo(1, 15);
    }
  });

  it('keeps log10p finite and accurate for z = 40 and z = 100', () => {
    // log10 of erfc(z/√2)/2 from mpmath at 40 digits.
    expect(normalUpperTail(40).log10p).toBeCloseTo(-349.43700645934587, 10);
    expect(normalUpperTail(100).log10p).toBeCloseTo(-2173.8715428690343, 9);
    expect(normalUpperTail(40).p).toBe(0);
  });
});

describe('chiSquareUpperTail', () => {
  it('gives 0.05 at the tabulated critical values', () => {
    expectRelativelyClose(chiSquareUpperTail(3.841458820694124, 1).p, 0.05, 1e-12);
    expectRelativelyClose(chiSquareUpperTail(18.307038053275146, 10).p, 0.05, 1e-12);
  });

  it('is exp(-x/2) for df = 2 and 1 at x = 0', () => {
    expectRelativelyClose(chiSquareUpperTail(7, 2).p, Math.exp(-3.5), 1e-14);
    expect(chiSquareUpperTail(0, 5)).toEqual({ p: 1, log10p: 0 });
  });
});

describe('logGamma', () => {
  it.each([
    [0.5, 0.5 * Math.log(Math.PI)],
    [1, 0],
    [2, 0],
    [10, Math.log(362880)],
    // mpmath at 40 digits:
    [0.1, 2.252712651734206],
    [2.5, 0.2846828704729192],
    [171, 706.5730622457874],
    [1e6, 12815504.569147613],
  ])('lnΓ(%f)', (x, want) => {
    const got = logGamma(x);
    if (want === 0) expect(Math.abs(got)).toBeLessThan(1e-15);
    else expectRelativelyClose(got, want, 1e-14);
  });
});

describe('kolmogorovSmirnovUniform', () => {
  it('gives a large p-value on a uniform grid', () => {
    const grid = Array.from({ length: 100 }, (_, i) => (i + 0.5) / 100);
    const result = kolmogorovSmirnovUniform(grid);
    expect(result.statistic).toBeCloseTo(0.005, 12);
    expect(result.pValue).toBeGreaterThan(0.99);
  });

  it('gives a tiny p-value on clustered data', () => {
    const clustered = Array.from({ length: 200 }, (_, i) => 0.05 + (i / 200) * 0.05);
    const result = kolmogorovSmirnovUniform(clustered);
    // The largest value is 0.05 + 0.05 · 199/200, so D = 1 - 0.09975.
    expect(result.statistic).toBeCloseTo(0.90025, 12);
    expect(result.pValue).toBeLessThan(1e-100);
    expect(result.pValue).toBeGreaterThan(0);
  });

  it('is exact for one observation: P[D >= d] = 2(1 - d)', () => {
    const result = kolmogorovSmirnovUniform([0.2]);
    expect(result.statistic).toBeCloseTo(0.8, 15);
    expect(result.pValue).toBeCloseTo(0.4, 14);
  });

  it.each([
    // scipy.stats.kstest(..., 'uniform', method='exact'), exact for n <= 140.
    ['exact matrix branch', [0.02, 0.11, 0.19, 0.25, 0.31, 0.47, 0.5, 0.72, 0.81, 0.97], 0.2, 0.74871904],
    [
      'exact matrix branch',
      Array.from({ length: 50 }, (_, i) => (((i * 37) % 50) + 0.5) / 62.5),
      0.208,
      0.02245212096927618,
    ],
    [
      'one-sided tail branch',
      Array.from({ length: 50 }, (_, i) => ((((i * 37) % 50) + 0.5) / 50) * 0.6),
      0.406,
      5.829790578907149e-8,
    ],
  ])('matches scipy on the %s', (_, sample, statistic, pValue) => {
    const result = kolmogorovSmirnovUniform(sample as number[]);
    expect(result.statistic).toBeCloseTo(statistic as number, 12);
    expectRelativelyClose(result.pValue, pValue as number, 1e-12);
  });
});

describe('Holm-Bonferroni', () => {
  it('adjusts a hand-worked example and keeps input order', () => {
    // Sorted: 0.005·4 = 0.02, 0.01·3 = 0.03, 0.03·2 = 0.06, 0.04·1 = 0.04 → running max 0.06.
    const adjusted = holmAdjust([0.01, 0.04, 0.03, 0.005]);
    [0.03, 0.06, 0.06, 0.02].forEach((want, i) => {
      expect(adjusted[i]).toBeCloseTo(want, 15);
    });
  });

  it('caps at 1 and handles the empty family', () => {
    expect(holmAdjust([0.5, 0.6])).toEqual([1, 1]);
    expect(holmAdjust([])).toEqual([]);
  });

  it('has a log10 variant that agrees and survives underflow', () => {
    const raw = [0.01, 0.04, 0.03, 0.005];
    const viaLog = holmAdjustLog10(raw.map(Math.log10)).map((l) => 10 ** l);
    holmAdjust(raw).forEach((want, i) => {
      expect(viaLog[i]).toBeCloseTo(want, 14);
    });
    const adjusted = holmAdjustLog10([-400, Number.NEGATIVE_INFINITY, -1]);
    expect(adjusted[0]).toBeCloseTo(-400 + Math.log10(2), 12);
    expect(adjusted[1]).toBe(Number.NEGATIVE_INFINITY);
    expect(adjusted[2]).toBe(-1);
    expect(holmAdjustLog10([-0.1, -0.2])).toEqual([0, 0]);
  });
});

describe('argument validation', () => {
  it.each([
    [
      'binomialUpperTail k non-integer',
      () => binomialUpperTail(2.5, 10, 0.25),
      /binomialUpperTail: k must be an integer/,
    ],
    ['binomialUpperTail k NaN', () => binomialUpperTail(Number.NaN, 10, 0.25), /k must be an integer/],
    [
      'binomialUpperTail n negative',
      () => binomialUpperTail(1, -1, 0.25),
      /n must be a non-negative integer/,
    ],
    [
      'binomialUpperTail n non-integer',
      () => binomialUpperTail(1, 10.5, 0.25),
      /n must be a non-negative integer/,
    ],
    ['binomialUpperTail n infinite', () => binomialUpperTail(1, Number.POSITIVE_INFINITY, 0.25), /n must be/],
    ['binomialUpperTail p > 1', () => binomialUpperTail(1, 10, 1.5), /p must be in \[0, 1\]/],
    [
      'binomialLowerTail p NaN',
      () => binomialLowerTail(1, 10, Number.NaN),
      /binomialLowerTail: p must be in/,
    ],
    ['gammaUpperTail n = 0', () => gammaUpperTail(1, 0), /gammaUpperTail: n must be a finite number > 0/],
    ['gammaUpperTail n negative', () => gammaUpperTail(1, -2), /n must be a finite number > 0/],
    [
      'gammaLowerTail s infinite',
      () => gammaLowerTail(Number.POSITIVE_INFINITY, 2),
      /s must be a finite number/,
    ],
    ['gammaUpperTail s NaN', () => gammaUpperTail(Number.NaN, 2), /s must be a finite number/],
    [
      'normalUpperTail z NaN',
      () => normalUpperTail(Number.NaN),
      /normalUpperTail: z must be a finite number/,
    ],
    [
      'normalUpperTail z infinite',
      () => normalUpperTail(Number.NEGATIVE_INFINITY),
      /z must be a finite number/,
    ],
    ['chiSquareUpperTail df = 0', () => chiSquareUpperTail(1, 0), /chiSquareUpperTail: df must be/],
    ['chiSquareUpperTail x NaN', () => chiSquareUpperTail(Number.NaN, 1), /x must be a finite number/],
    ['logGamma x = 0', () => logGamma(0), /logGamma: x must be a finite number > 0/],
    ['logGamma x NaN', () => logGamma(Number.NaN), /logGamma: x must be/],
    ['KS empty', () => kolmogorovSmirnovUniform([]), /must not be empty/],
    ['KS value > 1', () => kolmogorovSmirnovUniform([0.5, 1.5]), /pValues\[1\] must be in \[0, 1\]/],
    ['holmAdjust negative', () => holmAdjust([0.1, -0.1]), /holmAdjust: pValues\[1\] must be in/],
    ['holmAdjustLog10 positive', () => holmAdjustLog10([0.5]), /log10p\[0\] must be a log10 probability/],
    ['holmAdjustLog10 NaN', () => holmAdjustLog10([Number.NaN]), /log10p\[0\] must be/],
  ])('%s throws a RangeError', (_, call, message) => {
    expect(call).toThrow(RangeError);
    expect(call).toThrow(message);
  });
});

describe('binomialCountInterval', () => {
  /** P[X = k] summed directly: exact enough for n ≤ 1000 in double precision. */
  function pmf(k: number, n: number, p: number): number {
    let log = k * Math.log(p) + (n - k) * Math.log1p(-p);
    for (let i = 0; i < k; i++) log += Math.log(n - i) - Math.log(i + 1);
    return Math.exp(log);
  }

  it.each([
    [300, 1e-3, 0.99],
    [40, 0.1, 0.99],
    [1000, 0.05, 0.95],
    [10, 0.5, 0.9],
  ])(
    'n = %d, p = %d at %d: the tails beyond it hold at most (1 − level)/2 each, and no narrower interval does',
    (n, p, level) => {
      const { lower, upper } = binomialCountInterval(n, p, level);
      const tail = (1 - level) / 2;
      const above = (u: number) =>
        Array.from({ length: n - u }, (_, i) => pmf(u + 1 + i, n, p)).reduce((a, b) => a + b, 0);
      const below = (l: number) =>
        Array.from({ length: l }, (_, i) => pmf(i, n, p)).reduce((a, b) => a + b, 0);
      expect(above(upper)).toBeLessThanOrEqual(tail * (1 + 1e-9));
      if (upper > 0) expect(above(upper - 1)).toBeGreaterThan(tail);
      expect(below(lower)).toBeLessThanOrEqual(tail * (1 + 1e-9));
      if (lower < n) expect(below(lower + 1)).toBeGreaterThan(tail);
    },
  );

  it('gives 0 to 2 false positives in 300 tests at α = 1e-3 (the harness check)', () => {
    expect(binomialCountInterval(300, 1e-3, 0.99)).toEqual({ lower: 0, upper: 2 });
  });
});
