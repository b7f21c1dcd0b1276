import { defineConfig } from 'tsup';

export default defineConfig({
  // The worker is its own entry: the server's pool starts dist/worker.js in worker threads (from sources too).
  entry: { main: 'src/main.ts', index: 'src/index.ts', worker: 'src/worker.ts' },
  format: ['esm'],
  dts: false,
  sourcemap: true,
  clean: true,
  target: 'node20',
});
