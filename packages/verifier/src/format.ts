/** A p-value readable at any size: 0.0123, 3.2e-12, or 10^-414.53 where a double underflows. */
export function formatPValue(p: number, log10p: number): string {
  if (p >= 1e-4) return p.toPrecision(3);
  if (p > 0) return p.toExponential(2);
  return `10^${log10p.toFixed(2)}`;
}
