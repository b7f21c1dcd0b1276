import type { ReadText } from '@tracemark/verifier';
import { readWindows } from '@tracemark/watermark';
import type { ProbeClient } from './client';
import { EvidenceError, fail } from './errors';
import type { ProbeProgress } from './probe';
import {
  type EvidenceStore,
  type ReadingRecord,
  type ReadSourceKind,
  type ReadTextRecord,
  readingKey,
  readTextId,
  type StoredReading,
  sha256Hex,
} from './store';

/**
 * Reading mode (`tracemark read`, Sander et al. 2024, open-model setting): the owner's watermarked texts are
 * fed to the suspect with teacher forcing, window by window, and its top-1 next token after every prefix is
 * kept. Each window's answer is committed to the evidence store the moment it arrives, keyed by (text, window),
 * so a read stopped at any instant and run again reads only what is missing.
 *
 * Windows are those of the adapters' read contract (`readWindows(length, chunk, overlap)`); window w keeps the
 * predictions for positions p in [keepFrom, end) with p ≥ 1 (p: the prediction after tokens[0..p)), each made
 * with the tokens [start, p) as context. Every position 1..length−1 is kept by exactly one window; the
 * prediction after the whole text is not read (an echo request has no row for it).
 */

/** One window of one text. */
export interface ReadWindow {
  index: number;
  start: number;
  end: number;
  keepFrom: number;
}

/** What a reader returns for one window: everything of its store row but the text and window. */
export type WindowReading = Omit<ReadingRecord, 'textId' | 'window' | 'start' | 'end' | 'keepFrom'>;

/** Reads windows of a suspect: an endpoint (`EndpointReader`) or a local model (the CLI wraps the adapters). */
export interface WindowReader {
  kind: ReadSourceKind;
  /** The endpoint URL, the GGUF file or the ONNX folder, as the store records it. */
  source: string;
  /** The model asked for (endpoint), or null. */
  model: string | null;
  read(tokens: readonly number[], window: ReadWindow, signal?: AbortSignal): Promise<WindowReading>;
}

/** An owner text before tokenization (`text`) or as token ids (`tokens`), with where it came from. */
export interface ReadInput {
  name: string;
  text?: string;
  tokens?: number[];
}

export interface ReadRunOptions {
  reader: WindowReader;
  texts: ReadInput[];
  /** Token ids of a text given as text, with the suspect's (or the watermark's) tokenizer. */
  tokenize: (text: string) => number[] | Promise<number[]>;
  /** The tokenizer's name (the watermark's for an endpoint, the model's own for a local model): bound to the store. */
  tokenizer: string;
  store: EvidenceStore;
  chunk: number;
  overlap: number;
  /** Texts of at most this many tokens give no scorable position (the watermark's context width): not read. */
  minTokens?: number;
  /** Read at most this many windows in this run (the rest is left for the next run). */
  limit?: number;
  /** Recorded with the run, and bound to the store: a later read must use the same (never the API key). */
  settings: Record<string, unknown>;
  progress: (total: number) => ProbeProgress;
}

export interface ReadRunSummary {
  runId: number;
  texts: number;
  /** Texts too short to read (at most `minTokens` tokens), not read. */
  shortTexts: number;
  windows: number;
  alreadyStored: number;
  stored: number;
  /** Positions kept from the windows stored in this run. */
  positions: number;
  /** Windows left for a later run (after --limit). */
  remaining: number;
  /** Readings in the store. */
  total: number;
  seconds: number;
}

/** The windows of a text of `length` tokens. */
export function textWindows(length: number, chunk: number, overlap: number): ReadWindow[] {
  return readWindows(length, chunk, overlap).map((w, index) => ({ index, ...w }));
}

/** The first position window `w` keeps. */
export function firstKept(window: Pick<ReadWindow, 'keepFrom'>): number {
  return Math.max(1, window.keepFrom);
}

export async function runRead(options: ReadRunOptions): Promise<ReadRunSummary> {
  const { store } = options;
  const started = performance.now();
  store.acquireProbeLock();
  try {
    return await readLocked(options, started);
  } finally {
    store.releaseProbeLock();
  }
}

async function readLocked(options: ReadRunOptions, started: number): Promise<ReadRunSummary> {
  const { store, reader, chunk, overlap } = options;
  if (!(Number.isInteger(chunk) && chunk >= 2))
    fail('E_INVALID_OPTIONS', `the context must be at least 2 tokens; got ${chunk}`);
  if (!(Number.isInteger(overlap) && overlap >= 1 && overlap < chunk))
    fail('E_INVALID_OPTIONS', `the overlap must be an integer from 1 to context − 1; got ${overlap}`);
  store.bindMode('read');
  // One store, one reading: the same source and windows on every run, so that rows of two runs fit together.
  const binding = JSON.stringify({
    source: reader.source,
    kind: reader.kind,
    model: reader.model,
    tokenizer: options.tokenizer,
    chunk,
    overlap,
  });
  const bound = store.getMeta('read_binding');
  if (bound === undefined) store.setMeta('read_binding', binding);
  else if (bound !== binding) {
    const was = JSON.parse(bound) as Record<string, unknown>;
    const diff = Object.keys(was)
      .filter((k) => JSON.stringify(was[k]) !== JSON.stringify(JSON.parse(binding)[k]))
      .map((k) => `${k} ${JSON.stringify(was[k])}`)
      .join(', ');
    fail(
      'E_USAGE',
      `${store.path} was read with ${diff}: resume with the same settings, or use another --store`,
    );
  }
  if (store.model === undefined) store.setMeta('model', reader.model ?? reader.source);

  const minTokens = options.minTokens ?? 1;
  const texts: ReadTextRecord[] = [];
  let shortTexts = 0;
  for (const input of options.texts) {
    const tokens = input.tokens ?? (await options.tokenize(input.text ?? ''));
    if (tokens.length <= minTokens) {
      shortTexts++;
      continue;
    }
    texts.push({ textId: readTextId(tokens), name: input.name, tokens });
  }

  const storedKeys = store.storedReadingKeys();
  const todo: { text: ReadTextRecord; window: ReadWindow }[] = [];
  let windows = 0;
  let alreadyStored = 0;
  for (const text of texts) {
    for (const window of textWindows(text.tokens.length, chunk, overlap)) {
      windows++;
      if (storedKeys.has(readingKey(text.textId, window.index))) alreadyStored++;
      else todo.push({ text, window });
    }
  }
  const limit = options.limit ?? Number.POSITIVE_INFINITY;
  const now = todo.slice(0, limit);
  const runId = store.startRun(options.settings);
  let stored = 0;
  let positions = 0;
  const summary = (): ReadRunSummary => ({
    runId,
    texts: texts.length,
    shortTexts,
    windows,
    alreadyStored,
    stored,
    positions,
    remaining: todo.length - stored,
    total: store.readingCount(),
    seconds: (performance.now() - started) / 1000,
  });
  if (now.length === 0) {
    store.finishRun(runId, { state: 'complete', stored: 0 });
    return summary();
  }
  const progress = options.progress(now.length);
  const added = new Set<string>();
  try {
    for (const { text, window } of now) {
      if (!added.has(text.textId)) {
        store.insertReadText(text);
        added.add(text.textId);
      }
      const reading = await reader.read(text.tokens, window);
      const record: ReadingRecord = {
        ...reading,
        textId: text.textId,
        window: window.index,
        start: window.start,
        end: window.end,
        keepFrom: window.keepFrom,
      };
      // Parsed before it is stored: a body that is not a reading of this window is refused, not kept.
      positions += windowPredictions(record, text.tokens).kept;
      if (store.insertReading(runId, record)) stored++;
      progress.tick();
    }
  } catch (error) {
    progress.finish();
    store.finishRun(runId, {
      state: 'failed',
      stored,
      reason: error instanceof Error ? error.message.split('\n')[0] : String(error),
    });
    throw error;
  }
  progress.finish();
  const result = summary();
  store.finishRun(runId, { state: result.remaining > 0 ? 'limited' : 'complete', stored, positions });
  return result;
}

/** The echo request of one window: its token ids, echoed with the top-1 log-probability of every position. */
export interface EndpointReaderOptions {
  client: ProbeClient;
  model: string;
  /** The field asking for token ids: tracemark's `return_token_ids` (default) or vLLM's `return_tokens_as_token_ids`. */
  tokenIdsParam?: 'return_token_ids' | 'return_tokens_as_token_ids';
}

export class EndpointReader implements WindowReader {
  readonly kind = 'endpoint' as const;
  readonly source: string;
  readonly model: string;
  readonly #client: ProbeClient;
  readonly #param: string;

  constructor(options: EndpointReaderOptions) {
    this.#client = options.client;
    this.source = options.client.endpoint;
    this.model = options.model;
    this.#param = options.tokenIdsParam ?? 'return_token_ids';
  }

  requestBody(tokens: readonly number[], window: ReadWindow): Record<string, unknown> {
    return {
      model: this.model,
      prompt: tokens.slice(window.start, window.end),
      echo: true,
      max_tokens: 0,
      logprobs: 1,
      [this.#param]: true,
    };
  }

  async read(tokens: readonly number[], window: ReadWindow, signal?: AbortSignal): Promise<WindowReading> {
    const body = this.requestBody(tokens, window);
    const what = `window ${window.index} [${window.start}, ${window.end})`;
    let exchange: Awaited<ReturnType<ProbeClient['post']>>;
    try {
      exchange = await this.#client.post(
        '/completions',
        body,
        { promptId: `window ${window.index}`, sample: 0 },
        signal,
        (bytes) => {
          // Checked on arrival: an answer without logprobs is a refusal, not evidence.
          parseEchoReading(bytes, tokens.slice(window.start, window.end), what);
          return reportedModelOf(bytes);
        },
      );
    } catch (error) {
      throw refusal(error);
    }
    return {
      sourceKind: 'endpoint',
      source: this.source,
      requestUrl: exchange.requestUrl,
      requestBody: exchange.requestBody,
      requestedModel: this.model,
      reportedModel: exchange.parsed as string | null,
      httpStatus: exchange.httpStatus,
      responseBody: exchange.responseBody,
      responseSha256: exchange.responseSha256,
      requestedAt: exchange.requestedAt,
      receivedAt: exchange.receivedAt,
      attempts: exchange.attempts,
    };
  }
}

/** An HTTP 4xx to a reading request: the reading parameters it refused, in one line. */
function refusal(error: unknown): unknown {
  if (
    !(error instanceof Error) ||
    !/answered HTTP 4\d\d/.test(error.message) ||
    /HTTP 40[13]|HTTP 429/.test(error.message)
  )
    return error;
  const named = [
    'echo',
    'logprobs',
    'max_tokens',
    'return_token_ids',
    'return_tokens_as_token_ids',
    'prompt',
  ].filter((p) => new RegExp(`\\b${p}\\b`).test(error.message));
  const cause = error.message.replace(/^\S+: /, '');
  const what = named.length > 0 ? named.join(', ') : 'echo, max_tokens: 0, logprobs';
  return new EvidenceError(
    'E_ENDPOINT',
    `the endpoint refused the reading request (${what}): ${cause}; reading mode needs /v1/completions with echo: true, max_tokens: 0 and logprobs`,
  );
}

export interface ReadBinding {
  source: string;
  kind: ReadSourceKind;
  model: string | null;
  tokenizer: string;
  chunk: number;
  overlap: number;
}

/** The source and windows a reading store was read with (verify rebuilds the windows from them). */
export function readBinding(store: EvidenceStore): ReadBinding | undefined {
  const bound = store.getMeta('read_binding');
  return bound === undefined ? undefined : JSON.parse(bound);
}

function reportedModelOf(bytes: Uint8Array): string | null {
  const body = JSON.parse(new TextDecoder().decode(bytes)) as { model?: unknown };
  return typeof body.model === 'string' ? body.model : null;
}

/** The predictions one window gives: `predictions[p - from]` for positions from..to−1; −1 where none came. */
export interface WindowPredictions {
  from: number;
  to: number;
  predictions: Int32Array;
  /** Positions kept with a prediction, and kept positions the answer gave none for. */
  kept: number;
  missing: number;
}

/**
 * The top-1 id of each position of an echo answer (`choices[0].logprobs`), index j = token start + j: from
 * `top_token_ids[j][0]` (tracemark's `return_token_ids`), else the likeliest `token_id:N` key of
 * `top_logprobs[j]` (vLLM's `return_tokens_as_token_ids`); null entries and positions past the answer's end
 * are −1 (missing). Refuses an answer without logprobs, with top tokens named by text only, or echoing other
 * token ids than were sent.
 */
export function parseEchoReading(bytes: Uint8Array, sent: readonly number[], what: string): Int32Array {
  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    fail('E_INPUT', `the endpoint's answer to ${what} is not JSON`);
  }
  const choices = (body as { choices?: unknown } | null)?.choices;
  const choice = Array.isArray(choices) ? (choices[0] as Record<string, unknown> | undefined) : undefined;
  if (choice === undefined || choice === null || typeof choice !== 'object')
    fail('E_INPUT', `the endpoint's answer to ${what} is not a completion (no choices[0])`);
  const logprobs = choice.logprobs as Record<string, unknown> | null | undefined;
  if (logprobs === null || logprobs === undefined || typeof logprobs !== 'object')
    fail(
      'E_INPUT',
      `the endpoint answered ${what} without logprobs (sent echo: true, logprobs: 1): it does not read prompts with logprobs`,
    );
  const ids = logprobs.token_ids;
  if (Array.isArray(ids)) {
    const same = ids.length <= sent.length && ids.every((id, i) => id === sent[i]);
    if (!same)
      fail(
        'E_INPUT',
        `the endpoint echoed other token ids than were sent for ${what}: it re-tokenized the prompt`,
      );
  }
  const topIds = Array.isArray(logprobs.top_token_ids) ? (logprobs.top_token_ids as unknown[]) : undefined;
  const tops = Array.isArray(logprobs.top_logprobs) ? (logprobs.top_logprobs as unknown[]) : undefined;
  if (topIds === undefined && tops === undefined)
    fail('E_INPUT', `the endpoint answered ${what} without top_logprobs (sent logprobs: 1)`);
  const out = new Int32Array(sent.length).fill(-1);
  for (let j = 1; j < sent.length; j++) {
    const row = topIds?.[j];
    if (Array.isArray(row)) {
      const id = row[0];
      if (Number.isInteger(id) && (id as number) >= 0) out[j] = id as number;
      continue;
    }
    const top = tops?.[j];
    if (top === null || top === undefined || typeof top !== 'object') continue;
    let best = -1;
    let bestLogprob = Number.NEGATIVE_INFINITY;
    for (const [name, logprob] of Object.entries(top as Record<string, unknown>)) {
      const match = /^token_id:(\d+)$/.exec(name);
      if (match === null)
        fail(
          'E_INPUT',
          `the endpoint names the top tokens of ${what} by their text only: ask for token ids (--token-ids return_token_ids, or return_tokens_as_token_ids on vLLM)`,
        );
      if (typeof logprob === 'number' && logprob > bestLogprob) {
        bestLogprob = logprob;
        best = Number(match[1]);
      }
    }
    out[j] = best;
  }
  return out;
}

/** The body stored for a window read from a local model: the predictions of its kept positions, as JSON. */
export function localReadingBody(
  kind: 'gguf' | 'onnx',
  window: ReadWindow,
  predictions: ArrayLike<number>,
): Uint8Array {
  const from = firstKept(window);
  const kept: number[] = [];
  for (let p = from; p < window.end; p++) kept.push(predictions[p - window.start] ?? -1);
  return new TextEncoder().encode(JSON.stringify({ source: kind, from, to: window.end, predictions: kept }));
}

/** A stored window's predictions (the body parsed again: what verify scores is what the body says). */
export function windowPredictions(
  reading: Pick<
    ReadingRecord,
    'sourceKind' | 'start' | 'end' | 'keepFrom' | 'responseBody' | 'textId' | 'window'
  >,
  tokens: readonly number[],
): WindowPredictions {
  const from = firstKept(reading);
  const to = reading.end;
  const what = `window ${reading.window} of text ${reading.textId.slice(0, 12)}`;
  const predictions = new Int32Array(Math.max(0, to - from)).fill(-1);
  if (reading.sourceKind === 'endpoint') {
    const all = parseEchoReading(reading.responseBody, tokens.slice(reading.start, reading.end), what);
    for (let p = from; p < to; p++) predictions[p - from] = all[p - reading.start];
  } else {
    let body: { from?: unknown; to?: unknown; predictions?: unknown };
    try {
      body = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(reading.responseBody));
    } catch {
      fail('E_INPUT', `the reading of ${what} is not JSON`);
    }
    const list = body.predictions;
    if (body.from !== from || body.to !== to || !Array.isArray(list) || list.length !== to - from)
      fail(
        'E_INPUT',
        `the reading of ${what} does not hold the predictions of positions ${from} to ${to - 1}`,
      );
    for (let i = 0; i < list.length; i++) {
      const id = list[i];
      predictions[i] = Number.isInteger(id) && id >= 0 ? id : -1;
    }
  }
  let missing = 0;
  for (const id of predictions) if (id < 0) missing++;
  return { from, to, predictions, kept: predictions.length - missing, missing };
}

/** What verify rebuilds from a reading store. */
export interface StoredReadTexts {
  texts: ReadText[];
  /** Names and ids of the texts, in store order (those with at least one window read). */
  names: { textId: string; name: string; tokens: number; positions: number }[];
  windows: number;
  /** Texts whose windows were not all read (a read stopped by --limit or a kill): scored up to the first gap. */
  incompleteTexts: number;
  readings: StoredReading[];
}

/**
 * The `ReadText`s of a reading store: each text's predictions from its stored windows, checked against their
 * SHA-256 first. A text is cut at its first window not read yet; texts with no window read are left out.
 */
export function storedReadTexts(store: EvidenceStore, chunk: number, overlap: number): StoredReadTexts {
  const byText = new Map<string, Map<number, StoredReading>>();
  const readings: StoredReading[] = [];
  for (const reading of store.readings()) {
    if (sha256Hex(reading.responseBody) !== reading.responseSha256)
      fail(
        'E_INPUT',
        `${store.path}: the body of reading ${reading.seq} does not match its SHA-256; the store was altered`,
      );
    readings.push(reading);
    let windows = byText.get(reading.textId);
    if (windows === undefined) {
      windows = new Map();
      byText.set(reading.textId, windows);
    }
    windows.set(reading.window, reading);
  }
  const texts: ReadText[] = [];
  const names: StoredReadTexts['names'] = [];
  let incompleteTexts = 0;
  let windowCount = 0;
  for (const text of store.readTexts()) {
    const stored = byText.get(text.textId);
    if (stored === undefined) continue;
    const planned = textWindows(text.tokens.length, chunk, overlap);
    const predictions = new Int32Array(text.tokens.length).fill(-1);
    let end = 0;
    for (const window of planned) {
      const reading = stored.get(window.index);
      if (reading === undefined) break;
      if (
        reading.start !== window.start ||
        reading.end !== window.end ||
        reading.keepFrom !== window.keepFrom
      )
        fail(
          'E_INPUT',
          `${store.path}: reading ${reading.seq} is not window ${window.index} of its text; the store was altered`,
        );
      const read = windowPredictions(reading, text.tokens);
      predictions.set(read.predictions, read.from);
      end = window.end;
      windowCount++;
    }
    if (end === 0) continue;
    if (end < text.tokens.length) incompleteTexts++;
    texts.push({ tokens: text.tokens.slice(0, end), predictions: predictions.subarray(0, end) });
    names.push({ textId: text.textId, name: text.name, tokens: text.tokens.length, positions: end });
  }
  return { texts, names, windows: windowCount, incompleteTexts, readings };
}
