import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  auth,
  explainAuth,
  startApp,
  TEST_EXPLAIN_TOKEN,
  TEST_KEY_HEX,
  TEST_TOKEN,
  type TestApp,
} from './helpers';

let t: TestApp;
const bodies: string[] = [];

beforeAll(async () => {
  t = await startApp({ TRACEMARK_RATE_LIMIT_DETECT: '1000' });
});
afterAll(async () => {
  // Nothing the server sent may carry the master key, in hex or base64.
  const base64 = Buffer.from(TEST_KEY_HEX, 'hex').toString('base64');
  for (const body of bodies) {
    expect(body.toLowerCase()).not.toContain(TEST_KEY_HEX);
    expect(body).not.toContain(base64);
  }
  await t.cleanup();
});

async function call(
  method: 'GET' | 'POST',
  url: string,
  payload?: unknown,
  headers: Record<string, string> = {},
) {
  const response = await t.app.inject({
    method,
    url,
    headers: { host: '127.0.0.1:3999', ...headers },
    ...(payload === undefined
      ? {}
      : typeof payload === 'string' || Buffer.isBuffer(payload)
        ? { payload }
        : { payload: payload as object }),
  });
  bodies.push(response.body);
  return response;
}

function expectError(response: { statusCode: number; json(): unknown }, status: number, pattern?: RegExp) {
  expect(response.statusCode).toBe(status);
  const body = response.json() as { error: { message: string; type: string; param: unknown; code: unknown } };
  expect(Object.keys(body.error).sort()).toEqual(['code', 'message', 'param', 'type']);
  expect(typeof body.error.message).toBe('string');
  if (pattern) expect(body.error.message).toMatch(pattern);
  return body.error;
}

const completion = (extra: Record<string, unknown> = {}) => ({
  model: 'tracemark-teacher',
  prompt: 'Alice was beginning to get very',
  max_tokens: 12,
  seed: 3,
  ...extra,
});

describe('serving', () => {
  it('lists and retrieves the four models', async () => {
    const list = (await call('GET', '/v1/models')).json();
    expect(list.object).toBe('list');
    expect(list.data.map((m: { id: string }) => m.id)).toEqual([
      'tracemark-teacher',
      'tracemark-teacher-plain',
      'tracemark-student-distilled',
      'tracemark-student-clean',
    ]);
    expect((await call('GET', '/v1/models/tracemark-student-clean')).json()).toMatchObject({
      object: 'model',
    });
    expectError(await call('GET', '/v1/models/gpt-5'), 404, /does not exist/);
  });

  it('completes a prompt reproducibly with a seed, with usage', async () => {
    const a = (await call('POST', '/v1/completions', completion())).json();
    const b = (await call('POST', '/v1/completions', completion())).json();
    expect(a.object).toBe('text_completion');
    expect(a.id).toMatch(/^cmpl-/);
    expect(a.choices[0].text).toBe(b.choices[0].text);
    expect(a.choices[0].finish_reason).toBe('length');
    expect(a.usage).toEqual({ prompt_tokens: 6, completion_tokens: 12, total_tokens: 18 });
    expect(a.system_fingerprint).toMatch(/^fp_/);
  });

  it('serves several prompts, token-id prompts, n choices and stop sequences', async () => {
    const many = (
      await call('POST', '/v1/completions', completion({ prompt: ['The Queen', 'The Hatter'], n: 2 }))
    ).json();
    expect(many.choices.map((c: { index: number }) => c.index)).toEqual([0, 1, 2, 3]);
    const ids = (
      await call('POST', '/v1/completions', completion({ prompt: t.ctx.encode('The Queen') }))
    ).json();
    expect(ids.usage.prompt_tokens).toBe(2);
    const long = (
      await call('POST', '/v1/completions', completion({ max_tokens: 60, temperature: 0 }))
    ).json();
    const text: string = long.choices[0].text;
    const word = text.trim().split(' ')[2];
    const stopped = (
      await call('POST', '/v1/completions', completion({ max_tokens: 60, temperature: 0, stop: [word] }))
    ).json();
    expect(stopped.choices[0].finish_reason).toBe('stop');
    expect(stopped.choices[0].text).toBe(text.slice(0, text.indexOf(word)));
  });

  it('returns logprobs in both shapes', async () => {
    const c = (await call('POST', '/v1/completions', completion({ logprobs: 3 }))).json();
    const lp = c.choices[0].logprobs;
    expect(lp.tokens.length).toBe(12);
    expect(lp.token_logprobs.every((x: number) => x <= 0)).toBe(true);
    expect(Object.keys(lp.top_logprobs[0]).length).toBeGreaterThan(0);
    expect(lp.text_offset[0]).toBe(0);
    const chat = (
      await call('POST', '/v1/chat/completions', {
        model: 'tracemark-student-clean',
        messages: [{ role: 'user', content: [{ type: 'text', text: 'Alice was' }] }],
        max_completion_tokens: 5,
        logprobs: true,
        top_logprobs: 2,
      })
    ).json();
    expect(chat.object).toBe('chat.completion');
    expect(chat.choices[0].message.role).toBe('assistant');
    const content = chat.choices[0].logprobs.content;
    expect(content).toHaveLength(5);
    expect(content[0].top_logprobs).toHaveLength(2);
    expect(content.map((e: { token: string }) => e.token).join('')).toBe(chat.choices[0].message.content);
  });

  it('streams chat chunks with usage and [DONE]', async () => {
    const response = await call('POST', '/v1/chat/completions', {
      model: 'tracemark-teacher',
      messages: [
        { role: 'system', content: 'Be brief.' },
        { role: 'user', content: 'The Rabbit' },
      ],
      max_tokens: 8,
      stream: true,
      stream_options: { include_usage: true },
    });
    expect(response.headers['content-type']).toMatch(/text\/event-stream/);
    const events = response.body.split('\n\n').filter((e) => e.length > 0);
    expect(events.at(-1)).toBe('data: [DONE]');
    const chunks = events.slice(0, -1).map((e) => JSON.parse(e.slice('data: '.length)));
    expect(chunks.every((c) => c.object === 'chat.completion.chunk')).toBe(true);
    expect(chunks[0].choices[0].delta.role).toBe('assistant');
    expect(chunks.at(-2).choices[0].finish_reason).toBe('length');
    expect(chunks.at(-1).choices).toEqual([]);
    expect(chunks.at(-1).usage.completion_tokens).toBe(8);
  });

  it('streams completions, and finishes a zero-token choice', async () => {
    const response = await call('POST', '/v1/completions', completion({ max_tokens: 0, stream: true }));
    const events = response.body.split('\n\n').filter((e) => e.length > 0);
    expect(events.at(-1)).toBe('data: [DONE]');
    const last = JSON.parse(events.at(-2)!.slice('data: '.length));
    expect(last).toMatchObject({
      object: 'text_completion',
      choices: [{ index: 0, text: '', finish_reason: 'length' }],
    });
  });

  it('refuses bad requests with OpenAI-style errors', async () => {
    expectError(await call('POST', '/v1/completions', completion({ model: 'nope' })), 404, /nope/);
    const cap = expectError(
      await call('POST', '/v1/completions', completion({ max_tokens: 100_000 })),
      400,
      /too large/,
    );
    expect(cap.param).toBe('max_tokens');
    expect(
      expectError(
        await call('POST', '/v1/completions', completion({ temperature: 'hot' })),
        400,
        /must be a number/,
      ).param,
    ).toBe('temperature');
    expectError(await call('POST', '/v1/completions', completion({ n: 0 })), 400, /'n': must be >= 1/);
    expectError(await call('POST', '/v1/completions', completion({ prompt: 5 })), 400, /string or an array/);
    expectError(
      await call('POST', '/v1/completions', completion({ prompt: ['a', 1] })),
      400,
      /'prompt\[1\]'/,
    );
    expect(
      expectError(await call('POST', '/v1/completions', completion({ frobnicate: 1 })), 400, /Unrecognized/)
        .param,
    ).toBe('frobnicate');
    expectError(await call('POST', '/v1/completions', { model: 'tracemark-teacher' }), 400, /prompt/);
    expectError(
      await call('POST', '/v1/completions', completion({ prompt: [1, 300_000] })),
      400,
      /outside the vocabulary/,
    );
    expectError(await call('POST', '/v1/completions', completion({ echo: true })), 400, /echo/);
    expectError(
      await call('POST', '/v1/completions', completion({ stream_options: { include_usage: true } })),
      400,
      /stream/,
    );
    expectError(
      await call('POST', '/v1/completions', completion({ n: 8, max_tokens: 1024, prompt: ['a', 'b', 'c'] })),
      400,
      /limit/,
    );
    expectError(
      await call('POST', '/v1/chat/completions', { model: 'tracemark-teacher', messages: [] }),
      400,
    );
    expectError(
      await call('POST', '/v1/chat/completions', {
        model: 'tracemark-teacher',
        messages: [{ role: 'user', content: 'x' }],
        top_logprobs: 2,
      }),
      400,
      /logprobs/,
    );
    expectError(
      await call('POST', '/v1/chat/completions', {
        model: 'tracemark-teacher',
        messages: [{ role: 'wizard', content: 'x' }],
      }),
      400,
    );
  });

  it('survives malformed bodies: bad JSON, empty, huge, not UTF-8, wrong media type', async () => {
    const json = { 'content-type': 'application/json' };
    expectError(await call('POST', '/v1/completions', '{"model": ', json), 400, /JSON/);
    expectError(await call('POST', '/v1/completions', '', json), 400, /empty/);
    expectError(await call('POST', '/v1/completions', '[1, 2]', json), 400, /JSON object/);
    expectError(
      await call('POST', '/v1/completions', `{"model":"x","prompt":"${'a'.repeat(1_100_000)}"}`, json),
      413,
    );
    const latin1 = Buffer.concat([
      Buffer.from('{"model":"tracemark-teacher","prompt":"caf'),
      Buffer.from([0xe9]),
      Buffer.from('"}'),
    ]);
    expectError(await call('POST', '/v1/completions', latin1, json), 400, /UTF-8/);
    expectError(await call('POST', '/v1/completions', 'hello', { 'content-type': 'text/plain' }), 415);
    expectError(await call('GET', '/v2/nothing'), 404, /Unknown route/);
    // Still serving.
    expect((await call('GET', '/api/health')).json().status).toBe('ok');
  });
});

describe('detection API', () => {
  it('needs a bearer token', async () => {
    expect(expectError(await call('POST', '/api/detect', { text: 'hello there' }), 401).code).toBe(
      'missing_api_key',
    );
    expectError(
      await call(
        'POST',
        '/api/detect',
        { text: 'hello there' },
        { authorization: 'Bearer wrong-token-123456' },
      ),
      401,
      /Incorrect/,
    );
    expectError(await call('GET', '/api/jobs/job_x', undefined, { authorization: 'Basic abc' }), 401);
  });

  it('detects the watermark in teacher output and not in plain output, with per-token spans (explain scope)', async () => {
    const prompt = 'The Queen said to the';
    const gen = async (model: string) =>
      (await call('POST', '/v1/completions', { model, prompt, max_tokens: 80, seed: 11 })).json().choices[0]
        .text as string;
    const marked = await gen('tracemark-teacher');
    const plain = await gen('tracemark-teacher-plain');
    const hit = (await call('POST', '/api/detect', { text: marked, prompt }, explainAuth)).json();
    const miss = (await call('POST', '/api/detect', { text: plain, prompt }, explainAuth)).json();
    expect(hit.scope).toBe('explain');
    expect(hit.log10PValue).toBeLessThan(-4);
    expect(miss.log10PValue).toBeGreaterThan(-3);
    expect(hit.perToken.map((e: { text: string }) => e.text).join('')).toBe(marked);
    expect(hit.perToken[0]).toMatchObject({ counted: false, reason: 'context', score: null });
    expect(hit.nullLaw).toEqual({ kind: 'bernoulli', p: 0.25 });
    const tokens = t.ctx.encode('The Queen said to the Queen');
    const ids = (await call('POST', '/api/detect', { tokens }, explainAuth)).json();
    expect(ids.tokens).toBe(tokens.length);
    expect(ids.perToken.map((e: { text: string }) => e.text).join('')).toBe('The Queen said to the Queen');
    expect(ids.perToken[1]).toMatchObject({ text: ' Queen', start: 3, end: 9 });
  });

  it('refuses bad detection input', async () => {
    expectError(await call('POST', '/api/detect', {}, auth), 400, /exactly one/);
    expectError(await call('POST', '/api/detect', { text: 'a', tokens: [1] }, auth), 400, /exactly one/);
    expectError(await call('POST', '/api/detect', { text: 'Hi' }, auth), 400, /needs at least/);
    expectError(await call('POST', '/api/detect', { tokens: [999_999, 1] }, auth), 400, /vocabulary/);
    expectError(await call('POST', '/api/detect', { text: 'x'.repeat(100_001) }, auth), 400, /text/);
  });

  it('runs a radioactivity job and reports its trajectory', async () => {
    const samples = ['The Queen', 'The Hatter', 'Alice thought'].map((prompt) => ({
      prompt,
      output: `${prompt} was very much surprised at this, and she said so.`,
    }));
    const accepted = await call('POST', '/api/verify', { model: 'someone', samples }, auth);
    expect(accepted.statusCode).toBe(202);
    const job = accepted.json();
    expect(job).toMatchObject({
      object: 'tracemark.job',
      kind: 'radioactivity',
      state: 'queued',
      model: 'someone',
      samples: 3,
    });
    expect(accepted.headers.location).toBe(`/api/jobs/${job.id}`);
    await t.ctx.runner.idle();
    const done = (await call('GET', `/api/jobs/${job.id}`, undefined, auth)).json();
    expect(done.state).toBe('succeeded');
    expect(done.result.scored).toBeGreaterThan(0);
    expect(done.result.trajectory.at(-1).scored).toBe(done.result.scored);
    // With the control keys (what the UI runs): their KS check, and a verdict that states evidence only.
    const checked = (await call('POST', '/api/verify', { samples, controls: true }, auth)).json();
    await t.ctx.runner.idle();
    const report = (await call('GET', `/api/jobs/${checked.id}`, undefined, auth)).json();
    expect(report.state).toBe('succeeded');
    expect(report.result.controls.count).toBe(50);
    expect(typeof report.result.controls.ksPValue).toBe('number');
    expect(report.result.verdict.text).toMatch(
      /^(its outputs carry the watermark|no evidence that its outputs carry)/,
    );
    expect(report.result.verdict.text).not.toMatch(/trained/);
    expectError(await call('GET', '/api/jobs/job_missing', undefined, auth), 404);
    expectError(await call('POST', '/api/verify', { samples: [] }, auth), 400);
    expectError(await call('POST', '/api/verify', { samples: [{ prompt: 'x' }] }, auth), 400, /output/);
  });

  it('serves the fingerprint and the public spec, and the lab facts', async () => {
    const info = (await call('GET', '/api/info')).json();
    expect(Object.keys(info).sort()).toEqual([
      'accountLayer',
      'detection',
      'keyFingerprint',
      'labProfile',
      'plainLogprobs',
      'spec',
    ]);
    expect(info.plainLogprobs.enabled).toBe(false);
    expect(info.plainLogprobs.reason).toMatch(/green list/);
    expect(info.keyFingerprint).toMatch(/^tm1:[0-9a-f]{16}$/);
    // The served students came from this lab profile (the test server builds 'demo-test').
    expect(info.labProfile).toBe('demo-test');
    expect(info.spec).toMatchObject({
      scheme: 'kgw',
      vocabSize: 200019,
      gamma: 0.25,
      delta: 2,
      contextWidth: 1,
      accountDelta: 2,
    });
    expect(info.accountLayer).toMatchObject({
      delta: 2,
      gamma: 0.5,
      accountField: 'user',
      precedence: 'key',
    });
    const lab = (await call('GET', '/api/lab')).json();
    expect(lab.profile).toBe(info.labProfile);
    expect(lab.distillation.share).toBe(0.3);
    expect(lab.probePrompts.length).toBeGreaterThan(8);
    expect(lab.models.find((m: { id: string }) => m.id === 'tracemark-student-distilled').teacherShare).toBe(
      0.3,
    );
  });
});

describe('UI sessions', () => {
  const ui = { 'x-tracemark-ui': '1' };
  it('hands a session to the page on loopback, and it authenticates', async () => {
    const session = await call('POST', '/api/ui-session', undefined, {
      ...ui,
      origin: 'http://127.0.0.1:3999',
    });
    expect(session.statusCode).toBe(200);
    const { token, expiresIn } = session.json();
    expect(token).toMatch(/^tmui_/);
    expect(expiresIn).toBeGreaterThan(60);
    const detected = await call(
      'POST',
      '/api/detect',
      { text: 'The Queen was' },
      { authorization: `Bearer ${token}` },
    );
    expect(detected.statusCode).toBe(200);
  });

  it('refuses other hosts, other origins and requests without the UI header', async () => {
    expectError(
      await call('POST', '/api/ui-session', undefined, { ...ui, host: 'evil.example:3999' }),
      403,
      /Host/,
    );
    expectError(
      await call('POST', '/api/ui-session', undefined, { ...ui, origin: 'http://evil.example' }),
      403,
      /pages served/,
    );
    expectError(await call('POST', '/api/ui-session', undefined, {}), 403, /X-Tracemark-UI/);
  });

  it('serves the page with a strict content security policy, and the OpenAPI document', async () => {
    const page = await call('GET', '/');
    expect(page.headers['content-type']).toMatch(/text\/html/);
    expect(page.headers['content-security-policy']).toContain("script-src 'self'");
    expect(page.body).not.toContain(TEST_TOKEN);
    expect(page.body).not.toContain(TEST_EXPLAIN_TOKEN);
    expect((await call('GET', '/ui/app.js')).headers['content-type']).toMatch(/javascript/);
    const doc = (await call('GET', '/docs/json')).json();
    for (const path of [
      '/v1/models',
      '/v1/completions',
      '/v1/chat/completions',
      '/api/detect',
      '/api/verify',
      '/api/jobs/{id}',
      '/api/info',
    ]) {
      expect(Object.keys(doc.paths)).toContain(path);
    }
    expect(doc.paths['/api/detect'].post.security).toEqual([{ bearerAuth: [] }]);
  });
});

describe('off loopback', () => {
  it('closes the serving routes without the token and hands out no UI session', async () => {
    const open = await startApp({ HOST: '0.0.0.0' });
    try {
      const inject = (url: string, headers: Record<string, string> = {}) =>
        open.app.inject({ url, headers: { host: '127.0.0.1:3999', ...headers } });
      expectError(await inject('/v1/models'), 401);
      expect((await inject('/v1/models', auth)).statusCode).toBe(200);
      expect((await inject('/api/info')).statusCode).toBe(200);
      const session = await open.app.inject({
        method: 'POST',
        url: '/api/ui-session',
        headers: { host: '127.0.0.1:3999', 'x-tracemark-ui': '1' },
      });
      expectError(session, 403, /loopback/);
    } finally {
      await open.cleanup();
    }
  });
});

describe('rate limits', () => {
  it('limits detection per identity with a 429 in the OpenAI shape', async () => {
    const limited = await startApp({ TRACEMARK_RATE_LIMIT_DETECT: '2' });
    try {
      const send = () =>
        limited.app.inject({
          method: 'POST',
          url: '/api/detect',
          headers: auth,
          payload: { text: 'The Queen was there' },
        });
      expect((await send()).statusCode).toBe(200);
      expect((await send()).statusCode).toBe(200);
      const third = await send();
      expectError(third, 429, /Rate limit/);
      expect(third.headers['retry-after']).toBeDefined();
      // Serving is not rate-limited.
      const served = await limited.app.inject({ method: 'GET', url: '/v1/models' });
      expect(served.statusCode).toBe(200);
    } finally {
      await limited.cleanup();
    }
  });
});
