import { gammaUpperTail } from './gamma';
import type { TailProbability } from './tail';
import { requireFinite, requirePositive } from './validate';

/** P[X >= x] for X ~ χ²(df), which is Gamma(df/2, scale 2) (Numerical Recipes 3rd ed. §6.14.8). */
export function chiSquareUpperTail(x: number, df: number): TailProbability {
  requireFinite('chiSquareUpperTail', 'x', x);
  requirePositive('chiSquareUpperTail', 'df', df);
  return gammaUpperTail(x / 2, df / 2);
}
