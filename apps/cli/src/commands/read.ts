import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import {
  EndpointReader,
  EvidenceStore,
  localReadingBody,
  ProbeClient,
  type ReadInput,
  type ReadWindow,
  runRead,
  sha256Hex,
  type WindowReader,
  type WindowReading,
} from '@tracemark/evidence';
import { jsonArgument, loadTokenizer } from '@tracemark/verifier';
import { parseSpec } from '@tracemark/watermark';
import { fail } from '../errors';
import { formatDuration, Progress } from '../progress';
import { apiKeyFrom } from './probe';

/** The options of `tracemark read`, as commander parses them (declared in main.ts). */
export interface ReadOptions {
  endpoint?: string;
  model?: string;
  gguf?: string;
  onnx?: string;
  texts?: string;
  store?: string;
  context?: string;
  overlap?: string;
  apiKeyEnv?: string;
  tokenizer?: string;
  tokenIds: string;
  spec?: string;
  limit?: string;
  timeout: string;
  retries: string;
  quiet?: boolean;
  json?: boolean;
}

const DEFAULT_CONTEXT = 1024;

function integerOption(name: string, text: string, min: number, max: number): number {
  const value = Number(text);
  if (!(text.trim() !== '' && Number.isInteger(value) && value >= min && value <= max)) {
    fail('E_USAGE', `--${name} must be an integer from ${min} to ${max}; got ${text}`);
  }
  return value;
}

/**
 * The owner's texts: a .txt file (one text), a directory of .txt files (one text each, by name), or JSON Lines
 * (.jsonl / .ndjson) with "text" (a string) or "tokens" (token ids) on each line.
 */
export function readTexts(path: string): ReadInput[] {
  let stat: ReturnType<typeof statSync>;
  try {
    stat = statSync(path);
  } catch {
    fail('E_INPUT', `--texts ${path}: no such file or directory`);
  }
  if (stat.isDirectory()) {
    const files = readdirSync(path)
      .filter((f) => f.endsWith('.txt'))
      .sort();
    if (files.length === 0) fail('E_INPUT', `--texts ${path}: the directory holds no .txt files`);
    return files.map((f) => ({ name: f, text: decode(join(path, f)) }));
  }
  const content = decode(path);
  if (!/\.(jsonl|ndjson)$/.test(path)) {
    if (content.trim() === '') fail('E_INPUT', `--texts ${path} is empty`);
    return [{ name: basename(path), text: content }];
  }
  const texts: ReadInput[] = [];
  const lines = content.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === '') continue;
    const where = `${basename(path)} line ${i + 1}`;
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch {
      fail('E_INPUT', `--texts ${where}: not valid JSON`);
    }
    if (record === null || typeof record !== 'object' || Array.isArray(record))
      fail('E_INPUT', `--texts ${where}: expected an object with "text" or "tokens"`);
    const { text, tokens } = record as { text?: unknown; tokens?: unknown };
    if (tokens !== undefined) {
      if (!(Array.isArray(tokens) && tokens.every((t) => Number.isInteger(t) && t >= 0)))
        fail('E_INPUT', `--texts ${where}: "tokens" must be an array of token ids (non-negative integers)`);
      texts.push({ name: where, tokens: tokens as number[] });
    } else if (typeof text === 'string' && text !== '') {
      texts.push({ name: where, text });
    } else {
      fail('E_INPUT', `--texts ${where}: expected "text" (a non-empty string) or "tokens"`);
    }
  }
  if (texts.length === 0) fail('E_INPUT', `--texts ${path} holds no texts`);
  return texts;
}

function decode(file: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(readFileSync(file));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    fail(
      'E_INPUT',
      code === undefined ? `--texts ${file} is not UTF-8 text` : `cannot read ${file}: ${code}`,
    );
  }
}

/** A local read: one window's predictions (index j: after tokens[start..start+j)), from the adapter. */
type LocalRead = (window: readonly number[]) => Promise<ArrayLike<number>>;

/** A reader over a local model, through the adapter's `readPredictions`: the predictions stored as JSON. */
function localReader(kind: 'gguf' | 'onnx', source: string, read: LocalRead): WindowReader {
  return {
    kind,
    source,
    model: null,
    async read(tokens: readonly number[], window: ReadWindow): Promise<WindowReading> {
      const requestedAt = new Date().toISOString();
      const predictions = await read(tokens.slice(window.start, window.end));
      const body = localReadingBody(kind, window, predictions);
      return {
        sourceKind: kind,
        source,
        requestUrl: null,
        requestBody: JSON.stringify({ read: kind, start: window.start, end: window.end, topK: 1 }),
        requestedModel: null,
        reportedModel: basename(source),
        httpStatus: null,
        responseBody: body,
        responseSha256: sha256Hex(body),
        requestedAt,
        receivedAt: new Date().toISOString(),
        attempts: 1,
      };
    },
  };
}

interface Source {
  reader: WindowReader;
  tokenize: (text: string) => number[] | Promise<number[]>;
  tokenizer: string;
  /** The longest window the model takes (undefined: no limit known). */
  contextSize: number | undefined;
  close(): Promise<void>;
}

/** A GGUF model in node-llama-cpp (loaded only here), on the prebuilt binaries (never a build). */
async function ggufSource(file: string, chunk: number): Promise<Source> {
  const path = resolve(file);
  if (!statSync(path, { throwIfNoEntry: false })?.isFile()) fail('E_INPUT', `--gguf ${file}: no such file`);
  const { getLlama, LlamaLogLevel } = await import('node-llama-cpp');
  const { readPredictions } = await import('@tracemark/adapter-llama-cpp');
  const llama = await getLlama({ build: 'never', logLevel: LlamaLogLevel.error });
  let model: Awaited<ReturnType<typeof llama.loadModel>>;
  try {
    model = await llama.loadModel({ modelPath: path });
  } catch (error) {
    await llama.dispose();
    fail('E_INPUT', `--gguf ${file}: cannot load the model (${firstLine(error)})`);
  }
  const context = await model.createContext({ contextSize: chunk, sequences: 1 });
  const sequence = context.getSequence();
  return {
    reader: localReader('gguf', path, async (window) => {
      const read = await readPredictions(sequence, window, { chunk: window.length, overlap: 0 });
      return read.predictions;
    }),
    tokenize: (text) => Array.from(model.tokenize(text)),
    tokenizer: `gguf:${basename(path)}`,
    contextSize: sequence.contextSize,
    async close() {
      await context.dispose();
      await model.dispose();
      await llama.dispose();
    },
  };
}

/** An ONNX causal LM folder (config.json, tokenizer.json, onnx/model.onnx) in transformers.js, offline. */
async function onnxSource(folder: string): Promise<Source> {
  const path = resolve(folder);
  if (!statSync(path, { throwIfNoEntry: false })?.isDirectory())
    fail('E_INPUT', `--onnx ${folder}: no such directory`);
  const { AutoModelForCausalLM, AutoTokenizer, env } = await import('@huggingface/transformers');
  const { contextSizeOf, readPredictions } = await import('@tracemark/adapter-transformers');
  env.allowRemoteModels = false;
  env.allowLocalModels = true;
  env.localModelPath = dirname(path);
  const id = basename(path);
  let tokenizer: Awaited<ReturnType<typeof AutoTokenizer.from_pretrained>>;
  let model: Awaited<ReturnType<typeof AutoModelForCausalLM.from_pretrained>>;
  try {
    tokenizer = await AutoTokenizer.from_pretrained(id);
    model = await AutoModelForCausalLM.from_pretrained(id, { dtype: 'fp32' });
  } catch (error) {
    fail('E_INPUT', `--onnx ${folder}: cannot load the model (${firstLine(error)})`);
  }
  return {
    reader: localReader('onnx', path, async (window) => {
      const read = await readPredictions(model, window, { chunk: window.length, overlap: 0 });
      return read.predictions;
    }),
    tokenize: (text) => Array.from(tokenizer.encode(text, { add_special_tokens: false })),
    tokenizer: `onnx:${id}`,
    contextSize: contextSizeOf(model),
    async close() {
      await model.dispose();
    },
  };
}

function firstLine(error: unknown): string {
  return (error instanceof Error ? error.message : String(error)).split('\n')[0].slice(0, 300);
}

export async function runReadCommand(values: ReadOptions, positionals: string[]): Promise<number> {
  if (positionals.length > 0) fail('E_USAGE', `read takes no positional arguments; got ${positionals[0]}`);
  const sources = [values.endpoint, values.gguf, values.onnx].filter((s) => s !== undefined).length;
  if (sources !== 1)
    fail(
      'E_USAGE',
      'read needs one suspect: --endpoint <base URL> --model <name>, --gguf <file> or --onnx <dir>',
    );
  if (values.texts === undefined)
    fail('E_USAGE', "read needs --texts <file|dir|file.jsonl> (the owner's texts)");
  if (values.store === undefined) fail('E_USAGE', 'read needs --store <evidence.db>');
  if (values.endpoint !== undefined && (values.model === undefined || values.model === ''))
    fail('E_USAGE', 'read --endpoint needs --model <name>');
  if (values.endpoint === undefined) {
    if (values.model !== undefined) fail('E_USAGE', '--model is only used with --endpoint');
    if (values.tokenizer !== undefined)
      fail(
        'E_USAGE',
        "--tokenizer is only used with --endpoint: a local model's texts are read with its own tokenizer",
      );
    if (values.apiKeyEnv !== undefined) fail('E_USAGE', '--api-key-env is only used with --endpoint');
  }
  const tokenIdsParam = values.tokenIds;
  if (tokenIdsParam !== 'return_token_ids' && tokenIdsParam !== 'return_tokens_as_token_ids')
    fail(
      'E_USAGE',
      `--token-ids must be return_token_ids or return_tokens_as_token_ids; got ${tokenIdsParam}`,
    );
  const explicitContext =
    values.context === undefined ? undefined : integerOption('context', values.context, 2, 1_048_576);
  const limit = values.limit === undefined ? undefined : integerOption('limit', values.limit, 1, 100_000_000);
  const timeoutSeconds = Number(values.timeout);
  if (!(values.timeout.trim() !== '' && timeoutSeconds >= 0.1 && timeoutSeconds <= 3600))
    fail('E_USAGE', `--timeout must be a number from 0.1 to 3600; got ${values.timeout}`);
  const retries = integerOption('retries', values.retries, 0, 100);
  // The watermark's context width: a text of at most h tokens has no position to score.
  let minTokens = 1;
  let vocabSize: number | undefined;
  if (values.spec !== undefined) {
    const spec = parseSpec(jsonArgument(values.spec, '--spec'));
    minTokens = Math.max(1, spec.contextWidth);
    vocabSize = spec.vocabSize;
  }
  const inputs = readTexts(values.texts);

  let source: Source;
  if (values.endpoint !== undefined) {
    const { key: apiKey } = apiKeyFrom(values.apiKeyEnv);
    const client = new ProbeClient({
      endpoint: values.endpoint,
      apiKey,
      timeoutMs: timeoutSeconds * 1000,
      retries,
    });
    const name = values.tokenizer ?? 'o200k_base';
    const tokenizer = await loadTokenizer(name);
    source = {
      reader: new EndpointReader({ client, model: values.model as string, tokenIdsParam }),
      tokenize: (text) => Array.from(tokenizer.encodeIds?.(text) ?? tokenizer.encode(text).ids),
      tokenizer: tokenizer.id,
      contextSize: undefined,
      async close() {},
    };
    client.setRetryReporter((event) =>
      say(
        `retry ${event.promptId} (attempt ${event.attempt + 1} in ${formatDuration(event.delayMs / 1000)}): ${event.reason}`,
      ),
    );
  } else if (values.gguf !== undefined) {
    source = await ggufSource(values.gguf, explicitContext ?? DEFAULT_CONTEXT);
  } else {
    source = await onnxSource(values.onnx as string);
  }

  const err = process.stderr;
  let progress: Progress | undefined;
  function say(line: string): void {
    if (values.quiet) return;
    if (progress === undefined) err.write(`${line}\n`);
    else progress.message(line);
  }

  let store: EvidenceStore | undefined;
  try {
    const chunk =
      explicitContext ??
      (source.contextSize === undefined ? DEFAULT_CONTEXT : Math.min(DEFAULT_CONTEXT, source.contextSize));
    if (source.contextSize !== undefined && chunk > source.contextSize)
      fail('E_USAGE', `--context ${chunk} is more than the model's context size (${source.contextSize})`);
    const overlap =
      values.overlap === undefined
        ? Math.floor(chunk / 2)
        : integerOption('overlap', values.overlap, 1, chunk - 1);
    if (overlap < 1) fail('E_USAGE', `--context must be at least 2; got ${chunk}`);
    const tokenize = async (text: string) => {
      const ids = await source.tokenize(text);
      if (vocabSize !== undefined && ids.some((id) => id >= vocabSize))
        fail(
          'E_TOKEN_RANGE',
          `the tokenizer ${source.tokenizer} gives token ids beyond the spec's vocabSize (${vocabSize}): the texts must be read in the watermark's vocabulary`,
        );
      return ids;
    };
    store = EvidenceStore.open(values.store, { create: true });
    const summary = await runRead({
      reader: source.reader,
      texts: inputs,
      tokenize,
      tokenizer: source.tokenizer,
      store,
      chunk,
      overlap,
      minTokens,
      limit,
      settings: {
        source: source.reader.source,
        kind: source.reader.kind,
        ...(values.model === undefined ? {} : { model: values.model }),
        texts: values.texts,
        tokenizer: source.tokenizer,
        context: chunk,
        overlap,
        ...(limit === undefined ? {} : { limit }),
        ...(source.reader.kind === 'endpoint'
          ? {
              timeoutSeconds,
              retries,
              tokenIds: tokenIdsParam,
              apiKey:
                apiKeyFrom(values.apiKeyEnv).key === undefined
                  ? 'none'
                  : `from $${values.apiKeyEnv ?? 'OPENAI_API_KEY'}`,
            }
          : {}),
      },
      progress: (total) => {
        // Once the store has accepted this read (its kind of evidence, its settings), and there is work.
        say(
          `reading ${inputs.length} text${inputs.length === 1 ? '' : 's'} with ${source.reader.kind === 'endpoint' ? `${values.model} at ${source.reader.source}` : source.reader.source} (${source.tokenizer}): windows of ${chunk} tokens, ${overlap} of context`,
        );
        progress = new Progress(
          values.quiet
            ? { write: () => {} }
            : { write: (text) => err.write(text), isTTY: err.isTTY === true, columns: err.columns },
          total,
          'read',
        );
        return progress;
      },
    });
    if (values.json) {
      process.stdout.write(
        `${JSON.stringify({ store: values.store, source: source.reader.source, ...summary })}\n`,
      );
      return 0;
    }
    const lines = [
      `read ${summary.texts} text${summary.texts === 1 ? '' : 's'}${summary.shortTexts > 0 ? ` (${summary.shortTexts} shorter than ${minTokens + 1} tokens, not read)` : ''}: ${summary.windows} windows, ${summary.stored} read now (${summary.positions} positions predicted) in ${formatDuration(summary.seconds)}, ${summary.alreadyStored} already stored; ${values.store} holds ${summary.total}`,
    ];
    if (summary.remaining > 0)
      lines.push(`${summary.remaining} windows left: run the same command again to read them`);
    process.stdout.write(`${lines.join('\n')}\n`);
    return 0;
  } finally {
    store?.close();
    await source.close();
  }
}
