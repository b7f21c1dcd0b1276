/**
 * The adapter in a real node-llama-cpp runtime (llama.cpp's prebuilt CPU binary), offline: a tiny random
 * one-layer llama is written as GGUF at test time, loaded with `getLlama({ gpu: false, build: 'never' })`,
 * generated from with each kind of scheme, and the tokens detected with the verifier.
 */
import { detectTokens } from '@tracemark/verifier';
import { createScheme, MasterKey, type Scheme, WatermarkError } from '@tracemark/watermark';
import type { LlamaContextSequence, LlamaModel } from 'node-llama-cpp';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateWatermarked, type WatermarkedGeneration } from '../src/index';
import { TINY_BOS, TINY_VOCAB } from './support/gguf';
import { openTinyLlama, type TinyLlama } from './support/runtime';

const NEW_TOKENS = 200;
const key = MasterKey.parse('5'.repeat(64));

let runtime: TinyLlama;
let model: LlamaModel;
let sequence: LlamaContextSequence;

beforeAll(async () => {
  runtime = await openTinyLlama();
  ({ model, sequence } = runtime);
});

afterAll(() => runtime?.close());

const prompt = () => [TINY_BOS, ...model.tokenize('The watermark test begins here:')];

/** Runs a generation to its end; `evaluated` is what the sequence evaluated (all but the last token). */
async function run(generation: WatermarkedGeneration) {
  for await (const _ of generation);
  const evaluated = sequence.contextTokens;
  await sequence.clearHistory();
  return Object.assign(generation, { evaluated });
}

function detect(scheme: Scheme, generation: WatermarkedGeneration) {
  const { tokens, promptLength } = generation;
  return detectTokens(tokens, { scheme, prompt: tokens.slice(0, promptLength), perToken: false });
}

describe('generateWatermarked in node-llama-cpp', () => {
  it('KGW through the tokenBias function: detected, while the control is not', async () => {
    const scheme = createScheme({ scheme: 'kgw', vocabSize: TINY_VOCAB, gamma: 0.25, delta: 2 }, key);
    const options = { maxTokens: NEW_TOKENS, temperature: 1, seed: 7 };
    const marked = await run(generateWatermarked(sequence, scheme, prompt(), options));
    expect(marked.generated).toHaveLength(NEW_TOKENS);
    expect(marked.watermarkedSteps).toBe(NEW_TOKENS);
    expect(detect(scheme, marked).pValue).toBeLessThan(1e-6);
    const control = await run(
      generateWatermarked(sequence, scheme, prompt(), { ...options, watermark: false }),
    );
    expect(control.generated).toHaveLength(NEW_TOKENS);
    expect(detect(scheme, control).pValue).toBeGreaterThan(1e-4);
  });

  it('KGW on the top-40 candidates of the probabilities route: detected', async () => {
    const scheme = createScheme({ scheme: 'kgw', vocabSize: TINY_VOCAB, gamma: 0.25, delta: 2 }, key);
    const options = { maxTokens: NEW_TOKENS, topK: 40, route: 'probabilities', samplingSeed: 3 } as const;
    const marked = await run(generateWatermarked(sequence, scheme, prompt(), options));
    expect(marked.evaluated).toEqual(marked.tokens.slice(0, -1));
    expect(marked.watermarkedSteps).toBe(NEW_TOKENS);
    expect(detect(scheme, marked).pValue).toBeLessThan(1e-6);
  });

  it('Gumbel-max from evaluateWithMetadata probabilities, the token passed back: detected', async () => {
    const scheme = createScheme({ scheme: 'gumbel', vocabSize: TINY_VOCAB }, key);
    const generation = await run(
      generateWatermarked(sequence, scheme, prompt(), { maxTokens: NEW_TOKENS, samplingSeed: 1 }),
    );
    expect(generation.generated).toHaveLength(NEW_TOKENS);
    // llama.cpp evaluated the tokens the scheme chose, not its own samples.
    expect(generation.evaluated).toEqual(generation.tokens.slice(0, -1));
    expect(generation.watermarkedSteps).toBeGreaterThan(0.9 * NEW_TOKENS);
    expect(detect(scheme, generation).pValue).toBeLessThan(1e-6);
  });

  it('SynthID at temperature 0.8: detected; its control through the same path is not', async () => {
    const scheme = createScheme({ scheme: 'synthid', vocabSize: TINY_VOCAB, depth: 30 }, key);
    const options = { maxTokens: NEW_TOKENS, temperature: 0.8, samplingSeed: 2 };
    const marked = await run(generateWatermarked(sequence, scheme, prompt(), options));
    expect(detect(scheme, marked).pValue).toBeLessThan(1e-6);
    const control = await run(
      generateWatermarked(sequence, scheme, prompt(), { ...options, watermark: false }),
    );
    expect(control.generated).toHaveLength(NEW_TOKENS);
    expect(detect(scheme, control).pValue).toBeGreaterThan(1e-4);
  });

  it('refuses a scheme of another vocabulary size, and greedy decoding for distortion-free schemes', () => {
    const wrong = createScheme({ scheme: 'kgw', vocabSize: 32_000 }, key);
    expect(() => generateWatermarked(sequence, wrong, prompt())).toThrow(WatermarkError);
    const gumbel = createScheme({ scheme: 'gumbel', vocabSize: TINY_VOCAB }, key);
    expect(() => generateWatermarked(sequence, gumbel, prompt(), { temperature: 0 })).toThrow(/temperature/);
  });
});
