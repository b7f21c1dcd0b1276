/** A tail probability with its base-10 logarithm, which stays finite where `p` underflows to 0. */
export type TailProbability = { p: number; log10p: number };

export function tailFromLog(logP: number): TailProbability {
  return { p: Math.exp(logP), log10p: logP / Math.LN10 };
}

/**
 * ln(1 - p) from ln p: expm1 near p = 1 and log1p elsewhere keep full relative accuracy on both sides
 * (Mächler 2012, "Accurately Computing log(1 - exp(-|a|))", Rmpfr vignette).
 */
export function log1mExp(logP: number): number {
  return logP > -Math.LN2 ? Math.log(-Math.expm1(logP)) : Math.log1p(-Math.exp(logP));
}
