import { createReadStream, statSync } from 'node:fs';
import {
  type AccountAttribution,
  type AttributionResult,
  attributeAccounts,
  formatPValue,
  jsonArgument,
  loadTokenizer,
  prepareAccounts,
  readTextFile,
  type SuspectSample,
  type Tokenizer,
  VerifierError,
} from '@tracemark/verifier';
import {
  accountLayerKey,
  checkAccountId,
  createScheme,
  INTEROP_SCHEME_NAMES,
  parseSpec,
} from '@tracemark/watermark';
import { SingleBar } from 'cli-progress';
import { fail } from '../errors';
import { masterKeyFromOptions } from '../key';
import { numberValue } from '../option-values';

/**
 * `tracemark attribute`: which accounts a leaked dataset came from, under the key hierarchy of a layered KGW
 * spec (`accountDelta` > 0). The dataset's texts (JSON Lines: `text` and an optional `prompt`, or the OpenAI
 * fine-tuning chat format) are tokenized and handed to the verifier's `attributeAccounts`: the organisation
 * layer's test of the whole set, and every candidate account's exact test, Holm-corrected over the candidates.
 */

/** The options of `tracemark attribute`, as commander parses them (declared in main.ts). */
export interface AttributeOptions {
  dataset?: string;
  accounts?: string;
  spec?: string;
  /** The removed --key option: only to refuse it. */
  key?: unknown;
  keyFile?: string;
  tokenizer: string;
  tenant?: string;
  alpha: string;
  threads?: string;
  onBadLine: string;
  top: string;
  json?: boolean;
  quiet?: boolean;
}

/** Line numbers of skipped lines listed in the report (the count covers them all). */
const BAD_LINES_LISTED = 10;

/** What `tracemark attribute --json` prints. */
export interface AttributeReport {
  command: 'attribute';
  dataset: string;
  tokenizer: string;
  /** The organisation layer's test of the whole set, and its verdict at `alpha`. */
  organisation: AttributionResult['organisation'] & { detected: boolean };
  /** Every candidate, by Holm-adjusted p-value (then raw p-value, then id). */
  accounts: AccountAttribution[];
  correction: 'holm';
  alpha: number;
  /** The ids at adjusted p ≤ alpha. */
  attributed: string[];
  candidates: number;
  /** Samples scored: one per `text` record, one per assistant message of a `messages` record. */
  samples: number;
  /** Output tokens of the samples, and the distinct (window, token) inputs among them that were scored. */
  tokens: number;
  scored: number;
  skipped: AttributionResult['skipped'];
  /** A sample counts towards an attributed account when its own test gives p ≤ this. */
  sampleAlpha: number;
  /** Malformed lines skipped (`--on-bad-line skip`): how many, and the first few line numbers. */
  badLines: { count: number; lines: number[] };
  groups: number;
  threads: number;
  timings: { readMs: number; tapeMs: number; scoreMs: number };
}

interface Stderr {
  line(text: string): void;
}

export async function runAttributeCommand(values: AttributeOptions, positionals: string[]): Promise<number> {
  if (positionals.length > 0)
    fail('E_USAGE', `attribute takes no positional arguments; got ${positionals[0]}`);
  if (values.dataset === undefined) fail('E_USAGE', 'attribute needs --dataset <file.jsonl>');
  if (values.accounts === undefined) fail('E_USAGE', 'attribute needs --accounts <file>');
  if (values.spec === undefined) fail('E_USAGE', 'attribute needs --spec <json|file>');
  const alpha = Number(values.alpha);
  if (!(alpha > 0 && alpha < 1)) fail('E_USAGE', `--alpha must be a number in (0, 1); got ${values.alpha}`);
  const threads = numberValue(values.threads, '--threads', true);
  if (threads !== undefined && !(threads >= 1 && threads <= 256))
    fail('E_USAGE', `--threads must be an integer from 1 to 256; got ${values.threads}`);
  const top = numberValue(values.top, '--top', true) as number;
  if (!(top >= 0)) fail('E_USAGE', `--top must be a non-negative integer; got ${values.top}`);
  if (values.onBadLine !== 'fail' && values.onBadLine !== 'skip')
    fail('E_USAGE', `--on-bad-line must be skip or fail; got ${values.onBadLine}`);
  const skipBad = values.onBadLine === 'skip';

  const spec = jsonArgument(values.spec, '--spec');
  const scheme = (spec as { scheme?: unknown } | null)?.scheme;
  if (typeof scheme === 'string' && (INTEROP_SCHEME_NAMES as readonly string[]).includes(scheme))
    fail('E_USAGE', `attribute needs a tracemark kgw spec with accountDelta > 0; got ${scheme}`);
  const master = masterKeyFromOptions(values, 'attribute');
  const tenant = values.tenant;
  // The spec, the tenant and the account layer are checked before any input is read.
  createScheme(spec, master, tenant === undefined ? {} : { tenant });
  accountLayerKey(spec, master, tenant);
  const parsed = parseSpec(spec);
  const { vocabSize } = parsed;
  const contextWidth = parsed.scheme === 'kgw' ? parsed.contextWidth : 0;
  // Read with line numbers for its errors, then coded once: attribution takes the prepared list as it is.
  const accounts = prepareAccounts(spec, master, readAccounts(values.accounts), tenant);

  // Progress lines come once a stage has passed its checks (a bar that clears itself while reading, on a
  // terminal), so that a failure stays one line on standard error.
  const quiet = values.quiet === true;
  const stderr: Stderr = { line: (text) => (quiet ? undefined : process.stderr.write(`${text}\n`)) };
  const started = performance.now();
  const tokenizer = await loadTokenizer(values.tokenizer);
  const dataset = await readDataset(values.dataset, tokenizer, skipBad, quiet);
  const readMs = performance.now() - started;
  if (dataset.samples.length === 0)
    fail(
      'E_INPUT',
      `${values.dataset} holds no samples${dataset.badLines.count > 0 ? ` (${dataset.badLines.count} malformed lines skipped)` : ''}`,
    );
  for (const sample of dataset.samples) {
    for (const ids of [sample.prompt, sample.output]) {
      for (let i = 0; i < ids.length; i++) {
        if (ids[i] >= vocabSize)
          fail(
            'E_TOKEN_RANGE',
            `the tokenizer ${tokenizer.id} gives token ids beyond the spec's vocabSize (${vocabSize}); pass the tokenizer the watermark was made with (--tokenizer)`,
          );
      }
    }
  }
  // The verifier says so too, after building its tape; checked here before the progress line that announces scoring.
  if (!dataset.samples.some((x) => x.output.length > 0 && x.prompt.length + x.output.length > contextWidth))
    fail(
      'E_INPUT',
      `the dataset has no scorable token (every output is within the spec's context width of ${contextWidth} tokens)`,
    );
  const skippedNote =
    dataset.badLines.count > 0 ? `; ${count(dataset.badLines.count)} malformed lines skipped` : '';
  stderr.line(
    `attribute: read ${count(dataset.samples.length)} samples (${count(dataset.tokens)} tokens) from ${values.dataset} ` +
      `in ${seconds(readMs)} (${tokenizer.id}${skippedNote}); scoring ${count(accounts.ids.length)} candidate accounts`,
  );
  const result = await attributeAccounts(dataset.samples, {
    spec,
    master,
    ...(tenant === undefined ? {} : { tenant }),
    accounts,
    alpha,
    ...(threads === undefined ? {} : { threads }),
  });
  const report: AttributeReport = {
    command: 'attribute',
    dataset: values.dataset,
    tokenizer: tokenizer.id,
    organisation: { ...result.organisation, detected: result.organisation.log10PValue <= Math.log10(alpha) },
    accounts: result.accounts,
    correction: result.correction,
    alpha,
    attributed: result.attributed,
    candidates: result.candidates,
    samples: result.samples,
    tokens: dataset.tokens,
    scored: result.scored,
    skipped: result.skipped,
    sampleAlpha: result.sampleAlpha,
    badLines: dataset.badLines,
    groups: result.groups,
    threads: result.threads,
    timings: { readMs, ...result.timings },
  };
  if (values.json) process.stdout.write(`${JSON.stringify(report)}\n`);
  else process.stdout.write(`${attributeLines(report, top).join('\n')}\n`);
  stderr.line(summaryLine(report));
  return 0;
}

/** Candidate ids, one a line (blank lines ignored; surrounding spaces trimmed), each distinct and accepted by the watermark. */
export function readAccounts(path: string): string[] {
  const text = readTextFile(path, 'accounts file');
  const ids: string[] = [];
  const lineOf = new Map<string, number>();
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const id = lines[i].trim();
    if (id === '') continue;
    try {
      checkAccountId(id);
    } catch (error) {
      fail('E_INPUT', `${path}, line ${i + 1}: ${(error as Error).message}`);
    }
    const first = lineOf.get(id);
    if (first !== undefined)
      fail(
        'E_INPUT',
        `${path}: account id ${JSON.stringify(id.slice(0, 80))} appears twice (lines ${first} and ${i + 1})`,
      );
    lineOf.set(id, i + 1);
    ids.push(id);
  }
  if (ids.length === 0) fail('E_INPUT', `${path} lists no account ids (one id a line)`);
  return ids;
}

interface Dataset {
  samples: SuspectSample[];
  tokens: number;
  badLines: { count: number; lines: number[] };
}

/** The prompt and output texts of one dataset line, or why the line is malformed. */
export function recordTexts(line: string): { prompt: string; text: string }[] | string {
  let record: unknown;
  try {
    record = JSON.parse(line);
  } catch {
    return 'not valid JSON';
  }
  if (record === null || typeof record !== 'object' || Array.isArray(record)) return 'not a JSON object';
  const { text, prompt, messages } = record as { text?: unknown; prompt?: unknown; messages?: unknown };
  if (text !== undefined) {
    if (typeof text !== 'string') return '"text" is not a string';
    if (prompt !== undefined && prompt !== null && typeof prompt !== 'string')
      return '"prompt" is not a string';
    return [{ prompt: typeof prompt === 'string' ? prompt : '', text }];
  }
  if (messages === undefined) return 'no "text" field (nor "messages")';
  // The OpenAI fine-tuning chat format: each assistant message is a sample, the user message before it its prompt.
  if (!Array.isArray(messages)) return '"messages" is not an array';
  const out: { prompt: string; text: string }[] = [];
  let lastUser = '';
  for (let m = 0; m < messages.length; m++) {
    const message = messages[m] as { role?: unknown; content?: unknown } | null;
    if (message === null || typeof message !== 'object') return `messages[${m}] is not an object`;
    const content = contentText(message.content);
    if (message.role === 'user') {
      if (content === undefined) return `messages[${m}].content is not text`;
      lastUser = content;
    } else if (message.role === 'assistant') {
      // An assistant turn without text (a tool call) carries nothing to score.
      if (message.content === null || message.content === undefined) continue;
      if (content === undefined) return `messages[${m}].content is not text`;
      out.push({ prompt: lastUser, text: content });
    }
  }
  if (out.length === 0) return '"messages" has no assistant message with text';
  return out;
}

/** A message's content as text: a string, or the text parts of an array of content parts. */
function contentText(content: unknown): string | undefined {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return undefined;
  let text = '';
  for (const part of content) {
    const p = part as { type?: unknown; text?: unknown } | null;
    if (p === null || typeof p !== 'object') return undefined;
    if (p.type === 'text') {
      if (typeof p.text !== 'string') return undefined;
      text += p.text;
    }
  }
  return text;
}

/**
 * The dataset's samples, read line by line (a line at a time in memory, not the file), each decoded as UTF-8
 * and parsed; a malformed line fails the command with its number, or is counted and skipped with `skipBad`.
 */
async function readDataset(
  path: string,
  tokenizer: Tokenizer,
  skipBad: boolean,
  quiet: boolean,
): Promise<Dataset> {
  let stat: ReturnType<typeof statSync>;
  try {
    stat = statSync(path);
  } catch (error) {
    fail(
      'E_INPUT',
      `cannot read dataset ${path}: ${(error as NodeJS.ErrnoException).code ?? 'unknown error'}`,
    );
  }
  if (stat.isDirectory()) fail('E_INPUT', `cannot read dataset ${path}: it is a directory`);
  const size = Number(stat.size);
  const encode = (text: string): ArrayLike<number> =>
    text === '' ? [] : (tokenizer.encodeIds?.(text) ?? tokenizer.encode(text).ids);
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const samples: SuspectSample[] = [];
  const badLines = { count: 0, lines: [] as number[] };
  let tokens = 0;
  let lineNumber = 0;
  const bar = quiet || !process.stderr.isTTY ? null : byteBar(size);

  const handle = (bytes: Uint8Array) => {
    lineNumber++;
    let line: string;
    let problem: string | undefined;
    try {
      line = decoder.decode(bytes);
    } catch {
      line = '';
      problem = 'not valid UTF-8';
    }
    if (problem === undefined) {
      if (line.endsWith('\r')) line = line.slice(0, -1);
      if (line.trim() === '') return;
      const texts = recordTexts(line);
      if (typeof texts === 'string') problem = texts;
      else {
        for (const { prompt, text } of texts) {
          const output = encode(text);
          tokens += output.length;
          samples.push({ prompt: encode(prompt), output });
        }
        return;
      }
    }
    if (!skipBad)
      fail('E_INPUT', `${path}, line ${lineNumber}: ${problem} (--on-bad-line skip skips malformed lines)`);
    badLines.count++;
    if (badLines.lines.length < BAD_LINES_LISTED) badLines.lines.push(lineNumber);
  };

  let done = 0;
  let rest: Uint8Array = new Uint8Array(0);
  try {
    for await (const chunk of createReadStream(path)) {
      const buffer = chunk as Buffer;
      let start = 0;
      for (let i = buffer.indexOf(10); i !== -1; i = buffer.indexOf(10, start)) {
        const piece = buffer.subarray(start, i);
        handle(rest.length === 0 ? piece : Buffer.concat([rest, piece]));
        rest = new Uint8Array(0);
        start = i + 1;
      }
      rest = rest.length === 0 ? buffer.subarray(start) : Buffer.concat([rest, buffer.subarray(start)]);
      done += buffer.length;
      bar?.update(done);
    }
  } catch (error) {
    if (error instanceof VerifierError) throw error;
    const code = (error as NodeJS.ErrnoException).code;
    if (code === undefined) throw error;
    fail('E_INPUT', `cannot read dataset ${path}: ${code}`);
  } finally {
    bar?.stop();
  }
  if (rest.length > 0) handle(rest);
  return { samples, tokens, badLines };
}

/** On a terminal, a bar over the dataset's bytes, redrawn in place on standard error. */
function byteBar(total: number): SingleBar {
  const bar = new SingleBar({
    format: 'attribute: reading [{bar}] {percentage}% | {duration_formatted}',
    stream: process.stderr,
    hideCursor: true,
    clearOnComplete: true,
  });
  bar.start(Math.max(1, total), 0);
  return bar;
}

function count(n: number): string {
  return Math.round(n).toLocaleString('en');
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(2)} s`;
}

function p(value: number, log10: number): string {
  return formatPValue(value, log10);
}

/** The human summary: the organisation layer, the attributed accounts, the correction and the next candidates. */
export function attributeLines(report: AttributeReport, top: number): string[] {
  const org = report.organisation;
  const lines = [
    `dataset        ${report.dataset}: ${count(report.samples)} samples, ${count(report.tokens)} tokens (${count(report.scored)} scored, tokenizer ${report.tokenizer})` +
      (report.badLines.count > 0
        ? `; ${count(report.badLines.count)} malformed lines skipped (lines ${report.badLines.lines.join(', ')}${report.badLines.count > report.badLines.lines.length ? ', …' : ''})`
        : ''),
    `key            ${org.masterFingerprint}${org.tenant === undefined ? '' : ` tenant ${org.tenant}`} (scheme key ${org.keyFingerprint})`,
    `organisation   p ${p(org.pValue, org.log10PValue)} over ${count(org.scored)} scored tokens (${count(org.scoreSum)} green): ` +
      `${org.detected ? 'watermark detected' : 'no watermark detected'} at α = ${report.alpha}`,
    `candidates     ${count(report.candidates)} accounts; p-values Holm-corrected over all of them; attributed at adjusted p ≤ ${report.alpha}`,
  ];
  const attributed = report.accounts.filter((a) => a.attributed);
  const others = report.accounts.filter((a) => !a.attributed).slice(0, top);
  const width = Math.max(2, ...attributed.map((a) => a.id.length), ...others.map((a) => a.id.length));
  const row = (a: AccountAttribution) =>
    `  ${a.id.padEnd(width)}  p ${p(a.pValue, a.log10PValue).padEnd(10)}  adjusted p ${p(a.adjustedPValue, a.log10AdjustedPValue).padEnd(10)}` +
    `  ${count(a.green)}/${count(report.scored)} green` +
    (a.samples === null ? '' : `  ${count(a.samples)} samples with p ≤ ${report.sampleAlpha} on their own`);
  if (attributed.length === 0) {
    lines.push(`attributed     none of the ${count(report.candidates)} candidates`);
  } else {
    lines.push(`attributed     ${attributed.length} account${attributed.length === 1 ? '' : 's'}:`);
    for (const a of attributed) lines.push(row(a));
  }
  if (others.length > 0) {
    lines.push(`next           the ${others.length} most significant other candidates:`);
    for (const a of others) lines.push(row(a));
  }
  return lines;
}

export function summaryLine(r: AttributeReport): string {
  return (
    `attribute: ${count(r.samples)} samples, ${count(r.tokens)} tokens (${count(r.scored)} scored), ` +
    `${count(r.candidates)} candidates: ${r.attributed.length} attributed at Holm-adjusted p ≤ ${r.alpha}; ` +
    `organisation p ${p(r.organisation.pValue, r.organisation.log10PValue)}; ` +
    `read ${seconds(r.timings.readMs)}, tape ${seconds(r.timings.tapeMs)}, score ${seconds(r.timings.scoreMs)} ` +
    `with ${r.threads} thread${r.threads === 1 ? '' : 's'}`
  );
}
