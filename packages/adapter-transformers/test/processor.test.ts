/**
 * The processor in a real transformers.js runtime (ONNX Runtime on the CPU), offline: a tiny one-layer
 * transformer is written as ONNX at test time, loaded from a local folder, generated from with the
 * processor (batches through `model.generate`, one text through the `text-generation` pipeline) and the
 * output detected with the verifier.
 */
import { join } from 'node:path';
import {
  type PreTrainedModel,
  type PreTrainedTokenizer,
  pipeline,
  type Tensor,
  type TextGenerationPipeline,
} from '@huggingface/transformers';
import { detectText, detectTokens, loadTokenizer } from '@tracemark/verifier';
import { createScheme, MasterKey, WatermarkError } from '@tracemark/watermark';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { WatermarkLogitsProcessor } from '../src/index';
import { openTinyModel, SINGLE_THREAD, type TinyRuntime } from './support/runtime';
import { TINY_VOCAB } from './support/tiny-model';

const NEW_TOKENS = 200;
const key = MasterKey.parse('7'.repeat(64));
const PROMPTS = ['The watermark test begins here:', 'Hi'];

let runtime: TinyRuntime;
let tokenizer: PreTrainedTokenizer;
let model: PreTrainedModel;

beforeAll(async () => {
  runtime = await openTinyModel();
  ({ tokenizer, model } = runtime);
});

afterAll(() => runtime?.close());

/** Generates for PROMPTS as one left-padded batch; returns each row's prompt (with padding) and new ids. */
async function generateBatch(options: Record<string, unknown>) {
  const inputs = tokenizer(PROMPTS, { padding: true });
  const width = (inputs.input_ids as Tensor).dims[1];
  const out = (await model.generate({ ...inputs, max_new_tokens: NEW_TOKENS, ...options })) as Tensor;
  return (out.tolist() as bigint[][]).map((row) => {
    const ids = row.map(Number);
    return { prompt: ids.slice(0, width), generated: ids.slice(width), all: ids };
  });
}

describe('WatermarkLogitsProcessor in transformers.js', () => {
  it('KGW biases every row of a sampled batch: detected, while the same model without it is not', async () => {
    const scheme = createScheme({ scheme: 'kgw', vocabSize: TINY_VOCAB, gamma: 0.25, delta: 2 }, key);
    const processor = new WatermarkLogitsProcessor(scheme);
    const rows = await generateBatch({ do_sample: true, top_k: 0, logits_processor: [processor] });
    expect(processor.steps).toBe(NEW_TOKENS * PROMPTS.length);
    for (const { prompt, generated, all } of rows) {
      expect(generated).toHaveLength(NEW_TOKENS);
      const result = detectTokens(all, { scheme, prompt, perToken: false });
      expect(result.scored).toBeGreaterThan(100);
      expect(result.pValue).toBeLessThan(1e-6);
    }
    for (const { prompt, all } of await generateBatch({ do_sample: true, top_k: 0 })) {
      expect(detectTokens(all, { scheme, prompt, perToken: false }).pValue).toBeGreaterThan(1e-4);
    }
  });

  it('SynthID chooses the token of every row and masks the rest (greedy generate): detected', async () => {
    const scheme = createScheme({ scheme: 'synthid', vocabSize: TINY_VOCAB, depth: 30 }, key);
    const processor = new WatermarkLogitsProcessor(scheme, { seed: 'synthid-test' });
    const rows = await generateBatch({ do_sample: false, logits_processor: [processor] });
    expect(processor.watermarkedSteps).toBeGreaterThan(0.9 * NEW_TOKENS * PROMPTS.length);
    for (const { prompt, all } of rows) {
      const result = detectTokens(all, { scheme, prompt, perToken: false });
      expect(result.pValue).toBeLessThan(1e-6);
    }
    // The control goes through the processor too (plain sampling by the session): not detected.
    const control = new WatermarkLogitsProcessor(scheme, { seed: 'control', watermark: false });
    for (const { prompt, all } of await generateBatch({ do_sample: false, logits_processor: [control] })) {
      expect(detectTokens(all, { scheme, prompt, perToken: false }).pValue).toBeGreaterThan(1e-4);
    }
  });

  it('Gumbel-max through the text-generation pipeline: the text is detected from its tokenizer.json', async () => {
    const scheme = createScheme({ scheme: 'gumbel', vocabSize: TINY_VOCAB }, key);
    const generator = (await pipeline('text-generation', 'tiny-lm', {
      dtype: 'fp32',
      session_options: SINGLE_THREAD,
    })) as TextGenerationPipeline;
    const processor = new WatermarkLogitsProcessor(scheme, { seed: 'pipeline' });
    const prompt = 'Once upon a time';
    // Pipelines forward extra options to generate(); `logits_processor` is not in their option type, so
    // the options are passed as a variable (no excess-property check) rather than a literal.
    const options = {
      max_new_tokens: NEW_TOKENS,
      do_sample: false,
      return_full_text: false,
      logits_processor: [processor],
    };
    const [output] = (await generator(prompt, options)) as { generated_text: string }[];
    await generator.dispose();
    const text = output.generated_text;
    expect(text).toHaveLength(NEW_TOKENS); // one byte per token, printable ASCII
    const verifierTokenizer = await loadTokenizer(join(runtime.dir, 'tokenizer.json'));
    const result = detectText(text, { scheme, tokenizer: verifierTokenizer, prompt, perToken: false });
    expect(result.pValue).toBeLessThan(1e-6);
  });

  it('refuses logits whose width is not the scheme vocabulary', async () => {
    const scheme = createScheme({ scheme: 'kgw', vocabSize: 1000 }, key);
    const processor = new WatermarkLogitsProcessor(scheme);
    await expect(generateBatch({ logits_processor: [processor] })).rejects.toThrow(WatermarkError);
    expect(() => new WatermarkLogitsProcessor(scheme, { sampling: { topK: 5 } })).toThrow(/distortion-free/);
  });
});
