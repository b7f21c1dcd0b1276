/** The three modified Kneser-Ney discounts of one order: for counts 1, 2 and 3 or more. */
export interface Discounts {
  d1: number;
  d2: number;
  d3: number;
  /** True when the count-of-counts made the Chen–Goodman estimate unusable and the fallback was used. */
  fallback: boolean;
}

/** Discounts used when an order's count-of-counts cannot give positive ones (tiny corpora): KenLM's fallback. */
export const FALLBACK_DISCOUNTS: readonly [number, number, number] = [0.5, 1, 1.5];

/**
 * Chen & Goodman (1998) §3.6, eq. 26: from n_k, the number of n-grams of one order seen exactly k times
 * (k = 1..4, with KN's adjusted counts for lower orders),
 *   Y = n1 / (n1 + 2 n2),  D1 = 1 − 2Y n2/n1,  D2 = 2 − 3Y n3/n2,  D3+ = 3 − 4Y n4/n3.
 * Each D_k must lie in (0, k); when one does not (or is undefined because some n_k is 0), the order
 * uses the fallback discounts (0.5, 1, 1.5).
 */
export function modifiedKneserNeyDiscounts(n1: number, n2: number, n3: number, n4: number): Discounts {
  const y = n1 / (n1 + 2 * n2);
  const d1 = 1 - (2 * y * n2) / n1;
  const d2 = 2 - (3 * y * n3) / n2;
  const d3 = 3 - (4 * y * n4) / n3;
  const ok = [d1, d2, d3].every((d, i) => Number.isFinite(d) && d > 0 && d < i + 1);
  if (ok) return { d1, d2, d3, fallback: false };
  const [f1, f2, f3] = FALLBACK_DISCOUNTS;
  return { d1: f1, d2: f2, d3: f3, fallback: true };
}

/** Count-of-counts n1..n4 of a count array (zeros are ignored). */
export function countOfCounts(counts: ArrayLike<number>): [number, number, number, number] {
  const n = [0, 0, 0, 0, 0];
  for (let i = 0; i < counts.length; i++) {
    const c = counts[i];
    if (c >= 1 && c <= 4) n[c]++;
  }
  return [n[1], n[2], n[3], n[4]];
}
