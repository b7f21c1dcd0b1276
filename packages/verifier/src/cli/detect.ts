import { parseArgs } from 'node:util';
import { createScheme, INTEROP_SCHEME_NAMES, type MasterKey, type Scheme } from '@tracemark/watermark';
import { type Dedup, type DetectionResult, detectTokens } from '../detect';
import { assertScorable, detectText } from '../detect-text';
import { fail } from '../errors';
import { detectInterop, type InteropDetection } from '../interop';
import { parseKeyText, readKeyFile } from '../keyfile';
import { highlightText, interopSummaryLines, summaryLines } from './format';
import { jsonArgument, readStdin, readTextFile } from './io';

const OPTIONS = {
  spec: { type: 'string' },
  key: { type: 'string' },
  'key-file': { type: 'string' },
  tokenizer: { type: 'string', default: 'o200k_base' },
  ids: { type: 'string' },
  'prompt-file': { type: 'string' },
  tenant: { type: 'string', multiple: true },
  dedup: { type: 'string', default: 'pair' },
  eos: { type: 'string' },
  'no-window': { type: 'boolean', default: false },
  alpha: { type: 'string', default: '1e-3' },
  'fail-on-detect': { type: 'boolean', default: false },
  json: { type: 'boolean', default: false },
  'no-color': { type: 'boolean', default: false },
} as const;

function masterKey(values: { key?: string; 'key-file'?: string }): MasterKey {
  if (values.key !== undefined && values['key-file'] !== undefined)
    fail('E_USAGE', 'give --key or --key-file, not both');
  if (values['key-file'] !== undefined) return readKeyFile(values['key-file']);
  if (values.key !== undefined) return parseKeyText(values.key, '--key');
  const fromEnvironment = process.env.TRACEMARK_KEY;
  if (fromEnvironment !== undefined && fromEnvironment !== '')
    return parseKeyText(fromEnvironment, '$TRACEMARK_KEY');
  return fail('E_USAGE', 'detect needs a key: --key-file <file>, --key <hex>, or $TRACEMARK_KEY');
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

export async function runDetect(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({ args, options: OPTIONS, allowPositionals: true });
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
  const key = masterKey(values);
  const tenants = values.tenant ?? [];
  const schemes: Scheme[] =
    tenants.length === 0
      ? [createScheme(spec, key)]
      : tenants.map((tenant) => createScheme(spec, key, { tenant }));
  const common = { dedup, eosTokenId, window: !values['no-window'] } as const;

  let text: string | null = null;
  let results: DetectionResult[];
  if (values.ids !== undefined) {
    if (positionals.length > 0) fail('E_USAGE', 'give either --ids or a text, not both');
    const ids = parseIds(values.ids, '--ids');
    for (const scheme of schemes) assertScorable(ids.length, scheme, 'id list');
    const prompt =
      values['prompt-file'] === undefined ? undefined : parseIds(values['prompt-file'], '--prompt-file');
    results = detectTokens(ids, { ...common, prompt, schemes });
  } else {
    const source = positionals[0] ?? '-';
    if (source === '-' && process.stdin.isTTY)
      fail('E_USAGE', 'no text: give a file, or pipe the text into standard input');
    text = source === '-' ? await readStdin() : readTextFile(source, 'text file');
    const { loadTokenizer } = await import('../tokenizers/index');
    const tokenizer = await loadTokenizer(values.tokenizer);
    const prompt =
      values['prompt-file'] === undefined ? undefined : readTextFile(values['prompt-file'], 'prompt file');
    results = detectText(text, { ...common, prompt, tokenizer, schemes });
  }
  if (results.length === 1) {
    delete results[0].adjustedPValue;
    delete results[0].adjustedLog10PValue;
  }

  if (values.json) {
    process.stdout.write(`${JSON.stringify(results.length === 1 ? results[0] : { results })}\n`);
  } else {
    const color = !values['no-color'] && process.stdout.isTTY === true && !process.env.NO_COLOR;
    for (const result of results) {
      process.stdout.write(`${summaryLines(result, alpha).join('\n')}\n`);
      if (text !== null && results.length === 1)
        process.stdout.write(`\n${highlightText(text, result, color)}\n`);
    }
  }
  const detected = results.some((r) => (r.adjustedLog10PValue ?? r.log10PValue) <= Math.log10(alpha));
  return values['fail-on-detect'] && detected ? 1 : 0;
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
  values: {
    ids?: string;
    tokenizer: string;
    json: boolean;
    'fail-on-detect': boolean;
    key?: string;
    'key-file'?: string;
  },
  positionals: string[],
  alpha: number,
): Promise<number> {
  if (values.key !== undefined || values['key-file'] !== undefined) {
    fail(
      'E_USAGE',
      'interop schemes are keyed by their spec (hashingKey, keys); give no --key or --key-file',
    );
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
    const { loadTokenizer } = await import('../tokenizers/index');
    ids = (await loadTokenizer(values.tokenizer)).encode(text).ids;
  }
  const result: InteropDetection = detectInterop(ids, spec);
  if (values.json) process.stdout.write(`${JSON.stringify(result)}\n`);
  else process.stdout.write(`${interopSummaryLines(result, alpha).join('\n')}\n`);
  const detected = result.log10PValue <= Math.log10(alpha);
  return values['fail-on-detect'] && detected ? 1 : 0;
}
