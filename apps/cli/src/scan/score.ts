import {
  type Dedup,
  type DetectionResult,
  detectTokens,
  loadTokenizer,
  type StreamDetection,
  type TestResult,
} from '@tracemark/verifier';
import { createScheme, MasterKey, type Scheme } from '@tracemark/watermark';
import { fail } from '../errors';
import type { ScanDocument } from './sources';

/**
 * One line of `tracemark scan` output: the one result type (the exact test of the whole document under H0,
 * with the scheme identity) and the document's own fields.
 */
export interface ScanRecord extends TestResult {
  id: string;
  /** 1-based line of a JSONL record. */
  line?: number;
  /** Tokens in the document (`scored` of them counted after de-duplication). */
  tokens: number;
  /** log10PValue ≤ log10 α. */
  detected: boolean;
}

/** What a scorer needs; plain data, so that it can be handed to a worker thread. */
export interface ScanConfig {
  /** The master key as hex: it stays in this process (workers receive it through workerData). */
  keyHex: string;
  spec: unknown;
  tenant?: string;
  tokenizer: string;
  dedup: Dedup;
  alpha: number;
}

export interface Scorer {
  /** The record of a whole document. */
  score(document: ScanDocument): ScanRecord;
  /** The ids of a piece of a streamed document (the record is made where the pieces are put together). */
  tokenize(text: string): Uint32Array;
}

/** A task of the scan pool: a batch of whole documents, or one piece of a streamed document to tokenize. */
export type ScanTask = ScanDocument[] | { piece: string };

/** A failure in a scan worker, as it crosses back to the main thread: an error code and a one-line message. */
export interface ScanFailure {
  code: string;
  message: string;
}

/** What the scan worker answers: a batch's records in order, or a piece's ids, or why it could not. */
export type ScanReply = { records: ScanRecord[] } | { ids: Uint32Array } | { error: ScanFailure };

/** The message a scan worker posts once its scorer is built (with `error` when building it failed). */
export const SCAN_WORKER_STARTED = 'tracemark/scan-worker/started';

export interface ScanWorkerStarted {
  type: typeof SCAN_WORKER_STARTED;
  error?: ScanFailure;
}

/** The keyed scheme a scan tests. */
export function scanScheme(config: ScanConfig): Scheme {
  return createScheme(
    config.spec,
    MasterKey.parse(config.keyHex),
    config.tenant === undefined ? {} : { tenant: config.tenant },
  );
}

/** A document's record from its exact test (one-pass or streamed), fields in one order for both. */
export function scanRecord(
  document: { id: string; line?: number },
  result: DetectionResult | StreamDetection,
  alpha: number,
): ScanRecord {
  // The text test's own fields (windows, per-token entries, the de-duplication) are not a scan's.
  const { perToken, bestWindow, dedup, adjustedPValue, adjustedLog10PValue, ...test } =
    result as DetectionResult;
  return {
    id: document.id,
    ...(document.line === undefined ? {} : { line: document.line }),
    ...test,
    detected: test.log10PValue <= Math.log10(alpha),
  };
}

/**
 * Loads the tokenizer and the keyed scheme once; the scorer then tokenizes a document (ids only) and tests it
 * as a whole, with the exact null tail. A document with too few tokens to score gets p = 1.
 */
export async function createScorer(config: ScanConfig): Promise<Scorer> {
  const tokenizer = await loadTokenizer(config.tokenizer);
  const scheme = scanScheme(config);
  if (tokenizer.vocabSize > scheme.vocabSize) {
    fail(
      'E_INVALID_OPTIONS',
      `tokenizer ${tokenizer.id} has ${tokenizer.vocabSize} tokens but the spec's vocabSize is ${scheme.vocabSize}`,
    );
  }
  const tokenize = (text: string) => tokenizer.encodeIds?.(text) ?? tokenizer.encode(text).ids;
  return {
    score: (document) =>
      scanRecord(
        document,
        detectTokens(tokenize(document.text), {
          scheme,
          dedup: config.dedup,
          perToken: false,
          window: false,
        }),
        config.alpha,
      ),
    tokenize,
  };
}
