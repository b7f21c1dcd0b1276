import { defineConfig } from 'tsup';

export default defineConfig({
  // The worker modules are entries of their own: the pools start dist/multikey-worker.js and
  // dist/attribution-worker.js in worker threads.
  entry: ['src/index.ts', 'src/multikey-worker.ts', 'src/attribution-worker.ts'],
  format: ['esm'],
  dts: { entry: 'src/index.ts' },
  sourcemap: true,
  clean: true,
  target: 'node20',
  // The tokenizer rank files, read by dist/openai-*.js from its own folder (src/tokenizers/rank-file.ts).
  onSuccess: async () => {
    const { writeRankFiles } = await import('./scripts/write-rank-files');
    await writeRankFiles('dist');
  },
});
