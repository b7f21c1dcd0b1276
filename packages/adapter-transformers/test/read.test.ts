/**
 * readPredictions on the tiny ONNX causal LM (test/support): the one-pass, teacher-forced read agrees with
 * a slow reference that runs each prefix on its own and takes the argmax (and the sorted log-softmax) of
 * its last row of logits.
 */
import type { PreTrainedModel, Tensor as TensorType } from '@huggingface/transformers';
import { WatermarkError } from '@tracemark/watermark';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { readPredictions, readWindows } from '../src/index';
import { openTinyModel, Tensor, type TinyRuntime } from './support/runtime';
import { TINY_VOCAB } from './support/tiny-model';

let runtime: TinyRuntime;
let model: PreTrainedModel;
const tokens = Array.from(new TextEncoder().encode('Reading a suspect model, token by token.'));

beforeAll(async () => {
  runtime = await openTinyModel();
  model = runtime.model;
});

afterAll(() => runtime?.close());

/** The next-token logits after `prefix`: the last row of a forward pass over the prefix alone. */
async function nextLogits(prefix: readonly number[]): Promise<Float64Array> {
  const n = prefix.length;
  const input_ids = new Tensor('int64', BigInt64Array.from(prefix, BigInt), [1, n]);
  const attention_mask = new Tensor('int64', new BigInt64Array(n).fill(1n), [1, n]);
  const { logits } = (await model({ input_ids, attention_mask })) as { logits: TensorType };
  expect(logits.dims).toEqual([1, n, TINY_VOCAB]);
  return Float64Array.from((logits.data as Float32Array).subarray((n - 1) * TINY_VOCAB));
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

describe('readPredictions in transformers.js', () => {
  it('top-1 and top-5 of one pass equal the argmax and sorted log-softmax of each prefix run alone', async () => {
    const k = 5;
    const read = await readPredictions(model, tokens, { topK: k });
    const top1 = await readPredictions(model, tokens);
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
  });

  it('chunked: windows overlap by `overlap` tokens of context, each position is read once from its window', async () => {
    const chunk = 8;
    const overlap = 3;
    const read = await readPredictions(model, tokens, { chunk, overlap });
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
    // A chunk as long as the text is one pass, the same as the default (the context size, 4096).
    const whole = await readPredictions(model, tokens, { chunk: tokens.length });
    expect(whole.passes).toBe(1);
    expect(whole.predictions).toEqual((await readPredictions(model, tokens)).predictions);
  });

  it('rejects ids outside the vocabulary, an empty text and bad options, with one line', async () => {
    for (const bad of [[65, TINY_VOCAB], [-1], [65, 1.5]]) {
      const error = await readPredictions(model, bad).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(WatermarkError);
      expect((error as WatermarkError).code).toBe('E_TOKEN_RANGE');
      expect((error as Error).message).not.toContain('\n');
    }
    await expect(readPredictions(model, [])).rejects.toThrow(/no tokens/);
    await expect(readPredictions(model, tokens, { topK: 21 })).rejects.toThrow(WatermarkError);
    await expect(readPredictions(model, tokens, { chunk: 5000 })).rejects.toThrow(/context size/);
    await expect(readPredictions(model, tokens, { chunk: 8, overlap: 8 })).rejects.toThrow(/overlap/);
  });
});
