import {
  assertScorable,
  type Dedup,
  type DetectionResult,
  detectInterop,
  detectText,
  detectTokens,
  type InteropDetection,
  jsonArgument,
  loadTokenizer,
  readStdin,
  readTextFile,
} from '@tracemark/verifier';
import { createScheme, INTEROP_SCHEME_NAMES, type Scheme } from '@tracemark/watermark';
import { fail } from '../errors';
import { highlightText, interopSummaryLines, summaryLines } from '../format';
import { KEY_OPTION_REMOVED, masterKeyFromOptions } from '../key';

/** The options of `tracemark detect`, as commander parses them (declared in main.ts). */
export interface DetectOptions {
  spec?: string;
  /** The removed --key option: only to refuse it. */
  key?: unknown;
  keyFile?: string;
  tokenizer: string;
  ids?: string;
  promptFile?: string;
  tenant?: string[];
  dedup: string;
  eos?: string;
  window: boolean;
  alpha: string;
  failOnDetect?: boolean;
  json?: boolean;
  color: boolean;
}

function parseAlpha(text: string): number {
  const alpha = Number(text);
  if (!(alpha > 0 && alpha < 1)) fail('E_USAGE', `--alpha must be a number in (0, 1); got ${text}`);
  return alpha;
}

function parseIds(value: string, what: string): number[] {
  const ids = jsonArgument(value, what);
  if (!Array.isArray(ids) || !ids.every((id) => Number.isInteger(id) && id >= 0)) {
    fail('E_INPUT', `${what} must be a JSON array of non-negative integer token ids`);
  }
  return ids as number[];
}

export async function runDetect(values: DetectOptions, positionals: string[]): Promise<number> {
  if (values.spec === undefined) fail('E_USAGE', 'detect needs --spec <json|file>');
  if (positionals.length > 1)
    fail('E_USAGE', 'detect reads one text: give one file, or - for standard input');
  const dedup = values.dedup as Dedup;
  if (!['pair', 'context', 'none'].includes(dedup))
    fail('E_USAGE', `--dedup must be pair, context or none; got ${dedup}`);
  const alpha = parseAlpha(values.alpha);
  const eosTokenId = values.eos === undefined ? undefined : Number(values.eos);
  if (eosTokenId !== undefined && !(Number.isInteger(eosTokenId) && eosTokenId >= 0)) {
    fail('E_USAGE', `--eos must be a token id; got ${values.eos}`);
  }
  const spec = jsonArgument(values.spec, '--spec');
  if (isInteropSpec(spec)) return runInteropDetect(spec, values, positionals, alpha);
  const key = masterKeyFromOptions(values, 'detect');
  const tenants = values.tenant ?? [];
  const schemes: Scheme[] =
    tenants.length === 0
      ? [createScheme(spec, key)]
      : tenants.map((tenant) => createScheme(spec, key, { tenant }));
  const common = { dedup, eosTokenId, window: values.window } as const;

  let text: string | null = null;
  let results: DetectionResult[];
  if (values.ids !== undefined) {
    if (positionals.length > 0) fail('E_USAGE', 'give either --ids or a text, not both');
    const ids = parseIds(values.ids, '--ids');
    for (const scheme of schemes) assertScorable(ids.length, scheme, 'id list');
    const prompt = values.promptFile === undefined ? undefined : parseIds(values.promptFile, '--prompt-file');
    results = detectTokens(ids, { ...common, prompt, schemes });
  } else {
    const source = positionals[0] ?? '-';
    if (source === '-' && process.stdin.isTTY)
      fail('E_USAGE', 'no text: give a file, or pipe the text into standard input');
    text = source === '-' ? await readStdin() : readTextFile(source, 'text file');
    const tokenizer = await loadTokenizer(values.tokenizer);
    const prompt =
      values.promptFile === undefined ? undefined : readTextFile(values.promptFile, 'prompt file');
    results = detectText(text, { ...common, prompt, tokenizer, schemes });
  }
  if (results.length === 1) {
    delete results[0].adjustedPValue;
    delete results[0].adjustedLog10PValue;
  }

  if (values.json) {
    process.stdout.write(`${JSON.stringify(results.length === 1 ? results[0] : { results })}\n`);
  } else {
    const color = values.color && process.stdout.isTTY === true && !process.env.NO_COLOR;
    for (const result of results) {
      process.stdout.write(`${summaryLines(result, alpha).join('\n')}\n`);
      if (text !== null && results.length === 1)
        process.stdout.write(`\n${highlightText(text, result, color)}\n`);
    }
  }
  const detected = results.some((r) => (r.adjustedLog10PValue ?? r.log10PValue) <= Math.log10(alpha));
  return values.failOnDetect && detected ? 1 : 0;
}

function isInteropSpec(spec: unknown): boolean {
  const name = (spec as { scheme?: unknown } | null)?.scheme;
  return typeof name === 'string' && (INTEROP_SCHEME_NAMES as readonly string[]).includes(name);
}

/**
 * Watermarks made by Hugging Face transformers, lm-watermarking or synthid-text are keyed by integers in
 * their own configuration, so the spec is the whole key: no tracemark key is read. The output keeps the
 * field names of those tools (numTokensScored, numGreenTokens, …) beside tracemark's exact p-value.
 */
async function runInteropDetect(
  spec: unknown,
  values: DetectOptions,
  positionals: string[],
  alpha: number,
): Promise<number> {
  if (values.key !== undefined) fail('E_USAGE', KEY_OPTION_REMOVED);
  if (values.keyFile !== undefined) {
    fail('E_USAGE', 'interop schemes are keyed by their spec (hashingKey, keys); give no --key-file');
  }
  let ids: ArrayLike<number>;
  if (values.ids !== undefined) {
    if (positionals.length > 0) fail('E_USAGE', 'give either --ids or a text, not both');
    ids = parseIds(values.ids, '--ids');
  } else {
    const source = positionals[0] ?? '-';
    if (source === '-' && process.stdin.isTTY)
      fail('E_USAGE', 'no text: give a file, --ids, or pipe the text into standard input');
    const text = source === '-' ? await readStdin() : readTextFile(source, 'text file');
    if (text.trim().length === 0) fail('E_EMPTY_TEXT', 'the text is empty');
    ids = (await loadTokenizer(values.tokenizer)).encode(text).ids;
  }
  const result: InteropDetection = detectInterop(ids, spec);
  if (values.json) process.stdout.write(`${JSON.stringify(result)}\n`);
  else process.stdout.write(`${interopSummaryLines(result, alpha).join('\n')}\n`);
  const detected = result.log10PValue <= Math.log10(alpha);
  return values.failOnDetect && detected ? 1 : 0;
}
