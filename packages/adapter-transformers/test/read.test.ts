/**
 * readPredictions on the tiny ONNX causal LM (test/support): the one-pass, teacher-forced read agrees with
 * a slow reference that runs each prefix on its own and takes the argmax (and the sorted log-softmax) of
 * its last row of logits.
 */
import type { PreTrainedModel, Tensor as TensorType } from '@huggingface/transformers';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  expectBadReadsRefused,
  expectChunkedRead,
  expectReadEqualsReference,
  type ReadSubject,
} from '../../watermark/test/support/read-contract';
import { readPredictions } from '../src/index';
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

/** The adapter's reader and its slow reference, for the shared contract checks. */
const subject: ReadSubject = { read: (t, o) => readPredictions(model, t, o), nextLogits };

describe('readPredictions in transformers.js', () => {
  it('top-1 and top-5 of one pass equal the argmax and sorted log-softmax of each prefix run alone', async () => {
    await expectReadEqualsReference(subject, tokens, 5);
  });

  it('chunked: windows overlap by `overlap` tokens of context, each position is read once from its window', async () => {
    await expectChunkedRead(subject, tokens, 8, 3);
  });

  it('rejects ids outside the vocabulary, an empty text and bad options, with one line', async () => {
    await expectBadReadsRefused(subject, tokens, [[65, TINY_VOCAB], [-1], [65, 1.5]], 5000);
  });
});
