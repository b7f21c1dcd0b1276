import { defineConfig } from 'tsup';

export default defineConfig([
  {
    entry: ['src/index.ts'],
    format: ['esm', 'cjs'],
    dts: true,
    sourcemap: true,
    clean: true,
    target: 'node20',
  },
  {
    // The scan worker is its own entry: the CLI starts dist/scan-worker.js in worker threads.
    entry: { cli: 'src/cli.ts', 'scan-worker': 'src/scan/worker.ts', 'lab-worker': 'src/lab/worker.ts' },
    format: ['esm'],
    sourcemap: true,
    target: 'node20',
  },
]);
