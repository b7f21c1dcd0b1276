import { logIncompleteGammaTails } from './incompleteGamma';
import { log1mExp, type TailProbability, tailFromLog } from './tail';
import { requireFinite } from './validate';

// P[Z >= z] = erfc(z/√2)/2 = Q(1/2, z²/2)/2 for z >= 0 (DLMF 7.11.2): the Legendre continued fraction for
// the incomplete gamma is the continued fraction for erfc (DLMF §7.9), so z = 40 or 100 stays accurate.
function logUpperTailNonNegative(z: number): number {
  return logIncompleteGammaTails(0.5, 0.5 * z * z).logUpper - Math.LN2;
}

/** P[Z >= z] for Z ~ N(0, 1); for z < 0 it is 1 - P[Z >= -z], where the subtracted tail is < 1/2. */
export function normalUpperTail(z: number): TailProbability {
  requireFinite('normalUpperTail', 'z', z);
  const logP = z >= 0 ? logUpperTailNonNegative(z) : log1mExp(logUpperTailNonNegative(-z));
  return tailFromLog(logP);
}
