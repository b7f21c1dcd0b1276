/**
 * `lmw-kgw`: the reference KGW code of Kirchenbauer et al. (jwkirchenbauer/lm-watermarking,
 * extended_watermark_processor.py with alternative_prf_schemes.py), bit for bit on CPU.
 *
 * A seeding scheme names a PRF over the last h tokens, a salt key and whether the token salts its own
 * green list ("self-salt"). The PRF's integer, reduced mod 2^64 − 1, seeds a torch CPU generator, and the
 * green list is `randperm(V)[:int(V · γ)]`. Several PRFs pass token ids through `hashint`, a look-up in
 * one fixed table: 1 + randperm(1,000,003) seeded with 2971215073, shared by every key.
 */
import { fail } from '../errors';
import type { Scheme, WindowGreenList } from '../scheme';
import { type BaseSpec, MAX_CONTEXT_WIDTH } from '../spec';
import { checkTokens, interopKey, kgwZScore, ngramKey, windowKey64 } from './common';
import {
  biasGreen,
  biasSelfSeeded,
  GreenListCache,
  type GreenListCacheOptions,
  greenListSize,
  markGreen,
  TorchGreenListScheme,
} from './greenlist';
import { pyMod, wrapInt64 } from './int64';
import { InteropFields } from './spec-fields';
import { TorchGenerator, UINT64_MAX } from './torch-random';

/** The PRFs of alternative_prf_schemes.prf_lookup. */
export const LMW_PRF_NAMES = [
  'multiplicative_prf',
  'additive_prf',
  'minfunc_prf',
  'simple_skip_prf',
  'skipgram_prf',
  'anchored_skipgram_prf',
  'minhash_prf',
  'anchored_minhash_prf',
  'minskipgram_prf',
  'noncomm_prf',
  'position_prf',
] as const;
export type LmwPrfName = (typeof LMW_PRF_NAMES)[number];

export interface LmwSeeding {
  prf: LmwPrfName;
  /** h: the tokens the PRF reads (for self-salted schemes, the scored token is the last of them). */
  contextWidth: number;
  selfSalt: boolean;
  hashKey: bigint;
}

/** The default salt key of every named scheme (15485863, the millionth prime). */
export const LMW_DEFAULT_HASH_KEY = 15485863n;
const INT64_MAX = (1n << 63n) - 1n;

/** alternative_prf_schemes.seeding_scheme_lookup: named schemes and the freeform `ff-<prf>-<h>-<True|False>[-<key>]`. */
export function lmwSeedingScheme(name: string): LmwSeeding {
  const named: Record<string, [LmwPrfName, number, boolean]> = {
    simple_1: ['additive_prf', 1, false],
    lefthash: ['additive_prf', 1, false],
    'algorithm-3': ['anchored_minhash_prf', 4, true],
    selfhash: ['anchored_minhash_prf', 4, true],
    minhash: ['minhash_prf', 4, false],
    skipgram: ['skipgram_prf', 5, false],
  };
  const known = Object.hasOwn(named, name) ? named[name] : undefined;
  if (known !== undefined) {
    return { prf: known[0], contextWidth: known[1], selfSalt: known[2], hashKey: LMW_DEFAULT_HASH_KEY };
  }
  const parts = name.split('-');
  const bad = (why: string): never =>
    fail(
      'E_INVALID_SPEC',
      `lmw-kgw spec: seedingScheme ${JSON.stringify(name.slice(0, 60))} ${why}; expected simple_1, lefthash, ` +
        'algorithm-3, selfhash, minhash, skipgram or ff-<prf>-<h>-<True|False>[-<key>]',
    );
  if (parts[0] !== 'ff' || parts.length < 4 || parts.length > 5) bad('is not a known scheme');
  const prf = parts[1] as LmwPrfName;
  if (!LMW_PRF_NAMES.includes(prf)) bad(`names an unknown PRF (one of ${LMW_PRF_NAMES.join(', ')})`);
  if (!/^\d{1,2}$/.test(parts[2])) bad('has a context width that is not a small integer');
  const contextWidth = Number(parts[2]);
  if (contextWidth < 1 || contextWidth > MAX_CONTEXT_WIDTH + 1)
    bad(`has a context width outside [1, ${MAX_CONTEXT_WIDTH + 1}]`);
  if (parts[3] !== 'True' && parts[3] !== 'False') bad('has a self-salt flag other than True or False');
  const selfSalt = parts[3] === 'True';
  let hashKey = LMW_DEFAULT_HASH_KEY;
  if (parts.length === 5) {
    if (!/^\d{1,19}$/.test(parts[4]) || BigInt(parts[4]) > INT64_MAX)
      bad('has a hash key that is not an int64');
    hashKey = BigInt(parts[4]);
  }
  // combinations(…, 2) of a single token is empty and the upstream PRF fails on it.
  if (prf === 'minskipgram_prf' && contextWidth < 2) bad('uses minskipgram_prf with a context width below 2');
  if (selfSalt && contextWidth - 1 > MAX_CONTEXT_WIDTH) bad('is too wide');
  return { prf, contextWidth, selfSalt, hashKey };
}

export interface LmwKgwSpec extends BaseSpec {
  scheme: 'lmw-kgw';
  gamma: number;
  /** Logit bias δ added to green tokens when generating. */
  delta: number;
  seedingScheme: string;
  /** WatermarkDetector(ignore_repeated_ngrams=...), upstream default true: each distinct n-gram counts once. */
  ignoreRepeatedNgrams: boolean;
  /** WinMax detection: "max" (every size) or comma-separated window sizes, as detect(window_size=...). */
  windowSize?: string;
  /** Upstream's legacy select_green_tokens=False takes the green list from the permutation's end. */
  selectGreenTokens: boolean;
  /** A leading token equal to this is dropped before detection (detect() drops the tokenizer's BOS). */
  bosTokenId?: number;
}

export const LMW_KGW_DEFAULTS = { gamma: 0.25, delta: 2, seedingScheme: 'selfhash' } as const;

export function readLmwKgwSpec(raw: Record<string, unknown>): LmwKgwSpec {
  const fields = new InteropFields(raw, 'lmw-kgw', [
    'seedingScheme',
    'ignoreRepeatedNgrams',
    'windowSize',
    'selectGreenTokens',
    'bosTokenId',
  ]);
  const reader = fields.reader;
  const base = fields.base();
  const seedingScheme = fields.string('seedingScheme', LMW_KGW_DEFAULTS.seedingScheme);
  lmwSeedingScheme(seedingScheme);
  const spec: LmwKgwSpec = {
    scheme: 'lmw-kgw',
    ...base,
    gamma: reader.number('gamma', { min: 0, max: 1 }, LMW_KGW_DEFAULTS.gamma),
    delta: reader.number('delta', { min: 0, max: 1e6, closedMin: true }, LMW_KGW_DEFAULTS.delta),
    seedingScheme,
    ignoreRepeatedNgrams: fields.boolean('ignoreRepeatedNgrams', true),
    selectGreenTokens: fields.boolean('selectGreenTokens', true),
  };
  const windowSize = fields.optionalString('windowSize');
  if (windowSize !== undefined) {
    windowSizes(windowSize);
    spec.windowSize = windowSize;
  }
  const bos = fields.optionalId('bosTokenId', 2 ** 31);
  if (bos !== undefined) spec.bosTokenId = bos;
  reader.done();
  if (greenListSize(spec.vocabSize, spec.gamma) < 1) {
    fail('E_INVALID_SPEC', 'lmw-kgw spec: int(vocabSize × gamma) is 0, so no token could be green');
  }
  return spec;
}

/** The window sizes of _score_windows_impl_batched, or "max" (null): every size from 1 to L − 1. */
export function windowSizes(windowSize: string): number[] | null {
  if (windowSize === 'max') return null;
  const sizes = windowSize
    .split(',')
    .filter((part) => part.length > 0)
    .map((part) => (/^\d{1,9}$/.test(part) ? Number(part) : Number.NaN));
  if (sizes.length === 0 || sizes.some((size) => !(size >= 1))) {
    fail(
      'E_INVALID_SPEC',
      `lmw-kgw spec: windowSize must be "max" or positive integers like "20,40"; got ${JSON.stringify(windowSize.slice(0, 40))}`,
    );
  }
  return sizes;
}

let lmwTable: Int32Array | null = null;
export const LMW_TABLE_SEED = 2971215073n;
export const LMW_TABLE_SIZE = 1_000_003;

/** alternative_prf_schemes.fixed_table: randperm(1,000,003) seeded with 2971215073 (fib47), built once. */
export function lmwFixedTable(): Int32Array {
  lmwTable ??= new TorchGenerator(LMW_TABLE_SEED).randperm(LMW_TABLE_SIZE);
  return lmwTable;
}

const TABLE_SIZE_BIG = BigInt(LMW_TABLE_SIZE);

/** hashint: fixed_table[x % table_size] + 1 (torch `%` is a floored remainder, so negative x maps into range). */
function hashint(x: bigint): bigint {
  return BigInt(lmwFixedTable()[Number(pyMod(x, TABLE_SIZE_BIG))] + 1);
}

/**
 * One PRF of alternative_prf_schemes on the context window `ids` (the last h tokens) with `salt`.
 * Products of int64 tensors wrap (wrapInt64) exactly where upstream multiplies tensors; where it multiplies
 * Python integers (`salt_key * tensor.sum().item()`), the value does not wrap.
 */
export function lmwPrf(name: LmwPrfName, tokens: ArrayLike<number>, salt: bigint): bigint {
  const ids = Array.from(tokens, (t) => BigInt(t));
  if (ids.length === 0) fail('E_CONTEXT_TOO_SHORT', 'lmw-kgw: a PRF needs at least one token');
  const last = ids[ids.length - 1];
  switch (name) {
    case 'multiplicative_prf': {
      let product = 1n;
      for (const id of ids) product = wrapInt64(product * id);
      return salt * product;
    }
    case 'additive_prf': {
      let sum = 0n;
      for (const id of ids) sum = wrapInt64(sum + id);
      return salt * sum;
    }
    case 'minfunc_prf': {
      let min = ids[0];
      for (const id of ids) if (id < min) min = id;
      return salt * min;
    }
    case 'simple_skip_prf': {
      let product = 1n;
      for (let i = 0; i < ids.length; i += 2)
        product = wrapInt64(product * hashint(wrapInt64(salt * ids[i])));
      return product;
    }
    case 'skipgram_prf':
      return hashint(wrapInt64(salt * ids[0]));
    case 'anchored_skipgram_prf':
      return wrapInt64(hashint(wrapInt64(salt * ids[0])) * hashint(wrapInt64(salt * last)));
    case 'minhash_prf': {
      let min = hashint(wrapInt64(salt * ids[0]));
      for (const id of ids) {
        const h = hashint(wrapInt64(salt * id));
        if (h < min) min = h;
      }
      return min;
    }
    case 'anchored_minhash_prf': {
      const anchor = hashint(last);
      let min: bigint | null = null;
      for (const id of ids) {
        const value = wrapInt64(wrapInt64(salt * hashint(id)) * anchor);
        if (min === null || value < min) min = value;
      }
      return min as bigint;
    }
    case 'minskipgram_prf': {
      if (ids.length < 2) fail('E_CONTEXT_TOO_SHORT', 'lmw-kgw: minskipgram_prf needs at least two tokens');
      const hashes = ids.map((id) => hashint(wrapInt64(salt * id)));
      let min: bigint | null = null;
      for (let i = 0; i < hashes.length; i++) {
        for (let j = i + 1; j < hashes.length; j++) {
          const value = wrapInt64(hashes[i] * hashes[j]);
          if (min === null || value < min) min = value;
        }
      }
      return min as bigint;
    }
    case 'noncomm_prf': {
      let key = wrapInt64(salt);
      for (const id of ids) {
        key = wrapInt64(key * hashint(wrapInt64(key * id)));
        key = pyMod(key, 1n << 32n);
      }
      return key;
    }
    case 'position_prf': {
      let sum = 0n;
      ids.forEach((id, i) => {
        sum = wrapInt64(sum + wrapInt64(wrapInt64(salt * id) * BigInt(i + 1)));
      });
      return sum;
    }
  }
}

export interface LmwKgwDetection {
  /** Scored n-grams (unique ones with ignoreRepeatedNgrams); with windows, the best window's size. */
  numTokensScored: number;
  numGreenTokens: number;
  /** WatermarkDetector._compute_z_score; with windows, the best window's z as upstream's float32 tensor holds it. */
  zScore: number;
  nullGreenProbability: number;
  /** Green flag per n-gram in order, all n-grams (upstream's green_token_mask). */
  greenTokenMask: Uint8Array;
  bosDropped: boolean;
  /** With windows: the best size (upstream's optimal window size), and how many windows were tried. */
  bestWindow?: number;
  windowsTried?: number;
}

/**
 * lm-watermarking's KGW. Its contextWidth counts the tokens before the scored one that its green list reads: h,
 * or h − 1 when self-salted.
 */
export class LmwKgwScheme extends TorchGreenListScheme<LmwKgwSpec> implements Scheme<LmwKgwSpec> {
  readonly seeding: LmwSeeding;
  /** Schemes without self-salt; undefined for self-salted ones, where each candidate seeds its own list. */
  readonly windowGreen: WindowGreenList | undefined;
  readonly greenSize: number;
  readonly lists: GreenListCache;
  readonly #window: number[];
  readonly #topIds = new Int32Array(41);
  /** simple_1 / lefthash: salt · token stays exact in doubles, so the seed needs no BigInt. */
  readonly #additiveOne: boolean;
  readonly #saltNumber: number;

  constructor(spec: LmwKgwSpec, options: GreenListCacheOptions = {}) {
    const seeding = lmwSeedingScheme(spec.seedingScheme);
    const greenSize = greenListSize(spec.vocabSize, spec.gamma);
    super(
      spec,
      {
        contextWidth: seeding.contextWidth - (seeding.selfSalt ? 1 : 0),
        distortionFree: false,
        nullLaw: { kind: 'bernoulli', p: greenSize / spec.vocabSize },
      },
      interopKey('lmw-kgw', spec),
    );
    this.seeding = seeding;
    this.greenSize = greenSize;
    this.lists = new GreenListCache(spec.vocabSize, greenSize, !spec.selectGreenTokens, options);
    this.windowGreen = seeding.selfSalt
      ? undefined
      : {
          delta: spec.delta,
          green: (sequence, ids, count, out) =>
            markGreen(
              this.lists.bits(this.#seedLow(sequence, sequence.length, 0)),
              this.vocabSize,
              ids,
              count,
              out,
            ),
        };
    this.#window = new Array(this.seeding.contextWidth).fill(0);
    this.#additiveOne =
      this.seeding.prf === 'additive_prf' && this.seeding.contextWidth === 1 && !this.seeding.selfSalt;
    this.#saltNumber = Number(this.seeding.hashKey);
  }

  /** The PRF value of WatermarkBase._seed_rng for the window ending at `end` whose last token is `last`. */
  prfAt(sequence: ArrayLike<number>, end: number, last: number): bigint {
    const { contextWidth: h, selfSalt, prf, hashKey } = this.seeding;
    const window = this.#window;
    // Self-salted: input_ids[-h:] of (context ‖ candidate); otherwise the h tokens before the scored one.
    const before = selfSalt ? h - 1 : h;
    for (let j = 0; j < before; j++) window[j] = sequence[end - before + j];
    if (selfSalt) window[h - 1] = last;
    return lmwPrf(prf, window, hashKey);
  }

  #seedLow(sequence: ArrayLike<number>, end: number, last: number): number {
    if (this.#additiveOne) {
      const product = this.#saltNumber * sequence[end - 1];
      if (product <= Number.MAX_SAFE_INTEGER) return product % 4294967296;
    }
    return Number(pyMod(this.prfAt(sequence, end, last), UINT64_MAX) & 0xffffffffn);
  }

  /** The ordered green list of _get_greenlist_ids(input_ids) (its last h tokens seed it). */
  greenlist(inputIds: ArrayLike<number>): Int32Array {
    const h = this.seeding.contextWidth;
    if (inputIds.length < h)
      fail('E_CONTEXT_TOO_SHORT', `lmw-kgw: the seeding scheme needs at least ${h} tokens`);
    const end = inputIds.length;
    return this.seeding.selfSalt
      ? this.lists.ids(this.#seedLow(inputIds, end - 1, inputIds[end - 1]))
      : this.lists.ids(this.#seedLow(inputIds, end, 0));
  }

  isGreen(sequence: ArrayLike<number>, index: number): boolean {
    const token = sequence[index];
    return this.lists.isGreen(this.#seedLow(sequence, index, token), token);
  }

  /** WatermarkLogitsProcessor.__call__ for one sequence. */
  biasLogits(
    sequence: ArrayLike<number>,
    logits: Float32Array,
    ids: Int32Array | null = null,
    count = logits.length,
  ): void {
    const end = sequence.length;
    if (end < this.contextWidth) return;
    const delta = this.spec.delta;
    if (!this.seeding.selfSalt) {
      biasGreen(this.lists.bits(this.#seedLow(sequence, end, 0)), this.vocabSize, delta, logits, ids, count);
      return;
    }
    // _score_rejection_sampling with tail_rule="fixed_compute": candidates in descending score order,
    // stopping after the one at index 40, so 41 are tested.
    biasSelfSeeded(
      logits,
      ids,
      count,
      41,
      this.#topIds,
      this.vocabSize,
      (token) => this.lists.isGreen(this.#seedLow(sequence, end, token), token),
      delta,
    );
  }

  /**
   * Scheme.contextKey: what decides the green list after the window ending before `end` — the seed's low
   * 32 bits; for self-salted schemes, whose seed involves the candidate, the window.
   */
  contextKey(sequence: ArrayLike<number>, end: number, out: Uint32Array): void {
    if (this.seeding.selfSalt) {
      windowKey64(sequence, end - this.contextWidth, end, out);
      return;
    }
    out[0] = this.#seedLow(sequence, end, 0);
    out[1] = 0;
  }

  /** Scheme.inputKey: the seed's low 32 bits and the token decide the score of sequence[index]. */
  inputKey(sequence: ArrayLike<number>, index: number, out: Uint32Array): void {
    const token = sequence[index];
    out[0] = this.#seedLow(sequence, index, token);
    out[1] = token;
  }

  /** WatermarkDetector.detect on token ids (the _score_sequence or _score_sequence_window path). */
  detect(input: ArrayLike<number>): LmwKgwDetection {
    checkTokens(input, this.vocabSize);
    const bosDropped =
      this.spec.bosTokenId !== undefined && input.length > 0 && input[0] === this.spec.bosTokenId;
    const ids = bosDropped ? Array.prototype.slice.call(input, 1) : input;
    const h = this.seeding.contextWidth;
    if (ids.length - h < 1) {
      fail('E_CONTEXT_TOO_SHORT', `lmw-kgw: ${ids.length} tokens leave none to score after the first ${h}`);
    }
    const n = h + 1 - (this.seeding.selfSalt ? 1 : 0);
    const count = ids.length - n + 1;
    const mask = new Uint8Array(count);
    // _get_green_at_T_booleans: green_token_mask_unique keeps each distinct n-gram's first occurrence.
    const unique: number[] = [];
    const seen = new Set<string>();
    for (let j = 0; j < count; j++) {
      mask[j] = this.isGreen(ids, j + n - 1) ? 1 : 0;
      const key = ngramKey(ids, j, n);
      if (!seen.has(key)) {
        seen.add(key);
        unique.push(mask[j]);
      }
    }
    const hits = this.spec.ignoreRepeatedNgrams ? unique : Array.from(mask);
    const base = {
      nullGreenProbability: this.greenSize / this.vocabSize,
      greenTokenMask: mask,
      bosDropped,
    };
    if (this.spec.windowSize === undefined) {
      const green = hits.reduce((a, b) => a + b, 0);
      return {
        numTokensScored: hits.length,
        numGreenTokens: green,
        zScore: kgwZScore(green, hits.length, this.spec.gamma),
        ...base,
      };
    }
    return { ...base, ...winMax(hits, this.spec.gamma, windowSizes(this.spec.windowSize)) };
  }
}

/**
 * _score_windows_impl_batched with stride 1: for each size, the largest window z-score, in float32 as
 * upstream's tensors compute it ((count − γ·size) / √(size·γ(1 − γ)), each operand rounded to float32);
 * sizes longer than the sequence keep upstream's initial 0. The first size reaching the maximum wins.
 */
function winMax(
  hits: number[],
  gamma: number,
  requested: number[] | null,
): Pick<LmwKgwDetection, 'numTokensScored' | 'numGreenTokens' | 'zScore' | 'bestWindow' | 'windowsTried'> {
  const length = hits.length;
  const sizes = requested ?? Array.from({ length: Math.max(0, length - 1) }, (_, i) => i + 1);
  const prefix = new Int32Array(length + 1);
  for (let i = 0; i < length; i++) prefix[i + 1] = prefix[i] + hits[i];
  const f = Math.fround;
  let best = -1;
  let bestZ = 0;
  let bestGreen = 0;
  let tried = 0;
  for (let idx = 0; idx < sizes.length; idx++) {
    const size = sizes[idx];
    let z = 0;
    let green = 0;
    if (size <= length) {
      tried += length - size + 1;
      let most = -1;
      for (let start = 0; start + size <= length; start++)
        most = Math.max(most, prefix[start + size] - prefix[start]);
      const denom = Math.sqrt(size * gamma * (1 - gamma));
      z = f(f(f(most) - f(gamma * size)) / f(denom));
      green = most;
    }
    if (best === -1 || z > bestZ) {
      best = idx;
      bestZ = z;
      bestGreen = green;
    }
  }
  if (tried === 0) {
    fail('E_CONTEXT_TOO_SHORT', `lmw-kgw: no window size fits ${length} scored tokens`);
  }
  return {
    numTokensScored: sizes[best],
    numGreenTokens: bestGreen,
    zScore: bestZ,
    bestWindow: sizes[best],
    windowsTried: tried,
  };
}
