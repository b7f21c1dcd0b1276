import type { Scheme } from '@tracemark/watermark';

/**
 * A logit-bias scheme (KGW with left or min hashing, Unigram) wrapped for a model whose logits are −∞ outside
 * a fixed support, as the n-gram model's are for every token it never saw in training.
 *
 * Full-vocabulary `biasLogits` walks all V = 200,019 entries each step. Adding δ to −∞ changes nothing, so only
 * the support matters: the green tokens of the support are computed once per context window (with the scheme's
 * own `biasLogits` on a scratch row, so the green list is the scheme's, never re-implemented) and kept in an LRU
 * cache as the list of their positions in the support (16 bits each when the support has at most 65,536 tokens,
 * as the teacher's 31,480 do). A later step in the same context adds δ to those tokens only. The biased logits
 * are bit-for-bit those of the scheme's own call (tested); everything else is delegated.
 */
export class SupportBiasScheme implements Scheme {
  readonly inner: Scheme;
  readonly #support: Int32Array;
  readonly #delta: number;
  readonly #width: number;
  readonly #budget: number;
  #bytes = 0;
  readonly #cache = new Map<number | string, Uint16Array | Uint32Array>();
  #scratch: Float32Array | null = null;
  hits = 0;
  misses = 0;
  /** The inner scheme's keys and batched scorer, where it has them: detection through the wrapper is the inner's. */
  readonly contextKey?: Scheme['contextKey'];
  readonly inputKey?: Scheme['inputKey'];
  readonly scoreMany?: Scheme['scoreMany'];

  constructor(inner: Scheme, support: Int32Array, options: { cacheBytes?: number } = {}) {
    if (!SupportBiasScheme.applies(inner))
      throw new Error('SupportBiasScheme needs a KGW scheme without self-hashing');
    this.inner = inner;
    this.#support = support;
    this.#delta = (inner.spec as unknown as { delta: number }).delta;
    this.#width = inner.contextWidth;
    this.#budget = options.cacheBytes ?? 128 * 2 ** 20;
    this.contextKey = inner.contextKey?.bind(inner);
    this.inputKey = inner.inputKey?.bind(inner);
    this.scoreMany = inner.scoreMany?.bind(inner);
  }

  /** Whether the wrapper is exact for this scheme: green lists that depend on the context window only. */
  static applies(scheme: Scheme): boolean {
    const spec = scheme.spec as unknown as { scheme: string; hashing?: string };
    return typeof scheme.biasLogits === 'function' && spec.scheme === 'kgw' && spec.hashing !== 'self';
  }

  get spec(): Scheme['spec'] {
    return this.inner.spec;
  }
  get vocabSize(): number {
    return this.inner.vocabSize;
  }
  get contextWidth(): number {
    return this.inner.contextWidth;
  }
  get distortionFree(): boolean {
    return this.inner.distortionFree;
  }
  get nullLaw(): Scheme['nullLaw'] {
    return this.inner.nullLaw;
  }
  get keyFingerprint(): string {
    return this.inner.keyFingerprint;
  }
  get masterFingerprint(): string {
    return this.inner.masterFingerprint;
  }
  get tenant(): string | undefined {
    return this.inner.tenant;
  }

  biasLogits(
    sequence: ArrayLike<number>,
    logits: Float32Array,
    ids: Int32Array | null = null,
    count = logits.length,
  ): void {
    if (ids !== null || count !== this.inner.vocabSize || sequence.length < this.#width) {
      this.inner.biasLogits!(sequence, logits, ids, count);
      return;
    }
    const key = this.#key(sequence);
    let green = this.#cache.get(key);
    if (green === undefined) {
      this.misses++;
      green = this.#greenOfSupport(sequence);
      this.#insert(key, green);
    } else {
      this.hits++;
      // Most recently used last: Map iteration order is insertion order.
      this.#cache.delete(key);
      this.#cache.set(key, green);
    }
    const delta = this.#delta;
    if (green instanceof Uint16Array) {
      const support = this.#support;
      for (let k = 0; k < green.length; k++) logits[support[green[k]]] += delta;
    } else {
      for (let k = 0; k < green.length; k++) logits[green[k]] += delta;
    }
  }

  #insert(key: number | string, green: Uint16Array | Uint32Array): void {
    this.#cache.set(key, green);
    this.#bytes += green.byteLength + 64;
    while (this.#bytes > this.#budget && this.#cache.size > 1) {
      const oldest = this.#cache.keys().next().value!;
      this.#bytes -= this.#cache.get(oldest)!.byteLength + 64;
      this.#cache.delete(oldest);
    }
  }

  /** Whether the cache has room for another entry of about the usual size. */
  #room(): boolean {
    const typical = (this.#support.length / 4) * (this.#support.length <= 65_536 ? 2 : 4) + 64;
    return this.#bytes + typical <= this.#budget;
  }

  /** Contexts cached now. */
  get cached(): number {
    return this.#cache.size;
  }

  /**
   * Fills the cache for the given one-token contexts (most frequent first), a slice at a time so that serving
   * goes on meanwhile. Only for h = 1, where a context is one token; stops when the cache is full.
   */
  async warm(
    contexts: ArrayLike<number>,
    options: { sliceMs?: number; stopped?: () => boolean } = {},
  ): Promise<number> {
    if (this.#width !== 1) return 0;
    const sliceMs = options.sliceMs ?? 15;
    let added = 0;
    let sliceStart = performance.now();
    const window = [0];
    for (let i = 0; i < contexts.length && this.#room(); i++) {
      if (options.stopped?.()) break;
      window[0] = contexts[i];
      const key = this.#key(window);
      if (this.#cache.has(key)) continue;
      this.#insert(key, this.#greenOfSupport(window));
      added++;
      if (performance.now() - sliceStart > sliceMs) {
        await new Promise((resolve) => setImmediate(resolve));
        sliceStart = performance.now();
      }
    }
    return added;
  }

  choose(
    sequence: ArrayLike<number>,
    logits: Float32Array,
    ids: Int32Array | null,
    count: number,
    uniform: () => number,
  ) {
    return this.inner.choose(sequence, logits, ids, count, uniform);
  }

  score(sequence: ArrayLike<number>, index: number): number {
    return this.inner.score(sequence, index);
  }

  /** The exact context window as a key: a number for up to 3 tokens (V³ < 2⁵³), a string beyond. */
  #key(sequence: ArrayLike<number>): number | string {
    const end = sequence.length;
    const h = this.#width;
    if (h <= 3) {
      let key = 0;
      for (let i = end - h; i < end; i++) key = key * this.inner.vocabSize + sequence[i];
      return key;
    }
    let key = '';
    for (let i = end - h; i < end; i++) key += `${sequence[i]},`;
    return key;
  }

  /** Positions in the support (16-bit when they fit) or token ids of the support's green tokens, ascending. */
  #greenOfSupport(sequence: ArrayLike<number>): Uint16Array | Uint32Array {
    const vocab = this.inner.vocabSize;
    if (this.#scratch === null) this.#scratch = new Float32Array(vocab);
    const scratch = this.#scratch;
    this.inner.biasLogits!(sequence, scratch);
    const support = this.#support;
    const found: number[] = [];
    const small = support.length <= 65_536;
    for (let j = 0; j < support.length; j++)
      if (scratch[support[j]] !== 0) found.push(small ? j : support[j]);
    scratch.fill(0);
    return small ? Uint16Array.from(found) : Uint32Array.from(found);
  }
}
