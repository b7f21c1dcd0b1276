import {
  KeySet64,
  type Scheme,
  type SchemeSpec,
  shortWindowKeyHi,
  shortWindowKeyLo,
  windowKey,
} from '@tracemark/watermark';
import { fail } from './errors';

/**
 * The one counting rule of every test: which positions of a token sequence are scored. Text detection,
 * the radioactivity test, the investigation (owner, controls, tenants, e-process) and the lab all count
 * through `markPositions`; docs/design.md explains each rule.
 *
 * Which repetitions are scored once:
 *  - 'pair' (default): each PRF input once: (window, token) for LeftHash, (winning window token, token) for
 *    MinHash and SelfHash (`Scheme.inputKey`). Repeated text cannot add evidence, and under H0 the scored
 *    inputs are distinct, hence independent.
 *  - 'context': each context seed once (the first token after it), stricter.
 *  - 'none': every token, as most reference detectors do; repeated text then inflates the evidence.
 */
export type Dedup = 'pair' | 'context' | 'none';

/** Fails unless `dedup` is one of the de-duplication rules; returns it. */
export function checkDedup(dedup: unknown): Dedup {
  if (dedup !== 'pair' && dedup !== 'context' && dedup !== 'none') {
    fail('E_INVALID_OPTIONS', `dedup must be "pair", "context" or "none"; got ${JSON.stringify(dedup)}`);
  }
  return dedup;
}

/** Fails unless `token` (at sequence `position`) is an id of a vocabulary of `vocabSize` tokens. */
export function checkTokenId(token: number, position: number, vocabSize: number): void {
  if (!(token >>> 0 === token && token < vocabSize)) {
    fail(
      'E_TOKEN_RANGE',
      `token id ${token} at position ${position} is outside the scheme's vocabulary (vocabSize ${vocabSize})`,
    );
  }
}

/** Why a token did not count. */
export type SkipReason = 'context' | 'duplicate' | 'prompt-window' | 'eos' | 'filtered';

/** Per-position status codes: 0 counted, else 1 + the index of the skip reason in SKIP_REASONS. */
export const SKIP_REASONS: readonly SkipReason[] = [
  'context',
  'duplicate',
  'prompt-window',
  'eos',
  'filtered',
];
export const STATUS_COUNTED = 0;
export const STATUS_CONTEXT = 1;
export const STATUS_DUPLICATE = 2;
export const STATUS_PROMPT_WINDOW = 3;
export const STATUS_EOS = 4;
export const STATUS_FILTERED = 5;

/** Positions that did not count, by reason (end-of-sequence positions are the caller's). */
export interface SkipCounts {
  context: number;
  duplicate: number;
  promptWindow: number;
  filtered: number;
}

/** A sample of a suspect model: the prompt it was given and the tokens it answered. */
export interface SuspectSample {
  prompt: ArrayLike<number>;
  output: ArrayLike<number>;
}

/** Windows of the owner's own watermarked text, and their width in tokens. */
export interface WindowFilter {
  windows: KeySet64;
  width: number;
}

/**
 * The filter of Sander et al. 2024, §4.2: the windows of `width` tokens that occur in the owner's watermarked
 * text. A student model reproduces its training data most faithfully after such windows, so keeping only
 * the tokens that follow one concentrates the evidence. The width may exceed the scheme's context: a
 * longer window picks the contexts that a higher-order student has learnt from the watermarked text
 * itself. Selecting by the preceding window never looks at the scored token, so under H0 the kept scores
 * keep their null law.
 */
export function buildWindowFilter(texts: Iterable<ArrayLike<number>>, width: number): WindowFilter {
  if (!(Number.isInteger(width) && width >= 1))
    fail('E_INVALID_OPTIONS', `filter width must be an integer ≥ 1; got ${width}`);
  const windows = new KeySet64();
  const key = new Uint32Array(2);
  for (const text of texts) {
    for (let end = width; end <= text.length; end++) {
      windowKey(text, end - width, end, key);
      windows.add(key[0], key[1]);
    }
  }
  return { windows, width };
}

/**
 * The context windows of a prompt. A continuation that quotes its prompt reproduces the prompt's (window,
 * token) pairs; if the prompt was watermarked that would pass for evidence, so tokens after such windows
 * are not scored. For h = 0 every context is the empty window, so the prompt's tokens are excluded instead.
 */
export function promptWindows(prompt: ArrayLike<number> | undefined, h: number): KeySet64 | null {
  if (prompt === undefined || prompt.length === 0) return null;
  const keys = new KeySet64(prompt.length);
  const key = new Uint32Array(2);
  for (let j = h; j <= prompt.length - (h === 0 ? 1 : 0); j++) {
    windowKey(prompt, j - h, h === 0 ? j + 1 : j, key);
    keys.add(key[0], key[1]);
  }
  return keys;
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

/**
 * Whether the counted positions are the same for every key of this spec, so that one tape serves the owner,
 * the controls and every tenant. The de-duplication key is then the plain (window, token) pair: LeftHash
 * seeding, or any scheme whose context is at most one token. MinHash and SelfHash with h > 1 de-duplicate on
 * a keyed winner.
 */
export function tapeIsKeyIndependent(spec: SchemeSpec): boolean {
  const hashing = (spec as { hashing?: string }).hashing;
  return hashing === undefined || hashing === 'left' || spec.contextWidth <= 1;
}

/** What decides, beyond the scheme's context, whether a position counts. */
export interface CountingRule {
  dedup: Dedup;
  /** Windows (for h = 0, tokens) of the prompt: tokens after them are not scored. */
  promptKeys: KeySet64 | null;
  filter?: WindowFilter;
  /** The set of keys already counted; shared across the samples of one tape. Null for dedup 'none'. */
  seen: KeySet64 | null;
}

/**
 * Marks positions [from, end) of `ids` (positions before h lack a context): writes each counted position to
 * `counted` (from index 0), each position's status to `status` (indexed by position; optional) and adds the
 * skipped ones to `skipped`; returns how many counted, stopping at `limit`. The one implementation of the
 * counting rule; a window of at most two tokens (h ≤ 1, no prompt, no filter) is keyed in line, in a loop of
 * its own, since the generic call costs as much as the set look-up itself.
 */
export function markPositions(
  ids: Uint32Array,
  from: number,
  end: number,
  scheme: Scheme,
  rule: CountingRule,
  counted: Int32Array,
  status: Uint8Array | null,
  skipped: SkipCounts,
  limit = Number.POSITIVE_INFINITY,
): number {
  const h = scheme.contextWidth;
  const start = Math.min(end, Math.max(from, h));
  skipped.context += start - from;
  if (status !== null) status.fill(STATUS_CONTEXT, from, start);
  const { dedup, promptKeys, filter, seen } = rule;
  let m = 0;
  if (promptKeys === null && filter === undefined && limit === Number.POSITIVE_INFINITY) {
    if (seen === null) {
      for (let i = start; i < end; i++) counted[m++] = i;
      return m;
    }
    const keyLength = dedup === 'pair' ? h + 1 : h;
    const keyEnd = dedup === 'pair' ? 1 : 0;
    const plainKey = dedup === 'pair' ? scheme.inputKey === undefined : scheme.contextKey === undefined;
    if (plainKey && keyLength <= 2) {
      for (let i = start; i < end; i++) {
        const fresh = seen.add(
          shortWindowKeyLo(ids, i + keyEnd, keyLength),
          shortWindowKeyHi(ids, i + keyEnd, keyLength),
        );
        if (fresh) counted[m++] = i;
        else if (status !== null) status[i] = STATUS_DUPLICATE;
      }
      skipped.duplicate += end - start - m;
      return m;
    }
  }
  const key = new Uint32Array(2);
  for (let i = start; i < end && m < limit; i++) {
    if (promptKeys !== null) {
      windowKey(ids, i - h, h === 0 ? i + 1 : i, key);
      if (promptKeys.has(key[0], key[1])) {
        skipped.promptWindow++;
        if (status !== null) status[i] = STATUS_PROMPT_WINDOW;
        continue;
      }
    }
    if (filter !== undefined) {
      let kept = i >= filter.width;
      if (kept) {
        windowKey(ids, i - filter.width, i, key);
        kept = filter.windows.has(key[0], key[1]);
      }
      if (!kept) {
        skipped.filtered++;
        if (status !== null) status[i] = STATUS_FILTERED;
        continue;
      }
    }
    if (seen !== null) {
      dedupKey(scheme, ids, i, dedup, key);
      if (!seen.add(key[0], key[1])) {
        skipped.duplicate++;
        if (status !== null) status[i] = STATUS_DUPLICATE;
        continue;
      }
    }
    counted[m++] = i;
  }
  return m;
}

/** Scores of `ids[positions[j]]` into `out[j]`, through the scheme's batched scorer where it has one. */
export function scorePositions(
  scheme: Scheme,
  ids: Uint32Array,
  positions: Int32Array,
  count: number,
  out: Float64Array,
): void {
  if (scheme.scoreMany) scheme.scoreMany(ids, positions, count, out);
  else for (let j = 0; j < count; j++) out[j] = scheme.score(ids, positions[j]);
}

export interface TapeOptions {
  /** The scheme whose counting rule the tape follows (its key matters only where the rule is keyed). */
  scheme: Scheme;
  filter?: WindowFilter;
  /** De-duplicate on the PRF input across the whole tape (default); off only to show the trap. */
  dedup?: boolean;
  /** Drop windows of each sample's own prompt (default). */
  dropPromptWindows?: boolean;
  /** Stop counting after this many positions. */
  limit?: number;
}

export interface TapeCounts {
  /** Output tokens looked at, and those that counted. */
  seen: number;
  scored: number;
  skipped: SkipCounts;
  samples: number;
}

/**
 * The counted positions of a suspect's samples as one tape: each sample's output is read in the context of
 * its prompt, windows of its own prompt are dropped, the optional owner-text filter applies, and each PRF
 * input counts once across the whole tape (`markPositions`). Each counted position's window and token
 * (h + 1 ids) are stored, so that the tape can be scored under any key for which its counting is valid:
 * every key of the spec when `keyIndependent`, else only the tape's own scheme.
 */
export class CountedTape {
  readonly scheme: Scheme;
  readonly contextWidth: number;
  readonly stride: number;
  /** Whether every key of the scheme's spec counts these very positions (see `tapeIsKeyIndependent`). */
  readonly keyIndependent: boolean;
  readonly #rule: CountingRule;
  readonly #dropPromptWindows: boolean;
  readonly #limit: number;
  #ids = new Uint32Array(1024);
  #length = 0;
  #sequence = new Uint32Array(256);
  #counted = new Int32Array(256);
  readonly counts: TapeCounts = {
    seen: 0,
    scored: 0,
    skipped: { context: 0, duplicate: 0, promptWindow: 0, filtered: 0 },
    samples: 0,
  };

  constructor(options: TapeOptions) {
    const { scheme } = options;
    this.scheme = scheme;
    this.contextWidth = scheme.contextWidth;
    this.stride = scheme.contextWidth + 1;
    const dedup = options.dedup ?? true;
    this.keyIndependent = !dedup || tapeIsKeyIndependent(scheme.spec as SchemeSpec);
    this.#rule = {
      dedup: dedup ? 'pair' : 'none',
      promptKeys: null,
      filter: options.filter,
      seen: dedup ? new KeySet64() : null,
    };
    this.#dropPromptWindows = options.dropPromptWindows ?? true;
    const limit = options.limit ?? Number.POSITIVE_INFINITY;
    if (!(limit >= 0)) fail('E_INVALID_OPTIONS', `the tape's limit must be ≥ 0; got ${limit}`);
    this.#limit = limit;
  }

  /** Counted positions so far. */
  get length(): number {
    return this.counts.scored;
  }

  /** The flat tape: position j's window and token are ids[j·stride .. (j + 1)·stride). */
  get ids(): Uint32Array {
    return this.#ids.subarray(0, this.#length);
  }

  /** Appends one sample's counted positions; returns how many it added. */
  add(sample: SuspectSample): number {
    const { prompt, output } = sample;
    const counts = this.counts;
    counts.samples++;
    const left = this.#limit - counts.scored;
    if (left <= 0) return 0;
    const n = prompt.length + output.length;
    if (this.#sequence.length < n) this.#sequence = new Uint32Array(Math.max(n, 2 * this.#sequence.length));
    if (this.#counted.length < n) this.#counted = new Int32Array(Math.max(n, 2 * this.#counted.length));
    const sequence = this.#sequence;
    // The output is read in the context of its prompt: the first tokens' windows reach into it.
    for (let i = 0; i < prompt.length; i++) sequence[i] = prompt[i];
    for (let i = 0; i < output.length; i++) sequence[prompt.length + i] = output[i];
    this.#rule.promptKeys = this.#dropPromptWindows ? promptWindows(prompt, this.contextWidth) : null;
    const m = markPositions(
      sequence,
      prompt.length,
      n,
      this.scheme,
      this.#rule,
      this.#counted,
      null,
      counts.skipped,
      left,
    );
    // Stopped at the limit, the scan looked at the tokens up to the last one it counted.
    counts.seen += m === left && m > 0 ? this.#counted[m - 1] - prompt.length + 1 : output.length;
    this.#reserve(m * this.stride);
    // Each counted position's window and token, copied in a plain loop: a subarray per position would
    // allocate an object per token.
    const h = this.contextWidth;
    const ids = this.#ids;
    const counted = this.#counted;
    let at = this.#length;
    for (let j = 0; j < m; j++) {
      for (let i = counted[j] - h, end = counted[j] + 1; i < end; i++) ids[at++] = sequence[i];
    }
    this.#length = at;
    counts.scored += m;
    return m;
  }

  #reserve(more: number): void {
    if (this.#length + more <= this.#ids.length) return;
    const grown = new Uint32Array(Math.max(2 * this.#ids.length, this.#length + more));
    grown.set(this.#ids.subarray(0, this.#length));
    this.#ids = grown;
  }

  /** Score of counted position j under `scheme`. */
  scoreAt(scheme: Scheme, j: number): number {
    return scheme.score(this.#ids, j * this.stride + this.contextWidth);
  }

  /** Every counted position's score under `scheme`, in tape order. */
  scores(scheme: Scheme): Float64Array {
    this.#check(scheme);
    const count = this.counts.scored;
    const positions = new Int32Array(count);
    for (let j = 0; j < count; j++) positions[j] = j * this.stride + this.contextWidth;
    const out = new Float64Array(count);
    scorePositions(scheme, this.#ids, positions, count, out);
    return out;
  }

  /** Sum of the scores of positions [from, to) under `scheme` (every position by default), in tape order. */
  scoreSum(scheme: Scheme, from = 0, to = this.counts.scored): number {
    this.#check(scheme);
    const ids = this.#ids;
    const stride = this.stride;
    let sum = 0;
    for (let index = from * stride + this.contextWidth, end = to * stride; index < end; index += stride) {
      sum += scheme.score(ids, index);
    }
    return sum;
  }

  /** Whether `scheme` may be scored on this tape: the same context width, and a key the counting holds for. */
  validFor(scheme: Scheme): boolean {
    return (
      scheme.contextWidth === this.contextWidth &&
      (scheme === this.scheme ||
        (this.keyIndependent &&
          scheme.spec.scheme === this.scheme.spec.scheme &&
          sameSpec(scheme, this.scheme)))
    );
  }

  #check(scheme: Scheme): void {
    if (scheme.contextWidth !== this.contextWidth) {
      fail(
        'E_INVALID_OPTIONS',
        `the scheme's context width ${scheme.contextWidth} is not the tape's ${this.contextWidth}`,
      );
    }
    if (!this.validFor(scheme)) {
      fail('E_INVALID_OPTIONS', 'this tape was de-duplicated under another key; build one per key');
    }
  }
}

function sameSpec(a: Scheme, b: Scheme): boolean {
  return JSON.stringify(a.spec) === JSON.stringify(b.spec);
}
