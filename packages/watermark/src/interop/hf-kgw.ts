/**
 * `hf-kgw`: the KGW watermark of Hugging Face transformers, bit for bit on CPU —
 * `generate(watermarking_config=WatermarkingConfig(...))` runs WatermarkLogitsProcessor
 * (src/transformers/generation/logits_process.py) and WatermarkDetector
 * (src/transformers/generation/watermarking.py) scores its output.
 *
 * Green list of an input sequence: `randperm(V)[:int(V · greenlist_ratio)]` from a torch CPU generator seeded
 * by WatermarkLogitsProcessor.set_seed:
 *  - lefthash: seed = hashing_key · last token (a Python integer, so it never wraps), mod 2^64 − 1;
 *  - selfhash: seed = min over the last context_width tokens w of hashing_key · T[w] · T[last], computed as
 *    int64 tensor products (they wrap) with T = 1 + randperm(1,000,003) seeded with hashing_key, then
 *    mod 2^64 − 1 as a Python integer. The window includes the candidate token itself.
 */
import { fail } from '../errors';
import type { Scheme, WindowGreenList } from '../scheme';
import type { BaseSpec } from '../spec';
import { MAX_CONTEXT_WIDTH } from '../spec';
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
import { InteropFields, uint64Json } from './spec-fields';
import { TorchGenerator, UINT64_MAX } from './torch-random';

export interface HfKgwSpec extends BaseSpec {
  scheme: 'hf-kgw';
  seedingScheme: 'lefthash' | 'selfhash';
  /** transformers' context_width: tokens of the n-gram before the scored one (selfhash: including it). */
  contextWidth: number;
  /** transformers' hashing_key (a number, or a decimal string above 2^53). */
  hashingKey: number | string;
  greenlistRatio: number;
  /** Logit bias added to green tokens when generating. */
  bias: number;
  /** A leading token equal to this is dropped before detection, as WatermarkDetector drops the model's BOS. */
  bosTokenId?: number;
  /**
   * transformers' WatermarkDetector(ignore_repeated_ngrams=...). Accepted for compatibility and reported,
   * but it changes nothing, as upstream: the detector counts n-grams in a collections.Counter keyed by
   * tensors, which hash by identity, so no two n-grams are ever "repeated".
   */
  ignoreRepeatedNgrams: boolean;
  /** tracemark's own option (not upstream): score each distinct n-gram once, at its first occurrence. */
  uniqueNgrams: boolean;
}

/** transformers' WatermarkingConfig defaults. */
export const HF_KGW_DEFAULTS = {
  seedingScheme: 'lefthash',
  contextWidth: 1,
  hashingKey: 15485863,
  greenlistRatio: 0.25,
  bias: 2,
} as const;

/** Size of the selfhash table (WatermarkLogitsProcessor.table_size). */
export const HF_TABLE_SIZE = 1_000_003;
/** Candidates tried per step by selfhash embedding (`for i in range(40)` in _score_rejection_sampling). */
export const HF_SELFHASH_CANDIDATES = 40;

const INT64_MAX = (1n << 63n) - 1n;
const SEED_MODULUS = UINT64_MAX;

export function readHfKgwSpec(raw: Record<string, unknown>): HfKgwSpec {
  const fields = new InteropFields(raw, 'hf-kgw', [
    'hashingKey',
    'bosTokenId',
    'ignoreRepeatedNgrams',
    'uniqueNgrams',
  ]);
  const reader = fields.reader;
  const base = fields.base();
  const seedingScheme = reader.choice('seedingScheme', ['lefthash', 'selfhash'] as const, 'lefthash');
  // The hashing key seeds manual_seed and, for selfhash, multiplies an int64 tensor: it must fit int64.
  const hashingKey = fields.uint64('hashingKey', HF_KGW_DEFAULTS.hashingKey, INT64_MAX);
  const spec: HfKgwSpec = {
    scheme: 'hf-kgw',
    ...base,
    seedingScheme,
    contextWidth: reader.integer('contextWidth', 1, MAX_CONTEXT_WIDTH, HF_KGW_DEFAULTS.contextWidth),
    hashingKey: uint64Json(hashingKey),
    greenlistRatio: reader.number('greenlistRatio', { min: 0, max: 1 }, HF_KGW_DEFAULTS.greenlistRatio),
    bias: reader.number('bias', { min: 0, max: 1e6, closedMin: true }, HF_KGW_DEFAULTS.bias),
    ignoreRepeatedNgrams: fields.boolean('ignoreRepeatedNgrams', false),
    uniqueNgrams: fields.boolean('uniqueNgrams', false),
  };
  const bos = fields.optionalId('bosTokenId', 2 ** 31);
  if (bos !== undefined) spec.bosTokenId = bos;
  reader.done();
  if (greenListSize(spec.vocabSize, spec.greenlistRatio) < 1) {
    fail('E_INVALID_SPEC', 'hf-kgw spec: int(vocabSize × greenlistRatio) is 0, so no token could be green');
  }
  return spec;
}

/** What WatermarkDetector.__call__ reports, computed the same way. */
export interface HfKgwDetection {
  numTokensScored: number;
  numGreenTokens: number;
  /** (green − γT) / √(Tγ(1 − γ)) with γ = greenlistRatio, as _compute_z_score. */
  zScore: number;
  /** The fraction of green tokens G/V under H0: the exact null probability of one scored token. */
  nullGreenProbability: number;
  /** Green (1) or not (0) for each scored n-gram, in order, before any de-duplication. */
  greenTokenMask: Uint8Array;
  /** Whether a leading BOS token was dropped. */
  bosDropped: boolean;
}

/**
 * transformers' own p-value (WatermarkDetector._compute_pval): 1 − ½(1 + sign(z)(1 − exp(−2z²/π))), a rough
 * closed-form stand-in for the normal tail, evaluated in numpy's order. Reported beside, never as, the test.
 */
export function hfApproxPValue(z: number): number {
  const sign = z > 0 ? 1 : z < 0 ? -1 : 0;
  return 1 - 0.5 * (1 + sign * (1 - Math.exp((-2 * (z * z)) / Math.PI)));
}

const fixedTables = new Map<bigint, Int32Array>();

/** WatermarkLogitsProcessor.fixed_table: randperm(1,000,003) from a generator seeded with the hashing key. */
function fixedTableFor(key: bigint): Int32Array {
  let table = fixedTables.get(key);
  if (table === undefined) {
    table = new TorchGenerator(key).randperm(HF_TABLE_SIZE);
    // A handful of keys at most in one process; 4 MB each.
    if (fixedTables.size >= 4) fixedTables.delete(fixedTables.keys().next().value as bigint);
    fixedTables.set(key, table);
  }
  return table;
}

/**
 * transformers' KGW. Its contextWidth counts the tokens before the scored one that its green list depends on
 * (selfhash: context_width − 1).
 */
export class HfKgwScheme extends TorchGreenListScheme<HfKgwSpec> implements Scheme<HfKgwSpec> {
  readonly greenSize: number;
  /** lefthash; undefined for selfhash, where each candidate seeds its own list. */
  readonly windowGreen: WindowGreenList | undefined;
  readonly lists: GreenListCache;
  readonly #key: bigint;
  /** The key as a number when products with token ids stay exact in doubles. */
  readonly #keyNumber: number;
  readonly #selfhash: boolean;
  readonly #width: number;
  #table: Int32Array | null = null;
  #topIds = new Int32Array(HF_SELFHASH_CANDIDATES);

  constructor(spec: HfKgwSpec, options: GreenListCacheOptions = {}) {
    const selfhash = spec.seedingScheme === 'selfhash';
    const greenSize = greenListSize(spec.vocabSize, spec.greenlistRatio);
    super(
      spec,
      {
        contextWidth: selfhash ? spec.contextWidth - 1 : spec.contextWidth,
        distortionFree: false,
        nullLaw: { kind: 'bernoulli', p: greenSize / spec.vocabSize },
      },
      interopKey('hf-kgw', spec),
    );
    this.#selfhash = selfhash;
    this.#width = spec.contextWidth;
    this.#key = BigInt(spec.hashingKey);
    this.#keyNumber = Number(this.#key);
    this.greenSize = greenSize;
    this.lists = new GreenListCache(spec.vocabSize, greenSize, false, options);
    this.windowGreen = selfhash
      ? undefined
      : {
          delta: spec.bias,
          green: (sequence, ids, count, out) => {
            const end = sequence.length;
            return markGreen(
              this.lists.bits(this.#seedLow(sequence, end, sequence[end - 1])),
              this.vocabSize,
              ids,
              count,
              out,
            );
          },
        };
  }

  get #fixedTable(): Int32Array {
    this.#table ??= fixedTableFor(this.#key);
    return this.#table;
  }

  /**
   * The seed WatermarkLogitsProcessor.set_seed gives the generator for an input sequence that ends at
   * `end` (exclusive), whose last token is `last` (the candidate, for selfhash rejection sampling).
   */
  seedAt(sequence: ArrayLike<number>, end: number, last: number = sequence[end - 1]): bigint {
    if (!this.#selfhash) return pyMod(this.#key * BigInt(last), SEED_MODULUS);
    const table = this.#fixedTable;
    const b = BigInt(table[last % HF_TABLE_SIZE] + 1);
    // input_seq[-context_width:], whose last entry is `last` itself.
    const start = Math.max(0, end - this.#width + 1);
    let min = wrapInt64(this.#key * b * b);
    for (let i = start; i < end; i++) {
      const product = wrapInt64(this.#key * BigInt(table[sequence[i] % HF_TABLE_SIZE] + 1) * b);
      if (product < min) min = product;
    }
    return pyMod(min, SEED_MODULUS);
  }

  /** The low 32 bits of the seed: all that mt19937's init_with_uint32 reads. */
  #seedLow(sequence: ArrayLike<number>, end: number, last: number): number {
    if (!this.#selfhash) {
      const product = this.#keyNumber * last;
      // Below 2^53 the product is exact and below 2^64 − 1, so the modulus is a no-op.
      if (product <= Number.MAX_SAFE_INTEGER) return product % 4294967296;
    }
    return Number(this.seedAt(sequence, end, last) & 0xffffffffn);
  }

  /**
   * The green list of `inputSeq` as _get_greenlist_ids returns it (ordered): for selfhash, inputSeq ends
   * with the candidate token.
   */
  greenlist(inputSeq: ArrayLike<number>): Int32Array {
    if (inputSeq.length === 0) fail('E_CONTEXT_TOO_SHORT', 'hf-kgw: a green list needs at least one token');
    const end = inputSeq.length;
    if (this.#selfhash) {
      return this.lists.ids(Number(this.seedAt(inputSeq, end - 1, inputSeq[end - 1]) & 0xffffffffn));
    }
    return this.lists.ids(this.#seedLow(inputSeq, end, inputSeq[end - 1]));
  }

  /** Whether `sequence[index]` is green under its context. */
  isGreen(sequence: ArrayLike<number>, index: number): boolean {
    const token = sequence[index];
    const low = this.#selfhash
      ? this.#seedLow(sequence, index, token)
      : this.#seedLow(sequence, index, sequence[index - 1]);
    return this.lists.isGreen(low, token);
  }

  /** WatermarkLogitsProcessor.__call__ for one sequence: bias the green list (lefthash) or the self-green candidates. */
  biasLogits(
    sequence: ArrayLike<number>,
    logits: Float32Array,
    ids: Int32Array | null = null,
    count = logits.length,
  ): void {
    const end = sequence.length;
    // Upstream skips the step while the input is shorter than context_width.
    if (end < this.#width) return;
    const bias = this.spec.bias;
    if (!this.#selfhash) {
      biasGreen(
        this.lists.bits(this.#seedLow(sequence, end, sequence[end - 1])),
        this.vocabSize,
        bias,
        logits,
        ids,
        count,
      );
      return;
    }
    // _score_rejection_sampling: the 40 highest-scoring candidates, each tested against its own green list.
    biasSelfSeeded(
      logits,
      ids,
      count,
      HF_SELFHASH_CANDIDATES,
      this.#topIds,
      this.vocabSize,
      (token) => this.lists.isGreen(this.#seedLow(sequence, end, token), token),
      bias,
    );
  }

  /**
   * Scheme.contextKey: what decides the green list after the window ending before `end` — the low 32 bits
   * of the seed for lefthash (all mt19937 reads); for selfhash, whose seed involves the candidate, the window.
   */
  contextKey(sequence: ArrayLike<number>, end: number, out: Uint32Array): void {
    if (this.#selfhash) {
      windowKey64(sequence, end - this.contextWidth, end, out);
      return;
    }
    out[0] = this.#seedLow(sequence, end, sequence[end - 1]);
    out[1] = 0;
  }

  /** Scheme.inputKey: what decides the score of sequence[index] — its green list's seed (low 32 bits) and the token. */
  inputKey(sequence: ArrayLike<number>, index: number, out: Uint32Array): void {
    const token = sequence[index];
    out[0] = this.#selfhash
      ? this.#seedLow(sequence, index, token)
      : this.#seedLow(sequence, index, sequence[index - 1]);
    out[1] = token;
  }

  /** WatermarkDetector.__call__ (with return_dict=True) on one sequence. */
  detect(input: ArrayLike<number>): HfKgwDetection {
    checkTokens(input, this.vocabSize);
    const bosDropped =
      this.spec.bosTokenId !== undefined && input.length > 0 && input[0] === this.spec.bosTokenId;
    const ids = bosDropped ? Array.prototype.slice.call(input, 1) : input;
    if (ids.length - this.#width < 1) {
      fail(
        'E_CONTEXT_TOO_SHORT',
        `hf-kgw: ${ids.length} tokens leave none to score after the first contextWidth = ${this.#width}`,
      );
    }
    // _score_ngrams_in_passage: n-grams of context_width + 1 − selfhash tokens, the last one scored.
    const n = this.#width + 1 - (this.#selfhash ? 1 : 0);
    const count = ids.length - n + 1;
    const mask = new Uint8Array(count);
    const seen = this.spec.uniqueNgrams ? new Set<string>() : null;
    let scored = 0;
    let green = 0;
    for (let j = 0; j < count; j++) {
      mask[j] = this.isGreen(ids, j + n - 1) ? 1 : 0;
      if (seen !== null) {
        const key = ngramKey(ids, j, n);
        if (seen.has(key)) continue;
        seen.add(key);
      }
      scored++;
      green += mask[j];
    }
    return {
      numTokensScored: scored,
      numGreenTokens: green,
      zScore: kgwZScore(green, scored, this.spec.greenlistRatio),
      nullGreenProbability: this.greenSize / this.vocabSize,
      greenTokenMask: mask,
      bosDropped,
    };
  }
}
