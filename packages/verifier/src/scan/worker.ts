/**
 * A scan worker thread: builds one scorer from workerData, then answers each batch of documents with their
 * records. Errors go back as { code, message } (never a stack trace, never the key).
 */
import { parentPort, workerData } from 'node:worker_threads';
import { WatermarkError } from '@tracemark/watermark';
import { VerifierError } from '../errors';
import { createScorer, type ScanConfig, type Scorer } from './score';
import type { ScanDocument } from './sources';

export type WorkerRequest = { type: 'batch'; seq: number; documents: ScanDocument[] };
export type WorkerReply =
  | { type: 'ready' }
  | { type: 'result'; seq: number; records: ReturnType<Scorer>[] }
  | { type: 'error'; code: string; message: string };

function errorReply(error: unknown): WorkerReply {
  if (error instanceof VerifierError || error instanceof WatermarkError)
    return { type: 'error', code: error.code, message: error.message };
  const message = error instanceof Error ? error.message.split('\n')[0] : String(error);
  return { type: 'error', code: 'E_INTERNAL', message: `internal error in a scan worker: ${message}` };
}

const port = parentPort;
if (port === null) throw new Error('the scan worker must run in a worker thread');

let scorer: Scorer;
try {
  scorer = await createScorer(workerData as ScanConfig);
  port.postMessage({ type: 'ready' } satisfies WorkerReply);
} catch (error) {
  port.postMessage(errorReply(error));
}

port.on('message', (request: WorkerRequest) => {
  try {
    const records = request.documents.map((document) => scorer(document));
    port.postMessage({ type: 'result', seq: request.seq, records } satisfies WorkerReply);
  } catch (error) {
    port.postMessage(errorReply(error));
  }
});
