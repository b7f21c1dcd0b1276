import { KeySet64, type Scheme, windowKey } from '@tracemark/watermark';
import { fail } from './errors';
import { type RadioactivityOptions, type RadioactivityResult, radioactivityTape } from './radioactivity';
import type { CountedTape, SuspectSample } from './tape';

/**
 * The open-model ("reading mode") radioactivity test of Sander et al. 2024 ("Watermarking Makes Language
 * Models Radioactive", NeurIPS, §4, open-model setting): the suspect reads the owner's watermarked texts with
 * teacher forcing, and its most likely next token after each prefix is scored with the owner's key as if the
 * suspect had written it after that prefix's window.
 *
 * Each prediction becomes a one-token sample whose prompt is its window, and the samples go on the one counted
 * tape of the closed test (`CountedTape`): each (window, predicted token) PRF input counts once across every
 * text. One rule is added, for what the null law cannot cover: a position whose window already occurred earlier
 * in the same text is dropped. The earlier occurrence was followed by a token the watermark chose from that
 * window's green list, which the suspect has just read; a model that copies from its context (an LLM's
 * induction heads, an n-gram that saw the pattern) would predict it again and look radioactive without ever
 * having been trained on watermarked text. A first occurrence has no such token before it, so a model that was
 * not trained on the owner's outputs predicts independently of the window's green list, and the scores keep the
 * scheme's null law exactly.
 */

/** An owner text and the suspect's predictions: `predictions[i]` is its top-1 token after `tokens[0..i)`. */
export interface ReadText {
  tokens: ArrayLike<number>;
  /** One per position i ≥ 0 (the entry at i = tokens.length, after the whole text, may be present); −1: unknown. */
  predictions: ArrayLike<number>;
}

/** Why read positions did not become samples (the tape then counts its own skips: duplicates). */
export interface ReadingSkips {
  /** Positions before the first full window. */
  context: number;
  /** Windows already read earlier in the same text. */
  repeatedWindow: number;
  /** Positions the suspect gave no prediction for (an endpoint returned fewer positions than sent). */
  missing: number;
}

export interface ReadingSamples {
  samples: SuspectSample[];
  /** Positions read, over all texts. */
  positions: number;
  skipped: ReadingSkips;
  texts: number;
}

/** The samples of the reading-mode test: (window, prediction) for each scorable position of each text. */
export function readingSamples(texts: readonly ReadText[], scheme: Scheme): ReadingSamples {
  if (!Array.isArray(texts)) fail('E_INVALID_OPTIONS', 'texts must be an array of { tokens, predictions }');
  const h = scheme.contextWidth;
  // With no window (Unigram) every position shares the green list the text was written with: after its first
  // token, a reader has always seen watermarked choices from that very list, so no position is left to score.
  if (h === 0)
    fail(
      'E_INVALID_OPTIONS',
      'reading mode needs a context window (h ≥ 1): under the Unigram watermark every position of a watermarked text shares the green list',
    );
  const skipped: ReadingSkips = { context: 0, repeatedWindow: 0, missing: 0 };
  const samples: SuspectSample[] = [];
  const key = new Uint32Array(2);
  let positions = 0;
  for (const { tokens, predictions } of texts) {
    const n = Math.min(tokens.length + 1, predictions.length);
    positions += n;
    skipped.context += Math.min(n, h);
    const read = new KeySet64(64);
    const ids = Uint32Array.from(tokens as ArrayLike<number>);
    for (let i = h; i < n; i++) {
      // The window as the PRF sees it (MinHash and longer SelfHash windows key on more than the raw tokens).
      if (scheme.contextKey) scheme.contextKey(ids, i, key);
      else windowKey(ids, i - h, i, key);
      const first = read.add(key[0], key[1]);
      const predicted = predictions[i];
      if (!(Number.isInteger(predicted) && predicted >= 0)) {
        skipped.missing++;
        continue;
      }
      if (!first) {
        skipped.repeatedWindow++;
        continue;
      }
      samples.push({ prompt: ids.subarray(i - h, i), output: [predicted] });
    }
  }
  return { samples, positions, skipped, texts: texts.length };
}

export interface ReadingResult extends RadioactivityResult {
  mode: 'read';
  /** Owner texts read, positions read, and the positions the reading rule dropped before the tape. */
  texts: number;
  positions: number;
  reading: ReadingSkips;
}

/** The reading-mode test: exact under the scheme's null law, as the closed test (see the file's comment). */
export function readingTest(
  texts: readonly ReadText[],
  options: Omit<RadioactivityOptions, 'filter' | 'dropPromptWindows'>,
): ReadingResult {
  return readingTape(texts, options).result;
}

/** The reading-mode test and its tape, for callers that score the tape under other keys (controls, tenants). */
export function readingTape(
  texts: readonly ReadText[],
  options: Omit<RadioactivityOptions, 'filter' | 'dropPromptWindows'>,
): { tape: CountedTape; scores: Float64Array; result: ReadingResult } {
  const read = readingSamples(texts, options.scheme);
  // The prompt of a reading sample is its own window: dropping prompt windows would drop every sample.
  const { tape, scores, result } = radioactivityTape(read.samples, { ...options, dropPromptWindows: false });
  return {
    tape,
    scores,
    result: { ...result, mode: 'read', texts: read.texts, positions: read.positions, reading: read.skipped },
  };
}
