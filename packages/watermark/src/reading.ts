import { fail } from './errors';

/**
 * The contract of reading a suspect model with teacher forcing (Sander et al. 2024, open-model setting), shared by
 * the adapters: what a read returns, how a text longer than the model's context is cut into windows, and the
 * checks of its options and tokens. The verifier scores what comes back (its `readingTest`).
 */

/** Options of an adapter's `readPredictions`. */
export interface ReadOptions {
  /** How many of the most likely next tokens to return per position, with their log-probabilities (1 to 20; default 1). */
  topK?: number;
  /** The longest window run in one forward pass. Default: the model's context size. */
  chunk?: number;
  /**
   * Tokens of context that a window after the first repeats from the one before it (run again as context,
   * their predictions not taken again). Default: half the chunk. Must be less than the chunk.
   */
  overlap?: number;
}

/** What an adapter's `readPredictions` returns. */
export interface ReadResult {
  /**
   * `predictions[i]`: the top-1 next-token id after tokens[0..i), for 1 ≤ i ≤ tokens.length (i = tokens.length:
   * the prediction after the whole text); `predictions[0] = -1` (no context). Length tokens.length + 1.
   */
  predictions: Int32Array;
  /** With topK > 1: for each i in 0..tokens.length, the k most likely ids (most likely first), `[i * k + j]`; row 0 is -1. */
  topIds?: Int32Array;
  /** With topK > 1: their natural-log probabilities, `[i * k + j]`; row 0 is NaN. */
  topLogprobs?: Float32Array;
  /** Positions read (tokens.length). */
  positions: number;
  /** Forward passes made (windows run). */
  passes: number;
}

/** The largest `topK` a read accepts. */
export const MAX_READ_TOP_K = 20;

/**
 * The windows [start, end) of a chunked read, and the first token index whose output each keeps: each window
 * after the first starts `overlap` tokens before the first position not read yet (its context), so that every
 * position is read once, with at least `overlap` tokens before it.
 */
export function readWindows(
  length: number,
  chunk: number,
  overlap: number,
): { start: number; end: number; keepFrom: number }[] {
  const windows: { start: number; end: number; keepFrom: number }[] = [];
  let next = 0; // the first token index whose output (the prediction after it) is not read yet
  while (next < length) {
    const start = Math.max(0, next - overlap);
    const end = Math.min(length, start + chunk);
    windows.push({ start, end, keepFrom: next });
    next = end;
  }
  return windows;
}

/** The options with their defaults, checked; `contextSize` undefined: the model states none (any chunk ≥ 2). */
export function readSettings(
  options: ReadOptions,
  contextSize: number | undefined,
  length: number,
): Required<ReadOptions> {
  const { topK = 1, chunk = contextSize ?? Math.max(2, length) } = options;
  if (!Number.isInteger(topK) || topK < 1 || topK > MAX_READ_TOP_K)
    fail('E_INVALID_SPEC', `topK must be an integer from 1 to ${MAX_READ_TOP_K}; got ${topK}`);
  if (!Number.isInteger(chunk) || chunk < 2 || (contextSize !== undefined && chunk > contextSize))
    fail(
      'E_INVALID_SPEC',
      `chunk must be an integer from 2 to the context size (${contextSize ?? 'unbounded'}); got ${chunk}`,
    );
  const { overlap = Math.floor(chunk / 2) } = options;
  if (!Number.isInteger(overlap) || overlap < 0 || overlap >= chunk)
    fail('E_INVALID_SPEC', `overlap must be an integer from 0 to chunk - 1; got ${overlap}`);
  return { topK, chunk, overlap };
}

/** Refuses an empty read and ids outside the vocabulary (`vocabSize` undefined: unknown, only the sign is checked). */
export function checkReadTokens(tokens: readonly number[], vocabSize: number | undefined): void {
  if (tokens.length === 0) fail('E_CONTEXT_TOO_SHORT', 'no tokens to read');
  const vocab = vocabSize ?? Number.MAX_SAFE_INTEGER;
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i];
    if (!Number.isInteger(t) || t < 0 || t >= vocab)
      fail(
        'E_TOKEN_RANGE',
        `token ${t} at index ${i} is not an id of the model's vocabulary (0..${vocabSize === undefined ? '?' : vocab - 1})`,
      );
  }
}
