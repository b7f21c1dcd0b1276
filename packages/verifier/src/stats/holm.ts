import { requireLog10Probabilities, requireProbabilities } from './validate';

// A comparator rather than subtraction: -Infinity - -Infinity is NaN.
function compareNumbers(a: number, b: number): number {
  if (a < b) return -1;
  return a > b ? 1 : 0;
}

/** Indices of `values` in ascending order of value; ties keep input order (Array.prototype.sort is stable). */
function ascendingOrder(values: number[]): number[] {
  return values.map((_, i) => i).sort((i, j) => compareNumbers(values[i], values[j]));
}

/**
 * Holm-Bonferroni step-down adjusted p-values (Holm 1979, Scand. J. Statist. 6:65-70): the r-th smallest of
 * m is multiplied by m - r + 1, then a running maximum keeps the adjusted values monotone in the raw ones.
 * Returned in input order, capped at 1.
 */
export function holmAdjust(pValues: number[]): number[] {
  requireProbabilities('holmAdjust', 'pValues', pValues);
  const m = pValues.length;
  const adjusted = new Array<number>(m);
  let runningMax = 0;
  ascendingOrder(pValues).forEach((index, rank) => {
    runningMax = Math.min(1, Math.max(runningMax, (m - rank) * pValues[index]));
    adjusted[index] = runningMax;
  });
  return adjusted;
}

/** holmAdjust on log10 p-values, for p-values that underflow double precision; -Infinity (p = 0) is allowed. */
export function holmAdjustLog10(log10p: number[]): number[] {
  requireLog10Probabilities('holmAdjustLog10', 'log10p', log10p);
  const m = log10p.length;
  const adjusted = new Array<number>(m);
  let runningMax = Number.NEGATIVE_INFINITY;
  ascendingOrder(log10p).forEach((index, rank) => {
    runningMax = Math.min(0, Math.max(runningMax, Math.log10(m - rank) + log10p[index]));
    adjusted[index] = runningMax;
  });
  return adjusted;
}
