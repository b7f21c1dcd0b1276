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
});
