import { lowbias32 } from './mix';

/**
 * A set of 64-bit keys (two uint32 halves) in open addressing with linear probing over one typed array.
 * De-duplication runs once per scored token, where a JavaScript `Set` of 53-bit numbers would allocate a
 * heap number per key and cost several times more; one interleaved array keeps a probe to one cache line.
 * The high word is stored plus one, so that a zero-filled array is an empty table (no fill pass over a
 * large new table); a high word of 0xffffffff is therefore never stored (see `windowKey`).
 */
export class KeySet64 {
  #table: Uint32Array;
  #mask: number;
  #size = 0;

  constructor(expected = 1024) {
    let capacity = 16;
    while (capacity < expected * 2) capacity *= 2;
    this.#table = emptyTable(capacity);
    this.#mask = capacity - 1;
  }

  get size(): number {
    return this.#size;
  }

  /** Adds the key; true when it was not there before. */
  add(lo: number, hi: number): boolean {
    lo >>>= 0;
    hi = (hi + 1) >>> 0;
    if (2 * (this.#size + 1) > this.#mask + 1) this.#grow();
    return this.#insert(lo, hi, slotOf(lo, hi));
  }

  has(lo: number, hi: number): boolean {
    lo >>>= 0;
    hi = (hi + 1) >>> 0;
    const table = this.#table;
    for (
      let slot = slotOf(lo, hi) & this.#mask;
      table[2 * slot + 1] !== EMPTY;
      slot = (slot + 1) & this.#mask
    ) {
      if (table[2 * slot] === lo && table[2 * slot + 1] === hi) return true;
    }
    return false;
  }

  #insert(lo: number, hi: number, hash: number): boolean {
    const table = this.#table;
    const mask = this.#mask;
    let slot = hash & mask;
    for (;;) {
      const storedHi = table[2 * slot + 1];
      if (storedHi === EMPTY) break;
      if (storedHi === hi && table[2 * slot] === lo) return false;
      slot = (slot + 1) & mask;
    }
    table[2 * slot] = lo;
    table[2 * slot + 1] = hi;
    this.#size++;
    return true;
  }

  #grow(): void {
    const old = this.#table;
    const capacity = 2 * (this.#mask + 1);
    this.#table = emptyTable(capacity);
    this.#mask = capacity - 1;
    this.#size = 0;
    for (let slot = 0; 2 * slot < old.length; slot++) {
      const lo = old[2 * slot];
      const hi = old[2 * slot + 1];
      if (hi !== EMPTY) this.#insert(lo, hi, slotOf(lo, hi));
    }
  }
}

/** The stored high word of an empty slot (stored words are the key's plus one). */
const EMPTY = 0;

function emptyTable(capacity: number): Uint32Array {
  return new Uint32Array(2 * capacity);
}

function slotOf(lo: number, hi: number): number {
  let x = (lo ^ Math.imul(hi, 0x9e3779b1)) >>> 0;
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  return x >>> 0;
}

/**
 * The 64-bit key of `words[start..end)`: exact for up to two words (ids below 2^31), hashed beyond,
 * with the top bit of the high word set so hashed keys never meet exact ones, and 0xffffffff avoided.
 */
export function windowKey(words: ArrayLike<number>, start: number, end: number, out: Uint32Array): void {
  const length = end - start;
  if (length <= 2) {
    out[0] = shortWindowKeyLo(words, end, length);
    out[1] = shortWindowKeyHi(words, end, length);
  } else {
    let a = 0x243f6a88 ^ length;
    let b = 0x85a308d3;
    for (let i = start; i < end; i++) {
      const w = words[i] >>> 0;
      a = lowbias32((a ^ w) >>> 0);
      b = lowbias32((b + w + a) | 0);
    }
    out[0] = a;
    out[1] = (b | 0x80000000) & 0xfffffffe;
  }
}

/**
 * The two words of `windowKey` for a window of `length` ≤ 2 tokens ending before `end`, as plain
 * functions so that a hot loop can compute them in line: (last, 0), (last, first + 1), or a constant.
 */
export function shortWindowKeyLo(words: ArrayLike<number>, end: number, length: number): number {
  return length === 0 ? 0 : words[end - 1];
}

export function shortWindowKeyHi(words: ArrayLike<number>, end: number, length: number): number {
  return length === 2 ? words[end - 2] + 1 : length === 1 ? 0 : 0x7fffffff;
}
