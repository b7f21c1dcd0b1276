/**
 * EXP-edit: the edit-robust exponential-minimum watermark of Kuditipudi, Thickstun, Hashimoto & Liang,
 * "Robust Distortion-free Watermarks for Language Models" (2023, arXiv:2307.15593), §2.3–2.4 and §3.2.
 *
 * The key is a sequence ξ_0 … ξ_{n−1} of uniform vectors over the vocabulary. A generation draws a
 * random shift s ∈ [0, n) and emits token i with exponential-minimum sampling under ξ_{(s+i) mod n}:
 * argmax_t ξ_j(t)^(1/p_t), which draws exactly from p over the key's randomness (distortion-free).
 * Detection does not need the context: it aligns the text y with the key by a Levenshtein-style
 * dynamic programme whose match cost is ln(1 − ξ_j(y_i)) (very negative for watermarked tokens, whose
 * ξ is close to 1) and whose insertions and deletions cost γ, and takes the minimum over the n shifts.
 * A low statistic is evidence of the watermark; the p-value comes from a permutation test over fresh
 * key sequences (see `expEditTest` in @tracemark/verifier).
 *
 * Definitions follow the reference implementation, github.com/jthickstun/watermark:
 *  - watermarking/gumbel/gumbel_levenshtein.pyx (the DP: A[i][0] = iγ, A[0][j] = jγ, A[i][j] = min(
 *    A[i−1][j] + γ, A[i][j−1] + γ, A[i−1][j−1] + ln(1 − ξ_j(y_i)))), returned at A[m][k];
 *  - watermarking/detection.py and detect.py (the statistic: minimum over key offsets of the DP between
 *    the text block and ξ_{offset}, …, ξ_{offset+k−1} mod n, here with block length k = text length;
 *    the permutation test counts fresh statistics ≤ the observed one: lower means watermarked);
 *  - watermarking/generation.py and gumbel/sampler.py (random offset per generation, argmax u^(1/p));
 *  - experiments/scripts/experiment-{3,4}.sh and detect.py: n = 256, γ = 0.0 for EXP-edit ("gued").
 *
 * In tracemark the key sequence is not stored as an n × V table: ξ_j(t) is the keyed
 * uniform seededUniform(lo_j, hi_j, t) of mix.ts, with the per-position seed (lo_j, hi_j) from SipHash-2-4
 * under the scheme key (as ContextPrf derives its seeds), evaluated lazily.
 */
import { fail } from '../errors';
import type { SchemeKey } from '../keys';
import { seededUniform } from '../mix';
import { sipHash24Words, sipKey } from '../siphash';
import { type BaseSpec, SpecReader } from '../spec';
import { exponentialMinimum } from './gumbel';

export interface ExpEditSpec extends BaseSpec {
  scheme: 'exp-edit';
  version: 1;
  /** n: the length of the key sequence ξ_0 … ξ_{n−1}. */
  keyLength: number;
  /** γ: the cost of an insertion or deletion in the alignment. */
  gap: number;
}

/** n = 256 and γ = 0 for EXP-edit, as in the reference's detect.py and experiment scripts (gamma_gu=0.0). */
export const EXP_EDIT_DEFAULTS = { keyLength: 256, gap: 0 } as const;

/** Reads a raw exp-edit spec (plain JSON), filling the defaults; E_INVALID_SPEC says what is wrong. */
export function parseExpEditSpec(raw: Record<string, unknown>): ExpEditSpec {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw))
    fail('E_INVALID_SPEC', 'an exp-edit spec must be a JSON object');
  if (raw.scheme !== 'exp-edit') fail('E_INVALID_SPEC', 'exp-edit spec: scheme must be "exp-edit"');
  return readExpEditSpec(new SpecReader(raw, 'exp-edit'));
}

/** Longest key sequence a spec may declare. */
export const MAX_EXP_EDIT_KEY_LENGTH = 1 << 16;

export function readExpEditSpec(reader: SpecReader): ExpEditSpec {
  const base = reader.base();
  const spec: ExpEditSpec = {
    scheme: 'exp-edit',
    version: 1,
    vocabSize: base.vocabSize,
    keyLength: reader.integer('keyLength', 1, MAX_EXP_EDIT_KEY_LENGTH, EXP_EDIT_DEFAULTS.keyLength),
    gap: reader.number('gap', { min: 0, max: 1e6, closedMin: true }, EXP_EDIT_DEFAULTS.gap),
  };
  reader.done();
  return spec;
}

/**
 * Domain tag hashed before the position: 0x45584544 ("EXED") is above every token id (MAX_VOCAB_SIZE is
 * 2^24), so the message [tag, j] is never a context window that ContextPrf hashes under some key.
 */
const POSITION_DOMAIN = 0x45584544;
const TWO_POW_32 = 4294967296;
const INSPECT = Symbol.for('nodejs.util.inspect.custom');

/**
 * The key sequence ξ_0 … ξ_{n−1}: ξ_j(t) = seededUniform(lo_j, hi_j, t). The seeds live in private
 * fields; JSON, String() and util.inspect show only the fingerprint (none for fresh keys).
 */
export class ExpEditKey {
  readonly spec: ExpEditSpec;
  /** The scheme key's fingerprint, or undefined for a fresh (null) key. */
  readonly fingerprint: string | undefined;
  readonly #lo: Uint32Array;
  readonly #hi: Uint32Array;

  private constructor(spec: ExpEditSpec, lo: Uint32Array, hi: Uint32Array, fingerprint: string | undefined) {
    this.spec = spec;
    this.#lo = lo;
    this.#hi = hi;
    this.fingerprint = fingerprint;
  }

  /** The secret key sequence: (lo_j, hi_j) = SipHash-2-4 under the scheme key of the words [tag, j]. */
  static fromSchemeKey(spec: ExpEditSpec, key: SchemeKey): ExpEditKey {
    checkSpec(spec);
    const n = spec.keyLength;
    const sip = sipKey(key.prfKeyBytes());
    const lo = new Uint32Array(n);
    const hi = new Uint32Array(n);
    const words = new Uint32Array(2);
    const out = new Uint32Array(2);
    words[0] = POSITION_DOMAIN;
    for (let j = 0; j < n; j++) {
      words[1] = j;
      sipHash24Words(sip, words, 0, 2, out);
      lo[j] = out[0];
      hi[j] = out[1];
    }
    sip.fill(0);
    return new ExpEditKey(spec, lo, hi, key.fingerprint);
  }

  /**
   * A fresh key sequence for the permutation test, from a plain uniform source in [0, 1) (such as
   * createRng(seed)); two 32-bit draws per position. It never involves the secret key.
   */
  static fresh(spec: ExpEditSpec, rng: () => number): ExpEditKey {
    checkSpec(spec);
    const n = spec.keyLength;
    const lo = new Uint32Array(n);
    const hi = new Uint32Array(n);
    for (let j = 0; j < n; j++) {
      lo[j] = Math.floor(rng() * TWO_POW_32) >>> 0;
      hi[j] = Math.floor(rng() * TWO_POW_32) >>> 0;
    }
    return new ExpEditKey(spec, lo, hi, undefined);
  }

  get keyLength(): number {
    return this.spec.keyLength;
  }

  /** ξ_{j mod n}(token), a uniform in (0, 1). */
  uniform(position: number, token: number): number {
    const j = wrap(position, this.spec.keyLength);
    return seededUniform(this.#lo[j], this.#hi[j], token);
  }

  /**
   * Exponential-minimum sampling with ξ_{position mod n}: argmax_t ln(ξ(t)) / q_t with
   * q_t = exp(logit_t − max), the unnormalised probability (the normaliser is a common positive factor).
   * `ids` maps candidate i to its token id (null: candidate i is token i).
   */
  chooseAt(position: number, logits: Float32Array, ids: Int32Array | null, count: number): number {
    const j = wrap(position, this.spec.keyLength);
    const best = exponentialMinimum(this.#lo[j], this.#hi[j], logits, ids, count);
    if (best < 0) fail('E_NO_CANDIDATES', 'exp-edit: no candidate token has a finite logit');
    return best;
  }

  /**
   * Fills out[i·width + c] = ln(1 − ξ_{c mod n}(tokens[i])) for c < width (width ≥ n): the match costs of
   * the text against every key position, each uniform computed once, the first n columns repeated so
   * that a shifted alignment reads one contiguous run. Rows of repeated tokens are copied.
   */
  fillCosts(tokens: ArrayLike<number>, width: number, out: Float64Array): void {
    const n = this.spec.keyLength;
    const m = tokens.length;
    const lo = this.#lo;
    const hi = this.#hi;
    for (let i = 0; i < m; i++) {
      const token = tokens[i];
      const row = i * width;
      let previous = -1;
      for (let r = i - 1; r >= 0; r--) {
        if (tokens[r] === token) {
          previous = r;
          break;
        }
      }
      if (previous >= 0) {
        out.copyWithin(row, previous * width, previous * width + width);
        continue;
      }
      for (let j = 0; j < n; j++) out[row + j] = Math.log1p(-seededUniform(lo[j], hi[j], token));
      for (let c = n; c < width; c++) out[row + c] = out[row + c - n];
    }
  }

  toJSON(): { scheme: 'exp-edit'; fingerprint?: string } {
    return this.fingerprint === undefined
      ? { scheme: 'exp-edit' }
      : { scheme: 'exp-edit', fingerprint: this.fingerprint };
  }

  toString(): string {
    return `ExpEditKey(${this.fingerprint ?? 'fresh'})`;
  }

  [INSPECT](): string {
    return this.toString();
  }
}

function checkSpec(spec: ExpEditSpec): void {
  if (
    spec === null ||
    typeof spec !== 'object' ||
    spec.scheme !== 'exp-edit' ||
    !Number.isInteger(spec.keyLength) ||
    spec.keyLength < 1 ||
    spec.keyLength > MAX_EXP_EDIT_KEY_LENGTH ||
    !(spec.gap >= 0 && Number.isFinite(spec.gap))
  ) {
    fail(
      'E_INVALID_SPEC',
      'exp-edit spec: need scheme "exp-edit", an integer keyLength and a finite gap ≥ 0',
    );
  }
}

function wrap(position: number, n: number): number {
  if (!Number.isInteger(position)) fail('E_INVALID_SPEC', `exp-edit: position ${position} is not an integer`);
  const j = position % n;
  return j < 0 ? j + n : j;
}

/**
 * One generation step: the token for generated index `generatedIndex` (0 for the first new token) of a
 * request whose random shift is `shift`, i.e. exponential-minimum sampling with ξ_{(shift + index) mod n}.
 */
export function expEditStep(
  key: ExpEditKey,
  shift: number,
  generatedIndex: number,
  logits: Float32Array,
  ids: Int32Array | null,
  count: number,
): number {
  return key.chooseAt(shift + generatedIndex, logits, ids, count);
}

/**
 * A generation under the key: draws its shift s ∈ [0, n) from the ordinary sampling source (never the
 * watermark key) and emits token i with ξ_{(s+i) mod n}.
 */
export class ExpEditGenerator {
  readonly key: ExpEditKey;
  readonly shift: number;
  #index = 0;

  constructor(key: ExpEditKey, uniform: () => number) {
    this.key = key;
    this.shift = Math.min(key.keyLength - 1, Math.floor(uniform() * key.keyLength));
  }

  /** Tokens emitted so far. */
  get generated(): number {
    return this.#index;
  }

  next(logits: Float32Array, ids: Int32Array | null, count: number): number {
    const token = expEditStep(this.key, this.shift, this.#index, logits, ids, count);
    this.#index++;
    return token;
  }
}

// Scratch reused across calls (JavaScript runs one call at a time): the cost matrix and two DP rows.
let costScratch = new Float64Array(0);
let rowA = new Float64Array(0);
let rowB = new Float64Array(0);

function checkTokens(key: ExpEditKey, tokens: ArrayLike<number>): void {
  const vocab = key.spec.vocabSize;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (!(t >>> 0 === t && t < vocab)) {
      fail('E_TOKEN_RANGE', `token id ${t} is outside the vocabulary [0, ${vocab})`);
    }
  }
}

/** Grows the shared cost matrix to hold `size` entries (doubling, so that a run of longer texts reallocates rarely). */
function reserveCosts(size: number): void {
  if (costScratch.length < size) costScratch = new Float64Array(Math.max(size, 2 * costScratch.length));
}

/** Fills the scratch cost matrix for `tokens`; returns its row width n + m − 1 (at least n). */
function prepareCosts(key: ExpEditKey, tokens: ArrayLike<number>): number {
  checkTokens(key, tokens);
  const m = tokens.length;
  const n = key.keyLength;
  const width = n + Math.max(0, m - 1);
  reserveCosts(m * width);
  if (rowA.length < m + 1) {
    rowA = new Float64Array(2 * (m + 1));
    rowB = new Float64Array(2 * (m + 1));
  }
  key.fillCosts(tokens, width, costScratch);
  return width;
}

/**
 * The DP of gumbel_levenshtein.pyx between the m tokens and ξ_shift … ξ_{shift+m−1} over the prepared
 * costs: O(m²), two rolling rows, no allocation.
 */
function alignShift(m: number, width: number, shift: number, gap: number): number {
  const costs = costScratch;
  let prev = rowA;
  let cur = rowB;
  for (let j = 0; j <= m; j++) prev[j] = j * gap;
  for (let i = 1; i <= m; i++) {
    const base = (i - 1) * width + shift - 1;
    let left = i * gap;
    cur[0] = left;
    let diag = prev[0];
    for (let j = 1; j <= m; j++) {
      const up = prev[j];
      // Math.min compiles to branch-free code; the comparisons of the reference mispredict at random.
      const v = Math.min(Math.min(up, left) + gap, diag + costs[base + j]);
      cur[j] = v;
      left = v;
      diag = up;
    }
    const t = prev;
    prev = cur;
    cur = t;
  }
  return prev[m];
}

/**
 * The Levenshtein cost of aligning `tokens` with ξ_shift, ξ_shift+1, … (as many key positions as
 * tokens, indices mod n): match of y_i with ξ_j costs ln(1 − ξ_j(y_i)), an insertion or deletion γ.
 */
export function alignmentCost(key: ExpEditKey, tokens: ArrayLike<number>, shift: number): number {
  const width = prepareCosts(key, tokens);
  return alignShift(tokens.length, width, wrap(shift, key.keyLength), key.spec.gap);
}

/** The EXP-edit statistic and the shift that attains it. */
export interface EditStatistic {
  /** min over shifts of the alignment cost: lower is more watermarked. */
  statistic: number;
  /** The smallest shift attaining the minimum. */
  shift: number;
}

/** The EXP-edit test statistic: the minimum alignment cost over all n shifts (detection.py's phi, k = m). */
export function editStatistic(key: ExpEditKey, tokens: ArrayLike<number>): EditStatistic {
  const width = prepareCosts(key, tokens);
  const m = tokens.length;
  const gap = key.spec.gap;
  let best = Number.POSITIVE_INFINITY;
  let bestShift = 0;
  for (let s = 0; s < key.keyLength; s++) {
    const v = alignShift(m, width, s, gap);
    if (v < best) {
      best = v;
      bestShift = s;
    }
  }
  return { statistic: best, shift: bestShift };
}

/**
 * The position-aligned EXP statistic (no edits; the reference's gumbel_score): min over shifts s of
 * Σ_i ln(1 − ξ_{(s+i) mod n}(y_i)). Brittle under insertions and deletions; kept for comparison.
 */
export function alignedStatistic(key: ExpEditKey, tokens: ArrayLike<number>): EditStatistic {
  const width = prepareCosts(key, tokens);
  const costs = costScratch;
  const m = tokens.length;
  let best = Number.POSITIVE_INFINITY;
  let bestShift = 0;
  for (let s = 0; s < key.keyLength; s++) {
    let sum = 0;
    for (let i = 0; i < m; i++) sum += costs[i * width + s + i];
    if (sum < best) {
      best = sum;
      bestShift = s;
    }
  }
  return { statistic: best, shift: bestShift };
}

/** The local alignment statistic and where its best alignment ends in the key. */
export interface LocalAlignment {
  /** The minimum semi-global alignment cost: lower is more watermarked. */
  statistic: number;
  /** The key position (mod n) of the last key column the best alignment consumes (smallest on ties). */
  end: number;
}

/** Width of the unrolled key a local alignment reads: every start s < n gets a span of 2m − 1 positions. */
export function localAlignmentWidth(keyLength: number, tokens: number): number {
  return keyLength + Math.max(0, 2 * tokens - 2);
}

let localA = new Float64Array(0);
let localB = new Float64Array(0);

/**
 * tracemark's own fast variant of the EXP-edit alignment of Kuditipudi et al. 2023 (not in their paper or
 * reference code): one semi-global dynamic programme of the m tokens against the unrolled key sequence
 * ξ_0, ξ_1, …, ξ_{W−1} (indices mod n, W = n + 2m − 2 so that an alignment starting at any s < n may span
 * 2m − 1 key positions, enough for heavy deletion), global in the text and free at both ends of the key:
 *
 *   D[0][c] = 0,  D[i][0] = i·gapText,
 *   D[i][c] = min(D[i−1][c] + gapText,  D[i][c−1] + gapKey,  D[i−1][c−1] + ln(1 − ξ_{c−1}(y_i))),
 *   statistic = min_c D[m][c].
 *
 * gapText is the cost of a text token left unmatched (an insertion into the watermarked text), gapKey
 * that of a key position skipped (a deletion from it). Both must be positive: match costs are ≤ 0 with
 * mean −1, so with free gaps the alignment would collect chance matches from the whole key. One DP costs
 * O(m·(n + m)) instead of the reference statistic's O(n·m²) (`editStatistic`); it is a different
 * statistic, but it is a function of (key, text) alone, so the same permutation test over fresh keys
 * (`expEditTest` with statistic 'local') gives a valid p-value for it.
 */
export function localAlignmentStatistic(
  key: ExpEditKey,
  tokens: ArrayLike<number>,
  gapText: number,
  gapKey: number,
): LocalAlignment {
  if (!(gapText > 0 && gapKey > 0 && Number.isFinite(gapText) && Number.isFinite(gapKey)))
    fail('E_INVALID_SPEC', 'exp-edit: the local alignment needs finite gap costs > 0');
  checkTokens(key, tokens);
  const m = tokens.length;
  const n = key.keyLength;
  if (m === 0) return { statistic: 0, end: 0 };
  const width = localAlignmentWidth(n, m);
  reserveCosts(m * width);
  if (localA.length < width + 1) {
    localA = new Float64Array(2 * (width + 1));
    localB = new Float64Array(2 * (width + 1));
  }
  key.fillCosts(tokens, width, costScratch);
  const costs = costScratch;
  let prev = localA;
  let cur = localB;
  prev.fill(0, 0, width + 1);
  for (let i = 1; i <= m; i++) {
    const base = (i - 1) * width - 1;
    let left = i * gapText;
    cur[0] = left;
    let diag = prev[0];
    for (let c = 1; c <= width; c++) {
      const up = prev[c];
      const v = Math.min(Math.min(up + gapText, left + gapKey), diag + costs[base + c]);
      cur[c] = v;
      left = v;
      diag = up;
    }
    const t = prev;
    prev = cur;
    cur = t;
  }
  let best = prev[0];
  let bestColumn = 0;
  for (let c = 1; c <= width; c++) {
    if (prev[c] < best) {
      best = prev[c];
      bestColumn = c;
    }
  }
  return { statistic: best, end: bestColumn === 0 ? 0 : (bestColumn - 1) % n };
}
