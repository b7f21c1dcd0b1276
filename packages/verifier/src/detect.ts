import { KeySet64, type NullLaw, type Scheme } from '@tracemark/watermark';
import { fail, VerifierError } from './errors';
import { nullTail, zScore } from './null-law';
import { schemeIdentity, type TestResult } from './result';
import { holmAdjustLog10, type TailProbability } from './stats/index';
import {
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
  perToken: TokenEntry[];
}

export interface DetectOptions {
  dedup?: Dedup;
  /** Token ids of the prompt: context windows (for h = 0, tokens) that occur in it are not scored. */
  prompt?: ArrayLike<number>;
  /** The end-of-sequence id: it and every token after it are not scored. */
  eosTokenId?: number;
  /** Windowed detection (default on); `sizes` are window lengths in scored tokens. */
  window?: boolean | { sizes?: number[] };
  /** Per-token entries in the result (default on). */
  perToken?: boolean;
  /** UTF-16 offsets of each token in the original text, for per-token entries and windows. */
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
  ids: ArrayLike<number>,
  options: DetectOptions & { scheme?: Scheme; schemes?: Scheme[] },
): DetectionResult | DetectionResult[] {
  if (options.schemes !== undefined) {
    if (!Array.isArray(options.schemes) || options.schemes.length === 0) {
      fail('E_INVALID_OPTIONS', 'schemes must be a non-empty array of keyed schemes');
    }
    const results = options.schemes.map((scheme) => detectOne(ids, scheme, options));
    const adjusted = holmAdjustLog10(results.map((r) => r.log10PValue));
    results.forEach((result, i) => {
      result.adjustedLog10PValue = adjusted[i];
      result.adjustedPValue = 10 ** adjusted[i];
    });
    return results;
  }
  if (options.scheme === undefined) fail('E_INVALID_OPTIONS', 'detectTokens needs a scheme (or schemes)');
  return detectOne(ids, options.scheme, options);
}

function detectOne(input: ArrayLike<number>, scheme: Scheme, options: DetectOptions): DetectionResult {
  const dedup = options.dedup ?? 'pair';
  if (!['pair', 'context', 'none'].includes(dedup)) {
    fail('E_INVALID_OPTIONS', `dedup must be "pair", "context" or "none"; got ${JSON.stringify(dedup)}`);
  }
  const n = input.length;
  // Token ids as one typed array, so that the loops below see one array type; a Uint32Array is only read.
  const ids = input instanceof Uint32Array ? input : new Uint32Array(n);
  const status = new Uint8Array(n);
  const counted = new Int32Array(n);
  const m = markTokens(input, scheme, options, dedup, ids, status, counted);
  const countedScores = new Float64Array(m);
  scorePositions(scheme, ids, counted, m, countedScores);
  let sum = 0;
  for (let j = 0; j < m; j++) sum += countedScores[j];
  const tail = nullTail(scheme.nullLaw, sum, m);
  const offsets = options.offsets;
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
      options.perToken === false ? [] : tokenEntries(scheme, input, ids, status, countedScores, offsets),
  };
}

/**
 * Checks the tokens against the vocabulary up to the end of sequence, copies them into `ids` (unless
 * `ids` is `input` itself), writes each token's status, and lists the positions that count in `counted`;
 * returns their number. Scores come afterwards, in one call, for those positions.
 */
function markTokens(
  input: ArrayLike<number>,
  scheme: Scheme,
  options: DetectOptions,
  dedup: Dedup,
  ids: Uint32Array,
  status: Uint8Array,
  counted: Int32Array,
): number {
  const n = input.length;
  const end = readTokens(input, ids, scheme.vocabSize, options.eosTokenId);
  // The end-of-sequence id and everything after it: kept for per-token entries, never scored.
  status.fill(STATUS_EOS, end, n);
  const rule = {
    dedup,
    promptKeys: promptWindows(options.prompt, scheme.contextWidth),
    seen: dedup === 'none' ? null : new KeySet64(expectedKeys(end)),
  };
  const skipped = { context: 0, duplicate: 0, promptWindow: 0, filtered: 0 };
  return markPositions(ids, 0, end, scheme, rule, counted, status, skipped);
}

/**
 * Copies `input` into `ids` (unless they are the same array) up to the first end-of-sequence id, failing
 * on any id outside [0, vocabSize) before it; returns the index of that end (n when there is none).
 */
function readTokens(
  input: ArrayLike<number>,
  ids: Uint32Array,
  vocabSize: number,
  eos: number | undefined,
): number {
  const n = input.length;
  const copy = ids !== input;
  for (let i = 0; i < n; i++) {
    const token = input[i];
    if (token === eos) return i;
    if (!(token >>> 0 === token && token < vocabSize)) {
      fail(
        'E_TOKEN_RANGE',
        `token id ${token} at position ${i} is outside the scheme's vocabulary (vocabSize ${vocabSize})`,
      );
    }
    if (copy) ids[i] = token;
  }
  return n;
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
  offsets: DetectOptions['offsets'],
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

/**
 * Per-token entries. Counted tokens carry the scores already computed; duplicates and prompt windows
 * are scored here (they show in a highlighted text); tokens without a full context, or after the end of
 * sequence, have no score.
 */
function tokenEntries(
  scheme: Scheme,
  input: ArrayLike<number>,
  ids: Uint32Array,
  status: Uint8Array,
  countedScores: Float64Array,
  offsets: DetectOptions['offsets'],
): TokenEntry[] {
  const n = status.length;
  const others = new Int32Array(n);
  let o = 0;
  for (let i = 0; i < n; i++)
    if (status[i] === STATUS_DUPLICATE || status[i] === STATUS_PROMPT_WINDOW) others[o++] = i;
  const otherScores = new Float64Array(o);
  scorePositions(scheme, ids, others, o, otherScores);
  const entries: TokenEntry[] = new Array(n);
  let j = 0;
  o = 0;
  for (let i = 0; i < n; i++) {
    const code = status[i];
    let score: number | null = null;
    if (code === STATUS_COUNTED) score = countedScores[j++];
    else if (code === STATUS_DUPLICATE || code === STATUS_PROMPT_WINDOW) score = otherScores[o++];
    // One object shape for every entry (reason undefined when counted, which JSON omits) keeps this loop fast.
    entries[i] = {
      index: i,
      tokenId: input[i],
      start: offsets ? offsets.starts[i] : 0,
      end: offsets ? offsets.ends[i] : 0,
      score,
      counted: code === STATUS_COUNTED,
      reason: code === STATUS_COUNTED ? undefined : SKIP_REASONS[code - 1],
    };
  }
  return entries;
}

export { VerifierError };
