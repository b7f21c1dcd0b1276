import { KeySet64, type NullLaw, type Scheme } from '@tracemark/watermark';
import { fail, VerifierError } from './errors';
import { nullTail, zScore } from './null-law';
import { schemeIdentity, type TestResult } from './result';
import { holmAdjustLog10, type TailProbability } from './stats/index';
import {
  checkDedup,
  checkTokenId,
  type Dedup,
  markPositions,
  promptWindows,
  SKIP_REASONS,
  type SkipReason,
  STATUS_COUNTED,
  STATUS_DUPLICATE,
  STATUS_EOS,
  STATUS_PROMPT_WINDOW,
  scorePositions,
} from './tape';

export interface TokenEntry {
  index: number;
  tokenId: number;
  /** UTF-16 offsets into the original text (when it is known). */
  start: number;
  end: number;
  /** The scheme's score of this token; null where it has no full context. */
  score: number | null;
  counted: boolean;
  reason?: SkipReason;
}

export interface WindowResult {
  /** Token indices [start, end) of the window (in the whole sequence). */
  start: number;
  end: number;
  startChar: number;
  endChar: number;
  /** Scored tokens in the window. */
  scored: number;
  scoreSum: number;
  /** The window's own p-value, and that p-value corrected for the number of windows tried (Bonferroni). */
  pValue: number;
  log10PValue: number;
  correctedPValue: number;
  correctedLog10PValue: number;
  zScore: number;
  windowsTried: number;
}

/** The result of text detection: the one result type of every test, with the text's own fields. */
export interface DetectionResult extends TestResult {
  /** Tokens seen (`scored` of them counted). */
  tokens: number;
  dedup: Dedup;
  bestWindow: WindowResult | null;
  /** With several keys: Holm-adjusted p-values across the keys. */
  adjustedPValue?: number;
  adjustedLog10PValue?: number;
  /** Per-token entries as columns; `toJSON()` gives them as an array of TokenEntry. */
  perToken: TokenTable;
}

export interface DetectOptions {
  dedup?: Dedup;
  /** Token ids of the prompt: context windows (for h = 0, tokens) that occur in it are not scored. */
  prompt?: ArrayLike<number>;
  /** The end-of-sequence id: it and every token after it are not scored. */
  eosTokenId?: number;
  /** Windowed detection (default on); `sizes` are window lengths in scored tokens. */
  window?: boolean | { sizes?: number[] };
  /** Per-token entries in the result (default on; an empty table when off). */
  perToken?: boolean;
  /** UTF-16 offsets in the original text, one start and one end per token, for per-token entries and windows. */
  offsets?: { starts: ArrayLike<number>; ends: ArrayLike<number> };
}

/** Window lengths tried by default: powers of two from 16 scored tokens up. */
export const DEFAULT_WINDOW_SIZES = [16, 32, 64, 128, 256, 512, 1024, 2048, 4096];

export function detectTokens(
  ids: ArrayLike<number>,
  options: DetectOptions & { scheme: Scheme },
): DetectionResult;
export function detectTokens(
  ids: ArrayLike<number>,
  options: DetectOptions & { schemes: Scheme[] },
): DetectionResult[];
export function detectTokens(
  input: ArrayLike<number>,
  options: DetectOptions & { scheme?: Scheme; schemes?: Scheme[] },
): DetectionResult | DetectionResult[] {
  return detectOwned(input, options, false);
}

/**
 * detectTokens, for callers that hand over `input` and the offsets (`owned`: detectText's fresh encoding, which
 * nobody else holds), so that the table keeps them without copying.
 */
export function detectOwned(
  input: ArrayLike<number>,
  options: DetectOptions & { scheme?: Scheme; schemes?: Scheme[] },
  owned: boolean,
): DetectionResult | DetectionResult[] {
  if (options.schemes !== undefined) {
    if (!Array.isArray(options.schemes) || options.schemes.length === 0) {
      fail('E_INVALID_OPTIONS', 'schemes must be a non-empty array of keyed schemes');
    }
  } else if (options.scheme === undefined) {
    fail('E_INVALID_OPTIONS', 'detectTokens needs a scheme (or schemes)');
  }
  const n = input.length;
  const offsets = options.offsets === undefined ? null : copyOffsets(options.offsets, n, owned);
  // The table scores duplicates when first read, so it keeps ids (and offsets) the caller cannot change
  // afterwards: copies, a memcpy for typed arrays. Without a table a Uint32Array is only read.
  let ids: Uint32Array;
  if (!(input instanceof Uint32Array)) ids = new Uint32Array(n);
  else ids = options.perToken === false || owned ? input : input.slice();
  const tokens: TokenIds = {
    ids,
    column: null,
    end: -1,
  };
  if (options.schemes === undefined)
    return detectOne(input, tokens, options.scheme as Scheme, options, offsets);
  const results = options.schemes.map((scheme) => detectOne(input, tokens, scheme, options, offsets));
  const adjusted = holmAdjustLog10(results.map((r) => r.log10PValue));
  results.forEach((result, i) => {
    result.adjustedLog10PValue = adjusted[i];
    result.adjustedPValue = 10 ** adjusted[i];
  });
  return results;
}

/**
 * The ids detection reads, filled by the first scheme's `readTokens` (and shared by the others): `ids` holds
 * every id that is a uint32 (all those before the end of sequence are); `column` is the per-token table's
 * token ids, `ids` itself unless some id after the end of sequence (never checked) is not a uint32.
 */
interface TokenIds {
  ids: Uint32Array;
  column: Uint32Array | Float64Array | null;
  end: number;
}

/** UTF-16 offsets of each token, as the per-token table keeps them. */
interface Offsets {
  starts: Uint32Array;
  ends: Uint32Array;
}

/** The offsets as the table's columns (copied unless owned), failing unless there is one uint32 pair per token. */
function copyOffsets(offsets: NonNullable<DetectOptions['offsets']>, n: number, owned: boolean): Offsets {
  const { starts, ends } = offsets;
  if (starts?.length !== n || ends?.length !== n) {
    fail('E_INVALID_OPTIONS', `offsets must have one start and one end for each of the ${n} tokens`);
  }
  // A tokenizer's encoding: nothing to check.
  if (starts instanceof Uint32Array && ends instanceof Uint32Array)
    return owned ? { starts, ends } : { starts: starts.slice(), ends: ends.slice() };
  const copy = { starts: new Uint32Array(n), ends: new Uint32Array(n) };
  for (let i = 0; i < n; i++) {
    const start = starts[i];
    const end = ends[i];
    if (!(start >>> 0 === start && end >>> 0 === end)) {
      fail('E_INVALID_OPTIONS', `offsets of token ${i} must be non-negative integers; got ${start}, ${end}`);
    }
    copy.starts[i] = start;
    copy.ends[i] = end;
  }
  return copy;
}

function detectOne(
  input: ArrayLike<number>,
  tokens: TokenIds,
  scheme: Scheme,
  options: DetectOptions,
  offsets: Offsets | null,
): DetectionResult {
  const dedup = checkDedup(options.dedup ?? 'pair');
  const n = input.length;
  const { ids } = tokens;
  const end = readTokens(input, tokens, scheme.vocabSize, options.eosTokenId);
  const status = new Uint8Array(n);
  // The end-of-sequence id and everything after it: kept for per-token entries, never scored.
  status.fill(STATUS_EOS, end, n);
  const counted = new Int32Array(n);
  const rule = {
    dedup,
    promptKeys: promptWindows(options.prompt, scheme.contextWidth),
    seen: dedup === 'none' ? null : new KeySet64(expectedKeys(end)),
  };
  const skipped = { context: 0, duplicate: 0, promptWindow: 0, filtered: 0 };
  const m = markPositions(ids, 0, end, scheme, rule, counted, status, skipped);
  const countedScores = new Float64Array(m);
  scorePositions(scheme, ids, counted, m, countedScores);
  let sum = 0;
  for (let j = 0; j < m; j++) sum += countedScores[j];
  const tail = nullTail(scheme.nullLaw, sum, m);
  return {
    ...schemeIdentity(scheme),
    pValue: tail.p,
    log10PValue: tail.log10p,
    zScore: zScore(scheme.nullLaw, sum, m),
    tokens: n,
    scored: m,
    scoreSum: sum,
    dedup,
    bestWindow:
      options.window === false
        ? null
        : bestWindow(scheme.nullLaw, counted, countedScores, m, options, offsets),
    perToken:
      options.perToken === false
        ? TokenTable.empty()
        : new TokenTable({
            scheme,
            ids,
            tokenIds: tokens.column ?? ids,
            status,
            counted: counted.subarray(0, m),
            countedScores,
            offsets,
          }),
  };
}

/**
 * Checks the tokens against the vocabulary up to the end of sequence, failing on any id outside
 * [0, vocabSize) before it, and (the first time, for several schemes) copies them into `tokens`; returns
 * the index of that end (n when there is none).
 */
function readTokens(
  input: ArrayLike<number>,
  tokens: TokenIds,
  vocabSize: number,
  eos: number | undefined,
): number {
  const n = input.length;
  const { ids } = tokens;
  const copy = tokens.end < 0 && !(input instanceof Uint32Array);
  let end = n;
  for (let i = 0; i < n; i++) {
    const token = input[i];
    if (token === eos) {
      end = i;
      break;
    }
    checkTokenId(token, i, vocabSize);
    if (copy) ids[i] = token;
  }
  if (copy) {
    // Ids after the end of sequence are kept as given, for the table; one that is no uint32 needs doubles.
    let uint32 = true;
    for (let i = end; i < n; i++) {
      const token = input[i];
      if (token >>> 0 === token) ids[i] = token;
      else uint32 = false;
    }
    if (!uint32) tokens.column = Float64Array.from(input);
  }
  tokens.end = end;
  return end;
}

/**
 * How many distinct keys to make room for up front. Rehashing a grown table costs a cache miss per key,
 * but so does every look-up in a table much larger than its keys. Short inputs get room for every token;
 * beyond 2^16 tokens, for a quarter of the rest: in English books the distinct (token, token) pairs are
 * 46 % of 250,000 tokens and 21 % of a million, so typical text never grows the table.
 */
function expectedKeys(n: number): number {
  return Math.min(n, (1 << 16) + (n >>> 2), 1 << 21);
}

/**
 * The most significant run of consecutive scored tokens, for each window length, over the starts of
 * `windowStep`'s grid. For a fixed length the tail is decreasing in the sum, so the best window of a length
 * is its largest sum. The reported p-value is corrected by Bonferroni over all W windows tried:
 * p_corrected = min(1, W · p), valid whatever the dependence between overlapping windows.
 */
function bestWindow(
  law: NullLaw,
  positions: Int32Array,
  scores: Float64Array,
  m: number,
  options: DetectOptions,
  offsets: Offsets | null,
): WindowResult | null {
  const requested =
    typeof options.window === 'object' && options.window.sizes ? options.window.sizes : DEFAULT_WINDOW_SIZES;
  for (const size of requested) {
    if (!Number.isInteger(size) || size < 1)
      fail('E_INVALID_OPTIONS', `window sizes must be positive integers; got ${size}`);
  }
  const sizes = requested.filter((size) => size < m);
  if (sizes.length === 0) return null;
  const prefix = new Float64Array(m + 1);
  for (let j = 0; j < m; j++) prefix[j + 1] = prefix[j] + scores[j];
  let windowsTried = 0;
  let best: { from: number; size: number; sum: number; tail: TailProbability } | null = null;
  for (const size of sizes) {
    const { from, starts } = largestSumFrom(prefix, m, size);
    windowsTried += starts;
    const sum = prefix[from + size] - prefix[from];
    const tail = nullTail(law, sum, size);
    if (best === null || tail.log10p < best.tail.log10p) best = { from, size, sum, tail };
  }
  if (best === null) return null;
  const start = positions[best.from];
  const end = positions[best.from + best.size - 1] + 1;
  const correctedLog10 = Math.min(0, best.tail.log10p + Math.log10(windowsTried));
  return {
    start,
    end,
    startChar: offsets ? offsets.starts[start] : 0,
    endChar: offsets ? offsets.ends[end - 1] : 0,
    scored: best.size,
    scoreSum: best.sum,
    pValue: best.tail.p,
    log10PValue: best.tail.log10p,
    correctedPValue: 10 ** correctedLog10,
    correctedLog10PValue: correctedLog10,
    zScore: zScore(law, best.sum, best.size),
    windowsTried,
  };
}

/**
 * Windows of `size` scored tokens start on a grid of step ⌈size / 8⌉: a passage of at least 9/8 · size
 * watermarked tokens still holds a whole window, while the scan costs O(m) over all lengths instead of
 * O(m) per length, and the Bonferroni factor (the number of windows) shrinks by the same ratio.
 * (Scan statistics over such approximating sets of intervals: Walther, "Optimal and fast detection of
 * spatial clusters with scan statistics", Annals of Statistics 38(2), 2010.)
 */
export function windowStep(size: number): number {
  return Math.max(1, Math.ceil(size / 8));
}

/** The first grid start of a run of `size` scores with the largest sum (the earliest among ties), and the number of starts. */
function largestSumFrom(prefix: Float64Array, m: number, size: number): { from: number; starts: number } {
  const step = windowStep(size);
  let from = 0;
  let bestSum = prefix[size];
  let starts = 1;
  for (let j = step; j + size <= m; j += step) {
    starts++;
    const sum = prefix[j + size] - prefix[j];
    if (sum > bestSum) {
      bestSum = sum;
      from = j;
    }
  }
  return { from, starts };
}

/** What a per-token table is built from: detection's own arrays, kept as they are. */
interface TokenTableParts {
  scheme: Scheme;
  /** Checked ids, for scoring. */
  ids: Uint32Array;
  tokenIds: Uint32Array | Float64Array;
  status: Uint8Array;
  /** Counted positions, ascending, and their scores. */
  counted: Int32Array;
  countedScores: Float64Array;
  offsets: Offsets | null;
}

/**
 * Per-token entries as columns: token ids, UTF-16 offsets, status codes (0 counted, else 1 + the index
 * of the reason in SKIP_REASONS) and scores. Objects per token cost more than detection itself, so
 * entries are made only when read (`at`, iteration, `slice`, `toJSON`), and the scores of duplicates and
 * prompt windows (which show in a highlighted text but do not count) are computed when first read.
 */
export class TokenTable implements Iterable<TokenEntry> {
  readonly length: number;
  readonly tokenIds: Uint32Array | Float64Array;
  readonly status: Uint8Array;
  readonly #parts: TokenTableParts | null;
  #scores: Float64Array | null = null;
  #zeros: Uint32Array | null = null;

  constructor(parts: TokenTableParts | null) {
    this.#parts = parts;
    this.length = parts === null ? 0 : parts.status.length;
    this.tokenIds = parts === null ? new Uint32Array(0) : parts.tokenIds;
    this.status = parts === null ? new Uint8Array(0) : parts.status;
  }

  /** The table of a detection asked for no per-token entries. */
  static empty(): TokenTable {
    return new TokenTable(null);
  }

  /** UTF-16 start of each token in the original text (0 where the text is not known). */
  get starts(): Uint32Array {
    return this.#parts?.offsets?.starts ?? this.#zeroOffsets();
  }

  /** UTF-16 end of each token in the original text (0 where the text is not known). */
  get ends(): Uint32Array {
    return this.#parts?.offsets?.ends ?? this.#zeroOffsets();
  }

  /** Each token's score; NaN where it has none (no full context, after the end of sequence). */
  get scores(): Float64Array {
    this.#scores ??= this.#computeScores(0, this.length);
    return this.#scores;
  }

  /** The entry of token `index`. */
  at(index: number): TokenEntry {
    if (!(Number.isInteger(index) && index >= 0 && index < this.length)) {
      fail('E_INVALID_OPTIONS', `token index ${index} is outside the table of ${this.length} tokens`);
    }
    return this.#entry(index, this.scores[index]);
  }

  /**
   * Entries [from, to) as objects, with Array.prototype.slice's bounds (negative counts from the end). Until
   * the scores column is read, only the slice's own tokens are scored (a report shows the first few).
   */
  slice(from = 0, to = this.length): TokenEntry[] {
    const n = this.length;
    const first = from < 0 ? Math.max(n + from, 0) : Math.min(from, n);
    const last = to < 0 ? Math.max(n + to, 0) : Math.min(to, n);
    const entries: TokenEntry[] = [];
    if (last <= first) return entries;
    const scores = this.#scores?.subarray(first, last) ?? this.#computeScores(first, last);
    for (let i = first; i < last; i++) entries.push(this.#entry(i, scores[i - first]));
    return entries;
  }

  *[Symbol.iterator](): Iterator<TokenEntry> {
    const scores = this.length === 0 ? null : this.scores;
    for (let i = 0; i < this.length; i++) yield this.#entry(i, (scores as Float64Array)[i]);
  }

  /** Every entry, as JSON has always shown per-token entries. */
  toJSON(): TokenEntry[] {
    return this.slice();
  }

  #entry(i: number, score: number): TokenEntry {
    const code = this.status[i];
    const offsets = this.#parts?.offsets;
    // One object shape for every entry (reason undefined when counted, which JSON omits).
    return {
      index: i,
      tokenId: this.tokenIds[i],
      start: offsets ? offsets.starts[i] : 0,
      end: offsets ? offsets.ends[i] : 0,
      score: Number.isNaN(score) ? null : score,
      counted: code === STATUS_COUNTED,
      reason: code === STATUS_COUNTED ? undefined : SKIP_REASONS[code - 1],
    };
  }

  #zeroOffsets(): Uint32Array {
    this.#zeros ??= new Uint32Array(this.length);
    return this.#zeros;
  }

  /**
   * Scores of tokens [first, last), indexed from `first`: counted tokens carry the scores detection
   * computed; duplicates and prompt windows are scored here.
   */
  #computeScores(first: number, last: number): Float64Array {
    const scores = new Float64Array(last - first).fill(Number.NaN);
    const parts = this.#parts;
    if (parts === null) return scores;
    const { scheme, ids, status, counted, countedScores } = parts;
    for (let j = firstAtLeast(counted, first); j < counted.length && counted[j] < last; j++)
      scores[counted[j] - first] = countedScores[j];
    const others = new Int32Array(last - first);
    let o = 0;
    for (let i = first; i < last; i++)
      if (status[i] === STATUS_DUPLICATE || status[i] === STATUS_PROMPT_WINDOW) others[o++] = i;
    const otherScores = new Float64Array(o);
    scorePositions(scheme, ids, others, o, otherScores);
    for (let k = 0; k < o; k++) scores[others[k] - first] = otherScores[k];
    return scores;
  }
}

/** The first index of ascending `values` whose value is at least `target` (values.length if none). */
function firstAtLeast(values: Int32Array, target: number): number {
  let low = 0;
  let high = values.length;
  while (low < high) {
    const mid = (low + high) >>> 1;
    if (values[mid] < target) low = mid + 1;
    else high = mid;
  }
  return low;
}

export { VerifierError };
