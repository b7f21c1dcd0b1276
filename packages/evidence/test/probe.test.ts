import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { ProbeClient, type ProbeParameters, retryAfterMs } from '../src/client';
import { type ProbePrompt, parsePromptBank } from '../src/prompts';
import { sha256Hex } from '../src/store';
import { fakeServers } from './fake-server';

const SECRET = 'sk-test-0123456789abcdefSECRET';
/** Fake OpenAI servers, closed after the file's tests. */
const server = fakeServers();

const prompt: ProbePrompt = { id: 'p1', prompt: 'Hello there', system: null, line: 1 };
const chat: ProbeParameters = { api: 'chat', model: 'fake-model', temperature: 1, maxTokens: 16 };

describe('prompt banks', () => {
  it('reads JSON Lines with stable ids, and names the line of every mistake', () => {
    const prompts = parsePromptBank(
      '{"prompt":"a"}\n\n{"prompt":"b","id":"mine","system":"be brief","topic":"x"}\n',
      'bank.jsonl',
    );
    expect(prompts.map((p) => [p.id.slice(0, 2), p.line, p.system])).toEqual([
      ['p-', 1, null],
      ['mi', 3, 'be brief'],
    ]);
    expect(parsePromptBank('{"prompt":"a"}', 'x')[0].id).toBe(prompts[0].id);
    expect(() => parsePromptBank('{"prompt":"a"}\n{"prompt":', 'bank.jsonl')).toThrow(
      'bank.jsonl line 2: not valid JSON',
    );
    expect(() => parsePromptBank('{"text":"a"}', 'b')).toThrow(
      'b line 1: "prompt" must be a non-empty string',
    );
    expect(() => parsePromptBank('"a"', 'b')).toThrow(/line 1: expected an object/);
    expect(() => parsePromptBank('{"prompt":"a"}\n{"prompt":"a"}', 'b')).toThrow(
      'b line 2: the same prompt as line 1',
    );
    expect(() => parsePromptBank('{"prompt":"a","id":"x"}\n{"prompt":"b","id":"x"}', 'b')).toThrow(
      /id "x" is already used on line 1/,
    );
    expect(() => parsePromptBank('\n\n', 'b')).toThrow('b holds no prompts');
  });

  it('ships a default bank of neutral prompts', () => {
    const text = readFileSync(new URL('../prompts/neutral.jsonl', import.meta.url), 'utf8');
    expect(parsePromptBank(text, 'neutral.jsonl').length).toBeGreaterThanOrEqual(50);
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));
    expect(pkg.files).toContain('prompts');
  });
});

describe('ProbeClient', () => {
  it('parses Retry-After in seconds, as a date, and retry-after-ms', () => {
    expect(retryAfterMs(new Headers({ 'retry-after': '2' }))).toBe(2000);
    expect(retryAfterMs(new Headers({ 'retry-after-ms': '150' }))).toBe(150);
    expect(
      retryAfterMs(new Headers({ 'retry-after': 'Thu, 01 Jan 2026 00:00:10 GMT' }), Date.UTC(2026, 0, 1)),
    ).toBe(10_000);
    expect(retryAfterMs(new Headers({ 'retry-after': 'soon' }))).toBeNull();
    expect(retryAfterMs(new Headers())).toBeNull();
  });

  it('retries a 500, then stores the 200 with the exact request and body hash', async () => {
    const s = await server({ failures: [{ status: 500 }, { status: 503 }] });
    const retries: string[] = [];
    const client = new ProbeClient({
      endpoint: s.url,
      timeoutMs: 5000,
      retries: 3,
      backoffBaseMs: 20,
      onRetry: (e) => retries.push(e.reason),
    });
    const record = await client.complete(prompt, 0, chat);
    expect(record.attempts).toBe(3);
    expect(retries).toEqual([
      'the endpoint answered HTTP 500: scripted 500',
      'the endpoint answered HTTP 503: scripted 503',
    ]);
    expect(record.output).toBe('Answer 0 to: Hello there');
    expect(record.reportedModel).toBe('fake-model');
    expect(record.responseSha256).toBe(sha256Hex(record.responseBody));
    expect(JSON.parse(record.requestBody)).toEqual({
      model: 'fake-model',
      messages: [{ role: 'user', content: 'Hello there' }],
      temperature: 1,
      max_tokens: 16,
    });
    expect(s.requests.at(-1)?.body).toEqual(JSON.parse(record.requestBody));
    expect(s.requests.at(-1)?.authorization).toBeUndefined();
  });

  it("waits for a 429's Retry-After before asking again", async () => {
    const s = await server({ failures: [{ status: 429, headers: { 'retry-after': '1' } }] });
    const client = new ProbeClient({ endpoint: s.url, timeoutMs: 5000, retries: 2, backoffBaseMs: 1 });
    const record = await client.complete(prompt, 0, { ...chat, api: 'completions' });
    expect(record.attempts).toBe(2);
    expect(s.requests[1].at - s.requests[0].at).toBeGreaterThanOrEqual(950);
    expect(s.requests[1].body.prompt).toBe('Hello there');
    expect(record.requestUrl).toBe(`${s.url}/completions`);
  });

  it('fails at once on a 4xx, times out slow answers, and never repeats the API key', async () => {
    const s = await server({ apiKey: 'right-key', failures: [{ status: 400 }] });
    const client = new ProbeClient({ endpoint: s.url, apiKey: SECRET, timeoutMs: 5000, retries: 3 });
    await expect(client.complete(prompt, 0, chat)).rejects.toThrow(/HTTP 400: scripted 400$/);
    const refused = client.complete(prompt, 0, chat);
    await expect(refused).rejects.toThrow(/HTTP 401: the API key was refused/);
    await expect(refused).rejects.not.toThrow(/SECRET/);
    expect(s.requests.at(-1)?.authorization).toBe(`Bearer ${SECRET}`);

    const slow = await server({ delayMs: 2000 });
    const impatient = new ProbeClient({ endpoint: slow.url, timeoutMs: 200, retries: 1, backoffBaseMs: 1 });
    await expect(impatient.complete(prompt, 0, chat)).rejects.toThrow(
      /no answer within 0.2 s \(gave up after 2 attempts\)/,
    );
    expect(() => new ProbeClient({ endpoint: 'ftp://x', timeoutMs: 1, retries: 0 })).toThrow(/http\(s\) URL/);
    expect(() => new ProbeClient({ endpoint: 'http://u:p@x/v1', timeoutMs: 1, retries: 0 })).toThrow(
      /credentials/,
    );
  });
});
