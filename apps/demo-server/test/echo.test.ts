import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS } from '../src/config';
import { LOGPROB_FLOOR } from '../src/reading';
import { openAiClient, startApp, type TestApp } from './helpers';

// Reading mode (Sander et al. 2024, open model): `echo: true, max_tokens: 0, logprobs: k` on /v1/completions, as
// vLLM and llama.cpp's server answer it. Checked against the models' own logProb and topCandidates.

type Reply = { statusCode: number; json(): unknown };

interface EchoLogprobs {
  tokens: string[];
  token_logprobs: (number | null)[];
  top_logprobs: (Record<string, number> | null)[];
  text_offset: number[];
  token_ids?: number[];
  top_token_ids?: (number[] | null)[];
}

interface EchoChoice {
  index: number;
  text: string;
  logprobs: EchoLogprobs | null;
  finish_reason: string;
}

function expectError(response: Reply, status: number, code: string, param?: string) {
  expect(response.statusCode).toBe(status);
  const body = response.json() as { error: { message: string; code: string; param: string | null } };
  expect(Object.keys(body.error).sort()).toEqual(['code', 'message', 'param', 'type']);
  expect(body.error.code).toBe(code);
  expect(body.error.message).not.toContain('\n');
  expect(body.error.message.length).toBeGreaterThan(0);
  if (param !== undefined) expect(body.error.param).toBe(param);
  return body.error;
}

const ASCII = 'Alice was beginning to get very tired of sitting by her sister on the bank.';
const UNICODE = 'The Queen said “Off with her head!” — café, naïve, 東京 🐇.';
const READABLE = [
  'tracemark-teacher',
  'tracemark-teacher-plain',
  'tracemark-student-distilled',
  'tracemark-student-clean',
];

describe('echo (reading mode), plain logprobs on', () => {
  let t: TestApp;
  let client: OpenAI;
  beforeAll(async () => {
    t = await startApp({ TRACEMARK_PLAIN_LOGPROBS: '1', PORT: '0' });
    client = await openAiClient(t);
  });
  afterAll(async () => {
    await t.cleanup();
  });

  const echo = async (payload: Record<string, unknown>) =>
    t.app.inject({ method: 'POST', url: '/v1/completions', payload });

  /** The reading the model itself gives: logProb of each prefix, topCandidates ranked and logProb-valued. */
  function expected(modelId: string, ids: number[], k: number) {
    const model = t.ctx.models.get(modelId)!.ngram;
    const topIds = new Int32Array(Math.max(1, k));
    const topLogits = new Float32Array(Math.max(1, k));
    const logprobs: (number | null)[] = [null];
    const tops: (number[] | null)[] = [null];
    for (let i = 1; i < ids.length; i++) {
      const context = ids.slice(0, i);
      // A token the model never saw has probability 0: sent as vLLM's floor, -9999.
      logprobs.push(Math.max(model.logProb(context, ids[i]), LOGPROB_FLOOR));
      if (k === 0) tops.push([]);
      else {
        const found = model.topCandidates(context, k, topIds, topLogits);
        tops.push(Array.from(topIds.subarray(0, found)));
      }
    }
    return { model, logprobs, tops };
  }

  for (const modelId of READABLE) {
    it(`reads a text with ${modelId}: logProb of every prefix, the top-k, offsets and tokens`, async () => {
      for (const text of [ASCII, UNICODE]) {
        const k = 5;
        const r = await echo({
          model: modelId,
          prompt: text,
          echo: true,
          max_tokens: 0,
          logprobs: k,
          return_token_ids: true,
        });
        expect(r.statusCode).toBe(200);
        const body = r.json();
        expect(body.object).toBe('text_completion');
        expect(body.model).toBe(modelId);
        const ids = t.ctx.encode(text);
        expect(body.usage).toEqual({
          prompt_tokens: ids.length,
          completion_tokens: 0,
          total_tokens: ids.length,
        });
        expect(body.choices).toHaveLength(1);
        const choice = body.choices[0] as EchoChoice;
        expect(choice.text).toBe(text);
        expect(choice.finish_reason).toBe('length');
        const lp = choice.logprobs!;
        expect(Object.keys(lp).sort()).toEqual(
          ['text_offset', 'token_ids', 'token_logprobs', 'tokens', 'top_logprobs', 'top_token_ids'].sort(),
        );
        expect(lp.token_ids).toEqual(ids);
        const { model, logprobs, tops } = expected(modelId, ids, k);
        // A token's string is its UTF-8 bytes decoded (U+FFFD where they are part of a character): model.decode
        // for whole characters (gpt-tokenizer's decode keeps a split character's bytes between calls).
        expect(lp.tokens).toEqual(ids.map((id) => t.ctx.bytes.piece(id)));
        for (let i = 0; i < ids.length; i++)
          if (!lp.tokens[i].includes('\uFFFD')) expect(lp.tokens[i]).toBe(model.decode([ids[i]]));
        expect(lp.token_logprobs[0]).toBeNull();
        expect(lp.top_logprobs[0]).toBeNull();
        expect(lp.top_token_ids![0]).toBeNull();
        for (let i = 1; i < ids.length; i++) {
          expect(Math.abs((lp.token_logprobs[i] as number) - (logprobs[i] as number))).toBeLessThan(1e-6);
          expect(lp.top_token_ids![i]).toEqual(tops[i]);
          // Keyed by the decoded string: of two ids with the same string, the likelier one's logprob.
          const want: Record<string, number> = {};
          for (const id of tops[i]!) {
            const key = t.ctx.bytes.piece(id);
            if (!(key in want)) want[key] = model.logProb(ids.slice(0, i), id);
          }
          const got = lp.top_logprobs[i]!;
          expect(Object.keys(got).sort()).toEqual(Object.keys(want).sort());
          for (const key of Object.keys(want)) expect(Math.abs(got[key] - want[key])).toBeLessThan(1e-6);
          // The top-k are the most likely: none below the text's own token unless it is among them.
          const values = Object.values(got);
          expect(values.every((v) => v <= 0)).toBe(true);
          if (!tops[i]!.includes(ids[i]))
            expect(Math.min(...values)).toBeGreaterThanOrEqual((logprobs[i] as number) - 1e-6);
        }
        // text_offset: where each token's characters start in the returned text.
        expect(lp.text_offset).toHaveLength(ids.length);
        expect(lp.text_offset[0]).toBe(0);
        const decoder = new TextDecoder();
        let prefix = '';
        for (let i = 0; i < ids.length; i++) {
          expect(lp.text_offset[i]).toBe(prefix.length);
          prefix += decoder.decode(t.ctx.bytes.of(ids[i]), { stream: true });
          if (!lp.tokens[i].includes('\uFFFD'))
            expect(text.startsWith(lp.tokens[i], lp.text_offset[i])).toBe(true);
        }
        expect(prefix + decoder.decode()).toBe(text);
        if (text === ASCII) expect(lp.tokens.join('')).toBe(text);
      }
    });
  }

  it('reads a prompt given as token ids exactly as the same text, ids untouched', async () => {
    const ids = t.ctx.encode(UNICODE);
    const base = {
      model: 'tracemark-student-distilled',
      echo: true,
      max_tokens: 0,
      logprobs: 3,
      return_token_ids: true,
    };
    const byText = (await echo({ ...base, prompt: UNICODE })).json() as { choices: EchoChoice[] };
    const byIds = (await echo({ ...base, prompt: ids })).json() as { choices: EchoChoice[] };
    expect(byIds.choices[0]).toEqual(byText.choices[0]);
    // Ids the tokenizer would not produce from the text are read as sent, never re-tokenized.
    const odd = [...t.ctx.encode('Al'), ...t.ctx.encode('ice'), ...t.ctx.encode(' w'), ...t.ctx.encode('as')];
    expect(odd).not.toEqual(t.ctx.encode('Alice was'));
    const r = (await echo({ ...base, prompt: odd })).json() as { choices: EchoChoice[] };
    expect(r.choices[0].logprobs!.token_ids).toEqual(odd);
    // Several prompts and n: choice i·n + j is prompt i.
    const many = (await echo({ ...base, prompt: [ids, ids.slice(0, 3)], n: 2 })).json() as {
      choices: EchoChoice[];
    };
    expect(many.choices.map((c) => c.index)).toEqual([0, 1, 2, 3]);
    expect(many.choices[1]).toEqual({ ...many.choices[0], index: 1 });
    expect(many.choices[2].logprobs!.token_ids).toEqual(ids.slice(0, 3));
  });

  it('answers echo with logprobs 0, without logprobs, and without max_tokens', async () => {
    const base = { model: 'tracemark-student-clean', prompt: ASCII, echo: true };
    const zero = (await echo({ ...base, max_tokens: 0, logprobs: 0 })).json() as { choices: EchoChoice[] };
    const lp = zero.choices[0].logprobs!;
    expect(lp.top_logprobs[0]).toBeNull();
    expect(lp.top_logprobs.slice(1).every((m) => m !== null && Object.keys(m).length === 0)).toBe(true);
    expect(lp.token_ids).toBeUndefined();
    expect(lp.token_logprobs.slice(1).every((x) => typeof x === 'number')).toBe(true);
    const none = (await echo({ ...base, max_tokens: 0 })).json() as { choices: EchoChoice[] };
    expect(none.choices[0]).toEqual({ index: 0, text: ASCII, logprobs: null, finish_reason: 'length' });
    // An echo request without max_tokens reads the prompt (it does not default to 16 generated tokens).
    const unset = await echo({ ...base, logprobs: 1 });
    expect(unset.statusCode).toBe(200);
    expect((unset.json() as { usage: { completion_tokens: number } }).usage.completion_tokens).toBe(0);
  });

  it('refuses bad reading requests with one line and a stable code', async () => {
    const base = {
      model: 'tracemark-student-distilled',
      prompt: ASCII,
      echo: true,
      max_tokens: 0,
      logprobs: 2,
    };
    expectError(await echo({ ...base, prompt: [1, 300_000] }), 400, 'invalid_value', 'prompt');
    expectError(
      await echo({
        ...base,
        prompt: [
          [5, 6],
          [1, 200_019],
        ],
      }),
      400,
      'invalid_value',
      'prompt[1]',
    );
    const tooLong = Array.from({ length: DEFAULT_LIMITS.maxEchoTokens + 1 }, (_, i) => 1000 + (i % 50));
    expectError(await echo({ ...base, prompt: tooLong }), 400, 'context_length_exceeded', 'prompt');
    expectError(
      await echo({ ...base, prompt: [tooLong.slice(0, 9000), tooLong.slice(0, 9000)] }),
      400,
      'context_length_exceeded',
    );
    expectError(await echo({ ...base, logprobs: 6 }), 400, 'invalid_value', 'logprobs');
    expectError(await echo({ ...base, logprobs: -1 }), 400, 'invalid_value', 'logprobs');
    expectError(await echo({ ...base, logprobs: 1.5 }), 400, 'invalid_type', 'logprobs');
    expectError(await echo({ ...base, max_tokens: 5 }), 400, 'unsupported_parameter', 'max_tokens');
    expectError(await echo({ ...base, stream: true }), 400, 'unsupported_parameter', 'stream');
    expectError(
      await echo({ ...base, echo: false, max_tokens: 2, return_token_ids: true }),
      400,
      'unsupported_parameter',
      'return_token_ids',
    );
    expectError(await echo({ ...base, echo: 'yes' }), 400, 'invalid_type', 'echo');
    expectError(await echo({ ...base, model: 'gpt-4o' }), 404, 'model_not_found', 'model');
  });

  it('is read by the official openai client (v6)', async () => {
    const ids = t.ctx.encode(ASCII);
    const whole = await client.completions.create({
      model: 'tracemark-student-distilled',
      prompt: ASCII,
      echo: true,
      max_tokens: 0,
      logprobs: 5,
    });
    const lp = whole.choices[0].logprobs!;
    expect(whole.choices[0].text).toBe(ASCII);
    expect(lp.tokens).toHaveLength(ids.length);
    expect(lp.token_logprobs?.[0]).toBeNull();
    const { logprobs } = expected('tracemark-student-distilled', ids, 5);
    expect(Math.abs((lp.token_logprobs?.[3] as number) - (logprobs[3] as number))).toBeLessThan(1e-6);
    expect(Object.keys(lp.top_logprobs?.[1] ?? {}).length).toBeGreaterThan(0);
    // Token ids as the prompt, with the tracemark extension passed through as an extra body field.
    const request = {
      model: 'tracemark-student-clean',
      prompt: ids,
      echo: true,
      max_tokens: 0,
      logprobs: 2,
      return_token_ids: true,
    } as OpenAI.CompletionCreateParamsNonStreaming;
    const byIds = await client.completions.create(request);
    const extended = byIds.choices[0].logprobs as unknown as EchoLogprobs;
    expect(extended.token_ids).toEqual(ids);
    expect(extended.top_token_ids?.[1]).toHaveLength(2);
    const error = await client.completions
      .create({
        model: 'tracemark-student-clean',
        prompt: [1, 300_000],
        echo: true,
        max_tokens: 0,
        logprobs: 1,
      })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect((error as InstanceType<typeof OpenAI.BadRequestError>).code).toBe('invalid_value');
  });
});

describe('echo with plain logprobs off (the default)', () => {
  let t: TestApp;
  beforeAll(async () => {
    t = await startApp();
  });
  afterAll(async () => {
    await t.cleanup();
  });

  it('refuses echoed logprobs of the plain twin and of the teacher, serves the students', async () => {
    const request = (model: string, extra: Record<string, unknown> = {}) =>
      t.app.inject({
        method: 'POST',
        url: '/v1/completions',
        payload: { model, prompt: ASCII, echo: true, max_tokens: 0, logprobs: 2, ...extra },
      });
    expectError(await request('tracemark-teacher-plain'), 400, 'logprobs_disabled', 'logprobs');
    // The teacher's own (unwatermarked) distribution is the plain twin's: the same rule.
    expectError(await request('tracemark-teacher'), 400, 'logprobs_disabled', 'logprobs');
    expectError(await request('tracemark-teacher-plain', { logprobs: 0 }), 400, 'logprobs_disabled');
    // Echo without logprobs only returns the text.
    const plain = await request('tracemark-teacher-plain', { logprobs: null });
    expect(plain.statusCode).toBe(200);
    expect((plain.json() as { choices: EchoChoice[] }).choices[0].logprobs).toBeNull();
    for (const model of ['tracemark-student-distilled', 'tracemark-student-clean']) {
      const r = await request(model);
      expect(r.statusCode).toBe(200);
      expect((r.json() as { choices: EchoChoice[] }).choices[0].logprobs?.tokens.length).toBeGreaterThan(0);
    }
  });
});
