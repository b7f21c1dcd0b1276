import { defineConfig } from 'tsup';

export default defineConfig({
  // The worker is its own entry: the lab's pool starts dist/worker.js in worker threads.
  entry: ['src/index.ts', 'src/worker.ts'],
  format: ['esm'],
  dts: { entry: 'src/index.ts' },
  sourcemap: true,
  clean: true,
  target: 'node20',
});
