import { createWorkerPool, stopWorkerPool, VerifierError, type VerifierErrorCode } from '@tracemark/verifier';
import { fail } from '../errors';
import {
  SCAN_WORKER_STARTED,
  type ScanConfig,
  type ScanFailure,
  type ScanRecord,
  type ScanReply,
  type ScanWorkerStarted,
} from './score';
import type { ScanDocument } from './sources';

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

type WorkerPool = ReturnType<typeof createWorkerPool>;

function workerFailure(error: unknown): Error {
  return new Error(
    `a scan worker failed: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`,
  );
}

function failureError(failure: ScanFailure): VerifierError {
  return new VerifierError(failure.code as VerifierErrorCode, failure.message);
}

/** Resolves once every thread has built its scorer; rejects with the first that could not. */
function started(pool: WorkerPool, threads: number): Promise<void> {
  // piscina unrefs idle threads, so nothing else keeps the process alive while they start.
  const alive = setInterval(() => {}, 60_000);
  return new Promise<void>((resolve, reject) => {
    let count = 0;
    const onMessage = (message: ScanWorkerStarted) => {
      if (message?.type !== SCAN_WORKER_STARTED) return;
      if (message.error !== undefined) {
        pool.off('message', onMessage);
        reject(failureError(message.error));
      } else if (++count === threads) {
        pool.off('message', onMessage);
        resolve();
      }
    };
    pool.on('message', onMessage);
  }).finally(() => clearInterval(alive));
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
  const startedAt = performance.now();
  // One pool over the built worker module (dist/scan-worker.js); each thread builds its scorer from the config.
  const pool = createWorkerPool('@tracemark/cli/scan-worker', import.meta.url, {
    threads: count,
    workerData: config,
  });
  // A thread that dies outside a batch (piscina's 'error' event) ends the scan with one line as well.
  const crashed = new Promise<never>((_, reject) =>
    pool.on('error', (error) => reject(workerFailure(error))),
  );
  crashed.catch(() => {});
  const summary = { documents: 0, tokens: 0, scored: 0, detected: 0 };
  let scanStarted = startedAt;
  let cpuStarted = process.cpuUsage();
  try {
    await Promise.race([started(pool, count), crashed]);
    scanStarted = performance.now();
    cpuStarted = process.cpuUsage();
    const score = async (documents: ScanDocument[]): Promise<ScanRecord[]> => {
      let reply: ScanReply;
      try {
        reply = (await pool.run(documents)) as ScanReply;
      } catch (error) {
        throw workerFailure(error);
      }
      if ('error' in reply) throw failureError(reply.error);
      return reply.records;
    };
    const inFlight: Promise<ScanRecord[]>[] = [];
    const flush = async () => {
      const records = await Promise.race([inFlight.shift()!, crashed]);
      for (const r of records) {
        summary.documents++;
        summary.tokens += r.tokens;
        summary.scored += r.scored;
        if (r.detected) summary.detected++;
      }
      await emit(records);
    };
    // The pool hands batches to idle threads; results are taken in input order, and reading stays at most
    // 2 batches per thread ahead of the output.
    for await (const batch of batches(documents, batchDocuments, batchCharacters)) {
      const result = score(batch);
      result.catch(() => {}); // awaited in order by flush; this only keeps a failure from going unhandled first
      inFlight.push(result);
      while (inFlight.length > 2 * count) await flush();
    }
    while (inFlight.length > 0) await flush();
  } finally {
    await stopWorkerPool(pool);
  }
  const seconds = (performance.now() - scanStarted) / 1000;
  const cpu = process.cpuUsage(cpuStarted);
  return {
    ...summary,
    alpha: options.alpha,
    expectedFalsePositives: summary.documents * options.alpha,
    workers: count,
    startupSeconds: (scanStarted - startedAt) / 1000,
    seconds,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    documentsPerSecond: seconds > 0 ? summary.documents / seconds : 0,
    tokensPerSecond: seconds > 0 ? summary.tokens / seconds : 0,
  };
}
