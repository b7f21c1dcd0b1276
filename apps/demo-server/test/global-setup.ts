import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { testModels } from './helpers';

const root = fileURLToPath(new URL('..', import.meta.url));

/**
 * The server's worker threads run the BUILT dist/worker.js even when the tests run from sources (CI builds before
 * it tests): a tree whose build is missing or older than src/ is built here first.
 */
function buildWorker(): void {
  const worker = join(root, 'dist', 'worker.js');
  const built = existsSync(worker) ? statSync(worker).mtimeMs : 0;
  const newest = Math.max(
    ...readdirSync(join(root, 'src')).map((f) => statSync(join(root, 'src', f)).mtimeMs),
  );
  if (built >= newest) return;
  execFileSync('pnpm', ['build'], { cwd: root, stdio: 'ignore' });
}

/** Builds the test-profile models once (a few seconds on the first run; loaded from the cache afterwards). */
export default async function setup(): Promise<void> {
  buildWorker();
  await testModels();
}
