import { defineConfig } from 'tsup';

export default defineConfig({
  // The worker is its own entry: EXP-edit's tests run in dist/worker.js on worker threads.
  entry: ['src/index.ts', 'src/worker.ts'],
  format: ['esm'],
  dts: { entry: 'src/index.ts' },
  sourcemap: true,
  clean: true,
  target: 'node20',
});
