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

const NONE = -1;
const SHIFT = 2 ** 32;

/** The rank (token id) of bytes[from, to), or -1 when those bytes are not a token. */
export type RankOf = (from: number, to: number) => number;

/** Appends the token ids of one pre-token, its UTF-8 in bytes[0, m), to `out`. */
export function bytePairMerge(bytes: Uint8Array, m: number, rankOf: RankOf, out: number[]): void {
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
    const id = rankOf(s, s + 1);
    if (id === NONE) throw new RangeError(`byte ${bytes[s]} has no token`);
    part[s] = id;
    const r = s + 1 < m ? rankOf(s, s + 2) : NONE;
    pair[s] = r;
    if (r !== NONE) heap[size++] = r * SHIFT + s;
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
    // A pair's bytes only grow, and a grown pair never keeps its rank (distinct byte strings have distinct
    // ranks, and gpt-tokenizer's byte-order-mark rule never maps a pair and its extension to one key), so a
    // rank match means current.
    if (pair[s] !== r) continue;
    const t = next[s];
    const u = next[t];
    part[s] = r;
    pair[t] = NONE;
    next[s] = u;
    if (u < m) {
      prev[u] = s;
      const nr = rankOf(s, next[u]);
      pair[s] = nr;
      if (nr !== NONE) push(nr * SHIFT + s);
    } else pair[s] = NONE;
    const p = prev[s];
    if (p !== NONE) {
      const nr = rankOf(p, u);
      pair[p] = nr;
      if (nr !== NONE) push(nr * SHIFT + p);
    }
  }
  for (let s = 0; s < m; s = next[s]) out.push(part[s]);
}
