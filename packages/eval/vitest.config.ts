import { defineConfig } from 'vitest/config';
import { workspaceAliases } from '../../vitest.shared.ts';

// Timeouts for a loaded 2-core CI runner, where tests run several times slower than on an idle machine.
export default defineConfig({
  resolve: { alias: workspaceAliases },
  test: { name: 'eval', include: ['test/**/*.test.ts'], testTimeout: 180_000, hookTimeout: 180_000 },
});
