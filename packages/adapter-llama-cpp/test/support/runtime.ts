/**
 * Opens the tiny GGUF llama in node-llama-cpp, offline: the prebuilt CPU binary (`gpu: false`,
 * `build: 'never'`), one context of one sequence on one thread. Shared by the tests and
 * bench/adapters.ts, which resolves `node-llama-cpp` through this package.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  getLlama,
  type Llama,
  type LlamaContext,
  type LlamaContextSequence,
  LlamaLogLevel,
  type LlamaModel,
} from 'node-llama-cpp';
import { writeTinyLlama } from './gguf';

export interface TinyLlama {
  llama: Llama;
  model: LlamaModel;
  context: LlamaContext;
  sequence: LlamaContextSequence;
  close(): Promise<void>;
}

/** `vocab` above 259 adds tokens beyond the bytes (benchmarks at a real vocabulary size). */
export async function openTinyLlama(vocab?: number): Promise<TinyLlama> {
  const dir = mkdtempSync(join(tmpdir(), 'tracemark-llama-'));
  const llama = await getLlama({ gpu: false, build: 'never', logLevel: LlamaLogLevel.error });
  const model = await llama.loadModel({ modelPath: writeTinyLlama(join(dir, 'tiny.gguf'), 1, vocab) });
  const context = await model.createContext({ threads: 1, contextSize: 1024, sequences: 1 });
  return {
    llama,
    model,
    context,
    sequence: context.getSequence(),
    async close() {
      await context.dispose();
      await model.dispose();
      await llama.dispose();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
