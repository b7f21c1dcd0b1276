import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Piscina } from 'piscina';
import { fail } from './errors';

/**
 * The one worker mechanism of the toolkit (multi-key scoring here, the lab's tasks, the CLI's scan): a piscina
 * pool over a package's built worker module, named by its package export (e.g. '@tracemark/lab/worker'). The
 * module is always the built JavaScript, from sources and from the published packages alike, so no loader or
 * compiler is looked up at run time; a tree that was never built gets one line saying so.
 */
export function builtWorker(specifier: string, from: string | URL): string {
  let path: string | null = null;
  try {
    path = createRequire(from).resolve(specifier);
  } catch {
    path = null;
  }
  if (path === null || !existsSync(path)) {
    fail('E_NOT_BUILT', `the worker module ${specifier} is not built: run pnpm build first`);
  }
  return path;
}

export interface WorkerPoolOptions {
  /** Worker threads, kept for the pool's lifetime. */
  threads: number;
  /** Passed to every worker once, at start (e.g. a run's configuration). */
  workerData?: unknown;
}

export function createWorkerPool(specifier: string, from: string | URL, options: WorkerPoolOptions): Piscina {
  if (!(Number.isInteger(options.threads) && options.threads >= 1))
    fail('E_INVALID_OPTIONS', `threads must be a positive integer; got ${options.threads}`);
  // Required here rather than imported: piscina takes ~20 ms to load, which commands without a pool (detect)
  // would pay at start-up.
  const { Piscina: Pool } = createRequire(import.meta.url)('piscina') as typeof import('piscina');
  return new Pool({
    filename: builtWorker(specifier, from),
    minThreads: options.threads,
    maxThreads: options.threads,
    // One task at a time per thread: the tasks here are CPU-bound.
    concurrentTasksPerWorker: 1,
    idleTimeout: Number.POSITIVE_INFINITY,
    workerData: options.workerData,
    // The parent's flags (a test runner's loaders) are not the worker's business: it runs built JavaScript.
    execArgv: [],
  });
}

/**
 * Stops a pool made by `createWorkerPool`: tasks not started are dropped and the pool is destroyed once the
 * running ones have answered. A run that stops on its first failed task would otherwise destroy the pool under
 * its siblings, and their late replies are uncaught errors in piscina ("Unexpected message from Worker").
 */
export function stopWorkerPool(pool: Piscina): Promise<void> {
  return pool.close({ force: true });
}
