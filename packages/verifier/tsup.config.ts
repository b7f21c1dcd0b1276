import { defineConfig } from 'tsup';

export default defineConfig({
  // The multi-key worker is its own entry: the pool starts dist/multikey-worker.js in worker threads.
  entry: ['src/index.ts', 'src/multikey-worker.ts'],
  format: ['esm'],
  dts: { entry: 'src/index.ts' },
  sourcemap: true,
  clean: true,
  target: 'node20',
});
