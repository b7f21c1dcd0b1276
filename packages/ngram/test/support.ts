import { gutenbergCorpus, o200kBase } from '../src/index';

const cache = new Map<string, number[][]>();

/** Token ids of the paragraphs of some Gutenberg books (o200k_base), cached per process. */
export function bookTokens(books: readonly string[], limit = Number.POSITIVE_INFINITY): number[][] {
  const key = `${books.join(',')}:${limit}`;
  let ids = cache.get(key);
  if (ids === undefined) {
    ids = gutenbergCorpus('train', { books })
      .slice(0, limit)
      .map((document) => o200kBase.encode(document.text));
    cache.set(key, ids);
  }
  return ids;
}

/** Float64 softmax of a logits row. */
export function softmax(logits: Float32Array): Float64Array {
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
  const p = new Float64Array(logits.length);
  let total = 0;
  for (let i = 0; i < logits.length; i++) {
    p[i] = Math.exp(logits[i] - max);
    total += p[i];
  }
  for (let i = 0; i < p.length; i++) p[i] /= total;
  return p;
}

const BOS = -1;

/**
 * A deliberately naive interpolated modified Kneser-Ney model over string-keyed maps, written from
 * Chen & Goodman's formulas without the trie: the reference the package is checked against.
 */
export class ReferenceKneserNey {
  readonly order: number;
  readonly raw = new Map<string, number>();
  readonly adjusted = new Map<string, number>();
  /** Discounts [D1, D2, D3+] by order (index 1..order). */
  readonly discounts: [number, number, number][] = [];
  readonly countOfCounts: number[][] = [];
  readonly #children = new Map<string, string[]>();

  constructor(documents: number[][], order: number) {
    this.order = order;
    for (const document of documents) {
      const s = [BOS, ...document];
      for (let i = 1; i < s.length; i++) {
        for (let n = 1; n <= order && i - n + 1 >= 0; n++) {
          const key = s.slice(i - n + 1, i + 1).join(',');
          this.raw.set(key, (this.raw.get(key) ?? 0) + 1);
        }
      }
    }
    const continuation = new Map<string, number>();
    for (const key of this.raw.keys()) {
      const words = key.split(',');
      if (words.length < 2) continue;
      const suffix = words.slice(1).join(',');
      continuation.set(suffix, (continuation.get(suffix) ?? 0) + 1);
    }
    for (const [key, count] of this.raw) {
      const words = key.split(',');
      const full = words.length === order || words[0] === String(BOS);
      this.adjusted.set(key, full ? count : (continuation.get(key) ?? 0));
      const context = words.slice(0, -1).join(',');
      const list = this.#children.get(context) ?? [];
      list.push(key);
      this.#children.set(context, list);
    }
    for (let n = 1; n <= order; n++) {
      const m = [0, 0, 0, 0, 0];
      for (const [key, c] of this.adjusted) if (key.split(',').length === n && c <= 4) m[c]++;
      const [n1, n2, n3, n4] = [m[1], m[2], m[3], m[4]];
      this.countOfCounts[n] = [n1, n2, n3, n4];
      const y = n1 / (n1 + 2 * n2);
      const d: [number, number, number] = [
        1 - (2 * y * n2) / n1,
        2 - (3 * y * n3) / n2,
        3 - (4 * y * n4) / n3,
      ];
      const ok = d.every((x, i) => Number.isFinite(x) && x > 0 && x < i + 1);
      this.discounts[n] = ok ? d : [0.5, 1, 1.5];
    }
  }

  #discount(n: number, c: number): number {
    const [d1, d2, d3] = this.discounts[n];
    return c === 1 ? d1 : c === 2 ? d2 : d3;
  }

  /** p(w | h) for a context read from the start of a document, by the textbook recursion. */
  prob(context: number[], w: number): number {
    const h = [BOS, ...context].slice(-(this.order - 1));
    return this.#interpolated(h, w);
  }

  #interpolated(h: number[], w: number): number {
    const n = h.length + 1;
    const children = this.#children.get(h.join(',')) ?? [];
    if (h.length === 0) {
      const known = children.filter((k) => k !== String(BOS));
      let total = 0;
      let mass = 0;
      for (const key of known) {
        const c = this.adjusted.get(key)!;
        total += c;
        mass += this.#discount(1, c);
      }
      const c = this.adjusted.get(String(w)) ?? 0;
      if (c === 0) return 0;
      return (c - this.#discount(1, c)) / total + mass / total / known.length;
    }
    const lower = this.#interpolated(h.slice(1), w);
    if (children.length === 0) return lower;
    let total = 0;
    let mass = 0;
    for (const key of children) {
      const c = this.adjusted.get(key)!;
      total += c;
      mass += this.#discount(n, c);
    }
    const c = this.adjusted.get([...h, w].join(',')) ?? 0;
    const alpha = c > 0 ? (c - this.#discount(n, c)) / total : 0;
    return alpha + (mass / total) * lower;
  }
}
