/**
 * Byte-pair merge of one pre-token in O(m log m) for m bytes.
 *
 * The rule is tiktoken's `_byte_pair_merge` (openai/tiktoken, src/lib.rs), which gpt-tokenizer 4.0.0 follows:
 * repeatedly merge the adjacent pair of parts whose concatenated bytes have the lowest rank, the leftmost
 * such pair on ties, until no adjacent pair is a token. Both rescan every pair after each merge, which is
 * quadratic in m. Here a min-heap keyed by (rank, start byte) over a doubly linked list of parts picks the
 * same pair at every step: start bytes keep list order, so the smallest key is the lowest rank, leftmost.
 * Stale heap entries are skipped when popped rather than deleted.
 */

/** gpt-tokenizer's rank table: index = rank, value = the token's text, or its bytes where not whole UTF-8. */
export type Ranks = readonly (string | readonly number[])[];

const NONE = -1;
const SHIFT = 2 ** 32;

/**
 * A byte string as a JS string with one char per byte (char code = byte), the key used for rank lookups;
 * slicing it gives the key of any byte range.
 */
export function binaryString(bytes: Uint8Array): string {
  let s = '';
  // fromCharCode.apply has an argument-count limit, so go in chunks.
  for (let i = 0; i < bytes.length; i += 8192) {
    s += String.fromCharCode.apply(null, bytes.subarray(i, i + 8192) as unknown as number[]);
  }
  return s;
}

/** Strict UTF-8 validity, as gpt-tokenizer's isValidUTF8 decides it (no overlongs, surrogates, > U+10FFFF). */
function isValidUtf8(b: readonly number[]): boolean {
  let i = 0;
  while (i < b.length) {
    const b1 = b[i];
    let n: number;
    let cp: number;
    if (b1 <= 0x7f) {
      i++;
      continue;
    } else if ((b1 & 0xe0) === 0xc0) {
      if (b1 <= 0xc1) return false;
      n = 2;
      cp = b1 & 0x1f;
    } else if ((b1 & 0xf0) === 0xe0) {
      n = 3;
      cp = b1 & 0x0f;
    } else if ((b1 & 0xf8) === 0xf0) {
      if (b1 > 0xf4) return false;
      n = 4;
      cp = b1 & 0x07;
    } else return false;
    if (i + n > b.length) return false;
    for (let j = 1; j < n; j++) {
      if ((b[i + j] & 0xc0) !== 0x80) return false;
      cp = (cp << 6) | (b[i + j] & 0x3f);
    }
    if ((n === 3 && cp < 0x800) || (n === 4 && cp < 0x10000)) return false;
    if ((cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) return false;
    i += n;
  }
  return true;
}

/**
 * The UTF-8 bytes of `s` as a binary string (see binaryString), or undefined if `s` has a lone surrogate:
 * decoding bytes never yields one, so gpt-tokenizer can never reach such a piece from bytes either.
 */
function utf8Binary(s: string): string | undefined {
  let ascii = true;
  for (let i = 0; i < s.length && ascii; i++) ascii = s.charCodeAt(i) < 0x80;
  // Most pieces are ASCII, whose binary string is the piece itself.
  if (ascii) return s;
  const codes: number[] = [];
  for (let i = 0; i < s.length; i++) {
    let c = s.charCodeAt(i);
    if (c < 0x80) codes.push(c);
    else if (c < 0x800) codes.push(0xc0 | (c >> 6), 0x80 | (c & 0x3f));
    else if (c >= 0xd800 && c <= 0xdfff) {
      const d = s.charCodeAt(i + 1);
      if (c > 0xdbff || !(d >= 0xdc00 && d <= 0xdfff)) return undefined;
      c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
      i++;
      codes.push(0xf0 | (c >> 18), 0x80 | ((c >> 12) & 0x3f), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f));
    } else codes.push(0xe0 | (c >> 12), 0x80 | ((c >> 6) & 0x3f), 0x80 | (c & 0x3f));
  }
  return String.fromCharCode(...codes);
}

/**
 * Rank of a byte string (as binaryString gives it). Mirrors gpt-tokenizer's getBpeRankFromBytes: valid UTF-8
 * is looked up among the text pieces, anything else among the byte pieces.
 */
export function byteRankTable(ranks: Ranks): Map<string, number> {
  const table = new Map<string, number>();
  for (let rank = 0; rank < ranks.length; rank++) {
    const piece = ranks[rank];
    if (piece === undefined) continue;
    if (typeof piece === 'string') {
      const key = utf8Binary(piece);
      if (key !== undefined) table.set(key, rank);
    } else if (!isValidUtf8(piece)) {
      const key = String.fromCharCode(...piece);
      if (!table.has(key)) table.set(key, rank);
    }
  }
  return table;
}

/** Appends the token ids of one pre-token, given as a binary string (see binaryString), to `out`. */
export function bytePairMerge(bin: string, table: Map<string, number>, out: number[]): void {
  const m = bin.length;
  if (m === 0) return;
  const next = new Int32Array(m); // start of the next part; m after the last part
  const prev = new Int32Array(m); // start of the previous part; NONE before the first
  const part = new Int32Array(m); // the token id of the part starting here
  const pair = new Int32Array(m); // rank of this part joined with the next, NONE if not a token (or dead)
  // Every merge pushes at most two entries; the initial pairs are at most m - 1.
  const heap = new Float64Array(3 * m);
  let size = 0;

  for (let s = 0; s < m; s++) {
    next[s] = s + 1;
    prev[s] = s - 1;
    const id = table.get(bin[s]);
    if (id === undefined) throw new RangeError(`byte ${bin.charCodeAt(s)} has no token`);
    part[s] = id;
    const r = s + 1 < m ? table.get(bin.slice(s, s + 2)) : undefined;
    pair[s] = r ?? NONE;
    if (r !== undefined) heap[size++] = r * SHIFT + s;
  }

  const siftDown = (from: number): void => {
    let i = from;
    const key = heap[i];
    for (;;) {
      let c = 2 * i + 1;
      if (c >= size) break;
      if (c + 1 < size && heap[c + 1] < heap[c]) c++;
      if (heap[c] >= key) break;
      heap[i] = heap[c];
      i = c;
    }
    heap[i] = key;
  };
  const push = (key: number): void => {
    let i = size++;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (heap[p] <= key) break;
      heap[i] = heap[p];
      i = p;
    }
    heap[i] = key;
  };
  for (let i = (size >> 1) - 1; i >= 0; i--) siftDown(i);

  while (size > 0) {
    const key = heap[0];
    heap[0] = heap[--size];
    if (size > 0) siftDown(0);
    const r = Math.floor(key / SHIFT);
    const s = key - r * SHIFT;
    // A pair's bytes only grow and distinct byte strings have distinct ranks, so a rank match means current.
    if (pair[s] !== r) continue;
    const t = next[s];
    const u = next[t];
    part[s] = r;
    pair[t] = NONE;
    next[s] = u;
    if (u < m) {
      prev[u] = s;
      const nr = table.get(bin.slice(s, next[u]));
      pair[s] = nr ?? NONE;
      if (nr !== undefined) push(nr * SHIFT + s);
    } else pair[s] = NONE;
    const p = prev[s];
    if (p !== NONE) {
      const nr = table.get(bin.slice(p, u));
      pair[p] = nr ?? NONE;
      if (nr !== undefined) push(nr * SHIFT + p);
    }
  }
  for (let s = 0; s < m; s = next[s]) out.push(part[s]);
}
