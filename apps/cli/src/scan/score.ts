import { type Dedup, detectTokens, loadTokenizer, type TestResult } from '@tracemark/verifier';
import { createScheme, MasterKey } from '@tracemark/watermark';
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

export type Scorer = (document: ScanDocument) => ScanRecord;

/** A failure in a scan worker, as it crosses back to the main thread: an error code and a one-line message. */
export interface ScanFailure {
  code: string;
  message: string;
}

/** What the scan worker answers for a batch of documents: their records in order, or why it could not. */
export type ScanReply = { records: ScanRecord[] } | { error: ScanFailure };

/** The message a scan worker posts once its scorer is built (with `error` when building it failed). */
export const SCAN_WORKER_STARTED = 'tracemark/scan-worker/started';

export interface ScanWorkerStarted {
  type: typeof SCAN_WORKER_STARTED;
  error?: ScanFailure;
}

/**
 * Loads the tokenizer and the keyed scheme once; the scorer then tokenizes a document (ids only) and tests it
 * as a whole, with the exact null tail. A document with too few tokens to score gets p = 1.
 */
export async function createScorer(config: ScanConfig): Promise<Scorer> {
  const tokenizer = await loadTokenizer(config.tokenizer);
  const scheme = createScheme(
    config.spec,
    MasterKey.parse(config.keyHex),
    config.tenant === undefined ? {} : { tenant: config.tenant },
  );
  if (tokenizer.vocabSize > scheme.vocabSize) {
    fail(
      'E_INVALID_OPTIONS',
      `tokenizer ${tokenizer.id} has ${tokenizer.vocabSize} tokens but the spec's vocabSize is ${scheme.vocabSize}`,
    );
  }
  const threshold = Math.log10(config.alpha);
  return (document) => {
    const ids = tokenizer.encodeIds?.(document.text) ?? tokenizer.encode(document.text).ids;
    const result = detectTokens(ids, { scheme, dedup: config.dedup, perToken: false, window: false });
    // The text test's own fields (windows, per-token entries, the de-duplication) are not a scan's.
    const { perToken, bestWindow, dedup, adjustedPValue, adjustedLog10PValue, ...test } = result;
    return {
      id: document.id,
      ...(document.line === undefined ? {} : { line: document.line }),
      ...test,
      detected: test.log10PValue <= threshold,
    };
  };
}
