import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { fail, VerifierError, type VerifierErrorCode } from '../errors';
import type { ScanConfig, ScanRecord } from './score';
import type { ScanDocument } from './sources';
import type { WorkerReply, WorkerRequest } from './worker';

export interface ScanOptions extends ScanConfig {
  /** Worker threads (default: os.availableParallelism()). */
  workers: number;
  /** A batch sent to a worker closes at this many documents or characters, whichever comes first. */
  batchDocuments?: number;
  batchCharacters?: number;
}

export interface ScanSummary {
  documents: number;
  tokens: number;
  scored: number;
  detected: number;
  alpha: number;
  /** documents × α: how many detections to expect if no document carried the watermark. */
  expectedFalsePositives: number;
  workers: number;
  /** Time to start the workers (tokenizer and scheme loaded), then to scan. */
  startupSeconds: number;
  seconds: number;
  /** CPU time of the whole process (every thread) while scanning: seconds × cores actually given to it. */
  cpuSeconds: number;
  documentsPerSecond: number;
  tokensPerSecond: number;
}

/**
 * The worker script and how to start it. From the built CLI: the bundled dist/scan-worker.js, which tsup writes
 * beside the CLI chunks. From TypeScript sources (tests, tsx): the .ts worker, imported by a small bootstrap
 * that first registers tsx's loader in the worker thread; on Node 20 a worker does not inherit the main
 * thread's loader hooks, and `--import tsx` in its execArgv does not reach the worker's entry module either.
 */
function workerEntry(): { target: URL | string; eval: boolean } {
  const here = import.meta.url;
  if (!here.endsWith('.ts')) return { target: new URL('./scan-worker.js', here), eval: false };
  const worker = new URL('./worker.ts', here).href;
  const api = tsxApi(here);
  const code = `import(${JSON.stringify(api)}).then((tsx) => { tsx.register(); return import(${JSON.stringify(worker)}); })`;
  return { target: code, eval: true };
}

/** tsx's ESM API (register), resolved from this file. */
function tsxApi(here: string): string {
  try {
    if (typeof import.meta.resolve === 'function') return import.meta.resolve('tsx/esm/api');
  } catch {
    // Resolved below through the package's own directory.
  }
  const packageJson = createRequire(here).resolve('tsx/package.json');
  return pathToFileURL(join(dirname(packageJson), 'dist/esm/api/index.mjs')).href;
}

class ScanWorker {
  readonly #worker: Worker;
  #pending: { resolve: (records: ScanRecord[]) => void; reject: (error: Error) => void } | null = null;
  readonly ready: Promise<void>;
  #failure: Error | null = null;

  constructor(config: ScanConfig) {
    const entry = workerEntry();
    this.#worker = new Worker(entry.target, {
      workerData: config,
      eval: entry.eval,
      // The parent's flags (e.g. --import tsx) are not repeated: the bootstrap registers tsx itself.
      execArgv: [],
      stderr: true,
    });
    this.ready = new Promise<void>((resolve, reject) => {
      const fail = (error: Error) => {
        this.#failure ??= error;
        reject(error);
        this.#pending?.reject(error);
        this.#pending = null;
      };
      this.#worker.on('message', (reply: WorkerReply) => {
        if (reply.type === 'ready') resolve();
        else if (reply.type === 'error')
          fail(new VerifierError(reply.code as VerifierErrorCode, reply.message));
        else {
          const pending = this.#pending;
          this.#pending = null;
          pending?.resolve(reply.records);
        }
      });
      this.#worker.on('error', (error) =>
        fail(new Error(`a scan worker failed: ${error.message.split('\n')[0]}`)),
      );
      this.#worker.on('exit', (code) => {
        if (this.#pending !== null || code !== 0) fail(new Error(`a scan worker exited with code ${code}`));
      });
    });
    this.ready.catch(() => {});
  }

  run(seq: number, documents: ScanDocument[]): Promise<ScanRecord[]> {
    if (this.#failure !== null) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => {
      this.#pending = { resolve, reject };
      this.#worker.postMessage({ type: 'batch', seq, documents } satisfies WorkerRequest);
    });
  }

  async terminate(): Promise<void> {
    this.#pending = null;
    this.#worker.removeAllListeners('exit');
    await this.#worker.terminate();
  }
}

/** Hands batches to idle workers in the order they come. */
class Pool {
  readonly #idle: ScanWorker[];
  readonly #waiting: (() => void)[] = [];

  constructor(readonly workers: ScanWorker[]) {
    this.#idle = [...workers];
  }

  async run(seq: number, documents: ScanDocument[]): Promise<ScanRecord[]> {
    while (this.#idle.length === 0) await new Promise<void>((resolve) => this.#waiting.push(resolve));
    const worker = this.#idle.pop()!;
    try {
      return await worker.run(seq, documents);
    } finally {
      this.#idle.push(worker);
      this.#waiting.shift()?.();
    }
  }
}

async function* batches(
  documents: AsyncIterable<ScanDocument>,
  maxDocuments: number,
  maxCharacters: number,
): AsyncGenerator<ScanDocument[]> {
  let batch: ScanDocument[] = [];
  let characters = 0;
  for await (const document of documents) {
    batch.push(document);
    characters += document.text.length;
    if (batch.length >= maxDocuments || characters >= maxCharacters) {
      yield batch;
      batch = [];
      characters = 0;
    }
  }
  if (batch.length > 0) yield batch;
}

/**
 * Scores every document on worker threads and hands the records to `emit` in input order (a batch at a
 * time; `emit` may return a promise, e.g. to wait for stdout to drain). Reading stays ahead of the
 * workers by a bounded number of batches, so memory does not grow with the corpus.
 */
export async function scanCorpus(
  documents: AsyncIterable<ScanDocument>,
  options: ScanOptions,
  emit: (records: ScanRecord[]) => void | Promise<void>,
): Promise<ScanSummary> {
  if (!(Number.isInteger(options.workers) && options.workers >= 1))
    fail('E_USAGE', `workers must be a positive integer; got ${options.workers}`);
  const { workers: count, batchDocuments = 32, batchCharacters = 64_000, ...config } = options;
  const started = performance.now();
  const workers = Array.from({ length: count }, () => new ScanWorker(config));
  const summary = { documents: 0, tokens: 0, scored: 0, detected: 0 };
  let scanStarted = started;
  let cpuStarted = process.cpuUsage();
  try {
    await Promise.all(workers.map((w) => w.ready));
    scanStarted = performance.now();
    cpuStarted = process.cpuUsage();
    const pool = new Pool(workers);
    const inFlight: Promise<ScanRecord[]>[] = [];
    const flush = async () => {
      const records = await inFlight.shift()!;
      for (const r of records) {
        summary.documents++;
        summary.tokens += r.tokens;
        summary.scored += r.scored;
        if (r.detected) summary.detected++;
      }
      await emit(records);
    };
    let seq = 0;
    for await (const batch of batches(documents, batchDocuments, batchCharacters)) {
      const result = pool.run(seq++, batch);
      result.catch(() => {}); // awaited in order by flush; this only keeps a failure from going unhandled first
      inFlight.push(result);
      while (inFlight.length > 2 * count) await flush();
    }
    while (inFlight.length > 0) await flush();
  } finally {
    await Promise.all(workers.map((w) => w.terminate()));
  }
  const seconds = (performance.now() - scanStarted) / 1000;
  const cpu = process.cpuUsage(cpuStarted);
  return {
    ...summary,
    alpha: options.alpha,
    expectedFalsePositives: summary.documents * options.alpha,
    workers: count,
    startupSeconds: (scanStarted - started) / 1000,
    seconds,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    documentsPerSecond: seconds > 0 ? summary.documents / seconds : 0,
    tokensPerSecond: seconds > 0 ? summary.tokens / seconds : 0,
  };
}
