import { defineConfig } from 'vitest/config';
import { workspaceAliases } from '../vitest.shared.ts';

export default defineConfig({
  resolve: { alias: workspaceAliases },
  test: { name: 'e2e', include: ['**/*.test.ts'], exclude: ['**/node_modules/**'], testTimeout: 120_000 },
});
