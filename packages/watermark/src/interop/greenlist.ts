/**
 * Green lists drawn as the reference KGW code draws them: `randperm(V, generator=g)[:G]` after
 * `g.manual_seed(seed)` (transformers WatermarkLogitsProcessor._get_greenlist_ids, lm-watermarking
 * WatermarkBase._get_greenlist_ids), kept as bitsets in a bounded LRU cache.
 *
 * A membership question (isGreen) on a seed seen for the first time does not build the list: it follows the
 * one token through the shuffle (TorchGenerator.randpermPrefixHas). A seed asked about again gets its bitset
 * built and cached, so repeated contexts still cost one bit test.
 *
 * The engine reads only the low 32 bits of a seed, so the cache is keyed by them: contexts whose seeds
 * agree modulo 2^32 share one green list in the reference code too.
 */
import { fail } from '../errors';
import { topKIndices } from '../sampler';
import { LogitBiasScheme } from '../scheme';
import type { BaseSpec } from '../spec';
import { checkToken } from './common';
import { PrefixMembershipTable, primePrefixWalk, RandpermWorkspace, TorchGenerator } from './torch-random';

export interface GreenListCacheOptions {
  /** Upper bound on the bytes held by cached bitsets (default 32 MiB). */
  maxBytes?: number;
}

export const DEFAULT_GREEN_CACHE_BYTES = 32 * 1024 * 1024;
/** Most seeds remembered as "seen once" per generation of that set (two generations are kept). */
export const SEEN_ONCE_LIMIT = 1 << 15;

export class GreenListCache {
  readonly vocabSize: number;
  readonly greenSize: number;
  /** lm-watermarking's legacy `select_green_tokens=False`: the green list is the permutation's last G entries. */
  readonly fromEnd: boolean;
  readonly capacity: number;
  /** Bitset lookups answered from the cache, and bitsets built. */
  hits = 0;
  misses = 0;
  /** Membership questions answered by following the token through the shuffle (first-seen seeds). */
  walks = 0;
  readonly #words: number;
  readonly #cache = new Map<number, Uint32Array>();
  readonly #generator = new TorchGenerator();
  readonly #workspace: RandpermWorkspace;
  readonly #prefix: Int32Array;
  readonly #membership: PrefixMembershipTable;
  /** Seeds whose membership was walked once and not yet cached: the current and the previous generation. */
  #seenOnce = new Set<number>();
  #seenBefore = new Set<number>();

  constructor(vocabSize: number, greenSize: number, fromEnd = false, options: GreenListCacheOptions = {}) {
    this.vocabSize = vocabSize;
    this.greenSize = greenSize;
    this.fromEnd = fromEnd;
    this.#words = Math.ceil(vocabSize / 32);
    const budget = options.maxBytes ?? DEFAULT_GREEN_CACHE_BYTES;
    this.capacity = Math.max(1, Math.floor(budget / (4 * this.#words)));
    // The legacy tail needs the whole permutation; the default needs only its first G entries.
    const prefix = fromEnd ? vocabSize : greenSize;
    this.#workspace = new RandpermWorkspace(vocabSize);
    this.#prefix = new Int32Array(prefix);
    // The legacy list is the complement of the first V − G entries.
    this.#membership = membershipTable(vocabSize, fromEnd ? vocabSize - greenSize : greenSize);
  }

  /** The green list of a seed (its low 32 bits) in the reference order: randperm(V)[:G] (or [V−G:]). */
  ids(seedLow32: number): Int32Array {
    const prefix = this.#prefix;
    this.#generator.seedLow32(seedLow32).randpermPrefix(this.#workspace, prefix.length, prefix);
    return this.fromEnd ? prefix.slice(this.vocabSize - this.greenSize) : prefix.slice(0, this.greenSize);
  }

  /** Bitset of the green list: bit t of word t >>> 5 is set when token t is green. Valid until the next call. */
  bits(seedLow32: number): Uint32Array {
    const cache = this.#cache;
    const hit = cache.get(seedLow32);
    if (hit !== undefined) {
      this.hits++;
      // Map iteration order is insertion order: re-inserting marks the entry most recently used.
      cache.delete(seedLow32);
      cache.set(seedLow32, hit);
      return hit;
    }
    return this.#build(seedLow32);
  }

  /** Draws, caches (evicting the least recently used) and returns the bitset of a seed not in the cache. */
  #build(seedLow32: number): Uint32Array {
    const cache = this.#cache;
    this.misses++;
    let bits: Uint32Array;
    if (cache.size >= this.capacity) {
      const oldest = cache.keys().next().value as number;
      bits = cache.get(oldest) as Uint32Array;
      cache.delete(oldest);
      bits.fill(0);
    } else {
      bits = new Uint32Array(this.#words);
    }
    const prefix = this.#prefix;
    const generator = this.#generator.seedLow32(seedLow32);
    if (this.fromEnd) {
      generator.randpermPrefix(this.#workspace, prefix.length, prefix);
      for (let i = this.vocabSize - this.greenSize; i < this.vocabSize; i++) {
        bits[prefix[i] >>> 5] |= 1 << (prefix[i] & 31);
      }
    } else {
      generator.randpermPrefix(this.#workspace, prefix.length, prefix, bits);
    }
    cache.set(seedLow32, bits);
    return bits;
  }

  /**
   * Whether `token` is in the green list of the seed, the same answer as a bit test of bits(seedLow32). A
   * seed met for the first time is answered by a walk; its bitset is built when it comes again.
   */
  isGreen(seedLow32: number, token: number): boolean {
    if (token >= this.vocabSize) return false;
    if (
      this.#cache.has(seedLow32) ||
      this.#seenOnce.delete(seedLow32) ||
      this.#seenBefore.delete(seedLow32)
    ) {
      return ((this.bits(seedLow32)[token >>> 5] >>> (token & 31)) & 1) === 1;
    }
    this.#rememberSeen(seedLow32);
    this.walks++;
    const inPrefix = this.#generator.seedLow32(seedLow32).randpermPrefixHas(this.#membership, token);
    return inPrefix !== this.fromEnd;
  }

  #rememberSeen(seedLow32: number): void {
    if (this.#seenOnce.size >= SEEN_ONCE_LIMIT) {
      // Generational bound: O(1) per insertion, and a seed stays remembered for at least SEEN_ONCE_LIMIT others.
      this.#seenBefore = this.#seenOnce;
      this.#seenOnce = new Set<number>();
    }
    this.#seenOnce.add(seedLow32);
  }

  clear(): void {
    this.#cache.clear();
    this.#seenOnce.clear();
    this.#seenBefore.clear();
    this.hits = 0;
    this.misses = 0;
    this.walks = 0;
  }
}

const membershipTables = new Map<string, PrefixMembershipTable>();

/** The divisibility table of randperm(n)[:k] membership, shared by the caches of one vocabulary. */
function membershipTable(n: number, k: number): PrefixMembershipTable {
  const key = `${n}:${k}`;
  let table = membershipTables.get(key);
  if (table === undefined) {
    if (membershipTables.size === 0) primePrefixWalk();
    table = new PrefixMembershipTable(n, k);
    // A few vocabularies at most in one process; 21 bytes per step each.
    if (membershipTables.size >= 8) membershipTables.delete(membershipTables.keys().next().value as string);
    membershipTables.set(key, table);
  }
  return table;
}

/** Adds `bias` to the logits of green tokens: all of the vocabulary (ids = null) or the listed candidates. */
export function biasGreen(
  bits: Uint32Array,
  vocabSize: number,
  bias: number,
  logits: Float32Array,
  ids: Int32Array | null,
  count: number,
): void {
  if (ids !== null) {
    for (let i = 0; i < count; i++) {
      const t = ids[i];
      if (t < vocabSize && (bits[t >>> 5] >>> (t & 31)) & 1) logits[i] += bias;
    }
    return;
  }
  const end = Math.min(count, vocabSize);
  for (let w = 0; w < bits.length; w++) {
    let mask = bits[w];
    while (mask !== 0) {
      const low = mask & -mask;
      const t = (w << 5) + 31 - Math.clz32(low);
      if (t < end) logits[t] += bias;
      mask ^= low;
    }
  }
}

/** WindowGreenList.green over a bitset: the candidates biasGreen adds the bias to, by the same test. */
export function markGreen(
  bits: Uint32Array,
  vocabSize: number,
  ids: ArrayLike<number>,
  count: number,
  out: Uint8Array,
): number {
  let found = 0;
  for (let i = 0; i < count; i++) {
    const t = ids[i];
    const green = t < vocabSize ? (bits[t >>> 5] >>> (t & 31)) & 1 : 0;
    out[i] = green;
    found += green;
  }
  return found;
}

/** G = int(V · γ): Python's truncation of the double product, as both reference processors size the list. */
export function greenListSize(vocabSize: number, ratio: number): number {
  return Math.trunc(vocabSize * ratio);
}

/**
 * `_score_rejection_sampling` of both reference implementations, for seeds that depend on the candidate
 * (selfhash, self-salted PRFs): the `k` highest-scoring candidates, each tested against the green list its
 * own seed gives, and `bias` added to every green one after all are tested. `topIds` is scratch of length ≥ k.
 */
export function biasSelfSeeded(
  logits: Float32Array,
  ids: Int32Array | null,
  count: number,
  k: number,
  topIds: Int32Array,
  vocabSize: number,
  isGreen: (token: number) => boolean,
  bias: number,
): void {
  const found = topKIndices(logits.subarray(0, count), Math.min(k, count), topIds);
  const green: number[] = [];
  for (let j = 0; j < found; j++) {
    const position = topIds[j];
    const token = ids === null ? position : ids[position];
    if (token < vocabSize && isGreen(token)) green.push(position);
  }
  for (const position of green) logits[position] += bias;
}

/**
 * What the transformers and lm-watermarking KGW reproductions share beyond their seeding: a token scores 1 when
 * it is in the green list its context (or, self-seeded, the token itself) draws, 0 otherwise.
 */
export abstract class TorchGreenListScheme<S extends BaseSpec = BaseSpec> extends LogitBiasScheme<S> {
  /** Whether `sequence[index]` is green under its context, as the reference detector decides it. */
  abstract isGreen(sequence: ArrayLike<number>, index: number): boolean;

  score(sequence: ArrayLike<number>, index: number): number {
    checkToken(sequence[index], index, this.vocabSize);
    if (index < this.contextWidth) {
      fail(
        'E_CONTEXT_TOO_SHORT',
        `${this.spec.scheme}: token ${index} has no full context (contextWidth ${this.contextWidth})`,
      );
    }
    return this.isGreen(sequence, index) ? 1 : 0;
  }
}
