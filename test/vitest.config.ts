import { defineConfig } from 'vitest/config';
import { workspaceAliases } from '../vitest.shared.ts';

// Timeouts for a loaded 2-core CI runner: the hooks load the o200k tokenizer, which took over 10 s under load.
export default defineConfig({
  resolve: { alias: workspaceAliases },
  test: {
    name: 'e2e',
    include: ['**/*.test.ts'],
    exclude: ['**/node_modules/**'],
    testTimeout: 600_000,
    hookTimeout: 300_000,
  },
});
