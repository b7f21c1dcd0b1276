import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS, DEFAULT_RATE_LIMITS } from '../src/config';
import { auth, explainAuth, startApp, TEST_EXPLAIN_TOKEN, TEST_TOKEN, type TestApp } from './helpers';

// Hostile input: bodies built to be expensive, floods, oracle queries, malformed requests. The worker threads
// run the built dist/worker.js (the global setup builds it when it is missing or stale).

type Reply = { statusCode: number; json(): unknown; headers: Record<string, unknown> };

function expectError(response: Reply, status: number, code?: string) {
  expect(response.statusCode).toBe(status);
  const body = response.json() as { error: Record<string, unknown> };
  expect(Object.keys(body.error).sort()).toEqual(['code', 'message', 'param', 'type']);
  if (code !== undefined) expect(body.error.code).toBe(code);
  expect(JSON.stringify(body)).not.toMatch(/\n\s+at /);
  return body.error;
}

const ONE_MIB = 1024 * 1024;

describe('a 1 MiB adversarial body', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp({
      TRACEMARK_WORKER_TIMEOUT_MS: '4000',
      TRACEMARK_RATE_LIMIT_DETECT_TOKENS: '10000000',
    });
  });
  afterAll(async () => {
    await t.cleanup();
  });

  it('leaves /api/health answering within 250 ms every time', async () => {
    const base = await t.app.listen({ host: '127.0.0.1', port: 0 });
    const post = (path: string, body: string, headers: Record<string, string> = {}) =>
      fetch(`${base}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body,
      }).then(async (r) => ({ status: r.status, body: await r.text() }));
    // Bodies of exactly 1 MiB: one character repeated (the BPE's quadratic case), and the longest text
    // /api/detect scores.
    const wrap = (head: string, tail: string) =>
      head + 'a'.repeat(ONE_MIB - head.length - tail.length) + tail;
    const completion = wrap('{"model":"tracemark-teacher","max_tokens":4,"prompt":"', '"}');
    const detectHuge = wrap('{"text":"', '"}');
    expect(Buffer.byteLength(completion)).toBe(ONE_MIB);
    const detectMax = JSON.stringify({ text: 'a'.repeat(DEFAULT_LIMITS.maxDetectChars) });

    const latencies: number[] = [];
    let done = false;
    const polling = (async () => {
      while (!done) {
        const started = performance.now();
        const health = await fetch(`${base}/api/health`);
        expect(health.status).toBe(200);
        await health.text();
        latencies.push(performance.now() - started);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();
    await new Promise((resolve) => setTimeout(resolve, 200));
    const results = await Promise.all([
      post('/v1/completions', completion),
      post('/api/detect', detectHuge, auth),
      post('/api/detect', detectMax, auth),
    ]);
    done = true;
    await polling;
    const sorted = [...latencies].sort((a, b) => a - b);
    const max = sorted.at(-1)!;
    const median = sorted[Math.floor(sorted.length / 2)];
    console.log(
      `health under a 1 MiB body: ${latencies.length} polls, max ${max.toFixed(1)} ms, median ${median.toFixed(1)} ms; ` +
        `responses ${results.map((r) => r.status).join(', ')}`,
    );
    expect(latencies.length).toBeGreaterThan(5);
    expect(max).toBeLessThan(250);
    // Every answer has the OpenAI shape when it is an error.
    for (const r of results)
      if (r.status >= 400) expect(Object.keys(JSON.parse(r.body).error)).toContain('code');
    // Still serving afterwards.
    expect((await fetch(`${base}/api/health`)).status).toBe(200);
  });
});

describe('bounded work', () => {
  it('refuses with 503 when the worker queue is full, instead of queueing without limit', async () => {
    const t = await startApp({
      TRACEMARK_WORKER_QUEUE: '0',
      TRACEMARK_WORKER_TIMEOUT_MS: '3000',
      TRACEMARK_RATE_LIMIT_DETECT_TOKENS: '10000000',
    });
    try {
      const heavy = () =>
        t.app.inject({
          method: 'POST',
          url: '/api/detect',
          headers: auth,
          payload: { text: 'b'.repeat(DEFAULT_LIMITS.maxDetectChars) },
        });
      const [first, second] = await Promise.all([heavy(), heavy()]);
      const statuses = [first.statusCode, second.statusCode].sort();
      expect(statuses).toContain(503);
      const busy = [first, second].find((r) => r.statusCode === 503)!;
      expectError(busy, 503, 'server_busy');
      expect(busy.headers['retry-after']).toBeDefined();
    } finally {
      await t.cleanup();
    }
  });
});

describe('the detector is no green-list oracle', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp({ TRACEMARK_RATE_LIMIT_DETECT_TOKENS: '60000' });
  });
  afterAll(async () => {
    await t.cleanup();
  });

  it('gives the API token aggregates only: 50,000 chosen ids yield no per-token label', async () => {
    const ids = Array.from({ length: 50_000 }, (_, i) => (i * 7919) % 200_000);
    const r = await t.app.inject({
      method: 'POST',
      url: '/api/detect',
      headers: auth,
      payload: { tokens: ids },
    });
    expect(r.statusCode).toBe(200);
    const body = r.json();
    expect(body.scope).toBe('aggregate');
    expect(body.perToken).toBeUndefined();
    expect(body.scored).toBeGreaterThan(40_000);
    expect(typeof body.log10PValue).toBe('number');
    expect(r.body).not.toContain('"score"');
  });

  it('gives per-token scores to the explain token and the loopback UI session', async () => {
    const text = 'The Queen said to the Hatter that the Rabbit was late.';
    const explained = (
      await t.app.inject({ method: 'POST', url: '/api/detect', headers: explainAuth, payload: { text } })
    ).json();
    expect(explained.scope).toBe('explain');
    expect(explained.perToken.length).toBe(explained.tokens);
    const session = (
      await t.app.inject({
        method: 'POST',
        url: '/api/ui-session',
        headers: { host: '127.0.0.1:3999', 'x-tracemark-ui': '1' },
      })
    ).json();
    const ui = (
      await t.app.inject({
        method: 'POST',
        url: '/api/detect',
        headers: { authorization: `Bearer ${session.token}` },
        payload: { text },
      })
    ).json();
    expect(ui.scope).toBe('explain');
    expect(ui.perToken.length).toBe(ui.tokens);
  });

  it('says that a dedup "none" p-value is not valid on repeated text', async () => {
    const r = (
      await t.app.inject({
        method: 'POST',
        url: '/api/detect',
        headers: auth,
        payload: { text: 'the cat sat on the mat. '.repeat(20), dedup: 'none' },
      })
    ).json();
    expect(r.pValueNote).toMatch(/not valid/);
    const pair = (
      await t.app.inject({
        method: 'POST',
        url: '/api/detect',
        headers: auth,
        payload: { text: 'the cat sat' },
      })
    ).json();
    expect(pair.pValueNote).toBeUndefined();
  });
});

describe('the scored-token budget', () => {
  it('caps the tokens, hence the labels, one identity gets per minute', async () => {
    const budget = 500;
    const t = await startApp({ TRACEMARK_RATE_LIMIT_DETECT_TOKENS: String(budget) });
    try {
      const ids = Array.from({ length: 200 }, (_, i) => 1000 + i);
      const send = (headers: Record<string, string>) =>
        t.app.inject({ method: 'POST', url: '/api/detect', headers, payload: { tokens: ids } });
      let labels = 0;
      let refused: Reply | null = null;
      for (let i = 0; i < 10 && refused === null; i++) {
        const r = await send(explainAuth);
        if (r.statusCode === 200) labels += r.json().perToken.length;
        else refused = r;
      }
      expect(labels).toBeLessThanOrEqual(budget);
      expect(labels).toBe(400);
      expectError(refused!, 429, 'rate_limit_exceeded');
      expect(refused!.headers['retry-after']).toBeDefined();
      // Another identity has its own budget, and the API token gets no labels at all.
      const other = await send(auth);
      expect(other.statusCode).toBe(200);
      expect(other.json().perToken).toBeUndefined();
    } finally {
      await t.cleanup();
    }
  });

  it('labels per minute for one token holder, before and after, from the configured defaults', () => {
    // Before: 60 requests a minute × up to 50,000 ids, all labelled (49,998 of 50,000 in the reported attack).
    const before = 60 * 49_998;
    expect(before).toBe(2_999_880);
    // After: the API token gets aggregates only; the explain token at most its scored-token budget.
    expect(DEFAULT_RATE_LIMITS.detect).toBe(60);
    const afterApiToken = 0;
    const afterExplain = DEFAULT_RATE_LIMITS.detectTokens;
    expect(afterApiToken).toBe(0);
    expect(afterExplain).toBe(20_000);
    expect(afterExplain / before).toBeLessThan(0.01);
  });
});

describe('the plain twin', () => {
  it('returns no logprobs unless the operator turns them on', async () => {
    const request = { model: 'tracemark-teacher-plain', prompt: 'The Queen', max_tokens: 3, logprobs: 2 };
    const off = await startApp();
    try {
      const r = await off.app.inject({ method: 'POST', url: '/v1/completions', payload: request });
      expectError(r, 400, 'logprobs_disabled');
      const chat = await off.app.inject({
        method: 'POST',
        url: '/v1/chat/completions',
        payload: {
          model: 'tracemark-teacher-plain',
          messages: [{ role: 'user', content: 'Hi' }],
          logprobs: true,
        },
      });
      expectError(chat, 400, 'logprobs_disabled');
      // Without logprobs it serves as before.
      const plain = await off.app.inject({
        method: 'POST',
        url: '/v1/completions',
        payload: { ...request, logprobs: undefined },
      });
      expect(plain.statusCode).toBe(200);
    } finally {
      await off.cleanup();
    }
    const on = await startApp({ TRACEMARK_PLAIN_LOGPROBS: '1' });
    try {
      const r = await on.app.inject({ method: 'POST', url: '/v1/completions', payload: request });
      expect(r.statusCode).toBe(200);
      expect(r.json().choices[0].logprobs.tokens).toHaveLength(3);
      expect((await on.app.inject({ url: '/api/info' })).json().plainLogprobs.enabled).toBe(true);
    } finally {
      await on.cleanup();
    }
  });
});

describe('logging and error shapes', () => {
  it('logs JSON lines through pino: 5xx with the request id, never a token or a stack', async () => {
    const lines: string[] = [];
    const t = await startApp({}, { logStream: { write: (line) => lines.push(line) } });
    try {
      const ok = await t.app.inject({
        method: 'POST',
        url: '/api/detect',
        headers: auth,
        payload: { text: 'The Queen was there' },
      });
      expect(ok.statusCode).toBe(200);
      await t.app.inject({
        method: 'POST',
        url: '/api/detect',
        headers: explainAuth,
        payload: { text: 'Hi' },
      });
      // A failure inside the server (its message must reach neither the client nor, as a stack, the log).
      t.ctx.offload.run = async () => {
        throw new Error('internal failure in the worker pool');
      };
      const failed = await t.app.inject({
        method: 'POST',
        url: '/api/detect',
        headers: auth,
        payload: { text: 'The Queen was there' },
      });
      const error = expectError(failed, 500);
      expect(error.message).not.toMatch(/pool|piscina|worker/i);
      const parsed = lines.map((line) => JSON.parse(line));
      const logged = parsed.find((l) => l.level === 50 && l.msg === 'request failed');
      expect(logged).toBeDefined();
      expect(logged.reqId).toBeDefined();
      expect(logged.statusCode).toBe(500);
      const all = lines.join('\n');
      expect(all).not.toContain(TEST_TOKEN);
      expect(all).not.toContain(TEST_EXPLAIN_TOKEN);
      expect(all).not.toMatch(/\n\s+at /);
      expect(all).not.toContain('"stack"');
    } finally {
      await t.cleanup();
    }
  });

  it('answers 503 in the OpenAI shape once shutdown has begun', async () => {
    const t = await startApp();
    t.ctx.shutdown.begin(1_000);
    const r = await t.app.inject({ url: '/api/health' });
    expectError(r, 503, 'server_shutting_down');
    await t.cleanup();
  });

  it('gives 414, 431 and a malformed URL the OpenAI error shape', async () => {
    const t = await startApp();
    try {
      const inject = (url: string) => t.app.inject({ url }) as Promise<Reply>;
      expectError(await inject(`/api/health?${'x'.repeat(9_000)}`), 414, 'uri_too_long');
      expectError(await inject('/api/%zz'), 400);
      const address = new URL(await t.app.listen({ host: '127.0.0.1', port: 0 }));
      const raw = await new Promise<string>((resolve, reject) => {
        const socket = connect(Number(address.port), '127.0.0.1');
        let out = '';
        socket.on('data', (d) => {
          out += d;
        });
        socket.on('end', () => resolve(out));
        socket.on('error', reject);
        socket.write(`GET /api/health HTTP/1.1\r\nHost: x\r\nX-Big: ${'y'.repeat(20_000)}\r\n\r\n`);
      });
      expect(raw).toMatch(/^HTTP\/1\.1 431 /);
      const body = JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4));
      expect(Object.keys(body.error).sort()).toEqual(['code', 'message', 'param', 'type']);
    } finally {
      await t.cleanup();
    }
  });
});
