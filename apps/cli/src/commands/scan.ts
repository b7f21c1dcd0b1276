import { availableParallelism } from 'node:os';
import { type Dedup, formatPValue, jsonArgument } from '@tracemark/verifier';
import { createScheme, INTEROP_SCHEME_NAMES } from '@tracemark/watermark';
import { fail } from '../errors';
import { masterKeyFromOptions } from '../key';
import { PIECE_CHARACTERS, PIECEWISE_TOKENIZERS } from '../scan/pieces';
import { type ScanSummary, scanCorpus } from '../scan/scan';
import { corpusDocuments } from '../scan/sources';

/** The options of `tracemark scan`, as commander parses them (declared in main.ts). */
export interface ScanCommandOptions {
  spec?: string;
  /** The removed --key option: only to refuse it. */
  key?: unknown;
  keyFile?: string;
  tenant?: string;
  tokenizer: string;
  jsonl?: boolean;
  textField: string;
  idField: string;
  workers?: string;
  alpha: string;
  dedup: string;
  summaryJson?: boolean;
}

/** Thrown when the reader of standard output went away (e.g. `| head`): the scan stops quietly. */
class OutputClosed extends Error {}

let outputClosed = false;
let outputError: string | undefined;

/** Writes to stdout; the promise (when there is one) waits for the pipe to drain, so memory stays bounded. */
function write(text: string): Promise<void> | undefined {
  if (outputClosed) throw new OutputClosed();
  if (process.stdout.write(text)) return undefined;
  return new Promise((resolve, reject) => {
    const drained = () => {
      process.stdout.off('close', closed);
      resolve();
    };
    const closed = () => {
      process.stdout.off('drain', drained);
      reject(new OutputClosed());
    };
    process.stdout.once('drain', drained);
    process.stdout.once('close', closed);
  });
}

function watchOutput(): void {
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    outputClosed = true;
    if (error.code !== 'EPIPE') outputError = error.code ?? error.message;
  });
}

export function summaryLine(s: ScanSummary): string {
  const n = (x: number) => Math.round(x).toLocaleString('en');
  return (
    `scan: ${n(s.documents)} documents, ${n(s.tokens)} tokens (${n(s.scored)} scored) in ${s.seconds.toFixed(2)} s ` +
    `with ${s.workers} worker${s.workers === 1 ? '' : 's'} (+${s.startupSeconds.toFixed(2)} s start-up; ${s.cpuSeconds.toFixed(2)} s CPU): ` +
    `${s.detected} detected at α = ${s.alpha} (expected false positives ${formatPValue(s.expectedFalsePositives, Math.log10(s.expectedFalsePositives))}); ` +
    `${n(s.documentsPerSecond)} documents/s, ${n(s.tokensPerSecond)} tokens/s`
  );
}

export async function runScan(values: ScanCommandOptions, positionals: string[]): Promise<number> {
  if (positionals.length !== 1)
    fail('E_USAGE', 'scan needs one corpus: a directory, a file, or - for standard input');
  if (values.spec === undefined) fail('E_USAGE', 'scan needs --spec <json|file>');
  const alpha = Number(values.alpha);
  if (!(alpha > 0 && alpha < 1)) fail('E_USAGE', `--alpha must be a number in (0, 1); got ${values.alpha}`);
  const dedup = values.dedup as Dedup;
  if (!['pair', 'context', 'none'].includes(dedup))
    fail('E_USAGE', `--dedup must be pair, context or none; got ${dedup}`);
  const workers = values.workers === undefined ? availableParallelism() : Number(values.workers);
  if (!(Number.isInteger(workers) && workers >= 1 && workers <= 256))
    fail('E_USAGE', `--workers must be an integer from 1 to 256; got ${values.workers}`);
  if (!values.jsonl && (values.textField !== 'text' || values.idField !== 'id'))
    fail('E_USAGE', '--text-field and --id-field apply to --jsonl input');
  const spec = jsonArgument(values.spec, '--spec');
  const scheme = (spec as { scheme?: unknown } | null)?.scheme;
  if (typeof scheme === 'string' && (INTEROP_SCHEME_NAMES as readonly string[]).includes(scheme))
    fail('E_USAGE', `scan tests tracemark keys; for ${scheme} use tracemark detect`);
  const key = masterKeyFromOptions(values, 'scan');
  // Built once here too, so that a bad spec or tenant fails before any worker starts.
  createScheme(spec, key, values.tenant === undefined ? {} : { tenant: values.tenant });
  const documents = corpusDocuments(positionals[0], {
    jsonl: values.jsonl === true,
    textField: values.textField,
    idField: values.idField,
    // Large plain text streams in pieces where the tokenizer allows it; otherwise each document is read whole.
    ...(PIECEWISE_TOKENIZERS.includes(values.tokenizer) ? { pieceCharacters: PIECE_CHARACTERS } : {}),
  });
  watchOutput();
  let summary: ScanSummary;
  try {
    summary = await scanCorpus(
      documents,
      {
        workers,
        keyHex: key.exportHex(),
        spec,
        ...(values.tenant === undefined ? {} : { tenant: values.tenant }),
        tokenizer: values.tokenizer,
        dedup,
        alpha,
      },
      (records) => write(records.map((r) => `${JSON.stringify(r)}\n`).join('')),
    );
  } catch (error) {
    if (error instanceof OutputClosed && outputError === undefined) return 0;
    if (error instanceof OutputClosed) fail('E_INPUT', `cannot write the output: ${outputError}`);
    throw error;
  }
  process.stderr.write(`${values.summaryJson ? JSON.stringify(summary) : summaryLine(summary)}\n`);
  return 0;
}
