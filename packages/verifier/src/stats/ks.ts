import { logBinomialDensity } from './saddlePoint';
import { requireProbabilities } from './validate';

export type KolmogorovSmirnovResult = { statistic: number; pValue: number };

// From n d² = 5 on, 2 P[D⁺ >= d] differs from P[D >= d] by ~e^(-6 n d²) relative (< 1e-13), while 1 - P[D < d]
// would cancel down to ~1e-15 / p relative.
const ONE_SIDED_FROM = 5;
// Multiply-adds allowed for the exact matrix power (~0.1 s); above it the asymptotic form takes over.
const EXACT_COST_LIMIT = 1e8;
// Marsaglia-Tsang-Wang keep the matrix power in range by shifting decimal exponents of this size.
const RESCALE_EXPONENT = 140;
const RESCALE = 1e140;
const RESCALE_INVERSE = 1e-140;

/** D_n = sup |F_n(u) - u| over the sorted sample (Numerical Recipes 3rd ed. §14.3). */
function kolmogorovStatistic(pValues: number[]): number {
  const sorted = [...pValues].sort((a, b) => a - b);
  const n = sorted.length;
  let d = 0;
  sorted.forEach((u, i) => {
    d = Math.max(d, (i + 1) / n - u, u - i / n);
  });
  return d;
}

function logSumExp(logs: number[]): number {
  const max = logs.reduce((a, b) => Math.max(a, b), Number.NEGATIVE_INFINITY);
  if (max === Number.NEGATIVE_INFINITY) return max;
  return max + Math.log(logs.reduce((sum, l) => sum + Math.exp(l - max), 0));
}

/**
 * 2 P[D⁺_n >= d] by the exact Smirnov / Birnbaum-Tingey sum d Σ_j C(n,j) (1-d-j/n)^(n-j) (d+j/n)^(j-1)
 * (Birnbaum & Tingey 1951, Ann. Math. Statist. 22:592-596). Its j-th term is a Binomial(n, d + j/n) density
 * at j divided by d + j/n, taken in the saddle-point form so the ~n ln n sized logs never cancel. Exact for
 * d >= 1/2; used in the right tail as in Simard & L'Ecuyer 2011 (J. Stat. Softw. 39(11)).
 */
function twiceOneSidedTail(n: number, d: number): number {
  const logTerms: number[] = [];
  for (let j = 0; j <= Math.floor(n * (1 - d)); j++) {
    const p = d + j / n;
    const q = (n - j) / n - d;
    if (q > 0) logTerms.push(logBinomialDensity(j, n, p, q) - Math.log(p));
  }
  return Math.min(1, 2 * d * Math.exp(logSumExp(logTerms)));
}

type ScaledMatrix = { values: Float64Array; exponent: number };

function multiply(a: Float64Array, b: Float64Array, m: number): Float64Array {
  const c = new Float64Array(m * m);
  for (let i = 0; i < m; i++) {
    for (let k = 0; k < m; k++) {
      const aik = a[i * m + k];
      if (aik === 0) continue;
      for (let j = 0; j < m; j++) c[i * m + j] += aik * b[k * m + j];
    }
  }
  return c;
}

// H^power by repeated squaring, a decimal exponent carried beside the matrix so that entries never overflow.
function matrixPower(h: Float64Array, m: number, power: number): ScaledMatrix {
  if (power === 1) return { values: h, exponent: 0 };
  const half = matrixPower(h, m, Math.floor(power / 2));
  const squared = multiply(half.values, half.values, m);
  let values = power % 2 === 0 ? squared : multiply(h, squared, m);
  let exponent = 2 * half.exponent;
  const centre = Math.floor(m / 2) * m + Math.floor(m / 2);
  if (values[centre] > RESCALE) {
    values = values.map((v) => v * RESCALE_INVERSE);
    exponent += RESCALE_EXPONENT;
  }
  return { values, exponent };
}

// Durbin's (1973) m×m matrix H, m = 2k - 1, whose n-th power holds P[D_n < d].
function durbinMatrix(m: number, h: number): Float64Array {
  const matrix = new Float64Array(m * m);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < m; j++) matrix[i * m + j] = i - j + 1 < 0 ? 0 : 1;
  }
  for (let i = 0; i < m; i++) {
    matrix[i * m] -= h ** (i + 1);
    matrix[(m - 1) * m + i] -= h ** (m - i);
  }
  matrix[(m - 1) * m] += 2 * h - 1 > 0 ? (2 * h - 1) ** m : 0;
  for (let i = 0; i < m; i++) {
    for (let j = 0; j <= i; j++) {
      let factorial = 1;
      for (let g = 2; g <= i - j + 1; g++) factorial *= g;
      matrix[i * m + j] /= factorial;
    }
  }
  return matrix;
}

function durbinSize(n: number, d: number): number {
  return 2 * Math.floor(n * d) + 1;
}

function exactCost(n: number, d: number): number {
  return durbinSize(n, d) ** 3 * 2 * Math.ceil(Math.log2(n + 1));
}

/**
 * P[D_n < d] exactly (Marsaglia, Tsang & Wang 2003, "Evaluating Kolmogorov's Distribution", J. Stat. Softw.
 * 8(18)): n!/n^n times the central entry of H^n.
 */
function exactKolmogorovCdf(n: number, d: number): number {
  const k = Math.floor(n * d) + 1;
  const m = durbinSize(n, d);
  const power = matrixPower(durbinMatrix(m, k - n * d), m, n);
  let s = power.values[(k - 1) * m + k - 1];
  let exponent = power.exponent;
  for (let i = 1; i <= n; i++) {
    s = (s * i) / n;
    if (s < RESCALE_INVERSE) {
      s *= RESCALE;
      exponent -= RESCALE_EXPONENT;
    }
  }
  return s * 10 ** exponent;
}

/**
 * Q_KS(λ) = 2 Σ (-1)^(j-1) e^(-2 j² λ²), switching to the Jacobi theta form below λ = 1.18 where the
 * alternating series converges slowly (Numerical Recipes 3rd ed. §6.14.12, KSdist).
 */
function kolmogorovSurvival(lambda: number): number {
  if (lambda < 1.18) {
    const y = Math.exp(-(Math.PI * Math.PI) / (8 * lambda * lambda));
    return 1 - (Math.sqrt(2 * Math.PI) / lambda) * (y + y ** 9 + y ** 25 + y ** 49);
  }
  const x = Math.exp(-2 * lambda * lambda);
  return 2 * (x - x ** 4 + x ** 9);
}

/**
 * P[D_n >= d]. Right tail (n d² >= 5 or d >= 1/2): twice the exact one-sided tail, relative error ~1e-13.
 * Elsewhere exact (Marsaglia-Tsang-Wang) while its O(m³ log n) cost, m = 2⌊nd⌋ + 1, stays within
 * EXACT_COST_LIMIT (every d up to n ~ 1300, larger n only at smaller d); beyond that the asymptotic Kolmogorov
 * distribution at Stephens' corrected argument (√n + 0.12 + 0.11/√n) d (Stephens 1970, J. R. Stat. Soc. B
 * 32:115-122), within ~1e-2 relative.
 */
function kolmogorovPValue(n: number, d: number): number {
  if (n * d * d >= ONE_SIDED_FROM || d >= 0.5) return twiceOneSidedTail(n, d);
  if (exactCost(n, d) <= EXACT_COST_LIMIT) return Math.max(0, 1 - exactKolmogorovCdf(n, d));
  const sqrtN = Math.sqrt(n);
  return kolmogorovSurvival((sqrtN + 0.12 + 0.11 / sqrtN) * d);
}

/** One-sample two-sided Kolmogorov-Smirnov test of `pValues` against Uniform(0, 1). */
export function kolmogorovSmirnovUniform(pValues: number[]): KolmogorovSmirnovResult {
  if (pValues.length === 0) throw new RangeError('kolmogorovSmirnovUniform: pValues must not be empty');
  requireProbabilities('kolmogorovSmirnovUniform', 'pValues', pValues);
  const statistic = kolmogorovStatistic(pValues);
  return { statistic, pValue: kolmogorovPValue(pValues.length, statistic) };
}
