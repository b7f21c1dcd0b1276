import { defineConfig } from 'vitest/config';
import { workspaceAliases } from '../../vitest.shared.ts';

export default defineConfig({
  resolve: { alias: workspaceAliases },
  test: { name: 'lab', include: ['test/**/*.test.ts'], testTimeout: 60_000 },
});
