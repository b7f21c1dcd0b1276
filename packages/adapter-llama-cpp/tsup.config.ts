import { defineConfig } from 'tsup';

// ESM only: node-llama-cpp is an ES module with top-level await, which require() cannot load.
export default defineConfig({
  entry: ['src/index.ts'],
  format: ['esm'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
});
