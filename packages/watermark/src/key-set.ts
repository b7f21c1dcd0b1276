/**
 * A set of 64-bit keys (two uint32 halves) in open addressing with linear probing over one typed array.
 * De-duplication runs once per scored token, where a JavaScript `Set` of 53-bit numbers would allocate a
 * heap number per key and cost several times more; one interleaved array keeps a probe to one cache line.
 * A high word of 0xffffffff marks an empty slot, so that value is never stored (see `windowKey`).
 */
export class KeySet64 {
  #table: Uint32Array;
  #mask: number;
  #size = 0;
  /**
   * 2^15 recent keys (256 KiB), indexed by the top bits of the slot hash; allocated only once the table
   * outgrows the caches, so that the many small sets of short detections stay cheap.
   */
  #recent: Uint32Array | null = null;

  constructor(expected = 1024) {
    let capacity = 16;
    while (capacity < expected * 2) capacity *= 2;
    this.#table = emptyTable(capacity);
    this.#mask = capacity - 1;
  }

  get size(): number {
    return this.#size;
  }

  /**
   * Adds the key; true when it was not there before. Text repeats a few keys most of the time (", the",
   * "of the"), so a small direct-mapped cache of recent keys answers most repeats from L1/L2 before the
   * table, which for a million keys no longer fits in cache, is probed.
   */
  add(lo: number, hi: number): boolean {
    lo >>>= 0;
    hi >>>= 0;
    const hash = slotOf(lo, hi);
    const recent = this.#recent;
    if (recent !== null) {
      const slot = (hash >>> RECENT_SHIFT) << 1;
      if (recent[slot + 1] === hi && recent[slot] === lo) return false;
      recent[slot] = lo;
      recent[slot + 1] = hi;
    }
    if (2 * (this.#size + 1) > this.#mask + 1) this.#grow();
    return this.#insert(lo, hi, hash);
  }

  has(lo: number, hi: number): boolean {
    lo >>>= 0;
    hi >>>= 0;
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
    if (capacity >= RECENT_FROM_CAPACITY && this.#recent === null)
      this.#recent = emptyTable(1 << (32 - RECENT_SHIFT));
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

const EMPTY = 0xffffffff;
const RECENT_SHIFT = 17;
/** Table capacity (slots) from which the recent-key cache pays for itself: 2^16 slots = 512 KiB. */
const RECENT_FROM_CAPACITY = 1 << 16;

function emptyTable(capacity: number): Uint32Array {
  const table = new Uint32Array(2 * capacity);
  for (let slot = 0; slot < capacity; slot++) table[2 * slot + 1] = EMPTY;
  return table;
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
  if (length === 1) {
    out[0] = words[start];
    out[1] = 0;
  } else if (length === 2) {
    out[0] = words[start + 1];
    out[1] = words[start] + 1;
  } else if (length === 0) {
    out[0] = 0;
    out[1] = 0x7fffffff;
  } else {
    let a = 0x243f6a88 ^ length;
    let b = 0x85a308d3;
    for (let i = start; i < end; i++) {
      const w = words[i] >>> 0;
      a = mix((a ^ w) >>> 0);
      b = mix((b + w + a) | 0);
    }
    out[0] = a;
    out[1] = (b | 0x80000000) & 0xfffffffe;
  }
}

function mix(x: number): number {
  x ^= x >>> 16;
  x = Math.imul(x, 0x7feb352d);
  x ^= x >>> 15;
  x = Math.imul(x, 0x846ca68b);
  x ^= x >>> 16;
  return x >>> 0;
}
