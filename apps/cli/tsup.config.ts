import { defineConfig } from 'tsup';

export default defineConfig({
  // The scan worker is its own entry: `tracemark scan` starts dist/scan-worker.js in worker threads.
  entry: { main: 'src/main.ts', 'scan-worker': 'src/scan/worker.ts' },
  format: ['esm'],
  sourcemap: true,
  clean: true,
  target: 'node20',
});
