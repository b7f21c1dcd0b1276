import { describe, expect, it } from 'vitest';
import { type SipKey, sipHash24, sipHash24Word, sipHash24Words, sipKey } from '../src/siphash';
import fixture from './fixtures/siphash-vectors.json';

/** Little-endian 32-bit word at byte offset o of a hex string of bytes. */
function leWord(hex: string, o: number): number {
  let w = 0;
  for (let i = 3; i >= 0; i--) w = w * 256 + Number.parseInt(hex.slice(2 * (o + i), 2 * (o + i) + 2), 16);
  return w;
}

function hexBytes(hex: string): Uint8Array {
  const b = new Uint8Array(hex.length / 2);
  for (let i = 0; i < b.length; i++) b[i] = Number.parseInt(hex.slice(2 * i, 2 * i + 2), 16);
  return b;
}

/** words[start..end) as 4 bytes little-endian each. */
function leBytes(words: ArrayLike<number>, start: number, end: number): Uint8Array {
  const b = new Uint8Array(4 * (end - start));
  for (let i = start; i < end; i++) {
    const w = words[i] >>> 0;
    const o = 4 * (i - start);
    b[o] = w & 0xff;
    b[o + 1] = (w >>> 8) & 0xff;
    b[o + 2] = (w >>> 16) & 0xff;
    b[o + 3] = w >>> 24;
  }
  return b;
}

/** Small deterministic PRNG (mulberry32) so failures reproduce. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  };
}

function randomKey(next: () => number): SipKey {
  const k = new Uint8Array(16);
  for (let i = 0; i < 16; i++) k[i] = next() & 0xff;
  return sipKey(k);
}

/** A uint32 drawn to hit the edges (0, 2^31, 2^32-1, ...) as well as uniform values. */
function randomWord(next: () => number): number {
  const edges = [0, 1, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff];
  const r = next();
  return r % 8 === 0 ? (edges[next() % edges.length] as number) : next();
}

describe('siphash fixture', () => {
  it('holds the 64 reference vectors for key 00..0f', () => {
    expect(fixture.key).toBe('000102030405060708090a0b0c0d0e0f');
    expect(fixture.vectors).toHaveLength(64);
    for (const v of fixture.vectors) expect(v).toMatch(/^[0-9a-f]{16}$/);
    // Appendix A of the paper: 15-byte message 00..0e gives 0xa129ca6149be45e5.
    expect(fixture.vectors[15]).toBe('e545be4961ca29a1');
  });
});

describe('sipKey', () => {
  it('reads k0 and k1 little-endian', () => {
    const k = sipKey(hexBytes(fixture.key));
    expect(Array.from(k)).toEqual([0x03020100, 0x07060504, 0x0b0a0908, 0x0f0e0d0c]);
    const hi = sipKey(new Uint8Array(16).fill(0xff));
    expect(Array.from(hi)).toEqual([0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff]);
  });

  it('throws a RangeError unless the key is 16 bytes', () => {
    for (const n of [0, 1, 8, 15, 17, 32]) {
      expect(() => sipKey(new Uint8Array(n))).toThrow(RangeError);
      expect(() => sipKey(new Uint8Array(n))).toThrow('SipHash key must be 16 bytes');
    }
    expect(() => sipKey(new Uint8Array(16))).not.toThrow();
  });
});

describe('sipHash24', () => {
  const key = sipKey(hexBytes(fixture.key));

  it('matches all 64 reference vectors', () => {
    const msg = new Uint8Array(64);
    for (let i = 0; i < 64; i++) msg[i] = i;
    fixture.vectors.forEach((hex, i) => {
      const out = sipHash24(key, msg.subarray(0, i));
      expect([out[0], out[1]], `vector ${i}`).toEqual([leWord(hex, 0), leWord(hex, 4)]);
    });
  });

  it('writes into the given out buffer and returns it', () => {
    const out = new Uint32Array(2);
    const msg = Uint8Array.of(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14);
    expect(sipHash24(key, msg, out)).toBe(out);
    expect([out[0], out[1]]).toEqual([0x49be45e5, 0xa129ca61]);
  });

  it('reads a message that is a view into a larger buffer', () => {
    const big = new Uint8Array(80);
    for (let i = 0; i < 64; i++) big[i + 7] = i;
    fixture.vectors.forEach((hex, i) => {
      const out = sipHash24(key, big.subarray(7, 7 + i));
      expect([out[0], out[1]], `vector ${i}`).toEqual([leWord(hex, 0), leWord(hex, 4)]);
    });
  });

  it('rejects a malformed SipKey or out buffer', () => {
    expect(() => sipHash24(new Uint32Array(3), new Uint8Array(1))).toThrow(RangeError);
    expect(() => sipHash24(key, new Uint8Array(1), new Uint32Array(1))).toThrow(RangeError);
  });
});

describe('sipHash24Words and sipHash24Word', () => {
  it('equal sipHash24 on the little-endian byte encoding, for random word arrays of length 0..9', () => {
    const next = mulberry32(0x5eed1234);
    const ref = new Uint32Array(2);
    const out = new Uint32Array(2);
    for (let trial = 0; trial < 400; trial++) {
      const key = randomKey(next);
      for (let n = 0; n <= 9; n++) {
        // A window [start, start + n) inside a larger array, as the context window is.
        const pad = next() % 3;
        const words = Array.from({ length: n + 2 * pad }, () => randomWord(next));
        const start = pad;
        const end = pad + n;
        sipHash24(key, leBytes(words, start, end), ref);
        const label = `trial ${trial}, n=${n}, words=${words.slice(start, end).join(',')}`;

        expect(sipHash24Words(key, words, start, end, out), label).toBe(out);
        expect([out[0], out[1]], label).toEqual([ref[0], ref[1]]);

        // The same from typed arrays (Int32Array holds the same bits as negative numbers).
        sipHash24Words(key, Uint32Array.from(words), start, end, out);
        expect([out[0], out[1]], label).toEqual([ref[0], ref[1]]);
        sipHash24Words(
          key,
          Int32Array.from(words, (w) => w | 0),
          start,
          end,
          out,
        );
        expect([out[0], out[1]], label).toEqual([ref[0], ref[1]]);

        if (n === 1) {
          const w = words[start] as number;
          expect(sipHash24Word(key, w), label).toBe(ref[0]);
          expect(sipHash24Word(key, w | 0), label).toBe(ref[0]);
        }
      }
    }
  });

  it('sipHash24Word returns an unsigned 32-bit number', () => {
    const next = mulberry32(7);
    let sawHigh = false;
    for (let i = 0; i < 200; i++) {
      const h = sipHash24Word(randomKey(next), next());
      expect(Number.isInteger(h) && h >= 0 && h <= 0xffffffff).toBe(true);
      if (h >= 0x80000000) sawHigh = true;
    }
    expect(sawHigh).toBe(true);
  });

  it('sipHash24Words on the whole array of 0x03020100-style words matches the reference vectors', () => {
    // Words 0x03020100, 0x07060504, ... encode the bytes 00 01 02 ..; vector 4n is n words.
    const key = sipKey(hexBytes(fixture.key));
    const words = new Uint32Array(16);
    for (let i = 0; i < 16; i++)
      words[i] = ((4 * i) | ((4 * i + 1) << 8) | ((4 * i + 2) << 16) | ((4 * i + 3) << 24)) >>> 0;
    const out = new Uint32Array(2);
    for (let n = 0; n < 16; n++) {
      const hex = fixture.vectors[4 * n] as string;
      sipHash24Words(key, words, 0, n, out);
      expect([out[0], out[1]], `n=${n}`).toEqual([leWord(hex, 0), leWord(hex, 4)]);
    }
    expect(sipHash24Word(key, words[0] as number)).toBe(leWord(fixture.vectors[4] as string, 0));
  });

  it('sipHash24Words rejects a bad window', () => {
    const key = sipKey(new Uint8Array(16));
    const out = new Uint32Array(2);
    const words = [1, 2, 3];
    expect(() => sipHash24Words(key, words, -1, 2, out)).toThrow(RangeError);
    expect(() => sipHash24Words(key, words, 2, 1, out)).toThrow(RangeError);
    expect(() => sipHash24Words(key, words, 0, 4, out)).toThrow(RangeError);
    expect(() => sipHash24Words(key, words, 0.5, 2, out)).toThrow(RangeError);
    expect(() => sipHash24Words(key, words, 0, 3, new Uint32Array(1))).toThrow(RangeError);
    expect(() => sipHash24Words(key, words, 3, 3, out)).not.toThrow();
  });
});
