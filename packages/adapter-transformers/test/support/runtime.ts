/**
 * Opens the tiny model in transformers.js, offline (no remote models, a local model folder). Shared by the
 * tests and bench/adapters.ts, which resolves `@huggingface/transformers` through this package.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  AutoModelForCausalLM,
  AutoTokenizer,
  env,
  type PreTrainedModel,
  type PreTrainedTokenizer,
  Tensor,
} from '@huggingface/transformers';
import { WatermarkLogitsProcessor } from '../../src/index';
import { writeTinyModel } from './tiny-model';

export { Tensor, WatermarkLogitsProcessor };

export interface TinyRuntime {
  /** The folder env.localModelPath points at, and the model's own folder in it ('tiny-lm'). */
  root: string;
  dir: string;
  tokenizer: PreTrainedTokenizer;
  model: PreTrainedModel;
  close(): Promise<void>;
}

/** One ONNX Runtime thread: the machines running the tests are shared. */
export const SINGLE_THREAD = { intraOpNumThreads: 1, interOpNumThreads: 1 };

/** `vocab` above 257 widens the output layer (benchmarks); the tokenizer stays byte-level. */
export async function openTinyModel(vocab?: number): Promise<TinyRuntime> {
  const root = mkdtempSync(join(tmpdir(), 'tracemark-tfjs-'));
  const dir = writeTinyModel(root, 'tiny-lm', 1, vocab);
  env.allowRemoteModels = false;
  env.localModelPath = root;
  const tokenizer = await AutoTokenizer.from_pretrained('tiny-lm');
  const model = await AutoModelForCausalLM.from_pretrained('tiny-lm', {
    dtype: 'fp32',
    session_options: SINGLE_THREAD,
  });
  return {
    root,
    dir,
    tokenizer,
    model,
    async close() {
      await model.dispose();
      rmSync(root, { recursive: true, force: true });
    },
  };
}
