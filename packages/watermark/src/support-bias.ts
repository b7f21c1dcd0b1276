import type { AccountLayer } from './account-layer';
import { fail } from './errors';
import { type Scheme, SchemeBase, type WindowGreenList } from './scheme';
import { KgwScheme } from './schemes/kgw';

/** Estimated bytes of one cache entry beside its green positions (Map entry, typed-array header, key). */
const ENTRY_OVERHEAD = 64;

/**
 * A logit-bias scheme whose green list depends on the context window only (`Scheme.windowGreen`: KGW with left or
 * min hashing, Unigram, the reference lefthash schemes) wrapped for a model whose logits are −∞ outside a fixed
 * support, as an n-gram model's are for every token it never saw in training.
 *
 * Full-vocabulary `biasLogits` walks all V entries each step. Adding δ to −∞ changes nothing, so only the support
 * matters: the green tokens of the support are asked of the scheme once per context window (`windowGreen.green`,
 * so the green list is the scheme's, never re-implemented) and kept in an LRU cache as the list of their positions
 * in the support (16 bits each when the support has at most 65,536 tokens). A later step in the same window adds
 * δ to those tokens only. The biased logits are bit-for-bit those of the scheme's own call (tested); everything
 * else is delegated. A row given on the support alone (`ids` holding the support's tokens, `GenerationSession.
 * nextOverSupport`) takes the cached positions as indices directly: O(|support|) per step, not O(V).
 *
 * A layered KGW scheme (`accountDelta` > 0, account-layer.ts) is wrapped the same way: the organisation layer's
 * green list (`organisationGreen`) is the cached one, and `forAccount` gives a view for one account that shares the
 * support and the cache and adds the account layer over the support at each step, uncached (the account changes
 * from request to request; one hash per 32-token block of the support), before the organisation δ, as
 * `KgwScheme.biasLogits` does: bit-for-bit that scheme's `forAccount(account).biasLogits` (tested).
 */
export class SupportBiasScheme extends SchemeBase implements Scheme {
  readonly inner: Scheme;
  /**
   * The inner scheme's: the wrapper adds the same δ to the same tokens. Undefined when an account layer is on
   * (as for `KgwScheme`): the bias is then no longer one δ on one window-set list.
   */
  readonly windowGreen: WindowGreenList | undefined;
  /** The organisation layer's green list: the one cached, with or without an account layer. */
  readonly organisationGreen: WindowGreenList;
  /** The account layer this view adds (`forAccount`), if any. */
  readonly accountLayer: AccountLayer | undefined;
  /** The layered KGW scheme without an account that `forAccount` views derive from; null for one layer. */
  readonly #layered: KgwScheme | null;
  readonly #support: Int32Array;
  readonly #delta: number;
  readonly #width: number;
  readonly #vocab: number;
  /** Whether every window packs exactly into one double as a base-V number: V^h < 2^53. */
  readonly #numericKey: boolean;
  /** The organisation layer's cache and counters, shared by every account view of this wrapper. */
  readonly #shared: GreenCache;
  /** The inner scheme's keys and batched scorer, where it has them: detection through the wrapper is the inner's. */
  readonly contextKey?: Scheme['contextKey'];
  readonly inputKey?: Scheme['inputKey'];
  readonly scoreMany?: Scheme['scoreMany'];

  /** `shared` is internal: the cache a `forAccount` view shares with the wrapper it came from. */
  constructor(
    inner: Scheme,
    support: Int32Array,
    options: { cacheBytes?: number } = {},
    shared?: { cache: GreenCache; layered: KgwScheme | null; green: WindowGreenList },
  ) {
    const kgw = inner instanceof KgwScheme ? inner : null;
    const green =
      shared?.green ??
      inner.windowGreen ??
      (kgw?.accountLayer === undefined ? undefined : kgw.organisationGreen);
    if (green === undefined || typeof inner.biasLogits !== 'function') {
      fail(
        'E_INVALID_SPEC',
        'SupportBiasScheme needs a logit-bias scheme whose green list depends on the window only ' +
          '(KGW with left or min hashing, Unigram)',
      );
    }
    // The identity fields are immutable, so copying them once equals delegating every read.
    super(inner.spec, inner, {
      fingerprint: inner.keyFingerprint,
      masterFingerprint: inner.masterFingerprint,
      tenant: inner.tenant,
    });
    this.inner = inner;
    this.accountLayer = kgw?.accountLayer;
    this.windowGreen = this.accountLayer === undefined ? green : undefined;
    this.organisationGreen = green;
    this.#layered =
      shared?.layered ??
      (kgw !== null && kgw.spec.accountDelta !== undefined
        ? kgw.accountLayer === undefined
          ? kgw
          : kgw.forAccount(undefined)
        : null);
    this.#support = support;
    this.#delta = green.delta;
    this.#width = inner.contextWidth;
    this.#vocab = inner.vocabSize;
    let span = 1;
    for (let j = 0; j < this.#width; j++) span *= this.#vocab;
    // Exact below 2^53; above it the product only grows, so an unsafe span never passes for a safe one.
    this.#numericKey = Number.isSafeInteger(span);
    this.#shared = shared?.cache ?? new GreenCache(options.cacheBytes ?? 128 * 2 ** 20);
    this.contextKey = inner.contextKey?.bind(inner);
    this.inputKey = inner.inputKey?.bind(inner);
    this.scoreMany = inner.scoreMany?.bind(inner);
  }

  /**
   * The same wrapper embedding `account`'s layer too (`undefined`: the organisation layer alone), for a layered KGW
   * scheme (`accountDelta` > 0): shares the support and the organisation layer's cache, so it is cheap per request.
   */
  forAccount(account: string | undefined): SupportBiasScheme {
    const layered = this.#layered;
    if (layered === null)
      fail('E_INVALID_SPEC', 'this scheme has no account layer: a kgw spec with accountDelta > 0 is needed');
    return new SupportBiasScheme(
      layered.forAccount(account),
      this.#support,
      {},
      {
        cache: this.#shared,
        layered,
        green: this.organisationGreen,
      },
    );
  }

  /** The account the outputs of this view carry, if any. */
  get account(): string | undefined {
    return this.accountLayer?.account;
  }

  /** Organisation-layer cache hits and misses, over this wrapper and its account views. */
  get hits(): number {
    return this.#shared.hits;
  }

  set hits(value: number) {
    this.#shared.hits = value;
  }

  get misses(): number {
    return this.#shared.misses;
  }

  set misses(value: number) {
    this.#shared.misses = value;
  }

  /**
   * Whether the wrapper is exact for this scheme: it says its green list depends on the context window only, or it
   * is a layered KGW scheme whose organisation layer's does.
   */
  static applies(scheme: Scheme): boolean {
    const layered =
      scheme instanceof KgwScheme &&
      scheme.accountLayer !== undefined &&
      scheme.organisationGreen !== undefined;
    return (scheme.windowGreen !== undefined || layered) && typeof scheme.biasLogits === 'function';
  }

  biasLogits(
    sequence: ArrayLike<number>,
    logits: Float32Array,
    ids: Int32Array | null = null,
    count = logits.length,
  ): void {
    // A row over the support itself (`ids` holds the support's tokens): the cached positions index it directly.
    const compact = ids !== null && count === this.#support.length && this.#isSupport(ids);
    const key =
      (compact || (ids === null && count === this.#vocab)) && sequence.length >= this.#width
        ? this.#key(sequence)
        : undefined;
    if (key === undefined) {
      this.inner.biasLogits!(sequence, logits, ids, count);
      return;
    }
    // The account layer first, then the organisation δ: KgwScheme.biasLogits' order, so the float32 sums agree.
    if (this.accountLayer !== undefined) this.#biasAccount(sequence, logits, this.accountLayer, compact);
    const cache = this.#shared;
    let green = cache.map.get(key);
    if (green === undefined) {
      cache.misses++;
      green = this.#greenOfSupport(sequence);
      cache.insert(key, green);
    } else {
      cache.hits++;
      // Most recently used last: Map iteration order is insertion order.
      cache.map.delete(key);
      cache.map.set(key, green);
    }
    if (compact) addAtPositions(logits, green, this.#delta);
    else addAtTokensOf(logits, green, this.#support, this.#delta);
  }

  /** The support itself, or an array found once to hold the same tokens (supports do not change). */
  #isSupport(ids: Int32Array): boolean {
    const support = this.#support;
    if (ids === support) return true;
    const known = this.#shared.sameSupport.get(ids);
    if (known !== undefined) return known;
    let same = ids.length >= support.length;
    for (let j = 0; same && j < support.length; j++) same = ids[j] === support[j];
    this.#shared.sameSupport.set(ids, same);
    return same;
  }

  /**
   * Adds the account layer's δ to the support's tokens green for the account after the sequence: the layer's own
   * `green` over the sorted support, one hash per run of a 32-token block, so never re-implemented here. `compact`:
   * `logits` is indexed by position in the support rather than by token.
   */
  #biasAccount(
    sequence: ArrayLike<number>,
    logits: Float32Array,
    layer: AccountLayer,
    compact: boolean,
  ): void {
    const support = this.#support;
    const flags = this.#flagsBuffer();
    const found = layer.green(sequence, support, support.length, flags);
    if (found === 0) return;
    const delta = layer.delta;
    if (compact) {
      for (let j = 0; j < support.length; j++) if (flags[j] === 1) logits[j] += delta;
    } else {
      for (let j = 0; j < support.length; j++) if (flags[j] === 1) logits[support[j]] += delta;
    }
  }

  #flagsBuffer(): Uint8Array {
    const cache = this.#shared;
    if (cache.flags === null || cache.flags.length < this.#support.length)
      cache.flags = new Uint8Array(this.#support.length);
    return cache.flags;
  }

  /** Whether the cache has room for another entry of about the usual size. */
  #room(): boolean {
    const typical = (this.#support.length / 4) * (this.#support.length <= 65_536 ? 2 : 4) + ENTRY_OVERHEAD;
    return this.#shared.bytes + typical <= this.#shared.budget;
  }

  /** Contexts cached now. */
  get cached(): number {
    return this.#shared.map.size;
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
      if (key === undefined || this.#shared.map.has(key)) continue;
      this.#shared.insert(key, this.#greenOfSupport(window));
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

  /**
   * The last h tokens, exactly: the token itself for h = 1 (the hot path), a base-V number while V^h < 2^53,
   * else their decimal ids. Undefined when a token is not an id in [0, V), which the base-V digits could not
   * tell apart; such windows take the inner scheme's own call.
   */
  #key(sequence: ArrayLike<number>): number | string | undefined {
    const end = sequence.length;
    const vocab = this.#vocab;
    if (this.#width === 1) {
      const t = sequence[end - 1];
      return t >>> 0 === t && t < vocab ? t : undefined;
    }
    const start = end - this.#width;
    if (this.#numericKey) {
      let key = 0;
      for (let i = start; i < end; i++) {
        const t = sequence[i];
        if (!(t >>> 0 === t && t < vocab)) return undefined;
        key = key * vocab + t;
      }
      return key;
    }
    let key = '';
    for (let i = start; i < end; i++) {
      const t = sequence[i];
      if (!(t >>> 0 === t && t < vocab)) return undefined;
      key += `${t},`;
    }
    return key;
  }

  /** Positions in the support of its green tokens, increasing (16-bit when they fit). */
  #greenOfSupport(sequence: ArrayLike<number>): Uint16Array | Uint32Array {
    const support = this.#support;
    const flags = this.#flagsBuffer();
    const found = this.organisationGreen.green(sequence, support, support.length, flags);
    const green = support.length <= 65_536 ? new Uint16Array(found) : new Uint32Array(found);
    let k = 0;
    for (let j = 0; j < support.length; j++) if (flags[j] === 1) green[k++] = j;
    return green;
  }
}

/** The organisation layer's LRU cache of green lists by window, with its counters and scratch flags. */
class GreenCache {
  readonly map = new Map<number | string, Uint16Array | Uint32Array>();
  readonly budget: number;
  bytes = 0;
  flags: Uint8Array | null = null;
  /** Arrays passed as `ids` and whether they hold the support's tokens (`#isSupport`). */
  readonly sameSupport = new WeakMap<Int32Array, boolean>();
  hits = 0;
  misses = 0;

  constructor(budget: number) {
    this.budget = budget;
  }

  insert(key: number | string, green: Uint16Array | Uint32Array): void {
    this.map.set(key, green);
    this.bytes += green.byteLength + ENTRY_OVERHEAD;
    while (this.bytes > this.budget && this.map.size > 1) {
      const oldest = this.map.keys().next().value!;
      this.bytes -= this.map.get(oldest)!.byteLength + ENTRY_OVERHEAD;
      this.map.delete(oldest);
    }
  }
}

/**
 * Adds `delta` to `logits[at[k]]` for every k; the positions are distinct. Four independent updates per iteration:
 * on V8 about 1.7× faster than one at a time, for a loop that is the watermark's whole per-step cost.
 */
function addAtPositions(logits: Float32Array, at: Uint16Array | Uint32Array, delta: number): void {
  const unrolled = at.length & ~3;
  let k = 0;
  for (; k < unrolled; k += 4) {
    const a = at[k];
    const b = at[k + 1];
    const c = at[k + 2];
    const d = at[k + 3];
    logits[a] += delta;
    logits[b] += delta;
    logits[c] += delta;
    logits[d] += delta;
  }
  for (; k < at.length; k++) logits[at[k]] += delta;
}

/** `addAtPositions` on a full row: position j of the support is token `support[j]`. */
function addAtTokensOf(
  logits: Float32Array,
  at: Uint16Array | Uint32Array,
  support: Int32Array,
  delta: number,
): void {
  const unrolled = at.length & ~3;
  let k = 0;
  for (; k < unrolled; k += 4) {
    const a = support[at[k]];
    const b = support[at[k + 1]];
    const c = support[at[k + 2]];
    const d = support[at[k + 3]];
    logits[a] += delta;
    logits[b] += delta;
    logits[c] += delta;
    logits[d] += delta;
  }
  for (; k < at.length; k++) logits[support[at[k]]] += delta;
}
