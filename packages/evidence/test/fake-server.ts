import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll } from 'vitest';

/**
 * A small OpenAI-compatible server for probe tests (node:http on 127.0.0.1): answers chat completions and
 * completions after `delayMs`, with the text `reply(prompt, n)` (n counts requests for that prompt), and
 * follows a script of failures for the first requests (status codes, optional Retry-After).
 */
export interface FakeServerOptions {
  model?: string;
  delayMs?: number;
  reply?: (prompt: string, n: number) => string;
  /** Answers for the first requests, in order: a status (with optional headers) instead of a completion. */
  failures?: { status: number; headers?: Record<string, string>; body?: string }[];
  /** Require this bearer token (401 otherwise). */
  apiKey?: string;
  /**
   * Reading mode: answers `echo: true` completions whose prompt is a list of token ids, in the legacy logprobs
   * shape of the demo server: `predict(ids)[j]` is the top-1 id after ids[0..j) (index 0 and nulls: none).
   */
  predict?: (ids: number[]) => (number | null)[];
  /**
   * How the echo names its top tokens: 'ids' (`token_ids`, `top_token_ids`, as the demo server with
   * `return_token_ids`), 'vllm' (`token_id:N` keys, as vLLM with `return_tokens_as_token_ids`), 'text'
   * (strings only), 'none' (`logprobs: null`). Default 'ids'.
   */
  echoFormat?: 'ids' | 'vllm' | 'text' | 'none';
  /** Answer only the first this many positions of each echo (an endpoint that truncates). */
  echoPositions?: number;
}

export interface FakeServer {
  url: string;
  /** Every request received: time, path, body, authorization header. */
  requests: { at: number; path: string; body: Record<string, unknown>; authorization: string | undefined }[];
  close(): Promise<void>;
}

export async function startFakeServer(options: FakeServerOptions = {}): Promise<FakeServer> {
  const model = options.model ?? 'fake-model';
  const failures = [...(options.failures ?? [])];
  const counts = new Map<string, number>();
  const requests: FakeServer['requests'] = [];
  let served = 0;
  const server: Server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      let body: Record<string, unknown> = {};
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        // answered below
      }
      requests.push({ at: Date.now(), path: req.url ?? '', body, authorization: req.headers.authorization });
      const send = (status: number, payload: unknown, headers: Record<string, string> = {}) => {
        if (res.destroyed) return;
        res.writeHead(status, { 'content-type': 'application/json', ...headers });
        res.end(typeof payload === 'string' ? payload : JSON.stringify(payload));
      };
      const failure = failures.shift();
      if (failure !== undefined) {
        send(
          failure.status,
          failure.body ?? { error: { message: `scripted ${failure.status}`, type: 'server_error' } },
          failure.headers,
        );
        return;
      }
      if (options.apiKey !== undefined && req.headers.authorization !== `Bearer ${options.apiKey}`) {
        send(401, {
          error: {
            message: `Incorrect API key provided: ${req.headers.authorization}`,
            type: 'invalid_request_error',
          },
        });
        return;
      }
      const chat = req.url?.endsWith('/chat/completions') === true;
      if (!chat && body.echo === true && Array.isArray(body.prompt)) {
        const ids = (body.prompt as number[]).slice(0, options.echoPositions ?? body.prompt.length);
        const top = (options.predict ?? ((p: number[]) => p.map(() => null)))(ids);
        const format = options.echoFormat ?? 'ids';
        const rows = ids.map((_, j) => (j === 0 || top[j] == null ? null : (top[j] as number)));
        const logprobs =
          format === 'none'
            ? null
            : {
                tokens: ids.map((id) => (format === 'vllm' ? `token_id:${id}` : `t${id}`)),
                token_logprobs: ids.map((_, j) => (j === 0 ? null : -1)),
                top_logprobs: rows.map((id) =>
                  id === null ? null : { [format === 'vllm' ? `token_id:${id}` : `t${id}`]: -0.5 },
                ),
                text_offset: ids.map((_, j) => j),
                ...(format === 'ids'
                  ? { token_ids: ids, top_token_ids: rows.map((id) => (id === null ? null : [id])) }
                  : {}),
              };
        const id = `cmpl-${++served}`;
        setTimeout(() => {
          send(200, {
            id,
            object: 'text_completion',
            created: Math.floor(Date.now() / 1000),
            model,
            choices: [{ index: 0, text: '', logprobs, finish_reason: 'length' }],
            usage: { prompt_tokens: ids.length, completion_tokens: 0, total_tokens: ids.length },
          });
        }, options.delayMs ?? 0);
        return;
      }
      const prompt = chat
        ? String((body.messages as { content: string }[] | undefined)?.at(-1)?.content ?? '')
        : String(body.prompt ?? '');
      const n = counts.get(prompt) ?? 0;
      counts.set(prompt, n + 1);
      const text = (options.reply ?? ((p: string, i: number) => `Answer ${i} to: ${p}`))(prompt, n);
      const id = `cmpl-${++served}`;
      setTimeout(() => {
        send(200, {
          id,
          object: chat ? 'chat.completion' : 'text_completion',
          created: Math.floor(Date.now() / 1000),
          model,
          choices: [
            chat
              ? { index: 0, message: { role: 'assistant', content: text }, finish_reason: 'length' }
              : { index: 0, text, finish_reason: 'length' },
          ],
          usage: { prompt_tokens: 1, completion_tokens: 1, total_tokens: 2 },
        });
      }, options.delayMs ?? 0);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/v1`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

const WORDS =
  'the of and to in is was that for on with as by at from his her they this which but be had not are were have one all their there been would when who will more an can said some what out about into them time only could than other then its over also after two may first any these new where most like well our even because such through years much back long good man those world still own see men work day very life know how just both make made here way same over people right under place while great think old take never down last again came might each thought house end year left found asked light home city water night small hand part head eyes room side sea voice land mind door half face'.split(
    ' ',
  );

/**
 * Text of space-separated common words, sampled with or without a KGW watermark over those words' o200k
 * tokens: each word is one token, so encoding the text gives back exactly the generated ids.
 */
/** A starter of fake servers for one test file; every server it started is closed after the file's tests. */
export function fakeServers(): (options?: FakeServerOptions) => Promise<FakeServer> {
  const servers: FakeServer[] = [];
  afterAll(async () => {
    await Promise.all(servers.map((s) => s.close()));
  });
  return async (options) => {
    const server = await startFakeServer(options);
    servers.push(server);
    return server;
  };
}

export async function wordWriter(options: {
  spec: Record<string, unknown>;
  key: import('@tracemark/watermark').MasterKey;
  watermark: boolean;
}): Promise<(prompt: string, n: number) => string> {
  const { createRng, createScheme, GenerationSession } = await import('@tracemark/watermark');
  const { loadTokenizer } = await import('@tracemark/verifier');
  const tokenizer = await loadTokenizer('o200k_base');
  const ids = [
    ...new Set(
      WORDS.map((w) => tokenizer.encode(` ${w}`).ids)
        .filter((t) => t.length === 1)
        .map((t) => t[0]),
    ),
  ];
  const candidates = Int32Array.from(ids);
  const scheme = createScheme(options.spec, options.key);
  return (prompt: string, n: number) => {
    const rng = createRng(`${prompt}/${n}`);
    const start = candidates[Math.floor(rng() * candidates.length)];
    const session = new GenerationSession(scheme, {
      prompt: [start],
      seed: `${prompt}/${n}`,
      watermark: options.watermark,
    });
    for (let i = 0; i < 60; i++) {
      const logits = new Float32Array(candidates.length);
      const last = session.tokens[session.tokens.length - 1];
      const local = createRng(`ctx:${last}`);
      for (let j = 0; j < logits.length; j++) logits[j] = 2 * local();
      session.nextFromCandidates(candidates, logits);
    }
    return tokenizer.decode(session.tokens.slice(1));
  };
}
