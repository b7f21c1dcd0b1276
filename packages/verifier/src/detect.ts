import {
  KeySet64,
  type NullLaw,
  type Scheme,
  type SchemeSpec,
  WatermarkError,
  windowKey,
} from '@tracemark/watermark';
import { fail, VerifierError } from './errors';
import { followsPromptWindow, promptWindows } from './prompt-windows';
import { binomialUpperTail, gammaUpperTail, holmAdjustLog10, type TailProbability } from './stats/index';

/**
 * Which repetitions are scored once:
 *  - 'pair' (default): each PRF input once: (window, token) for LeftHash, (winning window token, token) for
 *    MinHash and SelfHash (`Scheme.inputKey`). Repeated text cannot add evidence, and under H0 the scored
 *    inputs are distinct, hence independent.
 *  - 'context': each context seed once (the first token after it), stricter.
 *  - 'none': every token, as most reference detectors do; repeated text then inflates the evidence.
 */
export type Dedup = 'pair' | 'context' | 'none';

/** Why a token did not count. */
export type SkipReason = 'context' | 'duplicate' | 'prompt-window' | 'eos';

/** Per-token status codes: 0 counted, else 1 + the index of the skip reason. */
const SKIP_REASONS: SkipReason[] = ['context', 'duplicate', 'prompt-window', 'eos'];
const STATUS_COUNTED = 0;
const STATUS_CONTEXT = 1;
const STATUS_DUPLICATE = 2;
const STATUS_PROMPT_WINDOW = 3;
const STATUS_EOS = 4;

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

/** Which scheme and key a result is about; no secret, only fingerprints. */
export interface SchemeIdentity {
  scheme: string;
  spec: SchemeSpec;
  keyFingerprint: string;
  masterFingerprint: string;
  tenant?: string;
  nullLaw: NullLaw;
}

export function schemeIdentity(scheme: Scheme): SchemeIdentity {
  return {
    scheme: scheme.spec.scheme,
    spec: scheme.spec as SchemeSpec,
    keyFingerprint: scheme.keyFingerprint,
    masterFingerprint: scheme.masterFingerprint,
    ...(scheme.tenant === undefined ? {} : { tenant: scheme.tenant }),
    nullLaw: scheme.nullLaw,
  };
}

/** The one result type of every detector, whatever the scheme. */
export interface DetectionResult extends SchemeIdentity {
  /** Exact upper-tail p-value of the score sum under the null law. */
  pValue: number;
  log10PValue: number;
  /** (sum − mean) / sd under H0: a convenience, never the test. */
  zScore: number;
  /** Tokens seen, and those that counted. */
  tokens: number;
  scored: number;
  scoreSum: number;
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

function detectOne(ids: ArrayLike<number>, scheme: Scheme, options: DetectOptions): DetectionResult {
  const dedup = options.dedup ?? 'pair';
  if (!['pair', 'context', 'none'].includes(dedup)) {
    fail('E_INVALID_OPTIONS', `dedup must be "pair", "context" or "none"; got ${JSON.stringify(dedup)}`);
  }
  const n = ids.length;
  const h = scheme.contextWidth;
  const wantScores = options.perToken !== false;
  // Per-token state is kept only when entries or windows will read it.
  const track = wantScores || options.window !== false;
  const scores = new Float64Array(track ? n : 0);
  const status = new Uint8Array(track ? n : 0);
  const promptKeys = promptWindows(options.prompt, h);
  const seen = dedup === 'none' ? null : new KeySet64(Math.min(n, 4096));
  const key = new Uint32Array(2);
  const eos = options.eosTokenId;
  let afterEos = false;
  let scored = 0;
  let sum = 0;
  for (let i = 0; i < n; i++) {
    let reason = STATUS_COUNTED;
    let score = 0;
    if (afterEos || ids[i] === eos) {
      afterEos = true;
      reason = STATUS_EOS;
    } else if (i < h) {
      reason = STATUS_CONTEXT;
    } else {
      // Without per-token entries a skipped token's score is never read, so it is not computed.
      if (wantScores) score = scoreAt(scheme, ids, i);
      if (promptKeys !== null && followsPromptWindow(promptKeys, ids, i, h, key))
        reason = STATUS_PROMPT_WINDOW;
      if (reason === STATUS_COUNTED && seen !== null) {
        dedupKey(scheme, ids, i, dedup, key);
        if (!seen.add(key[0], key[1])) reason = STATUS_DUPLICATE;
      }
      if (reason === STATUS_COUNTED) {
        if (!wantScores) score = scoreAt(scheme, ids, i);
        scored++;
        sum += score;
      }
    }
    if (track) {
      status[i] = reason;
      scores[i] = score;
    }
  }
  const tail = nullTail(scheme.nullLaw, sum, scored);
  const offsets = options.offsets;
  return {
    ...schemeIdentity(scheme),
    pValue: tail.p,
    log10PValue: tail.log10p,
    zScore: zScore(scheme.nullLaw, sum, scored),
    tokens: n,
    scored,
    scoreSum: sum,
    dedup,
    bestWindow:
      options.window === false ? null : bestWindow(scheme.nullLaw, scores, status, options, offsets),
    perToken: options.perToken === false ? [] : tokenEntries(ids, scores, status, offsets),
  };
}

function scoreAt(scheme: Scheme, ids: ArrayLike<number>, i: number): number {
  try {
    return scheme.score(ids, i);
  } catch (error) {
    if (error instanceof WatermarkError && error.code === 'E_TOKEN_RANGE') {
      fail(
        'E_TOKEN_RANGE',
        `token id ${ids[i]} at position ${i} is outside the scheme's vocabulary (vocabSize ${scheme.vocabSize})`,
      );
    }
    throw error;
  }
}

/**
 * The key a position is de-duplicated on: what determines its score ('pair') or its seed ('context'), as
 * the scheme defines it. For MinHash and SelfHash that is the winning window token, not the whole window:
 * two windows that share it give equal scores, which must not count twice.
 */
export function dedupKey(
  scheme: Scheme,
  ids: ArrayLike<number>,
  i: number,
  dedup: Dedup,
  out: Uint32Array,
): void {
  const h = scheme.contextWidth;
  if (dedup === 'pair') {
    if (scheme.inputKey) scheme.inputKey(ids, i, out);
    else windowKey(ids, i - h, i + 1, out);
  } else if (scheme.contextKey) {
    scheme.contextKey(ids, i, out);
  } else {
    windowKey(ids, i - h, i, out);
  }
}

/** Exact upper tail of a sum of `scored` scores under the null law. */
export function nullTail(law: NullLaw, sum: number, scored: number): TailProbability {
  if (scored === 0) return { p: 1, log10p: 0 };
  switch (law.kind) {
    case 'bernoulli':
      return binomialUpperTail(Math.round(sum), scored, law.p);
    case 'binomial':
      return binomialUpperTail(Math.round(sum), law.trials * scored, law.p);
    case 'exponential':
      return gammaUpperTail(sum, scored);
  }
}

/** Mean and variance of one score under the null law. */
export function nullMoments(law: NullLaw): { mean: number; variance: number } {
  switch (law.kind) {
    case 'bernoulli':
      return { mean: law.p, variance: law.p * (1 - law.p) };
    case 'binomial':
      return { mean: law.trials * law.p, variance: law.trials * law.p * (1 - law.p) };
    case 'exponential':
      return { mean: 1, variance: 1 };
  }
}

export function zScore(law: NullLaw, sum: number, scored: number): number {
  if (scored === 0) return 0;
  const { mean, variance } = nullMoments(law);
  return (sum - scored * mean) / Math.sqrt(scored * variance);
}

/**
 * The most significant run of consecutive scored tokens, for each window length, over every position.
 * For a fixed length the tail is decreasing in the sum, so the best window of a length is its largest sum.
 * The reported p-value is corrected by Bonferroni over all W windows tried: p_corrected = min(1, W · p),
 * valid whatever the dependence between overlapping windows.
 */
function bestWindow(
  law: NullLaw,
  scores: Float64Array,
  status: Uint8Array,
  options: DetectOptions,
  offsets: DetectOptions['offsets'],
): WindowResult | null {
  const positions = new Int32Array(status.length);
  let m = 0;
  for (let i = 0; i < status.length; i++) if (status[i] === STATUS_COUNTED) positions[m++] = i;
  const requested =
    typeof options.window === 'object' && options.window.sizes ? options.window.sizes : DEFAULT_WINDOW_SIZES;
  for (const size of requested) {
    if (!Number.isInteger(size) || size < 1)
      fail('E_INVALID_OPTIONS', `window sizes must be positive integers; got ${size}`);
  }
  const sizes = requested.filter((size) => size < m);
  if (sizes.length === 0) return null;
  const prefix = new Float64Array(m + 1);
  for (let j = 0; j < m; j++) prefix[j + 1] = prefix[j] + scores[positions[j]];
  let windowsTried = 0;
  let best: { from: number; size: number; sum: number; tail: TailProbability } | null = null;
  for (const size of sizes) {
    windowsTried += m - size + 1;
    let from = 0;
    for (let j = 1; j + size <= m; j++)
      if (prefix[j + size] - prefix[j] > prefix[from + size] - prefix[from]) from = j;
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

function tokenEntries(
  ids: ArrayLike<number>,
  scores: Float64Array,
  status: Uint8Array,
  offsets: DetectOptions['offsets'],
): TokenEntry[] {
  const entries: TokenEntry[] = new Array(ids.length);
  for (let i = 0; i < ids.length; i++) {
    const code = status[i];
    // One object shape for every entry (reason undefined when counted, which JSON omits) keeps this loop fast.
    entries[i] = {
      index: i,
      tokenId: ids[i],
      start: offsets ? offsets.starts[i] : 0,
      end: offsets ? offsets.ends[i] : 0,
      score: code === STATUS_CONTEXT || code === STATUS_EOS ? null : scores[i],
      counted: code === STATUS_COUNTED,
      reason: code === STATUS_COUNTED ? undefined : SKIP_REASONS[code - 1],
    };
  }
  return entries;
}

export { VerifierError };
