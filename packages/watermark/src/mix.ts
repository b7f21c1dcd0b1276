/**
 * Fast 32-bit mixers that expand a secret context seed over candidate tokens.
 *
 * The seed comes from a keyed PRF (SipHash-2-4, see prf.ts); these functions never see the master key.
 * `lowbias32` is the 2-multiply integer hash found by Wellons' hash-prospector
 * (https://github.com/skeeto/hash-prospector, bias ≈ 0.17), a bijection on 32-bit words.
 */
export function lowbias32(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}

/**
 * The 32-bit value of `token` under the 64-bit seed (seedLo, seedHi). Two rounds, so that both seed
 * halves reach every output bit and distinct tokens give unrelated values for an unknown seed.
 */
export function seededHash32(seedLo: number, seedHi: number, token: number): number {
  return lowbias32((lowbias32((token ^ seedLo) >>> 0) + seedHi) | 0);
}

const TWO_POW_32 = 4294967296;
const TWO_POW_53 = 9007199254740992;

/** A uniform number in (0, 1) with 53 random bits, from two independent 32-bit hashes of the token. */
export function seededUniform(seedLo: number, seedHi: number, token: number): number {
  const hi = seededHash32(seedLo, seedHi, token) >>> 11; // 21 bits
  const lo = seededHash32(seedHi ^ 0x5bd1e995, seedLo, token); // 32 bits
  return (hi * TWO_POW_32 + lo + 0.5) / TWO_POW_53;
}
