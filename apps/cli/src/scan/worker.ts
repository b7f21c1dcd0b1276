/**
 * The scan pool's worker (dist/scan-worker.js, the package export @tracemark/cli/scan-worker): each thread builds
 * one scorer from the pool's workerData, then scores the batches of documents it is given and tokenizes the
 * pieces of streamed documents. Failures come back as values { code, message } (never a stack trace, never the
 * key): an error object loses its class and code on its way between threads.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { VerifierError } from '@tracemark/verifier';
import { WatermarkError } from '@tracemark/watermark';
import {
  createScorer,
  SCAN_WORKER_STARTED,
  type ScanConfig,
  type ScanFailure,
  type ScanReply,
  type ScanTask,
  type ScanWorkerStarted,
  type Scorer,
} from './score';

function failureOf(error: unknown): ScanFailure {
  if (error instanceof VerifierError || error instanceof WatermarkError)
    return { code: error.code, message: error.message };
  const message = error instanceof Error ? error.message.split('\n')[0] : String(error);
  return { code: 'E_INTERNAL', message: `internal error in a scan worker: ${message}` };
}

// Built while piscina loads this module, before the thread takes its first batch: once loaded, an idle thread
// waits on Atomics for work, and a promise left pending would only settle with the first batch. The pool hears
// when (and whether) the scorer was built; a failure is kept and answered to every batch.
const scorer: Scorer | ScanFailure = await createScorer(workerData as ScanConfig).catch(failureOf);
parentPort?.postMessage({
  type: SCAN_WORKER_STARTED,
  ...('score' in scorer ? {} : { error: scorer }),
} satisfies ScanWorkerStarted);

export default function scanTask(task: ScanTask): ScanReply {
  if (!('score' in scorer)) return { error: scorer };
  try {
    if (Array.isArray(task)) return { records: task.map((document) => scorer.score(document)) };
    return { ids: scorer.tokenize(task.piece) };
  } catch (error) {
    return { error: failureOf(error) };
  }
}
