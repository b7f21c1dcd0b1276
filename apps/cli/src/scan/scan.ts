import {
  createWorkerPool,
  stopWorkerPool,
  TokenStreamDetector,
  VerifierError,
  type VerifierErrorCode,
} from '@tracemark/verifier';
import { fail } from '../errors';
import {
  SCAN_WORKER_STARTED,
  type ScanConfig,
  type ScanFailure,
  type ScanRecord,
  type ScanReply,
  type ScanTask,
  type ScanWorkerStarted,
  scanRecord,
  scanScheme,
} from './score';
import { isStreamed, type ScanDocument, type ScanItem, type StreamedDocument } from './sources';

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

/**
 * Tasks per thread given out ahead of the output: a task (at most 64,000 characters, or a 65,536-character piece)
 * takes some 10 to 50 ms, so this keeps each thread fed while the main thread waits for its turn on a busy machine,
 * and holds little text.
 */
const TASKS_AHEAD = 4;

/**
 * What the output waits on, in input order: a batch's records; a piece's ids, to add to its document's detector;
 * or the end of a streamed document, whose record its detector then gives.
 */
type Pending =
  | { records: Promise<ScanRecord[]> }
  | { ids: Promise<Uint32Array>; detector: TokenStreamDetector }
  | { end: StreamedDocument; detector: TokenStreamDetector };

/**
 * Scores every document on worker threads and hands the records to `emit` in input order (a batch at a
 * time; `emit` may return a promise, e.g. to wait for stdout to drain). Reading stays ahead of the
 * workers by a bounded number of batches, so memory does not grow with the corpus. A streamed document's pieces
 * are tokenized across the workers and their ids counted here in order (TokenStreamDetector), so its record is
 * the one a single pass over the whole text gives, while only a bounded number of pieces is held.
 */
export async function scanCorpus(
  documents: AsyncIterable<ScanItem>,
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
  // A thread that dies outside a task (piscina's 'error' event) ends the scan with one line as well. Each wait
  // listens for it only while it waits: a Promise.race against one pending promise per wait would keep every
  // result (all ids, all records) reachable from that promise until the scan ends.
  let crash: Error | undefined;
  const waiting = new Set<(error: Error) => void>();
  pool.on('error', (error) => {
    crash ??= workerFailure(error);
    for (const reject of waiting) reject(crash);
  });
  const unlessCrashed = <T>(result: Promise<T>): Promise<T> =>
    new Promise<T>((resolve, reject) => {
      if (crash !== undefined) return reject(crash);
      waiting.add(reject);
      result.then(resolve, reject).finally(() => waiting.delete(reject));
    });
  const summary = { documents: 0, tokens: 0, scored: 0, detected: 0 };
  let scanStarted = startedAt;
  let cpuStarted = process.cpuUsage();
  try {
    await unlessCrashed(started(pool, count));
    scanStarted = performance.now();
    cpuStarted = process.cpuUsage();
    const run = async (task: ScanTask): Promise<ScanReply> => {
      let reply: ScanReply;
      try {
        reply = (await pool.run(task)) as ScanReply;
      } catch (error) {
        throw workerFailure(error);
      }
      if ('error' in reply) throw failureError(reply.error);
      return reply;
    };
    // Awaited in order by flush; the catch only keeps a failure from going unhandled before then.
    const submit = <T>(result: Promise<T>): Promise<T> => {
      result.catch(() => {});
      return result;
    };
    const pending: Pending[] = [];
    let running = 0;
    const output = async (records: ScanRecord[]) => {
      for (const r of records) {
        summary.documents++;
        summary.tokens += r.tokens;
        summary.scored += r.scored;
        if (r.detected) summary.detected++;
      }
      await emit(records);
    };
    const flush = async () => {
      const next = pending.shift()!;
      if ('records' in next) {
        running--;
        await output(await unlessCrashed(next.records));
      } else if ('ids' in next) {
        running--;
        next.detector.push(await unlessCrashed(next.ids));
      } else {
        await output([scanRecord(next.end, next.detector.result(), options.alpha)]);
      }
    };
    // The pool hands tasks to idle threads; results are taken in input order, and reading stays at most
    // TASKS_AHEAD tasks per thread ahead of the output.
    const queue = async (entry: Pending) => {
      pending.push(entry);
      if (!('end' in entry)) running++;
      while (running > TASKS_AHEAD * count) await flush();
    };
    let batch: ScanDocument[] = [];
    let characters = 0;
    const closeBatch = async () => {
      if (batch.length === 0) return;
      const documents = batch;
      batch = [];
      characters = 0;
      await queue({
        records: submit(run(documents).then((reply) => (reply as { records: ScanRecord[] }).records)),
      });
    };
    // Built on first use: the main thread counts the ids of streamed documents only.
    let scheme: ReturnType<typeof scanScheme> | undefined;
    for await (const item of documents) {
      if (isStreamed(item)) {
        await closeBatch();
        scheme ??= scanScheme(config);
        const detector = new TokenStreamDetector({ scheme, dedup: config.dedup });
        for await (const piece of item.pieces) {
          // The ids come back copied (4 bytes a token), which is little next to tokenizing the piece.
          const ids = submit(run({ piece }).then((reply) => (reply as { ids: Uint32Array }).ids));
          await queue({ ids, detector });
        }
        await queue({ end: item, detector });
        continue;
      }
      batch.push(item);
      characters += item.text.length;
      if (batch.length >= batchDocuments || characters >= batchCharacters) await closeBatch();
    }
    await closeBatch();
    while (pending.length > 0) await flush();
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
