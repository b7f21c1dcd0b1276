import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker, type WorkerOptions } from 'node:worker_threads';
import type { LabConfig } from './config';
import { errorFrom, errorMessage, type LabErrorMessage } from './errors';
import { LabContext, type LabTask, type LabTaskResult, runLabTask } from './tasks';

/** Runs lab tasks: in-process one after the other, or on a pool of worker threads. */
export interface TaskRunner {
  readonly workers: number;
  /** Runs a task; `first` puts it at the head of the queue (a long task that became ready late). */
  run(task: LabTask, first?: boolean): Promise<LabTaskResult>;
  close(): Promise<void>;
}

export function createRunner(config: LabConfig): TaskRunner {
  return config.workers <= 1 ? new InProcessRunner(config) : new WorkerPool(config);
}

class InProcessRunner implements TaskRunner {
  readonly workers = 1;
  readonly #context: LabContext;
  #closed = false;

  constructor(config: LabConfig) {
    this.#context = new LabContext(config);
  }

  async run(task: LabTask): Promise<LabTaskResult> {
    // Let pending output (progress lines) go out between tasks.
    await new Promise((resolve) => setImmediate(resolve));
    if (this.#closed) throw new Error('the lab was stopped');
    try {
      return runLabTask(this.#context, task);
    } catch (error) {
      // The same errors as from a worker: input errors of any package become one-line VerifierErrors.
      throw errorFrom(errorMessage(error));
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
  }
}

/** This module's URL; the CJS build of the library has no import.meta, but has __filename. */
function moduleUrl(): string {
  return typeof __filename === 'string' ? pathToFileURL(__filename).href : import.meta.url;
}

/**
 * How to start a worker. From the built bundle: the built `lab-worker.js` beside it. From the TypeScript
 * sources (tests, tsx): `worker.ts` through tsx, which a worker's `execArgv: ['--import', 'tsx']` does not
 * give on Node 20 (the entry is resolved before the loader hooks apply), so a small bootstrap registers
 * tsx's ESM loader in the worker and then imports the entry.
 */
function workerStart(config: LabConfig): { entry: URL | string; options: WorkerOptions } {
  const here = moduleUrl();
  if (!/\.[cm]?ts$/.test(new URL(here).pathname))
    return {
      entry: new URL('./lab-worker.js', here),
      // Inherit the parent's flags except those that only make sense for its own entry.
      options: {
        workerData: { config },
        execArgv: process.execArgv.filter((a) => !a.startsWith('--input-type')),
      },
    };
  const require = createRequire(here);
  const tsxRoot = dirname(require.resolve('tsx/package.json'));
  const exportsMap = (
    require('tsx/package.json') as { exports: Record<string, { import: { default: string } }> }
  ).exports;
  const tsxApi = pathToFileURL(join(tsxRoot, exportsMap['./esm/api'].import.default)).href;
  const bootstrap =
    "const { workerData } = require('node:worker_threads');" +
    'import(workerData.tsxApi).then((api) => { api.register(); return import(workerData.entry); });';
  return {
    entry: bootstrap,
    options: { eval: true, workerData: { config, tsxApi, entry: new URL('./worker.ts', here).href } },
  };
}

interface Pending {
  task: LabTask;
  resolve: (result: LabTaskResult) => void;
  reject: (error: Error) => void;
}

interface Slot {
  worker: Worker;
  busy: Pending | null;
}

class WorkerPool implements TaskRunner {
  readonly workers: number;
  readonly #slots: Slot[] = [];
  readonly #queue: Pending[] = [];
  #failed: Error | null = null;
  #closing = false;

  constructor(config: LabConfig) {
    this.workers = config.workers;
    const { entry, options } = workerStart(config);
    for (let i = 0; i < config.workers; i++) {
      const worker = new Worker(entry, options);
      const slot: Slot = { worker, busy: null };
      worker.on('message', (message: { result?: LabTaskResult; error?: LabErrorMessage }) => {
        const pending = slot.busy;
        slot.busy = null;
        if (pending !== null) {
          if (message.error !== undefined) pending.reject(errorFrom(message.error));
          else pending.resolve(message.result as LabTaskResult);
        }
        this.#dispatch();
      });
      worker.on('error', (error) =>
        this.#fail(new Error(`lab worker failed: ${error.message.split('\n')[0]}`)),
      );
      worker.on('exit', (code) => {
        if (!this.#closing) this.#fail(new Error(`lab worker exited with code ${code}`));
      });
      this.#slots.push(slot);
    }
  }

  run(task: LabTask, first = false): Promise<LabTaskResult> {
    if (this.#failed !== null) return Promise.reject(this.#failed);
    return new Promise((resolve, reject) => {
      if (first) this.#queue.unshift({ task, resolve, reject });
      else this.#queue.push({ task, resolve, reject });
      this.#dispatch();
    });
  }

  #dispatch(): void {
    for (const slot of this.#slots) {
      if (slot.busy !== null || this.#queue.length === 0) continue;
      const pending = this.#queue.shift() as Pending;
      slot.busy = pending;
      slot.worker.postMessage(pending.task);
    }
  }

  #fail(error: Error): void {
    if (this.#failed !== null) return;
    this.#failed = error;
    for (const slot of this.#slots) {
      slot.busy?.reject(error);
      slot.busy = null;
    }
    for (const pending of this.#queue.splice(0)) pending.reject(error);
    void this.close();
  }

  async close(): Promise<void> {
    this.#closing = true;
    await Promise.all(this.#slots.map((slot) => slot.worker.terminate()));
  }
}
