/**
 * The contract every adapter's `readPredictions` keeps (packages/watermark/src/reading.ts), checked against a
 * slow reference: the model's full next-token logits after each prefix, evaluated on its own. Each adapter's
 * read test gives its reader, its reference and its bad inputs; the assertions are here, once.
 */
import { expect } from 'vitest';
import { type ReadOptions, type ReadResult, readWindows, WatermarkError } from '../../src/index';

export interface ReadSubject {
  read(tokens: readonly number[], options?: ReadOptions): Promise<ReadResult>;
  /** The full next-token logits after `prefix`, evaluated alone. */
  nextLogits(prefix: readonly number[]): Promise<Float64Array>;
}

export function argmax(row: Float64Array): number {
  let best = 0;
  for (let t = 1; t < row.length; t++) if (row[t] > row[best]) best = t;
  return best;
}

export function logSoftmax(row: Float64Array): Float64Array {
  const max = Math.max(...row);
  let sum = 0;
  for (const x of row) sum += Math.exp(x - max);
  const lse = max + Math.log(sum);
  return row.map((x) => x - lse);
}

/** One pass, top-1 and top-k: the argmax and the sorted log-softmax of each prefix's reference logits. */
export async function expectReadEqualsReference(
  subject: ReadSubject,
  tokens: number[],
  k: number,
): Promise<void> {
  const read = await subject.read(tokens, { topK: k });
  const top1 = await subject.read(tokens);
  expect(read.positions).toBe(tokens.length);
  expect(read.passes).toBe(1);
  expect(read.predictions).toHaveLength(tokens.length + 1);
  expect(read.predictions[0]).toBe(-1);
  expect(top1.topIds).toBeUndefined();
  expect(top1.predictions).toEqual(read.predictions);
  for (let i = 1; i <= tokens.length; i++) {
    const row = await subject.nextLogits(tokens.slice(0, i));
    expect(read.predictions[i]).toBe(argmax(row));
    const logprobs = logSoftmax(row);
    const order = Array.from(logprobs.keys()).sort((a, b) => logprobs[b] - logprobs[a]);
    for (let j = 0; j < k; j++) {
      expect(read.topIds![i * k + j]).toBe(order[j]);
      expect(read.topLogprobs![i * k + j]).toBeCloseTo(logprobs[order[j]], 4);
    }
  }
}

/** Chunked: windows overlap by `overlap` tokens of context, and each position is read once, from its window. */
export async function expectChunkedRead(
  subject: ReadSubject,
  tokens: number[],
  chunk: number,
  overlap: number,
): Promise<void> {
  const read = await subject.read(tokens, { chunk, overlap });
  const windows = readWindows(tokens.length, chunk, overlap);
  expect(read.passes).toBe(windows.length);
  expect(windows.length).toBeGreaterThan(2);
  let covered = 0;
  for (const { start, end, keepFrom } of windows) {
    expect(end - start).toBeLessThanOrEqual(chunk);
    if (start > 0) expect(keepFrom - start).toBe(overlap);
    for (let t = keepFrom; t < end; t++) {
      covered++;
      expect(read.predictions[t + 1]).toBe(argmax(await subject.nextLogits(tokens.slice(start, t + 1))));
    }
  }
  expect(covered).toBe(tokens.length);
  // A chunk as long as the text is one pass, the same as the default.
  const whole = await subject.read(tokens, { chunk: tokens.length });
  expect(whole.passes).toBe(1);
  expect(whole.predictions).toEqual((await subject.read(tokens)).predictions);
}

/** Ids outside the vocabulary, an empty text and bad options: refused, each in one line. */
export async function expectBadReadsRefused(
  subject: ReadSubject,
  tokens: number[],
  badIds: number[][],
  chunkPastContext: number,
): Promise<void> {
  for (const bad of badIds) {
    const error = await subject.read(bad).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(WatermarkError);
    expect((error as WatermarkError).code).toBe('E_TOKEN_RANGE');
    expect((error as Error).message).not.toContain('\n');
  }
  await expect(subject.read([])).rejects.toThrow(/no tokens/);
  await expect(subject.read(tokens, { topK: 21 })).rejects.toThrow(WatermarkError);
  await expect(subject.read(tokens, { chunk: chunkPastContext })).rejects.toThrow(/context size/);
  await expect(subject.read(tokens, { chunk: 8, overlap: 8 })).rejects.toThrow(/overlap/);
}
