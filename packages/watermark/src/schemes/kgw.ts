/**
 * KGW green-list watermark (Kirchenbauer et al., "A Watermark for Large Language Models", ICML 2023),
 * with the Unigram watermark as h = 0 (Zhao et al., "Provable Robust Watermarking for AI-Generated
 * Text", 2023) and the LeftHash / MinHash / SelfHash seeding of Kirchenbauer et al. 2023b
 * ("On the Reliability of Watermarks for Large Language Models").
 *
 * Each token is green with probability γ under the context seed, independently across tokens, rather
 * than through a permutation with exactly γ|V| green tokens: the per-token null law is the same
 * Bernoulli(γ), and no O(V) permutation is needed per context. Embedding adds δ to green logits; a scored
 * token counts 1 when green.
 *
 * Green lists are drawn 32 tokens at a time, bit-sliced: token t is green when a uniform 16-bit number
 * U_t is below G = round(γ · 2^16), and that comparison is done for the 32 tokens of a block at once on
 * random words, one word per bit of G from its lowest set bit up (for γ = 1/4, two words: r1 & r2).
 * Full-vocabulary embedding then costs a few hashes per 32 tokens instead of one per token, and the null
 * law is Bernoulli(G / 2^16) exactly.
 */
import { AccountLayer, type AccountLayerKey } from '../account-layer';
import { fail } from '../errors';
import type { SchemeKey } from '../keys';
import { type ContextHashing, ContextPrf } from '../prf';
import { topKIndices } from '../sampler';
import { LogitBiasScheme, markBlockBits, type Scheme, type WindowGreenList } from '../scheme';
import { type BaseSpec, MAX_CONTEXT_WIDTH, type SpecReader } from '../spec';

export interface KgwSpec extends BaseSpec {
  scheme: 'kgw';
  /** Expected green fraction γ ∈ (0, 1). */
  gamma: number;
  /** Logit bias δ ≥ 0 added to green tokens. */
  delta: number;
  /** Tokens of context h that seed the green list; 0 is the Unigram watermark. */
  contextWidth: number;
  hashing: ContextHashing;
  /** SelfHash only: how many of the most likely candidates are tested for self-greenness per step. */
  selfCandidates: number;
  /**
   * The account layer's δ (account-layer.ts): present, and > 0, when outputs also carry the account that asked
   * for them. Absent: one layer. Not part of the key, so the organisation layer is the one-layer watermark.
   */
  accountDelta?: number;
}

export const KGW_DEFAULTS = {
  gamma: 0.25,
  delta: 2,
  contextWidth: 1,
  hashing: 'left',
  selfCandidates: 40,
} as const;

export function readKgwSpec(reader: SpecReader): KgwSpec {
  const base = reader.base();
  const hashing = reader.choice('hashing', ['left', 'min', 'self'] as const, KGW_DEFAULTS.hashing);
  const spec: KgwSpec = {
    scheme: 'kgw',
    ...base,
    gamma: reader.number('gamma', { min: 0, max: 1 }, KGW_DEFAULTS.gamma),
    delta: reader.number('delta', { min: 0, max: 1e6, closedMin: true }, KGW_DEFAULTS.delta),
    contextWidth: reader.integer(
      'contextWidth',
      hashing === 'left' ? 0 : 1,
      MAX_CONTEXT_WIDTH,
      KGW_DEFAULTS.contextWidth,
    ),
    hashing,
    selfCandidates: reader.integer('selfCandidates', 1, 4096, KGW_DEFAULTS.selfCandidates),
  };
  // 0 and absent name the same one-layer watermark: the canonical spec leaves it out.
  const accountDelta = reader.number('accountDelta', { min: 0, max: 1e6, closedMin: true }, 0);
  if (accountDelta > 0) {
    // The layer's PRF input must be the (window, token) pair that the tape de-duplicates on: LeftHash.
    if (hashing !== 'left')
      fail('E_INVALID_SPEC', 'kgw spec: accountDelta needs left hashing (hashing "left")');
    spec.accountDelta = accountDelta;
  }
  reader.done();
  return spec;
}

/** The spec less its account layer: what the organisation layer's key is derived from. */
export function kgwKeyedSpec(spec: KgwSpec): KgwSpec {
  const { accountDelta: _accountDelta, ...keyed } = spec;
  return keyed;
}

/** γ is used at this many bits of precision. */
const GAMMA_BITS = 16;

/**
 * The bits of G from its lowest set bit up to the ½ place, least significant first. Processing them in
 * that order on random words r_i computes [U < G] lane-wise: lt ← g_i ? (r_i | lt) : (r_i & lt).
 */
function comparisonBits(g: number): boolean[] {
  const bits: boolean[] = [];
  let i = 0;
  while (((g >>> i) & 1) === 0) i++;
  for (; i < GAMMA_BITS; i++) bits.push(((g >>> i) & 1) === 1);
  return bits;
}

/** G = round(γ · 2^16) clamped to [1, 2^16 − 1]: a token is green when its 16-bit U < G, with probability G / 2^16. */
function greenThreshold(gamma: number): number {
  const scale = 2 ** GAMMA_BITS;
  return Math.max(1, Math.min(scale - 1, Math.round(gamma * scale)));
}

/** The comparison bits of γ's G (comparisonBits), as `greenMask` takes them: what KgwScheme tests with. */
export function kgwComparisonBits(gamma: number): Uint8Array {
  return Uint8Array.from(comparisonBits(greenThreshold(gamma)), Number);
}

/** Green bits of the 32 tokens of `block` under the seed (lo, hi): bit j is token 32·block + j. */
function greenMask(bits: Uint8Array, lo: number, hi: number, block: number): number {
  const base = block << 5;
  let lt = 0;
  for (let i = 0; i < bits.length; i++) {
    // seededHash32(lo, hi, base | i), written out: this loop is the whole cost of scoring.
    let x = ((base | i) ^ lo) >>> 0;
    x ^= x >>> 16;
    x = Math.imul(x, 0x7feb352d);
    x ^= x >>> 15;
    x = Math.imul(x, 0x846ca68b);
    x ^= x >>> 16;
    x = (x + hi) | 0;
    x ^= x >>> 16;
    x = Math.imul(x, 0x7feb352d);
    x ^= x >>> 15;
    x = Math.imul(x, 0x846ca68b);
    x ^= x >>> 16;
    lt = bits[i] === 1 ? x | lt : x & lt;
  }
  return lt;
}

/** The account layer's key and context PRF, shared by a scheme and its `forAccount` views. */
interface AccountLayerParts {
  key: AccountLayerKey;
  prf: ContextPrf;
}

export class KgwScheme extends LogitBiasScheme<KgwSpec> implements Scheme<KgwSpec> {
  readonly #prf: ContextPrf;
  readonly #key: SchemeKey;
  readonly #accountParts: AccountLayerParts | undefined;
  /** The account whose layer `biasLogits` adds (`forAccount`); undefined: the organisation layer only. */
  readonly accountLayer: AccountLayer | undefined;
  /** The organisation layer's green list (left and min hashing): `windowGreen` when no account layer is on. */
  readonly organisationGreen: WindowGreenList | undefined;
  /** Only where the key is more than the plain window (MinHash, SelfHash with h > 1); see ContextPrf. */
  readonly contextKey?: Scheme['contextKey'];
  readonly inputKey?: Scheme['inputKey'];
  /** LeftHash, MinHash and Unigram; undefined under SelfHash, where each candidate seeds its own list. */
  readonly windowGreen: WindowGreenList | undefined;
  /** [U < G] is built from these bits of G, least significant first. */
  readonly #bits: Uint8Array;
  readonly #self: boolean;
  #topIds = new Int32Array(0);

  /**
   * `accountKey`: the account layer's key, needed when the spec has `accountDelta` (createScheme derives it).
   * `shared` is internal: the PRFs a `forAccount` view shares with the scheme it came from.
   */
  constructor(
    spec: KgwSpec,
    key: SchemeKey,
    accountKey?: AccountLayerKey,
    shared?: { prf: ContextPrf; accountParts: AccountLayerParts | undefined; account: string | undefined },
  ) {
    const scale = 2 ** GAMMA_BITS;
    const g = greenThreshold(spec.gamma);
    super(
      spec,
      {
        contextWidth: spec.contextWidth,
        distortionFree: false,
        nullLaw: { kind: 'bernoulli', p: g / scale },
      },
      key,
    );
    this.#key = key;
    this.#prf = shared?.prf ?? new ContextPrf(key, spec.vocabSize, spec.contextWidth, spec.hashing);
    const prf = this.#prf;
    if (spec.accountDelta !== undefined && shared === undefined && accountKey === undefined)
      fail('E_INVALID_SPEC', 'a kgw spec with accountDelta needs its account layer key (use createScheme)');
    this.#accountParts =
      shared?.accountParts ??
      (spec.accountDelta === undefined || accountKey === undefined
        ? undefined
        : {
            key: accountKey,
            prf: accountKey.contextPrf(spec.vocabSize, spec.contextWidth, spec.hashing),
          });
    const parts = this.#accountParts;
    this.accountLayer =
      shared?.account === undefined || parts === undefined || spec.accountDelta === undefined
        ? undefined
        : new AccountLayer(parts.key, parts.prf, shared.account, spec.accountDelta);
    if (prf.hasContextKey) this.contextKey = (sequence, end, out) => prf.contextKey(sequence, end, out);
    if (prf.hasInputKey) this.inputKey = (sequence, index, out) => prf.inputKey(sequence, index, out);
    this.#bits = kgwComparisonBits(spec.gamma);
    this.#self = spec.hashing === 'self';
    this.organisationGreen = this.#self
      ? undefined
      : {
          delta: spec.delta,
          green: (sequence, ids, count, out) => this.#markGreen(sequence, ids, count, out),
        };
    // With an account layer on, the bias is no longer one δ on one window-set list.
    this.windowGreen = this.accountLayer === undefined ? this.organisationGreen : undefined;
  }

  /**
   * The same watermark embedding `account`'s layer as well (the spec must have `accountDelta`); `undefined`
   * gives the organisation layer alone. Shares this scheme's PRFs and caches: cheap enough per request.
   */
  forAccount(account: string | undefined): KgwScheme {
    const parts = this.#accountParts;
    if (parts === undefined)
      fail('E_INVALID_SPEC', 'this kgw spec has no account layer: set accountDelta > 0 to embed accounts');
    return new KgwScheme(this.spec, this.#key, undefined, { prf: this.#prf, accountParts: parts, account });
  }

  /** The account the outputs of this scheme carry, if any. */
  get account(): string | undefined {
    return this.accountLayer?.account;
  }

  /** Whether `token` is green after the window ending before `end`. */
  isGreen(sequence: ArrayLike<number>, end: number, token: number): boolean {
    const prf = this.#prf;
    if (this.#self) {
      prf.loadWindow(sequence, end);
      prf.selfSeed(token);
    } else {
      prf.seed(sequence, end);
    }
    return ((greenMask(this.#bits, prf.lo, prf.hi, token >>> 5) >>> (token & 31)) & 1) === 1;
  }

  biasLogits(
    sequence: ArrayLike<number>,
    logits: Float32Array,
    ids: Int32Array | null = null,
    count = logits.length,
  ): void {
    const end = sequence.length;
    const delta = this.spec.delta;
    const prf = this.#prf;
    if (this.#self) {
      this.#biasSelfGreen(sequence, logits, ids, count);
      return;
    }
    this.accountLayer?.bias(sequence, logits, ids, count);
    prf.seed(sequence, end);
    const { lo, hi } = prf;
    if (ids !== null) {
      for (let i = 0; i < count; i++) {
        const t = ids[i];
        if ((greenMask(this.#bits, lo, hi, t >>> 5) >>> (t & 31)) & 1) logits[i] += delta;
      }
      return;
    }
    for (let base = 0; base < count; base += 32) {
      let mask = greenMask(this.#bits, lo, hi, base >>> 5);
      if (count - base < 32) mask &= (1 << (count - base)) - 1;
      while (mask !== 0) {
        const bit = 31 - Math.clz32(mask & -mask);
        logits[base + bit] += delta;
        mask &= mask - 1;
      }
    }
  }

  /** WindowGreenList.green: the same greenMask bits that biasLogits tests. */
  #markGreen(sequence: ArrayLike<number>, ids: ArrayLike<number>, count: number, out: Uint8Array): number {
    const prf = this.#prf;
    prf.seed(sequence, sequence.length);
    const { lo, hi } = prf;
    const bits = this.#bits;
    return markBlockBits((block) => greenMask(bits, lo, hi, block), ids, count, out);
  }

  /**
   * SelfHash embedding: a candidate's green list depends on the candidate itself, so greenness is
   * tested only for the `selfCandidates` most likely candidates (the rejection loop of Kirchenbauer
   * et al. 2023b, Algorithm 3); tokens outside them are too unlikely to matter and stay unbiased.
   */
  #biasSelfGreen(
    sequence: ArrayLike<number>,
    logits: Float32Array,
    ids: Int32Array | null,
    count: number,
  ): void {
    const prf = this.#prf;
    const end = sequence.length;
    prf.loadWindow(sequence, end);
    const k = Math.min(this.spec.selfCandidates, count);
    // When every candidate is among the k most likely, test them all without ranking them.
    const ranked = k < count;
    if (ranked && this.#topIds.length < k) this.#topIds = new Int32Array(k);
    const found = ranked ? topKIndices(logits.subarray(0, count), k, this.#topIds) : count;
    for (let j = 0; j < found; j++) {
      const position = ranked ? this.#topIds[j] : j;
      const token = ids === null ? position : ids[position];
      prf.selfSeed(token);
      if ((greenMask(this.#bits, prf.lo, prf.hi, token >>> 5) >>> (token & 31)) & 1)
        logits[position] += this.spec.delta;
    }
  }

  score(sequence: ArrayLike<number>, index: number): number {
    const token = sequence[index];
    this.#prf.checkToken(token);
    return this.isGreen(sequence, index, token) ? 1 : 0;
  }

  scoreMany(sequence: Uint32Array, positions: Int32Array, count: number, out: Float64Array): void {
    const prf = this.#prf;
    const seeds = this.contextWidth === 1 && !this.#self ? prf.tokenSeedCache() : null;
    if (seeds === null) {
      for (let j = 0; j < count; j++) out[j] = this.score(sequence, positions[j]);
      return;
    }
    // h = 1 (LeftHash or MinHash alike): the seed is the previous token's, read from the cache in line;
    // an entry not computed yet ((0, 0)) or an id out of range goes through the checked path.
    const bits = this.#bits;
    const vocabSize = this.vocabSize;
    for (let j = 0; j < count; j++) {
      const i = positions[j];
      const token = sequence[i];
      const previous = sequence[i - 1];
      let lo = seeds[2 * previous];
      let hi = seeds[2 * previous + 1];
      if (!(token < vocabSize && previous < vocabSize && (lo | hi) !== 0)) {
        prf.checkToken(token);
        prf.seed(sequence, i);
        lo = prf.lo;
        hi = prf.hi;
      }
      out[j] = (greenMask(bits, lo, hi, token >>> 5) >>> (token & 31)) & 1;
    }
  }
}
