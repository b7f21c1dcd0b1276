import type { NgramModel } from '@tracemark/ngram';
import { StreamDecoder, type TokenBytes } from './text';

/**
 * Reading mode (Sander et al. 2024, open-model test): a prompt scored with teacher forcing, as vLLM and llama.cpp's
 * server answer `echo: true, max_tokens: 0, logprobs: k` on the legacy completions API. Every logprob is the
 * model's own distribution at temperature 1 (natural log), never a watermarked one.
 */

/** vLLM's floor for a logprob JSON cannot carry (a token the model never saw has probability 0). */
export const LOGPROB_FLOOR = -9999;

export interface PromptReading {
  /** The prompt's text: its tokens' UTF-8 bytes decoded (U+FFFD for bytes that form no character). */
  text: string;
  ids: number[];
  /** null first (no prediction for the first token); then log p(ids[i] | ids[<i]). */
  logprobs: (number | null)[];
  /** null first; then the k most likely next ids, most likely first, with their logprobs. */
  top: ({ id: number; logprob: number }[] | null)[];
  /** UTF-16 offset in `text` where each token's characters start. */
  textOffset: number[];
}

export interface ReadHooks {
  /** Checked every few milliseconds: true stops the reading (client gone, server shutting down). */
  aborted?: () => boolean;
}

const floor = (x: number) => Math.max(x, LOGPROB_FLOOR);

/**
 * Scores `prompts` with the model, each from its start; yields to the event loop every few milliseconds (as
 * generation does) so that a long prompt never blocks other requests. Returns null when `aborted` stopped it.
 */
export async function readPrompts(
  model: NgramModel,
  prompts: number[][],
  k: number | null,
  bytes: TokenBytes,
  hooks: ReadHooks = {},
): Promise<PromptReading[] | null> {
  const topIds = new Int32Array(Math.max(1, k ?? 0));
  const topLogits = new Float32Array(Math.max(1, k ?? 0));
  const readings: PromptReading[] = [];
  let lastYield = performance.now();
  for (const ids of prompts) {
    const sequence = Int32Array.from(ids);
    const decoder = new StreamDecoder(bytes);
    let text = '';
    const textOffset: number[] = [];
    for (const id of ids) {
      textOffset.push(text.length);
      text += decoder.push(id);
    }
    text += decoder.flush();
    const logprobs: (number | null)[] = [];
    const top: ({ id: number; logprob: number }[] | null)[] = [];
    if (k !== null) {
      for (let i = 0; i < ids.length; i++) {
        if (i === 0) {
          logprobs.push(null);
          top.push(null);
          continue;
        }
        const context = sequence.subarray(0, i);
        logprobs.push(floor(model.logProb(context, ids[i])));
        const entries: { id: number; logprob: number }[] = [];
        if (k > 0) {
          // topCandidates ranks on float logits; the logprobs themselves are the exact ones of logProb.
          const found = model.topCandidates(context, k, topIds, topLogits);
          for (let j = 0; j < found; j++)
            entries.push({ id: topIds[j], logprob: floor(model.logProb(context, topIds[j])) });
        }
        top.push(entries);
        if (performance.now() - lastYield > 8) {
          if (hooks.aborted?.()) return null;
          await new Promise((resolve) => setImmediate(resolve));
          lastYield = performance.now();
        }
      }
    }
    readings.push({ text, ids, logprobs, top, textOffset });
  }
  return readings;
}
