/**
 * SipHash-2-4 (Aumasson & Bernstein, "SipHash: a fast short-input PRF", 2012,
 * https://131002.net/siphash/siphash.pdf) in plain TypeScript.
 *
 * This is the keyed context PRF of the watermark: the per-step context seed is
 * SipHash-2-4 of the token ids of the context window, each id encoded as 4
 * bytes little-endian.
 *
 * Implementation: no BigInt. Each 64-bit state word v0..v3 is held as two
 * unsigned 32-bit halves (v0l = low, v0h = high) in function locals, which V8
 * keeps in registers as untagged 32-bit integers, so a call allocates nothing.
 * (Module-level `let` variables would live in a context object, where every
 * store of a uint32 >= 2^31 boxes a HeapNumber, i.e. allocates; the only
 * module-level scratch is the Uint32Array WORD_OUT.) A 64-bit addition is a
 * 32-bit addition of the low halves, `>>> 0`, plus the carry into the high
 * halves; the 64-bit rotations by 13, 16, 17 and 21 are pairs of 32-bit shifts
 * across the halves, and a rotation by 32 swaps the halves.
 *
 * The carry is computed without a branch, as the top bit of
 * (a & b) | ((a | b) & ~sum). The comparison `sum < a ? 1 : 0` compiles to a
 * conditional jump taken at random (the state is pseudorandom), and the
 * mispredictions alone made the function about twice as slow.
 *
 * Messages that fit in the final block (0..7 bytes, or 0..1 words, which covers
 * sipHash24Word) go through `sipOneBlock`, whose six SipRounds are written out
 * in full (about 30% faster than the loop form). Longer messages go through a
 * loop with one iteration per 8-byte block, whose body is the two compression
 * SipRounds (c = 2); two more iterations make the four finalization rounds
 * (d = 4).
 */

/** A SipHash key as four little-endian 32-bit words (k0 low, k0 high, k1 low, k1 high). */
export type SipKey = Uint32Array;

/**
 * Converts a 16-byte key (k0 = bytes 0..7, k1 = bytes 8..15, each little-endian,
 * as in the reference implementation) into the word form the hash functions take.
 */
export function sipKey(key: Uint8Array): SipKey {
  if (key == null || key.length !== 16) {
    throw new RangeError('SipHash key must be 16 bytes');
  }
  const k = new Uint32Array(4);
  for (let i = 0; i < 4; i++) {
    const o = i * 4;
    k[i] = (key[o] | (key[o + 1] << 8) | (key[o + 2] << 16) | (key[o + 3] << 24)) >>> 0;
  }
  return k;
}

function checkKey(key: SipKey): void {
  if (key == null || key.length !== 4) {
    throw new RangeError('SipHash key must be a SipKey of 4 words (use sipKey())');
  }
}

function checkOut(out: Uint32Array): void {
  if (out == null || out.length < 2) {
    throw new RangeError('SipHash output buffer must hold 2 words');
  }
}

// Initialisation constants "somepseudorandomlygeneratedbytes", split into 32-bit halves.
const C0H = 0x736f6d65;
const C0L = 0x70736575;
const C1H = 0x646f7261;
const C1L = 0x6e646f6d;
const C2H = 0x6c796765;
const C2L = 0x6e657261;
const C3H = 0x74656462;
const C3L = 0x79746573;

/** Scratch output of sipHash24Word (module-level, so that a call allocates nothing). */
const WORD_OUT = new Uint32Array(2);

/**
 * SipHash-2-4 of a message that fits in its final block (0..7 bytes), given as
 * that block m = mh:ml (trailing bytes little-endian, length byte in the top
 * byte of mh). Fully unrolled: 2 compression rounds, v2 ^= 0xff, 4
 * finalization rounds. Writes [low32, high32] into out.
 *
 * Callers pass ml and mh as int32 (`| 0`): only the 32 bits matter here, and
 * a uint32 >= 2^31 passed to a function that is not inlined (this one is too
 * big to be) would be boxed as a HeapNumber, i.e. allocated, on every call.
 */
function sipOneBlock(key: SipKey, ml: number, mh: number, out: Uint32Array): void {
  const k0l = key[0] >>> 0;
  const k0h = key[1] >>> 0;
  const k1l = key[2] >>> 0;
  const k1h = key[3] >>> 0;
  let v0l = (k0l ^ C0L) >>> 0;
  let v0h = (k0h ^ C0H) >>> 0;
  let v1l = (k1l ^ C1L) >>> 0;
  let v1h = (k1h ^ C1H) >>> 0;
  let v2l = (k0l ^ C2L) >>> 0;
  let v2h = (k0h ^ C2H) >>> 0;
  let v3l = (k1l ^ C3L ^ ml) >>> 0; // v3 ^= m
  let v3h = (k1h ^ C3H ^ mh) >>> 0;
  let t = 0;
  let u = 0;

  // SipRound 1 of 6 (compression)
  // v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32)
  t = (v0l + v1l) >>> 0;
  v0h = (v0h + v1h + (((v0l & v1l) | ((v0l | v1l) & ~t)) >>> 31)) >>> 0;
  v0l = t;
  t = ((v1l << 13) | (v1h >>> 19)) >>> 0;
  u = ((v1h << 13) | (v1l >>> 19)) >>> 0;
  v1l = (t ^ v0l) >>> 0;
  v1h = (u ^ v0h) >>> 0;
  t = v0l;
  v0l = v0h;
  v0h = t;
  // v2 += v3; v3 = rotl(v3, 16); v3 ^= v2
  t = (v2l + v3l) >>> 0;
  v2h = (v2h + v3h + (((v2l & v3l) | ((v2l | v3l) & ~t)) >>> 31)) >>> 0;
  v2l = t;
  t = ((v3l << 16) | (v3h >>> 16)) >>> 0;
  u = ((v3h << 16) | (v3l >>> 16)) >>> 0;
  v3l = (t ^ v2l) >>> 0;
  v3h = (u ^ v2h) >>> 0;
  // v0 += v3; v3 = rotl(v3, 21); v3 ^= v0
  t = (v0l + v3l) >>> 0;
  v0h = (v0h + v3h + (((v0l & v3l) | ((v0l | v3l) & ~t)) >>> 31)) >>> 0;
  v0l = t;
  t = ((v3l << 21) | (v3h >>> 11)) >>> 0;
  u = ((v3h << 21) | (v3l >>> 11)) >>> 0;
  v3l = (t ^ v0l) >>> 0;
  v3h = (u ^ v0h) >>> 0;
  // v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32)
  t = (v2l + v1l) >>> 0;
  v2h = (v2h + v1h + (((v2l & v1l) | ((v2l | v1l) & ~t)) >>> 31)) >>> 0;
  v2l = t;
  t = ((v1l << 17) | (v1h >>> 15)) >>> 0;
  u = ((v1h << 17) | (v1l >>> 15)) >>> 0;
  v1l = (t ^ v2l) >>> 0;
  v1h = (u ^ v2h) >>> 0;
  t = v2l;
  v2l = v2h;
  v2h = t;
  // SipRound 2 of 6 (compression)
  t = (v0l + v1l) >>> 0;
  v0h = (v0h + v1h + (((v0l & v1l) | ((v0l | v1l) & ~t)) >>> 31)) >>> 0;
  v0l = t;
  t = ((v1l << 13) | (v1h >>> 19)) >>> 0;
  u = ((v1h << 13) | (v1l >>> 19)) >>> 0;
  v1l = (t ^ v0l) >>> 0;
  v1h = (u ^ v0h) >>> 0;
  t = v0l;
  v0l = v0h;
  v0h = t;
  t = (v2l + v3l) >>> 0;
  v2h = (v2h + v3h + (((v2l & v3l) | ((v2l | v3l) & ~t)) >>> 31)) >>> 0;
  v2l = t;
  t = ((v3l << 16) | (v3h >>> 16)) >>> 0;
  u = ((v3h << 16) | (v3l >>> 16)) >>> 0;
  v3l = (t ^ v2l) >>> 0;
  v3h = (u ^ v2h) >>> 0;
  t = (v0l + v3l) >>> 0;
  v0h = (v0h + v3h + (((v0l & v3l) | ((v0l | v3l) & ~t)) >>> 31)) >>> 0;
  v0l = t;
  t = ((v3l << 21) | (v3h >>> 11)) >>> 0;
  u = ((v3h << 21) | (v3l >>> 11)) >>> 0;
  v3l = (t ^ v0l) >>> 0;
  v3h = (u ^ v0h) >>> 0;
  t = (v2l + v1l) >>> 0;
  v2h = (v2h + v1h + (((v2l & v1l) | ((v2l | v1l) & ~t)) >>> 31)) >>> 0;
  v2l = t;
  t = ((v1l << 17) | (v1h >>> 15)) >>> 0;
  u = ((v1h << 17) | (v1l >>> 15)) >>> 0;
  v1l = (t ^ v2l) >>> 0;
  v1h = (u ^ v2h) >>> 0;
  t = v2l;
  v2l = v2h;
  v2h = t;
  v0l = (v0l ^ ml) >>> 0; // v0 ^= m
  v0h = (v0h ^ mh) >>> 0;
  v2l = (v2l ^ 0xff) >>> 0; // finalization: v2 ^= 0xff
  // SipRound 3 of 6 (finalization)
  t = (v0l + v1l) >>> 0;
  v0h = (v0h + v1h + (((v0l & v1l) | ((v0l | v1l) & ~t)) >>> 31)) >>> 0;
  v0l = t;
  t = ((v1l << 13) | (v1h >>> 19)) >>> 0;
  u = ((v1h << 13) | (v1l >>> 19)) >>> 0;
  v1l = (t ^ v0l) >>> 0;
  v1h = (u ^ v0h) >>> 0;
  t = v0l;
  v0l = v0h;
  v0h = t;
  t = (v2l + v3l) >>> 0;
  v2h = (v2h + v3h + (((v2l & v3l) | ((v2l | v3l) & ~t)) >>> 31)) >>> 0;
  v2l = t;
  t = ((v3l << 16) | (v3h >>> 16)) >>> 0;
  u = ((v3h << 16) | (v3l >>> 16)) >>> 0;
  v3l = (t ^ v2l) >>> 0;
  v3h = (u ^ v2h) >>> 0;
  t = (v0l + v3l) >>> 0;
  v0h = (v0h + v3h + (((v0l & v3l) | ((v0l | v3l) & ~t)) >>> 31)) >>> 0;
  v0l = t;
  t = ((v3l << 21) | (v3h >>> 11)) >>> 0;
  u = ((v3h << 21) | (v3l >>> 11)) >>> 0;
  v3l = (t ^ v0l) >>> 0;
  v3h = (u ^ v0h) >>> 0;
  t = (v2l + v1l) >>> 0;
  v2h = (v2h + v1h + (((v2l & v1l) | ((v2l | v1l) & ~t)) >>> 31)) >>> 0;
  v2l = t;
  t = ((v1l << 17) | (v1h >>> 15)) >>> 0;
  u = ((v1h << 17) | (v1l >>> 15)) >>> 0;
  v1l = (t ^ v2l) >>> 0;
  v1h = (u ^ v2h) >>> 0;
  t = v2l;
  v2l = v2h;
  v2h = t;
  // SipRound 4 of 6 (finalization)
  t = (v0l + v1l) >>> 0;
  v0h = (v0h + v1h + (((v0l & v1l) | ((v0l | v1l) & ~t)) >>> 31)) >>> 0;
  v0l = t;
  t = ((v1l << 13) | (v1h >>> 19)) >>> 0;
  u = ((v1h << 13) | (v1l >>> 19)) >>> 0;
  v1l = (t ^ v0l) >>> 0;
  v1h = (u ^ v0h) >>> 0;
  t = v0l;
  v0l = v0h;
  v0h = t;
  t = (v2l + v3l) >>> 0;
  v2h = (v2h + v3h + (((v2l & v3l) | ((v2l | v3l) & ~t)) >>> 31)) >>> 0;
  v2l = t;
  t = ((v3l << 16) | (v3h >>> 16)) >>> 0;
  u = ((v3h << 16) | (v3l >>> 16)) >>> 0;
  v3l = (t ^ v2l) >>> 0;
  v3h = (u ^ v2h) >>> 0;
  t = (v0l + v3l) >>> 0;
  v0h = (v0h + v3h + (((v0l & v3l) | ((v0l | v3l) & ~t)) >>> 31)) >>> 0;
  v0l = t;
  t = ((v3l << 21) | (v3h >>> 11)) >>> 0;
  u = ((v3h << 21) | (v3l >>> 11)) >>> 0;
  v3l = (t ^ v0l) >>> 0;
  v3h = (u ^ v0h) >>> 0;
  t = (v2l + v1l) >>> 0;
  v2h = (v2h + v1h + (((v2l & v1l) | ((v2l | v1l) & ~t)) >>> 31)) >>> 0;
  v2l = t;
  t = ((v1l << 17) | (v1h >>> 15)) >>> 0;
  u = ((v1h << 17) | (v1l >>> 15)) >>> 0;
  v1l = (t ^ v2l) >>> 0;
  v1h = (u ^ v2h) >>> 0;
  t = v2l;
  v2l = v2h;
  v2h = t;
  // SipRound 5 of 6 (finalization)
  t = (v0l + v1l) >>> 0;
  v0h = (v0h + v1h + (((v0l & v1l) | ((v0l | v1l) & ~t)) >>> 31)) >>> 0;
  v0l = t;
  t = ((v1l << 13) | (v1h >>> 19)) >>> 0;
  u = ((v1h << 13) | (v1l >>> 19)) >>> 0;
  v1l = (t ^ v0l) >>> 0;
  v1h = (u ^ v0h) >>> 0;
  t = v0l;
  v0l = v0h;
  v0h = t;
  t = (v2l + v3l) >>> 0;
  v2h = (v2h + v3h + (((v2l & v3l) | ((v2l | v3l) & ~t)) >>> 31)) >>> 0;
  v2l = t;
  t = ((v3l << 16) | (v3h >>> 16)) >>> 0;
  u = ((v3h << 16) | (v3l >>> 16)) >>> 0;
  v3l = (t ^ v2l) >>> 0;
  v3h = (u ^ v2h) >>> 0;
  t = (v0l + v3l) >>> 0;
  v0h = (v0h + v3h + (((v0l & v3l) | ((v0l | v3l) & ~t)) >>> 31)) >>> 0;
  v0l = t;
  t = ((v3l << 21) | (v3h >>> 11)) >>> 0;
  u = ((v3h << 21) | (v3l >>> 11)) >>> 0;
  v3l = (t ^ v0l) >>> 0;
  v3h = (u ^ v0h) >>> 0;
  t = (v2l + v1l) >>> 0;
  v2h = (v2h + v1h + (((v2l & v1l) | ((v2l | v1l) & ~t)) >>> 31)) >>> 0;
  v2l = t;
  t = ((v1l << 17) | (v1h >>> 15)) >>> 0;
  u = ((v1h << 17) | (v1l >>> 15)) >>> 0;
  v1l = (t ^ v2l) >>> 0;
  v1h = (u ^ v2h) >>> 0;
  t = v2l;
  v2l = v2h;
  v2h = t;
  // SipRound 6 of 6 (finalization)
  t = (v0l + v1l) >>> 0;
  v0h = (v0h + v1h + (((v0l & v1l) | ((v0l | v1l) & ~t)) >>> 31)) >>> 0;
  v0l = t;
  t = ((v1l << 13) | (v1h >>> 19)) >>> 0;
  u = ((v1h << 13) | (v1l >>> 19)) >>> 0;
  v1l = (t ^ v0l) >>> 0;
  v1h = (u ^ v0h) >>> 0;
  t = v0l;
  v0l = v0h;
  v0h = t;
  t = (v2l + v3l) >>> 0;
  v2h = (v2h + v3h + (((v2l & v3l) | ((v2l | v3l) & ~t)) >>> 31)) >>> 0;
  v2l = t;
  t = ((v3l << 16) | (v3h >>> 16)) >>> 0;
  u = ((v3h << 16) | (v3l >>> 16)) >>> 0;
  v3l = (t ^ v2l) >>> 0;
  v3h = (u ^ v2h) >>> 0;
  t = (v0l + v3l) >>> 0;
  v0h = (v0h + v3h + (((v0l & v3l) | ((v0l | v3l) & ~t)) >>> 31)) >>> 0;
  v0l = t;
  t = ((v3l << 21) | (v3h >>> 11)) >>> 0;
  u = ((v3h << 21) | (v3l >>> 11)) >>> 0;
  v3l = (t ^ v0l) >>> 0;
  v3h = (u ^ v0h) >>> 0;
  t = (v2l + v1l) >>> 0;
  v2h = (v2h + v1h + (((v2l & v1l) | ((v2l | v1l) & ~t)) >>> 31)) >>> 0;
  v2l = t;
  t = ((v1l << 17) | (v1h >>> 15)) >>> 0;
  u = ((v1h << 17) | (v1l >>> 15)) >>> 0;
  v1l = (t ^ v2l) >>> 0;
  v1h = (u ^ v2h) >>> 0;
  t = v2l;
  v2l = v2h;
  v2h = t;

  out[0] = v0l ^ v1l ^ v2l ^ v3l;
  out[1] = v0h ^ v1h ^ v2h ^ v3h;
}

/**
 * SipHash-2-4 of a byte string; writes the 64-bit result as [low32, high32] into
 * out (default new Uint32Array(2)) and returns out.
 *
 * The 64-bit result is the reference implementation's output read little-endian:
 * out[0] = bytes 0..3, out[1] = bytes 4..7 of the reference's 8 output bytes.
 */
export function sipHash24(
  key: SipKey,
  message: Uint8Array,
  out: Uint32Array = new Uint32Array(2),
): Uint32Array {
  checkKey(key);
  checkOut(out);
  const len = message.length;
  const full = len >>> 3; // number of complete 8-byte blocks
  if (full === 0) {
    // 0..7 bytes: the whole message is the final block.
    let ml = 0;
    let mh = len << 24;
    for (let i = 0; i < len; i++) {
      if (i < 4) ml |= message[i] << (i << 3);
      else mh |= message[i] << ((i - 4) << 3);
    }
    sipOneBlock(key, ml | 0, mh | 0, out);
    return out;
  }
  const k0l = key[0] >>> 0;
  const k0h = key[1] >>> 0;
  const k1l = key[2] >>> 0;
  const k1h = key[3] >>> 0;
  let v0l = (k0l ^ C0L) >>> 0;
  let v0h = (k0h ^ C0H) >>> 0;
  let v1l = (k1l ^ C1L) >>> 0;
  let v1h = (k1h ^ C1H) >>> 0;
  let v2l = (k0l ^ C2L) >>> 0;
  let v2h = (k0h ^ C2H) >>> 0;
  let v3l = (k1l ^ C3L) >>> 0;
  let v3h = (k1h ^ C3H) >>> 0;
  let ml = 0;
  let mh = 0;
  let t = 0;
  let u = 0;

  let p = 0;
  // Iteration b = 0..full compresses block b with two SipRounds (c = 2);
  // blocks 0..full-1 are complete, block `full` is the final block. Iterations
  // full+1 and full+2 are the four finalization rounds (d = 4).
  for (let b = 0; b < full + 3; b++) {
    if (b <= full) {
      if (b < full) {
        ml = (message[p] | (message[p + 1] << 8) | (message[p + 2] << 16) | (message[p + 3] << 24)) >>> 0;
        mh = (message[p + 4] | (message[p + 5] << 8) | (message[p + 6] << 16) | (message[p + 7] << 24)) >>> 0;
        p += 8;
      } else {
        // The 0..7 trailing bytes, and (len mod 256) in the top byte.
        ml = 0;
        mh = (len & 0xff) << 24;
        const rem = len & 7;
        for (let i = 0; i < rem; i++) {
          if (i < 4) ml |= message[p + i] << (i << 3);
          else mh |= message[p + i] << ((i - 4) << 3);
        }
        ml >>>= 0;
        mh >>>= 0;
      }
      v3l = (v3l ^ ml) >>> 0; // v3 ^= m
      v3h = (v3h ^ mh) >>> 0;
    }
    // SipRound
    // v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32)
    t = (v0l + v1l) >>> 0;
    v0h = (v0h + v1h + (((v0l & v1l) | ((v0l | v1l) & ~t)) >>> 31)) >>> 0;
    v0l = t;
    t = ((v1l << 13) | (v1h >>> 19)) >>> 0;
    u = ((v1h << 13) | (v1l >>> 19)) >>> 0;
    v1l = (t ^ v0l) >>> 0;
    v1h = (u ^ v0h) >>> 0;
    t = v0l;
    v0l = v0h;
    v0h = t;
    // v2 += v3; v3 = rotl(v3, 16); v3 ^= v2
    t = (v2l + v3l) >>> 0;
    v2h = (v2h + v3h + (((v2l & v3l) | ((v2l | v3l) & ~t)) >>> 31)) >>> 0;
    v2l = t;
    t = ((v3l << 16) | (v3h >>> 16)) >>> 0;
    u = ((v3h << 16) | (v3l >>> 16)) >>> 0;
    v3l = (t ^ v2l) >>> 0;
    v3h = (u ^ v2h) >>> 0;
    // v0 += v3; v3 = rotl(v3, 21); v3 ^= v0
    t = (v0l + v3l) >>> 0;
    v0h = (v0h + v3h + (((v0l & v3l) | ((v0l | v3l) & ~t)) >>> 31)) >>> 0;
    v0l = t;
    t = ((v3l << 21) | (v3h >>> 11)) >>> 0;
    u = ((v3h << 21) | (v3l >>> 11)) >>> 0;
    v3l = (t ^ v0l) >>> 0;
    v3h = (u ^ v0h) >>> 0;
    // v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32)
    t = (v2l + v1l) >>> 0;
    v2h = (v2h + v1h + (((v2l & v1l) | ((v2l | v1l) & ~t)) >>> 31)) >>> 0;
    v2l = t;
    t = ((v1l << 17) | (v1h >>> 15)) >>> 0;
    u = ((v1h << 17) | (v1l >>> 15)) >>> 0;
    v1l = (t ^ v2l) >>> 0;
    v1h = (u ^ v2h) >>> 0;
    t = v2l;
    v2l = v2h;
    v2h = t;
    // SipRound
    t = (v0l + v1l) >>> 0;
    v0h = (v0h + v1h + (((v0l & v1l) | ((v0l | v1l) & ~t)) >>> 31)) >>> 0;
    v0l = t;
    t = ((v1l << 13) | (v1h >>> 19)) >>> 0;
    u = ((v1h << 13) | (v1l >>> 19)) >>> 0;
    v1l = (t ^ v0l) >>> 0;
    v1h = (u ^ v0h) >>> 0;
    t = v0l;
    v0l = v0h;
    v0h = t;
    t = (v2l + v3l) >>> 0;
    v2h = (v2h + v3h + (((v2l & v3l) | ((v2l | v3l) & ~t)) >>> 31)) >>> 0;
    v2l = t;
    t = ((v3l << 16) | (v3h >>> 16)) >>> 0;
    u = ((v3h << 16) | (v3l >>> 16)) >>> 0;
    v3l = (t ^ v2l) >>> 0;
    v3h = (u ^ v2h) >>> 0;
    t = (v0l + v3l) >>> 0;
    v0h = (v0h + v3h + (((v0l & v3l) | ((v0l | v3l) & ~t)) >>> 31)) >>> 0;
    v0l = t;
    t = ((v3l << 21) | (v3h >>> 11)) >>> 0;
    u = ((v3h << 21) | (v3l >>> 11)) >>> 0;
    v3l = (t ^ v0l) >>> 0;
    v3h = (u ^ v0h) >>> 0;
    t = (v2l + v1l) >>> 0;
    v2h = (v2h + v1h + (((v2l & v1l) | ((v2l | v1l) & ~t)) >>> 31)) >>> 0;
    v2l = t;
    t = ((v1l << 17) | (v1h >>> 15)) >>> 0;
    u = ((v1h << 17) | (v1l >>> 15)) >>> 0;
    v1l = (t ^ v2l) >>> 0;
    v1h = (u ^ v2h) >>> 0;
    t = v2l;
    v2l = v2h;
    v2h = t;
    if (b <= full) {
      v0l = (v0l ^ ml) >>> 0; // v0 ^= m
      v0h = (v0h ^ mh) >>> 0;
      if (b === full) v2l = (v2l ^ 0xff) >>> 0; // finalization: v2 ^= 0xff
    }
  }

  out[0] = v0l ^ v1l ^ v2l ^ v3l;
  out[1] = v0h ^ v1h ^ v2h ^ v3h;
  return out;
}

/**
 * SipHash-2-4 of the message formed by words[start..end), each word encoded as
 * 4 bytes little-endian (token ids are unsigned 32-bit; each word is taken
 * modulo 2^32, i.e. `word >>> 0`). Equals sipHash24 on that byte encoding.
 * Writes [low32, high32] into out and returns it. Allocates nothing.
 *
 * Two words form one 8-byte compression block; an odd trailing word goes into
 * the final block together with the length byte (b = (4 * count mod 256) << 56).
 *
 * Requires integers 0 <= start <= end <= words.length (RangeError otherwise).
 */
export function sipHash24Words(
  key: SipKey,
  words: ArrayLike<number>,
  start: number,
  end: number,
  out: Uint32Array,
): Uint32Array {
  checkKey(key);
  checkOut(out);
  if (start >>> 0 !== start || end >>> 0 !== end || start > end || end > words.length) {
    throw new RangeError('sipHash24Words: need integers 0 <= start <= end <= words.length');
  }
  const count = end - start;
  const full = count >>> 1; // complete 8-byte blocks (pairs of words)
  const lenByte = (((count << 2) & 0xff) << 24) >>> 0; // (byte length mod 256) << 56, high half
  if (full === 0) {
    // 0 or 1 word: the whole message is the final block.
    sipOneBlock(key, count === 1 ? words[start] | 0 : 0, lenByte | 0, out);
    return out;
  }
  const k0l = key[0] >>> 0;
  const k0h = key[1] >>> 0;
  const k1l = key[2] >>> 0;
  const k1h = key[3] >>> 0;
  let v0l = (k0l ^ C0L) >>> 0;
  let v0h = (k0h ^ C0H) >>> 0;
  let v1l = (k1l ^ C1L) >>> 0;
  let v1h = (k1h ^ C1H) >>> 0;
  let v2l = (k0l ^ C2L) >>> 0;
  let v2h = (k0h ^ C2H) >>> 0;
  let v3l = (k1l ^ C3L) >>> 0;
  let v3h = (k1h ^ C3H) >>> 0;
  let ml = 0;
  let mh = 0;
  let t = 0;
  let u = 0;

  let p = start;
  // Iteration b = 0..full compresses block b with two SipRounds (c = 2);
  // blocks 0..full-1 are complete, block `full` is the final block. Iterations
  // full+1 and full+2 are the four finalization rounds (d = 4).
  for (let b = 0; b < full + 3; b++) {
    if (b <= full) {
      if (b < full) {
        ml = words[p] >>> 0;
        mh = words[p + 1] >>> 0;
        p += 2;
      } else {
        // The odd trailing word, if any, and (byte length mod 256) in the top byte.
        ml = (count & 1) === 1 ? words[p] >>> 0 : 0;
        mh = lenByte;
      }
      v3l = (v3l ^ ml) >>> 0; // v3 ^= m
      v3h = (v3h ^ mh) >>> 0;
    }
    // SipRound
    // v0 += v1; v1 = rotl(v1, 13); v1 ^= v0; v0 = rotl(v0, 32)
    t = (v0l + v1l) >>> 0;
    v0h = (v0h + v1h + (((v0l & v1l) | ((v0l | v1l) & ~t)) >>> 31)) >>> 0;
    v0l = t;
    t = ((v1l << 13) | (v1h >>> 19)) >>> 0;
    u = ((v1h << 13) | (v1l >>> 19)) >>> 0;
    v1l = (t ^ v0l) >>> 0;
    v1h = (u ^ v0h) >>> 0;
    t = v0l;
    v0l = v0h;
    v0h = t;
    // v2 += v3; v3 = rotl(v3, 16); v3 ^= v2
    t = (v2l + v3l) >>> 0;
    v2h = (v2h + v3h + (((v2l & v3l) | ((v2l | v3l) & ~t)) >>> 31)) >>> 0;
    v2l = t;
    t = ((v3l << 16) | (v3h >>> 16)) >>> 0;
    u = ((v3h << 16) | (v3l >>> 16)) >>> 0;
    v3l = (t ^ v2l) >>> 0;
    v3h = (u ^ v2h) >>> 0;
    // v0 += v3; v3 = rotl(v3, 21); v3 ^= v0
    t = (v0l + v3l) >>> 0;
    v0h = (v0h + v3h + (((v0l & v3l) | ((v0l | v3l) & ~t)) >>> 31)) >>> 0;
    v0l = t;
    t = ((v3l << 21) | (v3h >>> 11)) >>> 0;
    u = ((v3h << 21) | (v3l >>> 11)) >>> 0;
    v3l = (t ^ v0l) >>> 0;
    v3h = (u ^ v0h) >>> 0;
    // v2 += v1; v1 = rotl(v1, 17); v1 ^= v2; v2 = rotl(v2, 32)
    t = (v2l + v1l) >>> 0;
    v2h = (v2h + v1h + (((v2l & v1l) | ((v2l | v1l) & ~t)) >>> 31)) >>> 0;
    v2l = t;
    t = ((v1l << 17) | (v1h >>> 15)) >>> 0;
    u = ((v1h << 17) | (v1l >>> 15)) >>> 0;
    v1l = (t ^ v2l) >>> 0;
    v1h = (u ^ v2h) >>> 0;
    t = v2l;
    v2l = v2h;
    v2h = t;
    // SipRound
    t = (v0l + v1l) >>> 0;
    v0h = (v0h + v1h + (((v0l & v1l) | ((v0l | v1l) & ~t)) >>> 31)) >>> 0;
    v0l = t;
    t = ((v1l << 13) | (v1h >>> 19)) >>> 0;
    u = ((v1h << 13) | (v1l >>> 19)) >>> 0;
    v1l = (t ^ v0l) >>> 0;
    v1h = (u ^ v0h) >>> 0;
    t = v0l;
    v0l = v0h;
    v0h = t;
    t = (v2l + v3l) >>> 0;
    v2h = (v2h + v3h + (((v2l & v3l) | ((v2l | v3l) & ~t)) >>> 31)) >>> 0;
    v2l = t;
    t = ((v3l << 16) | (v3h >>> 16)) >>> 0;
    u = ((v3h << 16) | (v3l >>> 16)) >>> 0;
    v3l = (t ^ v2l) >>> 0;
    v3h = (u ^ v2h) >>> 0;
    t = (v0l + v3l) >>> 0;
    v0h = (v0h + v3h + (((v0l & v3l) | ((v0l | v3l) & ~t)) >>> 31)) >>> 0;
    v0l = t;
    t = ((v3l << 21) | (v3h >>> 11)) >>> 0;
    u = ((v3h << 21) | (v3l >>> 11)) >>> 0;
    v3l = (t ^ v0l) >>> 0;
    v3h = (u ^ v0h) >>> 0;
    t = (v2l + v1l) >>> 0;
    v2h = (v2h + v1h + (((v2l & v1l) | ((v2l | v1l) & ~t)) >>> 31)) >>> 0;
    v2l = t;
    t = ((v1l << 17) | (v1h >>> 15)) >>> 0;
    u = ((v1h << 17) | (v1l >>> 15)) >>> 0;
    v1l = (t ^ v2l) >>> 0;
    v1h = (u ^ v2h) >>> 0;
    t = v2l;
    v2l = v2h;
    v2h = t;
    if (b <= full) {
      v0l = (v0l ^ ml) >>> 0; // v0 ^= m
      v0h = (v0h ^ mh) >>> 0;
      if (b === full) v2l = (v2l ^ 0xff) >>> 0; // finalization: v2 ^= 0xff
    }
  }

  out[0] = v0l ^ v1l ^ v2l ^ v3l;
  out[1] = v0h ^ v1h ^ v2h ^ v3h;
  return out;
}

/**
 * Low 32 bits (unsigned) of SipHash-2-4 of one word encoded as 4 bytes
 * little-endian (the word is taken modulo 2^32). Equals
 * sipHash24(key, le32(word))[0]. Hot path: no allocation, no bounds logic.
 *
 * The message is a single final block m = word | (4 << 56).
 */
export function sipHash24Word(key: SipKey, word: number): number {
  checkKey(key);
  sipOneBlock(key, word | 0, 0x04000000, WORD_OUT); // m = word | (4 << 56)
  return WORD_OUT[0];
}
