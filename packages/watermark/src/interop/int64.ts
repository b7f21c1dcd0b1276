/**
 * Two's-complement 64-bit arithmetic on pairs of 32-bit words, for the int64 tensor arithmetic of the
 * Python reference code (PyTorch wraps int64 products silently; Python integers never wrap). Hot loops
 * (SynthID hashing over a vocabulary) use these number-only helpers; one-off seeds use BigInt.
 */

/** Result registers of the helpers below: [low word, high word], both unsigned. */
export const R64 = new Uint32Array(2);

const TWO_POW_16 = 65536;

/** R64 ← a · b mod 2^64, for a = (aHi, aLo) and b = (bHi, bLo) as unsigned 32-bit words. */
export function mul64(aHi: number, aLo: number, bHi: number, bLo: number): void {
  // aLo · bLo exactly, from 16-bit halves: every partial product stays below 2^53.
  const a0 = aLo & 0xffff;
  const a1 = aLo >>> 16;
  const b0 = bLo & 0xffff;
  const b1 = bLo >>> 16;
  const p00 = a0 * b0;
  const mid = a1 * b0 + a0 * b1 + (p00 >>> 16);
  R64[0] = (mid << 16) | (p00 & 0xffff);
  // The cross terms only reach the high word, where wrapping 32-bit products are exact.
  R64[1] = a1 * b1 + Math.floor(mid / TWO_POW_16) + Math.imul(aHi, bLo) + Math.imul(aLo, bHi);
}

/** R64 ← a + b mod 2^64. */
export function add64(aHi: number, aLo: number, bHi: number, bLo: number): void {
  const lo = aLo + bLo;
  R64[0] = lo;
  R64[1] = aHi + bHi + (lo > 0xffffffff ? 1 : 0);
}

/** The LCG multiplier of SynthID's accumulate_hash (Knuth's MMIX / musl constant 6364136223846793005). */
export const LCG_MULTIPLIER = 6364136223846793005n;
const LCG_HI = 0x5851f42d;
const LCG_LO = 0x4c957f2d;

/**
 * R64 ← (h + d) · 6364136223846793005 + 1 mod 2^64: one step of SynthID's `accumulate_hash`
 * (transformers SynthIDTextWatermarkLogitsProcessor.accumulate_hash, synthid_text.hashing_function),
 * whose torch.add / torch.mul on int64 tensors wrap modulo 2^64.
 */
export function lcgStep(hHi: number, hLo: number, dHi: number, dLo: number): void {
  add64(hHi, hLo, dHi, dLo);
  mul64(R64[1], R64[0], LCG_HI, LCG_LO);
  add64(R64[1], R64[0], 0, 1);
}

/** R64 ← h >> s for 0 < s < 32, arithmetic (sign-propagating), as torch's `>>` on int64. */
export function sar64(hHi: number, hLo: number, s: number): void {
  R64[0] = (hLo >>> s) | (hHi << (32 - s));
  R64[1] = (hHi | 0) >> s;
}

/** The 64-bit two's-complement words of a BigInt (any sign; reduced modulo 2^64). */
export function wordsOf(value: bigint): { hi: number; lo: number } {
  const u = BigInt.asUintN(64, value);
  return { hi: Number(u >> 32n), lo: Number(u & 0xffffffffn) };
}

/** The signed int64 value of two words. */
export function signedOf(hi: number, lo: number): bigint {
  return BigInt.asIntN(64, (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0));
}

/** x mod m with the sign of m (Python's `%`, and torch.remainder on tensors), for m > 0. */
export function pyMod(x: bigint, m: bigint): bigint {
  const r = x % m;
  return r < 0n ? r + m : r;
}

/** Wraps to int64, as a PyTorch int64 tensor operation does. */
export function wrapInt64(x: bigint): bigint {
  return BigInt.asIntN(64, x);
}

/**
 * Python-style (non-negative) remainder of the signed 64-bit value (hi, lo) by m, 0 < m ≤ 2^32, on numbers:
 * torch's `%` on an int64 tensor by a positive integer (SynthID's `ngram_keys % sampling_table_size`).
 */
export function signedMod(hi: number, lo: number, m: number, twoPow64ModM: number): number {
  // Unsigned value mod m: ((hi · 2^16 mod m) · 2^16 mod m + lo) mod m keeps every product below 2^53.
  let r = ((((hi >>> 0) % m) * TWO_POW_16) % m) * TWO_POW_16;
  r = ((r % m) + (lo >>> 0)) % m;
  if ((hi | 0) < 0) {
    // A negative value is u − 2^64.
    r -= twoPow64ModM;
    if (r < 0) r += m;
  }
  return r;
}

/** 2^64 mod m, for signedMod. */
export function twoPow64Mod(m: number): number {
  return Number((1n << 64n) % BigInt(m));
}
