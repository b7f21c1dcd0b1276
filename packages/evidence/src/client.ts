import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import OpenAI, { APIConnectionError, APIError, APIUserAbortError } from 'openai';
import { fail } from './errors';
import type { ProbePrompt } from './prompts';
import { type ProbeApi, type ResponseRecord, sha256Hex } from './store';

/**
 * One suspect endpoint, spoken to through the official `openai` client (v6) with its own retries off: this
 * layer retries network errors, timeouts, 408, 409 and 5xx with exponential backoff and full jitter, and 429 after
 * the server's Retry-After (seconds or an HTTP date; `retry-after-ms` too). Each attempt has its own deadline
 * covering the whole body. The request body is kept exactly as sent and the response body byte for byte.
 */
export interface ProbeClientOptions {
  /** Base URL of the OpenAI-compatible API, e.g. http://127.0.0.1:8000/v1. */
  endpoint: string;
  /** Bearer token; without one no Authorization header is sent. */
  apiKey?: string;
  /** Deadline of one attempt, headers and body (ms). */
  timeoutMs: number;
  /** Retries after the first attempt. */
  retries: number;
  /** Backoff before retry r (1-based): uniform in [0, min(maxMs, baseMs · 2^(r−1))]. */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** Longest Retry-After honoured (ms); a longer one is waited for this long. */
  maxRetryAfterMs?: number;
  /** Called before each retry, for progress output. */
  onRetry?: (event: RetryEvent) => void;
}

export interface RetryEvent {
  promptId: string;
  sample: number;
  attempt: number;
  reason: string;
  delayMs: number;
}

export interface ProbeParameters {
  api: ProbeApi;
  model: string;
  temperature: number;
  maxTokens: number;
  /** Base of the per-request `seed` (each (prompt, sample) gets its own); none sent when undefined. */
  seed?: number;
}

/** The `seed` sent for one (prompt, sample): a 31-bit hash of the base seed, the prompt id and the sample. */
export function requestSeed(base: number, promptId: string, sample: number): number {
  const digest = createHash('sha256').update(`${base}\0${promptId}\0${sample}`).digest();
  return digest.readUInt32BE(0) >>> 1;
}

const RETRYABLE_STATUS = new Set([408, 409, 425, 429, 500, 502, 503, 504]);
/** Connection failures that mean a wrong address rather than a busy server. */
const UNREACHABLE = new Set(['ECONNREFUSED', 'ENOTFOUND', 'EHOSTUNREACH', 'ENETUNREACH', 'bad port']);

export class ProbeClient {
  readonly endpoint: string;
  readonly #options: Required<Omit<ProbeClientOptions, 'apiKey' | 'onRetry'>> & ProbeClientOptions;
  readonly #client: OpenAI;
  /** Whether the endpoint has answered at all: until it has, an address that refuses connections is an error. */
  #answered = false;

  constructor(options: ProbeClientOptions) {
    let url: URL;
    try {
      url = new URL(options.endpoint);
    } catch {
      fail(
        'E_USAGE',
        `--endpoint must be an http(s) URL; got ${JSON.stringify(options.endpoint.slice(0, 200))}`,
      );
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      fail('E_USAGE', `--endpoint must be an http(s) URL; got ${url.protocol} URL`);
    }
    if (url.username !== '' || url.password !== '') {
      fail('E_USAGE', '--endpoint must not carry credentials; give the API key through --api-key-env');
    }
    this.endpoint = options.endpoint.replace(/\/+$/, '');
    this.#options = {
      backoffBaseMs: 500,
      backoffMaxMs: 30_000,
      maxRetryAfterMs: 300_000,
      ...options,
    };
    const hasKey = options.apiKey !== undefined && options.apiKey !== '';
    this.#client = new OpenAI({
      baseURL: this.endpoint,
      apiKey: hasKey ? options.apiKey : 'unused',
      organization: null,
      project: null,
      maxRetries: 0,
      timeout: options.timeoutMs,
      logLevel: 'off',
      // Keyless endpoints (local servers) get no Authorization header at all.
      fetch: hasKey ? undefined : keylessFetch,
    });
  }

  /** Where retries are reported (progress output). */
  setRetryReporter(report: ((event: RetryEvent) => void) | undefined): void {
    this.#options.onRetry = report;
  }

  /** The body sent for a prompt. */
  requestBody(prompt: ProbePrompt, sample: number, parameters: ProbeParameters): Record<string, unknown> {
    const sampling = {
      temperature: parameters.temperature,
      max_tokens: parameters.maxTokens,
      ...(parameters.seed === undefined ? {} : { seed: requestSeed(parameters.seed, prompt.id, sample) }),
    };
    if (parameters.api === 'completions')
      return { model: parameters.model, prompt: prompt.prompt, ...sampling };
    const messages = [
      ...(prompt.system === null ? [] : [{ role: 'system', content: prompt.system }]),
      { role: 'user', content: prompt.prompt },
    ];
    return { model: parameters.model, messages, ...sampling };
  }

  /**
   * Sends one prompt until an answer arrives or the retries run out. Aborting `signal` rejects with an
   * AbortError. Failures are one-line VerifierErrors that never carry the API key.
   */
  async complete(
    prompt: ProbePrompt,
    sample: number,
    parameters: ProbeParameters,
    signal?: AbortSignal,
  ): Promise<Omit<ResponseRecord, 'endpoint'> & { endpoint: string }> {
    const body = this.requestBody(prompt, sample, parameters);
    const path = parameters.api === 'chat' ? '/chat/completions' : '/completions';
    const exchange = await this.post(path, body, { promptId: prompt.id, sample }, signal, (bytes) =>
      parseCompletion(bytes, parameters.api, `${prompt.id}#${sample}`),
    );
    const parsed = exchange.parsed;
    return {
      promptId: prompt.id,
      sample,
      prompt: prompt.prompt,
      system: prompt.system,
      api: parameters.api,
      endpoint: this.endpoint,
      requestUrl: exchange.requestUrl,
      requestBody: exchange.requestBody,
      requestedModel: parameters.model,
      reportedModel: parsed.model,
      responseId: parsed.id,
      httpStatus: exchange.httpStatus,
      responseBody: exchange.responseBody,
      responseSha256: exchange.responseSha256,
      output: parsed.text,
      finishReason: parsed.finishReason,
      requestedAt: exchange.requestedAt,
      receivedAt: exchange.receivedAt,
      attempts: exchange.attempts,
    };
  }

  /**
   * POSTs one JSON body to `path` (under the endpoint) until an answer arrives or the retries run out, with the
   * retry rules above; `parse` checks the body (a VerifierError or EvidenceError it throws is not retried).
   * `what` names the request in retry reports. Returns the body as sent and the answer byte for byte.
   */
  async post<T>(
    path: string,
    body: Record<string, unknown>,
    what: { promptId: string; sample: number },
    signal: AbortSignal | undefined,
    parse: (bytes: Uint8Array) => T,
  ): Promise<Exchange<T>> {
    const requestBody = JSON.stringify(body);
    const requestUrl = `${this.endpoint}${path}`;
    const requestedAt = new Date().toISOString();
    const { retries, timeoutMs } = this.#options;
    let lastReason = '';
    for (let attempt = 1; ; attempt++) {
      signal?.throwIfAborted();
      const deadline = AbortSignal.timeout(timeoutMs);
      const attemptSignal = signal === undefined ? deadline : AbortSignal.any([signal, deadline]);
      let delayMs: number;
      try {
        const response = await this.#client
          .post(path, { body, signal: attemptSignal, timeout: timeoutMs, maxRetries: 0 })
          .asResponse();
        const bytes = new Uint8Array(await response.arrayBuffer());
        this.#answered = true;
        const receivedAt = new Date().toISOString();
        const parsed = parse(bytes);
        return {
          requestUrl,
          requestBody,
          httpStatus: response.status,
          responseBody: bytes,
          responseSha256: sha256Hex(bytes),
          parsed,
          requestedAt,
          receivedAt,
          attempts: attempt,
        };
      } catch (error) {
        if (signal?.aborted) throw signal.reason ?? error;
        const verdict = this.#classify(error, deadline.aborted, attempt);
        lastReason = verdict.reason;
        if (verdict.retryAfterMs === null) fail('E_INPUT', `${requestUrl}: ${verdict.reason}`);
        delayMs = verdict.retryAfterMs;
      }
      if (attempt > retries) {
        fail(
          'E_INPUT',
          `${requestUrl}: ${lastReason} (gave up after ${attempt} attempt${attempt === 1 ? '' : 's'})`,
        );
      }
      this.#options.onRetry?.({ ...what, attempt, reason: lastReason, delayMs });
      await sleep(delayMs, undefined, { signal });
    }
  }

  /** A message with the API key, should a server echo it, blanked out. */
  #scrub(message: string): string {
    const key = this.#options.apiKey;
    return key === undefined || key.length < 4 ? message : message.split(key).join('[API key]');
  }

  /** Whether an error is worth another attempt, after how long, and how to describe it. */
  #classify(
    error: unknown,
    timedOut: boolean,
    attempt: number,
  ): { reason: string; retryAfterMs: number | null } {
    const backoff = () => {
      const cap = Math.min(this.#options.backoffMaxMs, this.#options.backoffBaseMs * 2 ** (attempt - 1));
      return Math.round(Math.random() * cap);
    };
    if (timedOut || error instanceof APIUserAbortError) {
      return { reason: `no answer within ${this.#options.timeoutMs / 1000} s`, retryAfterMs: backoff() };
    }
    if (error instanceof APIConnectionError) {
      const cause = connectionCause(error);
      const reason = `cannot reach the endpoint (${cause})`;
      // A wrong address fails at once; once the endpoint has answered, a lost connection is retried.
      if (!this.#answered && UNREACHABLE.has(cause)) return { reason, retryAfterMs: null };
      return { reason, retryAfterMs: backoff() };
    }
    if (error instanceof APIError && typeof error.status === 'number') {
      const status = error.status;
      // A refused key is not described further: some servers echo part of it in the message.
      const detail =
        status === 401 || status === 403 ? 'the API key was refused' : this.#scrub(apiErrorDetail(error));
      const reason = `the endpoint answered HTTP ${status}${detail === '' ? '' : `: ${detail}`}`;
      if (!RETRYABLE_STATUS.has(status)) return { reason, retryAfterMs: null };
      const after = retryAfterMs(error.headers);
      const wait = after === null ? backoff() : Math.min(after, this.#options.maxRetryAfterMs);
      return { reason, retryAfterMs: wait };
    }
    if (
      error instanceof Error &&
      'code' in error &&
      typeof error.code === 'string' &&
      error.code.startsWith('E_')
    ) {
      throw error; // a VerifierError from parsing: not retried
    }
    return {
      reason: `request failed: ${this.#scrub(error instanceof Error ? error.message.split('\n')[0] : String(error))}`,
      retryAfterMs: backoff(),
    };
  }
}

/** Fetch without the Authorization header, for endpoints that take no key. */
const keylessFetch: typeof fetch = (input, init) => {
  const headers = new Headers(init?.headers);
  headers.delete('authorization');
  return fetch(input, { ...init, headers });
};

/** Retry-After as milliseconds: `retry-after-ms`, else Retry-After in seconds or as an HTTP date. */
export function retryAfterMs(headers: Headers | undefined, nowMs = Date.now()): number | null {
  if (headers === undefined) return null;
  const ms = headers.get('retry-after-ms');
  if (ms !== null && /^\d+(\.\d+)?$/.test(ms.trim())) return Math.ceil(Number(ms));
  const value = headers.get('retry-after')?.trim();
  if (value === undefined || value === '') return null;
  if (/^\d+(\.\d+)?$/.test(value)) return Math.ceil(Number(value) * 1000);
  const date = Date.parse(value);
  return Number.isNaN(date) ? null : Math.max(0, date - nowMs);
}

function connectionCause(error: APIConnectionError): string {
  let cause: unknown = (error as { cause?: unknown }).cause;
  for (let depth = 0; depth < 4 && cause instanceof Error; depth++) {
    const code = (cause as NodeJS.ErrnoException).code;
    if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return code;
    const next = (cause as { cause?: unknown }).cause;
    if (!(next instanceof Error)) return cause.message.split('\n')[0];
    cause = next;
  }
  return error.message.split('\n')[0];
}

function apiErrorDetail(error: APIError): string {
  const inner = error.error as { message?: unknown; param?: unknown } | undefined;
  const message = (typeof inner?.message === 'string' ? inner.message : '').split('\n')[0].slice(0, 300);
  // The parameter a refusal names (OpenAI's error.param), when the message does not name it already.
  const param = typeof inner?.param === 'string' ? inner.param.slice(0, 60) : '';
  return param === '' || message.includes(param) ? message : `${message} (param ${param})`;
}

/** One request and its answer, as `ProbeClient.post` returns them. */
export interface Exchange<T> {
  requestUrl: string;
  /** The request body exactly as sent (JSON text). */
  requestBody: string;
  httpStatus: number;
  responseBody: Uint8Array;
  responseSha256: string;
  parsed: T;
  requestedAt: string;
  receivedAt: string;
  attempts: number;
}

interface ParsedCompletion {
  model: string | null;
  id: string | null;
  text: string;
  finishReason: string | null;
}

/** The first choice's text of a chat completion or completion, and the model the endpoint reported. */
export function parseCompletion(bytes: Uint8Array, api: ProbeApi, what: string): ParsedCompletion {
  let body: unknown;
  try {
    body = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    fail('E_INPUT', `the endpoint's answer to ${what} is not JSON`);
  }
  const record = (body ?? {}) as Record<string, unknown>;
  const choice = Array.isArray(record.choices)
    ? (record.choices[0] as Record<string, unknown> | undefined)
    : undefined;
  let text: unknown;
  if (api === 'chat') {
    const message = choice?.message as Record<string, unknown> | undefined;
    text = message === undefined ? undefined : (message.content ?? '');
  } else {
    text = choice?.text;
  }
  if (typeof text !== 'string') {
    fail(
      'E_INPUT',
      `the endpoint's answer to ${what} is not a ${api === 'chat' ? 'chat completion (no choices[0].message.content)' : 'completion (no choices[0].text)'}`,
    );
  }
  return {
    model: typeof record.model === 'string' ? record.model : null,
    id: typeof record.id === 'string' ? record.id : null,
    text,
    finishReason: typeof choice?.finish_reason === 'string' ? choice.finish_reason : null,
  };
}
