import { attributeAccounts } from '@tracemark/verifier';
import { createScheme, type KgwScheme } from '@tracemark/watermark';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, readConfig } from '../src/config';
import { chatPromptText } from '../src/serving';
import { auth, startApp, TEST_KEY_HEX, type TestApp, testKey } from './helpers';

/**
 * The account layer (TRACEMARK_ACCOUNT_DELTA, default 2): the teacher's outputs carry the account of the request's
 * `user` field, or of the bearer token that has one configured (it wins), beside the organisation layer.
 */

const KEY_ACCOUNT = 'key-account-7';
let t: TestApp;
/** Token id of every token's bytes (o200k_base: one id per byte string), to read ids from chat logprobs. */
let idOfBytes: Map<string, number>;

beforeAll(async () => {
  t = await startApp({ TRACEMARK_API_TOKEN_ACCOUNT: KEY_ACCOUNT });
  idOfBytes = new Map();
  for (let id = 0; id < t.ctx.vocabSize; id++) {
    let bytes: Uint8Array;
    try {
      bytes = t.ctx.bytes.of(id);
    } catch {
      continue;
    }
    const k = Buffer.from(bytes).toString('latin1');
    if (!idOfBytes.has(k)) idOfBytes.set(k, id);
  }
});
afterAll(async () => {
  await t?.cleanup();
});

const PROMPT = 'Alice was beginning to get very tired of sitting by her sister on the bank';
const messages = [{ role: 'user', content: PROMPT }];

interface Sample {
  prompt: number[];
  output: number[];
}

/** A chat request to the teacher (n choices, logprobs on); the choices as (prompt ids, output ids). */
async function chat(
  extra: Record<string, unknown>,
  headers: Record<string, string> = {},
): Promise<{ samples: Sample[]; texts: string[] }> {
  const response = await t.app.inject({
    method: 'POST',
    url: '/v1/chat/completions',
    headers: { host: '127.0.0.1:3999', ...headers },
    payload: { model: 'tracemark-teacher', messages, max_tokens: 48, n: 4, logprobs: true, ...extra },
  });
  expect(response.statusCode, response.body).toBe(200);
  const body = response.json() as {
    choices: { message: { content: string }; logprobs: { content: { bytes: number[] }[] } }[];
  };
  const prompt = t.ctx.encode(chatPromptText(messages as never));
  const samples = body.choices.map((choice) => ({
    prompt,
    output: choice.logprobs.content.map((entry) => {
      const id = idOfBytes.get(Buffer.from(entry.bytes).toString('latin1'));
      expect(id).toBeDefined();
      return id!;
    }),
  }));
  return { samples, texts: body.choices.map((c) => c.message.content) };
}

/** Share of the generated tokens green for `account`'s layer (each token after its own window). */
function accountShare(samples: Sample[], account: string): number {
  const layer = (createScheme(t.config.servedSpec, testKey(), { account }) as KgwScheme).accountLayer!;
  let green = 0;
  let total = 0;
  for (const { prompt, output } of samples) {
    const sequence = [...prompt, ...output];
    for (let i = prompt.length; i < sequence.length; i++) {
      total++;
      if (layer.isGreen(sequence, i, sequence[i])) green++;
    }
  }
  return green / total;
}

/** Share of the generated tokens green for the organisation layer (the detector's list). */
function organisationShare(samples: Sample[]): number {
  let green = 0;
  let total = 0;
  for (const { prompt, output } of samples) {
    const sequence = [...prompt, ...output];
    for (let i = prompt.length; i < sequence.length; i++) {
      total++;
      green += t.ctx.scheme.score(sequence, i);
    }
  }
  return green / total;
}

describe('the account layer', () => {
  it("embeds the request's user as the account, beside the organisation layer", async () => {
    const a = await chat({ user: 'acct-a', seed: 11 });
    const b = await chat({ user: 'acct-b', seed: 11 });
    const none = await chat({ seed: 11 });
    const shares = {
      aForA: accountShare(a.samples, 'acct-a'),
      aForB: accountShare(a.samples, 'acct-b'),
      bForB: accountShare(b.samples, 'acct-b'),
      bForA: accountShare(b.samples, 'acct-a'),
      noneForA: accountShare(none.samples, 'acct-a'),
    };
    expect(shares.aForA, JSON.stringify(shares)).toBeGreaterThan(0.6);
    expect(shares.bForB, JSON.stringify(shares)).toBeGreaterThan(0.6);
    for (const other of [shares.aForB, shares.bForA, shares.noneForA])
      expect(Math.abs(other - 0.5), JSON.stringify(shares)).toBeLessThan(0.13);
    // The organisation layer is there whoever asked: γ = 1/4, well above it.
    for (const r of [a, b, none]) expect(organisationShare(r.samples)).toBeGreaterThan(0.45);
    // The same seed without an account is the one-layer teacher: another text than with one.
    expect(a.texts).not.toEqual(none.texts);
    expect(a.texts).not.toEqual(b.texts);

    // The verifier attributes each set to its account, and not to the other.
    const attribution = await attributeAccounts(a.samples, {
      spec: t.config.servedSpec,
      master: testKey(),
      accounts: ['acct-a', 'acct-b', 'acct-c'],
      threads: 1,
    });
    expect(attribution.attributed).toEqual(['acct-a']);
    expect(attribution.organisation.pValue).toBeLessThan(1e-6);
  });

  it('detection tests the organisation layer, as before', async () => {
    const { texts } = await chat({ user: 'acct-a', seed: 12, n: 1, max_tokens: 64 });
    const response = await t.app.inject({
      method: 'POST',
      url: '/api/detect',
      headers: { host: '127.0.0.1:3999', ...auth },
      payload: { text: texts[0] },
    });
    expect(response.statusCode, response.body).toBe(200);
    const result = response.json() as { pValue: number; spec: Record<string, unknown> };
    expect(result.pValue).toBeLessThan(1e-3);
    expect(result.spec.accountDelta).toBeUndefined();
  });

  it('embeds the same account on /v1/completions, streamed or not, as on chat', async () => {
    const chatText = (await chat({ user: 'acct-a', seed: 21, n: 1, max_tokens: 24 })).texts[0];
    const completion = (payload: Record<string, unknown>) =>
      t.app.inject({
        method: 'POST',
        url: '/v1/completions',
        headers: { host: '127.0.0.1:3999' },
        payload: { model: 'tracemark-teacher', prompt: PROMPT, max_tokens: 24, seed: 21, ...payload },
      });
    const plain = await completion({ user: 'acct-a' });
    expect(plain.statusCode, plain.body).toBe(200);
    expect(plain.json().choices[0].text).toBe(chatText);
    const streamed = await completion({ user: 'acct-a', stream: true });
    expect(streamed.statusCode).toBe(200);
    const text = streamed.body
      .split('\n\n')
      .filter((line) => line.startsWith('data: {'))
      .map((line) => JSON.parse(line.slice(6)).choices[0]?.text ?? '')
      .join('');
    expect(text).toBe(chatText);
    const other = await completion({ user: 'acct-b' });
    expect(other.json().choices[0].text).not.toBe(chatText);
    // Streamed chat too.
    const chatStream = await t.app.inject({
      method: 'POST',
      url: '/v1/chat/completions',
      headers: { host: '127.0.0.1:3999' },
      payload: {
        model: 'tracemark-teacher',
        messages,
        max_tokens: 24,
        seed: 21,
        user: 'acct-a',
        stream: true,
      },
    });
    const streamedChat = chatStream.body
      .split('\n\n')
      .filter((line) => line.startsWith('data: {'))
      .map((line) => JSON.parse(line.slice(6)).choices[0]?.delta?.content ?? '')
      .join('');
    expect(streamedChat).toBe(chatText);
  });

  it("lets the bearer token's account win over user", async () => {
    const viaKey = await chat({ user: 'acct-a', seed: 31 }, auth);
    const viaUser = await chat({ user: KEY_ACCOUNT, seed: 31 });
    // The same seed and account: the same text, whatever `user` said.
    expect(viaKey.texts).toEqual(viaUser.texts);
    expect(accountShare(viaKey.samples, KEY_ACCOUNT)).toBeGreaterThan(0.6);
    expect(Math.abs(accountShare(viaKey.samples, 'acct-a') - 0.5)).toBeLessThan(0.13);
    // A token that is not valid counts for nothing on loopback (the routes are open): `user` decides.
    const invalidToken = await chat({ user: 'acct-a', seed: 31 }, { authorization: 'Bearer not-a-token' });
    const userOnly = await chat({ user: 'acct-a', seed: 31 });
    expect(invalidToken.texts).toEqual(userOnly.texts);
  });

  it('refuses a user that is not an account id with 400, in the OpenAI shape', async () => {
    for (const [url, payload] of [
      ['/v1/chat/completions', { model: 'tracemark-teacher', messages, max_tokens: 4, user: 'a\nb' }],
      ['/v1/completions', { model: 'tracemark-teacher', prompt: PROMPT, max_tokens: 4, user: '' }],
      [
        '/v1/completions',
        { model: 'tracemark-teacher', prompt: PROMPT, max_tokens: 4, stream: true, user: 'x\0' },
      ],
    ] as const) {
      const response = await t.app.inject({
        method: 'POST',
        url,
        headers: { host: '127.0.0.1:3999' },
        payload,
      });
      expect(response.statusCode).toBe(400);
      const { error } = response.json() as { error: Record<string, unknown> };
      expect(Object.keys(error).sort()).toEqual(['code', 'message', 'param', 'type']);
      expect(error).toMatchObject({ param: 'user', type: 'invalid_request_error', code: 'invalid_value' });
      expect(error.message).not.toMatch(/\n/);
    }
  });

  it('publishes the layer spec in /api/info, and no key material', async () => {
    const response = await t.app.inject({ url: '/api/info', headers: { host: '127.0.0.1:3999' } });
    const info = response.json();
    expect(info.spec).toMatchObject({
      scheme: 'kgw',
      gamma: 0.25,
      delta: 2,
      hashing: 'left',
      accountDelta: 2,
    });
    expect(info.accountLayer).toMatchObject({
      delta: 2,
      gamma: 0.5,
      accountField: 'user',
      keyAccounts: { apiToken: true, explainToken: false },
      precedence: 'key',
    });
    const base64 = Buffer.from(TEST_KEY_HEX, 'hex').toString('base64');
    expect(response.body.toLowerCase()).not.toContain(TEST_KEY_HEX);
    expect(response.body).not.toContain(base64);
    expect(response.body).not.toContain(KEY_ACCOUNT);
  });
});

describe('TRACEMARK_ACCOUNT_DELTA=0', () => {
  it('serves one layer: user is ignored, /api/info has no account layer', async () => {
    const off = await startApp({ TRACEMARK_ACCOUNT_DELTA: '0' });
    try {
      const ask = (user?: string) =>
        off.app.inject({
          method: 'POST',
          url: '/v1/completions',
          headers: { host: '127.0.0.1:3999' },
          payload: {
            model: 'tracemark-teacher',
            prompt: PROMPT,
            max_tokens: 16,
            seed: 5,
            ...(user ? { user } : {}),
          },
        });
      const [withUser, without] = [await ask('a\nb'), await ask()];
      expect(withUser.statusCode).toBe(200);
      expect(withUser.json().choices[0].text).toBe(without.json().choices[0].text);
      const info = (await off.app.inject({ url: '/api/info', headers: { host: '127.0.0.1:3999' } })).json();
      expect(info.accountLayer).toBeNull();
      expect(info.spec.accountDelta).toBeUndefined();
    } finally {
      await off.cleanup();
    }
  });
});

describe('the account layer configuration', () => {
  it('reads TRACEMARK_ACCOUNT_DELTA and the token accounts, and refuses what cannot work', () => {
    const base = readConfig({});
    expect(base.accountDelta).toBe(2);
    expect(base.spec).not.toHaveProperty('accountDelta');
    expect(base.servedSpec).toMatchObject({ ...base.spec, accountDelta: 2 });
    expect(base.tokenAccounts).toEqual({});
    expect(readConfig({ TRACEMARK_ACCOUNT_DELTA: '2.5' }).servedSpec).toMatchObject({ accountDelta: 2.5 });
    const off = readConfig({ TRACEMARK_ACCOUNT_DELTA: '0' });
    expect(off.servedSpec).toEqual(off.spec);
    // An accountDelta in TRACEMARK_SPEC is the layer's default; the organisation spec never carries it.
    const fromSpec = readConfig({
      TRACEMARK_SPEC: '{"scheme":"kgw","vocabSize":200019,"gamma":0.25,"delta":2,"accountDelta":3}',
    });
    expect([fromSpec.accountDelta, fromSpec.spec]).toEqual([3, base.spec]);
    // A spec that cannot carry the layer: off by default, a configuration error when asked for.
    const minHash = '{"scheme":"kgw","vocabSize":200019,"contextWidth":2,"hashing":"min"}';
    expect(readConfig({ TRACEMARK_SPEC: minHash }).accountDelta).toBe(0);
    expect(() => readConfig({ TRACEMARK_SPEC: minHash, TRACEMARK_ACCOUNT_DELTA: '1' })).toThrow(ConfigError);
    expect(() => readConfig({ TRACEMARK_ACCOUNT_DELTA: '-1' })).toThrow(/TRACEMARK_ACCOUNT_DELTA/);
    expect(() => readConfig({ TRACEMARK_ACCOUNT_DELTA: 'one' })).toThrow(/TRACEMARK_ACCOUNT_DELTA/);
    expect(
      readConfig({ TRACEMARK_API_TOKEN_ACCOUNT: 'team-1', TRACEMARK_EXPLAIN_TOKEN_ACCOUNT: 'team-2' })
        .tokenAccounts,
    ).toEqual({ apiToken: 'team-1', explainToken: 'team-2' });
    expect(() => readConfig({ TRACEMARK_API_TOKEN_ACCOUNT: 'x'.repeat(257) })).toThrow(
      /TRACEMARK_API_TOKEN_ACCOUNT/,
    );
  });
});
