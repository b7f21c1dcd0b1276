/**
 * readPredictions on the tiny GGUF llama (test/support): the batched, teacher-forced read agrees with a slow
 * reference that evaluates each prefix on its own and takes the argmax (and the sorted log-softmax) of the
 * full next-token logits.
 */
import { WatermarkError } from '@tracemark/watermark';
import type { LlamaContextSequence, Token } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readPredictions, readWindows } from '../src/index';
import { TINY_BOS, TINY_VOCAB } from './support/gguf';
import { openTinyLlama, type TinyLlama } from './support/runtime';

let runtime: TinyLlama;
let sequence: LlamaContextSequence;
let tokens: number[];

beforeAll(async () => {
  runtime = await openTinyLlama();
  sequence = runtime.sequence;
  tokens = [TINY_BOS, ...runtime.model.tokenize('Reading a suspect model, token by token.')];
});

afterAll(() => runtime?.close());

/** The next-token logits after `prefix`, evaluated alone on a cleared sequence. */
async function nextLogits(prefix: readonly number[]): Promise<Float64Array> {
  await sequence.clearHistory();
  const input = prefix.map((t, i) =>
    i === prefix.length - 1 ? ([t as Token, { generateNext: { logits: true } }] as const) : (t as Token),
  );
  const outputs = await sequence.controlledEvaluate(
    input as Parameters<LlamaContextSequence['controlledEvaluate']>[0],
  );
  await sequence.clearHistory();
  const logits = outputs[prefix.length - 1]?.next.logits;
  if (logits === undefined) throw new Error('no logits');
  const row = new Float64Array(TINY_VOCAB).fill(Number.NEGATIVE_INFINITY);
  for (const [token, logit] of logits) row[token] = logit;
  return row;
}

function argmax(row: Float64Array): number {
  let best = 0;
  for (let t = 1; t < row.length; t++) if (row[t] > row[best]) best = t;
  return best;
}

function logSoftmax(row: Float64Array): Float64Array {
  const max = Math.max(...row);
  let sum = 0;
  for (const x of row) sum += Math.exp(x - max);
  const lse = max + Math.log(sum);
  return row.map((x) => x - lse);
}

describe('readPredictions in node-llama-cpp', () => {
  it('top-1 and top-5 of one pass equal the argmax and sorted log-softmax of each prefix evaluated alone', async () => {
    const k = 5;
    const read = await readPredictions(sequence, tokens, { topK: k });
    const top1 = await readPredictions(sequence, tokens);
    expect(read.positions).toBe(tokens.length);
    expect(read.passes).toBe(1);
    expect(read.predictions).toHaveLength(tokens.length + 1);
    expect(read.predictions[0]).toBe(-1);
    expect(top1.topIds).toBeUndefined();
    expect(top1.predictions).toEqual(read.predictions);
    for (let i = 1; i <= tokens.length; i++) {
      const row = await nextLogits(tokens.slice(0, i));
      expect(read.predictions[i]).toBe(argmax(row));
      const logprobs = logSoftmax(row);
      const order = Array.from(logprobs.keys()).sort((a, b) => logprobs[b] - logprobs[a]);
      for (let j = 0; j < k; j++) {
        expect(read.topIds![i * k + j]).toBe(order[j]);
        expect(read.topLogprobs![i * k + j]).toBeCloseTo(logprobs[order[j]], 4);
      }
    }
    expect(sequence.contextTokens).toEqual([]);
  });

  it('chunked: windows overlap by `overlap` tokens of context, each position is read once from its window', async () => {
    const chunk = 8;
    const overlap = 3;
    const read = await readPredictions(sequence, tokens, { chunk, overlap });
    const windows = readWindows(tokens.length, chunk, overlap);
    expect(read.passes).toBe(windows.length);
    expect(windows.length).toBeGreaterThan(2);
    let covered = 0;
    for (const { start, end, keepFrom } of windows) {
      expect(end - start).toBeLessThanOrEqual(chunk);
      if (start > 0) expect(keepFrom - start).toBe(overlap);
      for (let t = keepFrom; t < end; t++) {
        covered++;
        expect(read.predictions[t + 1]).toBe(argmax(await nextLogits(tokens.slice(start, t + 1))));
      }
    }
    expect(covered).toBe(tokens.length);
    // A chunk as long as the text is one pass, the same as the default.
    const whole = await readPredictions(sequence, tokens, { chunk: tokens.length });
    expect(whole.passes).toBe(1);
    expect(whole.predictions).toEqual((await readPredictions(sequence, tokens)).predictions);
  });

  it('a text longer than the context is read in windows of the context size by default', async () => {
    const small = await runtime.model.createContext({ threads: 1, contextSize: 64, sequences: 1 });
    try {
      const short = small.getSequence();
      const size = short.contextSize;
      const long = [TINY_BOS];
      while (long.length < size + size / 2) long.push(...runtime.model.tokenize(' the suspect text goes on'));
      const read = await readPredictions(short, long);
      const windows = readWindows(long.length, size, Math.floor(size / 2));
      expect(windows.length).toBeGreaterThan(1);
      expect(read.passes).toBe(windows.length);
      const { start, end } = windows[windows.length - 1];
      for (const t of [end - 3, end - 2, end - 1]) {
        expect(read.predictions[t + 1]).toBe(argmax(await nextLogits(long.slice(start, t + 1))));
      }
    } finally {
      await small.dispose();
    }
  });

  it('rejects ids outside the vocabulary, an empty text and bad options, with one line', async () => {
    for (const bad of [[TINY_BOS, TINY_VOCAB], [-1], [TINY_BOS, 1.5]]) {
      const error = await readPredictions(sequence, bad).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(WatermarkError);
      expect((error as WatermarkError).code).toBe('E_TOKEN_RANGE');
      expect((error as Error).message).not.toContain('\n');
    }
    await expect(readPredictions(sequence, [])).rejects.toThrow(/no tokens/);
    await expect(readPredictions(sequence, tokens, { topK: 21 })).rejects.toThrow(WatermarkError);
    await expect(readPredictions(sequence, tokens, { chunk: 4096 })).rejects.toThrow(/context size/);
    await expect(readPredictions(sequence, tokens, { chunk: 8, overlap: 8 })).rejects.toThrow(/overlap/);
  });
});
