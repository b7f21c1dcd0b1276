import { readFileSync, writeFileSync } from 'node:fs';
import { topKIndices } from '@tracemark/watermark';
import { countOfCounts, type Discounts, modifiedKneserNeyDiscounts } from './discounts';
import { fail } from './errors';
import { decodeModel, encodeModel } from './format';
import { builtinTokenizer, type Tokenizer } from './tokenizer';
import type { NgramDocument } from './train';

/** One level d ≥ 2 of the trie: the children of level d − 1's nodes, sorted by (parent, word). */
export interface LevelArrays {
  /** Children of node i of level d − 1 are entries childStart[i] .. childStart[i + 1] of this level. */
  childStart: Uint32Array;
  words: Int32Array;
  /** Kneser-Ney adjusted counts (≥ 1). */
  counts: Uint32Array;
}

/** What a model is made of; the trainer and the file reader both produce it. */
export interface ModelParts {
  order: number;
  vocabSize: number;
  tokenizer: Tokenizer | null;
  tokenizerName: string | null;
  trainedTokens: number;
  documents: number;
  meta: Record<string, unknown>;
  /** Continuation counts of the unigrams, indexed by token id; entry vocabSize (`<bos>`) is 0. */
  unigram: Uint32Array;
  /** Levels 2..order. */
  levels: LevelArrays[];
}

export interface PerplexityResult {
  /** exp(crossEntropy), over the scored tokens. */
  perplexity: number;
  /** Mean negative natural log-probability per scored token. */
  crossEntropy: number;
  bitsPerToken: number;
  /** Tokens scored. */
  tokens: number;
  /** Tokens the model never saw in training (probability 0), left out of the figures above. */
  oov: number;
  documents: number;
}

export interface ModelInfo {
  order: number;
  vocabSize: number;
  tokenizer: string | null;
  trainedTokens: number;
  documents: number;
  /** Distinct tokens seen in training: the tokens with a finite logit. */
  knownTokens: number;
  /** Number of n-gram types of each order 1..order. */
  ngrams: number[];
  /** Modified Kneser-Ney discounts of each order 1..order. */
  discounts: Discounts[];
  meta: Record<string, unknown>;
}

/**
 * An interpolated modified Kneser-Ney n-gram model (Chen & Goodman 1998, §3.6):
 *
 *   p(w | h) = max(c(h w) − D(c(h w)), 0) / Σ_v c(h v) + γ(h) · p(w | h′),
 *   γ(h) = (D1 N1(h •) + D2 N2(h •) + D3+ N3+(h •)) / Σ_v c(h v),
 *
 * with h′ the context h without its first token, adjusted counts c (raw at the highest order and after
 * `<bos>`, continuation counts below), and three discounts per order from its count-of-counts. The
 * recursion ends at the unigram level, whose discounted mass is spread evenly over the tokens seen in
 * training: a token never seen has probability 0 (logit −Infinity), and there is no uniform floor
 * over the rest of the vocabulary.
 *
 * A context is read as the start of a document: a context shorter than order − 1 tokens is preceded by
 * `<bos>`. Contexts longer than order − 1 are cut to their last order − 1 tokens.
 */
export class NgramModel {
  readonly order: number;
  readonly vocabSize: number;
  readonly tokenizer: Tokenizer | null;
  readonly info: ModelInfo;
  readonly #parts: ModelParts;
  readonly #bos: number;
  /** Discounts by order (index 1..order). */
  readonly #discounts: Discounts[];
  /** Unigram probabilities, indexed by token. */
  readonly #p0: Float64Array;
  /** log p0 as float: the logits of a context with no known suffix. */
  readonly #logUnigram: Float32Array;
  /** For context nodes of levels 1..order − 1 (index d): γ and 1 / Σ counts of their children. */
  readonly #gamma: Float64Array[] = [];
  readonly #inverseTotal: Float64Array[] = [];
  /**
   * For every entry e = (context c, word w) of levels 2..order (index d): log(p(w | c) / G(c)), where G(c)
   * is the product of γ over c and its suffixes. For a context h whose longest known suffix is c_K, the
   * logit of w is the entry of the longest suffix c_k that has w as a child: p(w | h) / G(c_K) equals
   * p(w | c_k) / G(c_k) because the orders above k only multiply by their γ. Tokens with no such entry
   * take the unigram row. A logits call is then a copy of the unigram row and a scatter of the
   * children of h's suffixes, with no logarithm.
   */
  readonly #logRatio: Float32Array[] = [];
  readonly #contextNodes = new Int32Array(8);
  /** Known tokens by decreasing unigram logit, for top-k without a pass over the vocabulary. */
  #byUnigram: Int32Array | null = null;
  /** Scratch of `topCandidates`: a stamp per token (set in the current call), the token's logit. */
  #stamp: Uint32Array | null = null;
  #stampValue: Float32Array | null = null;
  #generation = 0;
  #pool = new Int32Array(1024);
  #poolLogits = new Float32Array(1024);
  #poolTop = new Int32Array(64);
  /** The support (known tokens in id order), its unigram logits, and each token's position in it (−1: unknown). */
  #support: Int32Array | null = null;
  #supportUnigram: Float32Array | null = null;
  #supportPosition: Int32Array | null = null;

  constructor(parts: ModelParts) {
    this.#parts = parts;
    this.order = parts.order;
    this.vocabSize = parts.vocabSize;
    this.tokenizer = parts.tokenizer;
    this.#bos = parts.vocabSize;
    const { order, vocabSize, unigram, levels } = parts;

    this.#discounts = [modifiedKneserNeyDiscounts(0, 0, 0, 0)];
    this.#discounts.push(modifiedKneserNeyDiscounts(...countOfCounts(unigram)));
    for (let d = 2; d <= order; d++)
      this.#discounts.push(modifiedKneserNeyDiscounts(...countOfCounts(levels[d - 2].counts)));

    // Unigram level: discounted continuation counts, the discounted mass spread over the known tokens.
    const { d1, d2, d3 } = this.#discounts[1];
    let total = 0;
    let known = 0;
    let n1 = 0;
    let n2 = 0;
    let n3 = 0;
    for (let w = 0; w < vocabSize; w++) {
      const c = unigram[w];
      if (c === 0) continue;
      total += c;
      known++;
      if (c === 1) n1++;
      else if (c === 2) n2++;
      else n3++;
    }
    if (total === 0) fail('E_MODEL_FILE', 'the model has no known token');
    const floor = (d1 * n1 + d2 * n2 + d3 * n3) / total / known;
    this.#p0 = new Float64Array(vocabSize);
    this.#logUnigram = new Float32Array(vocabSize).fill(Number.NEGATIVE_INFINITY);
    for (let w = 0; w < vocabSize; w++) {
      const c = unigram[w];
      if (c === 0) continue;
      const p = (c - (c === 1 ? d1 : c === 2 ? d2 : d3)) / total + floor;
      this.#p0[w] = p;
      this.#logUnigram[w] = Math.log(p);
    }

    // Context statistics, then the log-ratios level by level. `suffixOf[e]` is the node of entry e
    // without its first word, one level down; `ratio` is p / G of the level below, in float64.
    let ratio: Float64Array = this.#p0;
    let contextG = new Float64Array(0);
    let suffixOf = new Int32Array(0);
    for (let d = 1; d < order; d++) {
      const { childStart, words, counts } = levels[d - 1];
      const contexts = childStart.length - 1;
      const { d1: e1, d2: e2, d3: e3 } = this.#discounts[d + 1];
      const gamma = new Float64Array(contexts);
      const inverse = new Float64Array(contexts);
      const g = new Float64Array(contexts);
      for (let c = 0; c < contexts; c++) {
        const end = childStart[c + 1];
        let sum = 0;
        let m1 = 0;
        let m2 = 0;
        let m3 = 0;
        for (let e = childStart[c]; e < end; e++) {
          const k = counts[e];
          sum += k;
          if (k === 1) m1++;
          else if (k === 2) m2++;
          else m3++;
        }
        if (sum === 0) continue;
        inverse[c] = 1 / sum;
        gamma[c] = (e1 * m1 + e2 * m2 + e3 * m3) / sum;
        g[c] = gamma[c] * (d === 1 ? 1 : contextG[suffixOf[c]]);
      }
      this.#gamma[d] = gamma;
      this.#inverseTotal[d] = inverse;

      // Entries of level d + 1.
      const entries = words.length;
      const nextRatio = new Float64Array(entries);
      const nextSuffix = new Int32Array(entries);
      const logRatio = new Float32Array(entries);
      const below = d === 1 ? null : levels[d - 2];
      for (let c = 0; c < contexts; c++) {
        const end = childStart[c + 1];
        if (end === childStart[c]) continue;
        const scale = inverse[c] / g[c];
        const suffixContext = d === 1 ? -1 : suffixOf[c];
        for (let e = childStart[c]; e < end; e++) {
          const w = words[e];
          let lower: number;
          if (below === null) {
            lower = w;
          } else {
            lower = findChild(below, suffixContext, w);
            if (lower < 0)
              fail('E_MODEL_FILE', `the model is inconsistent: an order-${d + 1} n-gram has no suffix`);
          }
          if (!(ratio[lower] > 0))
            fail('E_MODEL_FILE', 'the model is inconsistent: an n-gram of an unknown token');
          const k = counts[e];
          const r = ratio[lower] + (k - (k === 1 ? e1 : k === 2 ? e2 : e3)) * scale;
          nextRatio[e] = r;
          nextSuffix[e] = lower;
          logRatio[e] = Math.log(r);
        }
      }
      this.#logRatio[d + 1] = logRatio;
      ratio = nextRatio;
      contextG = g;
      suffixOf = nextSuffix;
    }

    this.info = {
      order,
      vocabSize,
      tokenizer: parts.tokenizerName,
      trainedTokens: parts.trainedTokens,
      documents: parts.documents,
      knownTokens: known,
      ngrams: [known, ...levels.map((level) => level.words.length)],
      discounts: this.#discounts.slice(1).map((d) => ({ ...d })),
      meta: parts.meta,
    };
  }

  /** Modified Kneser-Ney discounts of order n (1..order). */
  discounts(n: number): Discounts {
    if (!(Number.isInteger(n) && n >= 1 && n <= this.order))
      fail('E_INVALID_OPTIONS', `order ${n} is not in 1..${this.order}`);
    return { ...this.#discounts[n] };
  }

  /** True when the token was seen in training (it has a finite logit in every context). */
  isKnown(token: number): boolean {
    return this.#p0[token] > 0;
  }

  /**
   * Logits of the next token over the whole vocabulary: log p(w | context) up to a constant that depends
   * on the context (softmax gives the exact distribution), −Infinity for tokens never seen in training.
   * Writes into `out` when given (length vocabSize) and returns it.
   */
  logits(context: ArrayLike<number>, out?: Float32Array): Float32Array {
    const vocab = this.vocabSize;
    if (out === undefined) out = new Float32Array(vocab);
    else if (!(out instanceof Float32Array) || out.length !== vocab) {
      fail('E_LOGITS_LENGTH', `logits output has ${out?.length} entries; the vocabulary has ${vocab} tokens`);
    }
    out.set(this.#logUnigram);
    this.#writeChildren(context, out, null);
    return out;
  }

  /**
   * Writes the logits of the children of the context's known suffixes, shorter suffixes first, over `row`: at
   * each child's id, or at `position[id]` for a support row.
   */
  #writeChildren(context: ArrayLike<number>, row: Float32Array, position: Int32Array | null): void {
    const known = this.#findContexts(context, context.length);
    const nodes = this.#contextNodes;
    const levels = this.#parts.levels;
    for (let k = 1; k <= known; k++) {
      const { childStart, words } = levels[k - 1];
      const logRatio = this.#logRatio[k + 1];
      const node = nodes[k];
      const end = childStart[node + 1];
      if (position === null) for (let e = childStart[node]; e < end; e++) row[words[e]] = logRatio[e];
      else for (let e = childStart[node]; e < end; e++) row[position[words[e]]] = logRatio[e];
    }
  }

  /**
   * The model's support: the tokens seen in training, in increasing id order; every other logit is −Infinity
   * in every context. Shared and cached: do not modify it.
   */
  get support(): Int32Array {
    if (this.#support === null) {
      const vocab = this.vocabSize;
      const position = new Int32Array(vocab).fill(-1);
      let size = 0;
      for (let w = 0; w < vocab; w++) if (this.#p0[w] > 0) position[w] = size++;
      const support = new Int32Array(size);
      const unigram = new Float32Array(size);
      for (let w = 0; w < vocab; w++) {
        const j = position[w];
        if (j < 0) continue;
        support[j] = w;
        unigram[j] = this.#logUnigram[w];
      }
      this.#supportPosition = position;
      this.#supportUnigram = unigram;
      this.#support = support;
    }
    return this.#support;
  }

  /** Position of `token` in `support`, or −1 when the model never saw it. */
  supportIndex(token: number): number {
    this.#checkToken(token, 'token');
    return this.support.length > 0 ? this.#supportPosition![token] : -1;
  }

  /**
   * `logits()` restricted to the support: entry j is the logit of token `support[j]`, the same float as
   * `logits(context)[support[j]]`; the −Infinity entries outside the support are left out. Writes into `out`
   * (at least as long as the support) and returns the support's prefix of it.
   */
  supportLogits(context: ArrayLike<number>, out: Float32Array): Float32Array {
    const size = this.support.length;
    if (!(out instanceof Float32Array) || out.length < size) {
      fail(
        'E_LOGITS_LENGTH',
        `support logits output has ${out?.length} entries; the support has ${size} tokens`,
      );
    }
    const row = out.length === size ? out : out.subarray(0, size);
    row.set(this.#supportUnigram!);
    this.#writeChildren(context, row, this.#supportPosition!);
    return row;
  }

  /**
   * The `k` most likely next tokens, best first, with their logits on the scale of `logits()`; returns
   * how many were written (fewer than k only when fewer tokens are known). Exact, and without a pass over
   * the vocabulary: a token's logit is the entry of the longest context suffix that has it as a child,
   * else its unigram logit, so the top k lie among those children and the k best unigram tokens that are
   * not children. Serving stacks pass the result to `GenerationSession.nextFromCandidates`.
   */
  topCandidates(context: ArrayLike<number>, k: number, ids: Int32Array, logits: Float32Array): number {
    if (!(Number.isInteger(k) && k >= 1 && ids.length >= k && logits.length >= k)) {
      fail(
        'E_INVALID_OPTIONS',
        `topCandidates needs k ≥ 1 and output arrays of at least k entries; got k = ${k}`,
      );
    }
    if (this.#stamp === null) this.#stamp = new Uint32Array(this.vocabSize);
    if (this.#stampValue === null) this.#stampValue = new Float32Array(this.vocabSize);
    const stamp = this.#stamp;
    const value = this.#stampValue;
    if (this.#byUnigram === null) this.#byUnigram = this.#sortByUnigram();
    const byUnigram = this.#byUnigram;
    const generation = ++this.#generation;
    const known = this.#findContexts(context, context.length);
    const levels = this.#parts.levels;
    let size = 0;
    for (let level = 1; level <= known; level++) {
      const { childStart, words } = levels[level - 1];
      const logRatio = this.#logRatio[level + 1];
      const node = this.#contextNodes[level];
      const end = childStart[node + 1];
      for (let e = childStart[node]; e < end; e++) {
        const w = words[e];
        if (stamp[w] !== generation) {
          stamp[w] = generation;
          size = this.#poolPush(size, w);
        }
        value[w] = logRatio[e];
      }
    }
    let extra = 0;
    for (let j = 0; j < byUnigram.length && extra < k; j++) {
      const w = byUnigram[j];
      if (stamp[w] === generation) continue;
      value[w] = this.#logUnigram[w];
      size = this.#poolPush(size, w);
      extra++;
    }
    const pool = this.#pool;
    const poolLogits = this.#poolLogits;
    for (let i = 0; i < size; i++) poolLogits[i] = value[pool[i]];
    if (this.#poolTop.length < k) this.#poolTop = new Int32Array(k);
    const found = topKIndices(poolLogits.subarray(0, size), k, this.#poolTop);
    for (let i = 0; i < found; i++) {
      ids[i] = pool[this.#poolTop[i]];
      logits[i] = poolLogits[this.#poolTop[i]];
    }
    return found;
  }

  #poolPush(size: number, word: number): number {
    if (size === this.#pool.length) {
      const grown = new Int32Array(2 * size);
      grown.set(this.#pool);
      this.#pool = grown;
      this.#poolLogits = new Float32Array(2 * size);
    }
    this.#pool[size] = word;
    return size + 1;
  }

  #sortByUnigram(): Int32Array {
    const tokens: number[] = [];
    for (let w = 0; w < this.vocabSize; w++) if (this.#p0[w] > 0) tokens.push(w);
    const logUnigram = this.#logUnigram;
    tokens.sort((a, b) => logUnigram[b] - logUnigram[a] || a - b);
    return Int32Array.from(tokens);
  }

  /** log p(token | context), natural log, normalised over the vocabulary; −Infinity for unseen tokens. */
  logProb(context: ArrayLike<number>, token: number): number {
    this.#checkToken(token, 'token');
    return this.#logProbAt(context, context.length, token);
  }

  /**
   * Perplexity of documents (text, read with the model's tokenizer, or token ids), each scored from
   * its start. Tokens never seen in training have probability 0; they are counted in `oov` and left out.
   */
  perplexity(documents: Iterable<NgramDocument>): PerplexityResult {
    let loss = 0;
    let tokens = 0;
    let oov = 0;
    let count = 0;
    for (const document of documents) {
      const ids = typeof document === 'string' ? this.encode(document) : document;
      for (let i = 0; i < ids.length; i++) {
        const token = ids[i];
        this.#checkToken(token, `token at position ${i}`);
        const lp = this.#logProbAt(ids, i, token);
        if (lp === Number.NEGATIVE_INFINITY) oov++;
        else {
          loss -= lp;
          tokens++;
        }
      }
      count++;
    }
    const crossEntropy = tokens === 0 ? Number.NaN : loss / tokens;
    return {
      perplexity: Math.exp(crossEntropy),
      crossEntropy,
      bitsPerToken: crossEntropy / Math.LN2,
      tokens,
      oov,
      documents: count,
    };
  }

  /** Token ids of text, with the model's tokenizer. */
  encode(text: string): number[] {
    if (this.tokenizer === null) fail('E_NO_TOKENIZER', 'this model has no tokenizer; pass token ids');
    return this.tokenizer.encode(text);
  }

  decode(tokens: ArrayLike<number>): string {
    if (this.tokenizer === null) fail('E_NO_TOKENIZER', 'this model has no tokenizer');
    return this.tokenizer.decode(tokens);
  }

  /** The model file: deterministic (the same model gives the same bytes). */
  toBytes(): Uint8Array {
    return encodeModel(this.#parts);
  }

  save(path: string): void {
    writeFileSync(path, this.toBytes());
  }

  /**
   * Reads a model file. The tokenizer is the built-in one the file names (o200k_base), or `tokenizer`
   * when given; a model with neither reads token ids only.
   */
  static fromBytes(bytes: Uint8Array, options: { tokenizer?: Tokenizer } = {}): NgramModel {
    const parts = decodeModel(bytes);
    const tokenizer =
      options.tokenizer ?? (parts.tokenizerName ? builtinTokenizer(parts.tokenizerName) : null);
    if (tokenizer !== null && tokenizer.vocabSize > parts.vocabSize) {
      fail('E_INVALID_OPTIONS', `the tokenizer's vocabulary exceeds the model's (${parts.vocabSize})`);
    }
    return new NgramModel({ ...parts, tokenizer });
  }

  static load(path: string, options: { tokenizer?: Tokenizer } = {}): NgramModel {
    let bytes: Uint8Array;
    try {
      bytes = readFileSync(path);
    } catch (error) {
      fail('E_MODEL_FILE', `cannot read model file ${path}: ${(error as Error).message.split('\n')[0]}`);
    }
    return NgramModel.fromBytes(bytes, options);
  }

  #checkToken(token: number, what: string): void {
    if (!(Number.isInteger(token) && token >= 0 && token < this.vocabSize)) {
      fail('E_TOKEN_RANGE', `${what} ${token} is outside the vocabulary [0, ${this.vocabSize})`);
    }
  }

  /**
   * Finds the nodes of the suffixes of `<bos> sequence[0..end)` of length 1..order − 1 that have
   * children, into #contextNodes[1..K]; returns K. Suffixes nest, so the first missing one ends the search.
   */
  #findContexts(sequence: ArrayLike<number>, end: number): number {
    const span = Math.min(this.order - 1, end + 1);
    const start = end - span; // position of the first context token; −1 is <bos>
    const vocab = this.vocabSize;
    for (let i = Math.max(start, 0); i < end; i++) {
      const t = sequence[i];
      if (!(Number.isInteger(t) && t >= 0 && t < vocab)) {
        fail('E_TOKEN_RANGE', `context token ${t} at position ${i} is outside the vocabulary [0, ${vocab})`);
      }
    }
    const levels = this.#parts.levels;
    const nodes = this.#contextNodes;
    let known = 0;
    for (let k = 1; k <= span; k++) {
      const from = end - k;
      let node = from < 0 ? this.#bos : sequence[from];
      for (let i = from + 1; i < end && node >= 0; i++)
        node = findChild(levels[i - from - 1], node, sequence[i]);
      if (node < 0) break;
      const { childStart } = levels[k - 1];
      if (childStart[node + 1] === childStart[node]) break;
      nodes[k] = node;
      known = k;
    }
    return known;
  }

  #logProbAt(sequence: ArrayLike<number>, end: number, token: number): number {
    let p = this.#p0[token];
    if (p === 0) return Number.NEGATIVE_INFINITY;
    const known = this.#findContexts(sequence, end);
    const levels = this.#parts.levels;
    for (let k = 1; k <= known; k++) {
      const node = this.#contextNodes[k];
      const level = levels[k - 1];
      const e = findChild(level, node, token);
      let alpha = 0;
      if (e >= 0) {
        const c = level.counts[e];
        const { d1, d2, d3 } = this.#discounts[k + 1];
        alpha = (c - (c === 1 ? d1 : c === 2 ? d2 : d3)) * this.#inverseTotal[k][node];
      }
      p = alpha + this.#gamma[k][node] * p;
    }
    return Math.log(p);
  }
}

/** Entry index of `word` among the children of `node` in `level`, or −1. */
function findChild(level: LevelArrays, node: number, word: number): number {
  const { words } = level;
  let lo = level.childStart[node];
  let hi = level.childStart[node + 1];
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    const w = words[mid];
    if (w === word) return mid;
    if (w < word) lo = mid + 1;
    else hi = mid;
  }
  return -1;
}
