/**
 * readPredictions on the tiny GGUF llama (test/support): the batched, teacher-forced read agrees with a slow
 * reference that evaluates each prefix on its own and takes the argmax (and the sorted log-softmax) of the
 * full next-token logits (the shared contract checks of packages/watermark/test/support/read-contract.ts).
 */
import type { LlamaContextSequence, Token } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  argmax,
  expectBadReadsRefused,
  expectChunkedRead,
  expectReadEqualsReference,
  type ReadSubject,
} from '../../watermark/test/support/read-contract';
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

/** The adapter's reader and its slow reference, for the shared contract checks. */
const subject: ReadSubject = { read: (t, o) => readPredictions(sequence, t, o), nextLogits };

describe('readPredictions in node-llama-cpp', () => {
  it('top-1 and top-5 of one pass equal the argmax and sorted log-softmax of each prefix evaluated alone', async () => {
    await expectReadEqualsReference(subject, tokens, 5);
    expect(sequence.contextTokens).toEqual([]);
  });

  it('chunked: windows overlap by `overlap` tokens of context, each position is read once from its window', async () => {
    await expectChunkedRead(subject, tokens, 8, 3);
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
    await expectBadReadsRefused(subject, tokens, [[TINY_BOS, TINY_VOCAB], [-1], [TINY_BOS, 1.5]], 4096);
  });
});
