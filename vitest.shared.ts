import { fileURLToPath } from 'node:url';

/** Workspace packages resolve to their sources in tests, so a change is tested without a rebuild. */
export const workspaceAliases: Record<string, string> = {
  '@tracemark/watermark': fileURLToPath(new URL('./packages/watermark/src/index.ts', import.meta.url)),
  '@tracemark/verifier': fileURLToPath(new URL('./packages/verifier/src/index.ts', import.meta.url)),
  '@tracemark/evidence': fileURLToPath(new URL('./packages/evidence/src/index.ts', import.meta.url)),
  '@tracemark/eval': fileURLToPath(new URL('./packages/eval/src/index.ts', import.meta.url)),
  '@tracemark/lab': fileURLToPath(new URL('./packages/lab/src/index.ts', import.meta.url)),
  '@tracemark/ngram': fileURLToPath(new URL('./packages/ngram/src/index.ts', import.meta.url)),
  '@tracemark/adapter-transformers': fileURLToPath(
    new URL('./packages/adapter-transformers/src/index.ts', import.meta.url),
  ),
  '@tracemark/adapter-llama-cpp': fileURLToPath(
    new URL('./packages/adapter-llama-cpp/src/index.ts', import.meta.url),
  ),
};
