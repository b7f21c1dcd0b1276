import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { MasterKey } from '@tracemark/watermark';
import Database from 'better-sqlite3';
import { afterAll, describe, expect, it } from 'vitest';
import { ProbeClient, type ProbeParameters, retryAfterMs } from '../src/probe/client';
import { Progress } from '../src/probe/progress';
import { type ProbePrompt, parsePromptBank } from '../src/probe/prompts';
import { EvidenceStore, sha256Hex } from '../src/store/index';
import { type FakeServer, startFakeServer, wordWriter } from './probe-fake-server';

const CLI = fileURLToPath(new URL('../src/cli.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'tracemark-probe-'));
const SECRET = 'sk-test-0123456789abcdefSECRET';
const servers: FakeServer[] = [];
afterAll(async () => {
  await Promise.all(servers.map((s) => s.close()));
});

async function server(options: Parameters<typeof startFakeServer>[0]): Promise<FakeServer> {
  const s = await startFakeServer(options);
  servers.push(s);
  return s;
}

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** The real CLI as a child process (asynchronous, so that servers in this process keep answering). */
function tracemark(
  args: string[],
  env: Record<string, string> = {},
): { child: ChildProcess; done: Promise<Run> } {
  const child = spawn(process.execPath, ['--import', 'tsx', CLI, ...args], {
    env: { ...process.env, NO_COLOR: '1', OPENAI_API_KEY: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d) => {
    stdout += d;
  });
  child.stderr?.on('data', (d) => {
    stderr += d;
  });
  const done = new Promise<Run>((resolve) => {
    child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr }));
  });
  return { child, done };
}

function expectOneLineError(run: Run, message: RegExp): void {
  expect(run.code).toBe(2);
  expect(run.stderr.trim().split('\n')).toHaveLength(1);
  expect(run.stderr).toMatch(/^tracemark: /);
  expect(run.stderr).toMatch(message);
  expect(run.stderr).not.toMatch(/\n\s+at /);
  expect(run.stdout + run.stderr).not.toContain(SECRET);
}

function bank(name: string, count: number): string {
  const path = join(dir, name);
  writeFileSync(
    path,
    Array.from({ length: count }, (_, i) =>
      JSON.stringify({ prompt: `Tell me about topic number ${i}.` }),
    ).join('\n'),
  );
  return path;
}

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

describe('progress', () => {
  it('writes plain lines to a pipe and a redrawn bar with rate and ETA to a terminal', () => {
    const plain: string[] = [];
    const log = new Progress({ write: (t) => plain.push(t), isTTY: false }, 20);
    for (let i = 0; i < 20; i++) log.tick();
    expect(plain).toHaveLength(10);
    expect(plain[0]).toMatch(/^probe: 2\/20 \(10 %\), [\d.]+ responses\/s, ETA /);
    expect(plain.at(-1)).toMatch(/20\/20 \(100 %\).*done in/);
    expect(plain.join('')).not.toContain('\r');

    const tty: string[] = [];
    const bar = new Progress({ write: (t) => tty.push(t), isTTY: true, columns: 100 }, 4);
    bar.tick();
    bar.message('retry p#0');
    bar.tick('e-value 10^1.00');
    bar.finish();
    const text = tty.join('');
    expect(text).toContain('\r\u001b[2Kprobe [');
    expect(text).toMatch(/probe \[#+\.+\] 1\/4 \(25 %\)/);
    expect(text).toContain('retry p#0\n');
    expect(text).toMatch(/ETA .*e-value 10\^1.00/);
    expect(text.endsWith('\n')).toBe(true);
  });
});

describe('tracemark probe', () => {
  it('resumes after SIGKILL: every (prompt, sample) once, nothing lost', async () => {
    const s = await server({ delayMs: 120 });
    const store = join(dir, 'killed.db');
    const args = ['probe', '--endpoint', s.url, '--model', 'fake-model', '--prompts', bank('kill.jsonl', 30)];
    const first = tracemark([...args, '--samples', '2', '--store', store, '--concurrency', '3']);
    // Kill it hard once some responses are committed (and others are in flight).
    let stored = 0;
    for (let waited = 0; waited < 30_000 && stored < 12; waited += 50) {
      await new Promise((r) => setTimeout(r, 50));
      try {
        const db = new Database(store, { readonly: true, fileMustExist: true });
        stored = (db.prepare('SELECT count(*) AS n FROM responses').get() as { n: number }).n;
        db.close();
      } catch {
        // not created yet
      }
    }
    first.child.kill('SIGKILL');
    const killed = await first.done;
    expect(killed.signal).toBe('SIGKILL');
    const afterKill = EvidenceStore.open(store);
    const keptBefore = afterKill.count();
    afterKill.close();
    expect(keptBefore).toBeGreaterThanOrEqual(12);
    expect(keptBefore).toBeLessThan(60);

    const second = await tracemark([...args, '--samples', '2', '--store', store, '--concurrency', '3']).done;
    expect(second.code).toBe(0);
    expect(second.stdout).toMatch(new RegExp(`\\(${keptBefore} were already stored\\); .* holds 60`));

    const check = EvidenceStore.open(store);
    const rows = [...check.responses()];
    expect(rows).toHaveLength(60);
    expect(new Set(rows.map((r) => `${r.promptId}#${r.sample}`)).size).toBe(60);
    expect(new Set(rows.map((r) => r.sample))).toEqual(new Set([0, 1]));
    for (const row of rows) expect(sha256Hex(row.responseBody)).toBe(row.responseSha256);
    const runs = check.runs();
    expect(runs).toHaveLength(2);
    expect(runs[0].finishedAt).toBeNull(); // the killed run never finished
    expect(runs[1].outcome).toMatchObject({ state: 'complete', stored: 60 - keptBefore });
    check.close();
    // Only the requests in flight at the kill were asked twice.
    expect(s.requests.length).toBeGreaterThanOrEqual(60);
    expect(s.requests.length).toBeLessThanOrEqual(60 + 3);
    // A third run asks for nothing.
    const third = await tracemark([...args, '--samples', '2', '--store', store, '--json']).done;
    expect(JSON.parse(third.stdout)).toMatchObject({ stored: 0, alreadyStored: 60, total: 60 });
  });

  it('retries through 500 and 429 (Retry-After) from the command line, with progress lines', async () => {
    const s = await server({
      failures: [{ status: 500 }, { status: 429, headers: { 'retry-after': '1' } }],
    });
    const run = await tracemark(
      [
        'probe',
        '--endpoint',
        s.url,
        '--model',
        'fake-model',
        '--prompts',
        bank('retry.jsonl', 3),
        '--store',
        join(dir, 'retry.db'),
      ],
      { OPENAI_API_KEY: SECRET },
    ).done.then((r) => r);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stderr).toMatch(
      /retry p-[0-9a-f]{16}#0 \(attempt 2 in [\d.]+ s\): the endpoint answered HTTP 500/,
    );
    expect(run.stderr).toMatch(/attempt 2 in 1.0 s\): the endpoint answered HTTP 429/);
    expect(run.stderr).toMatch(/probe: 3\/3 \(100 %\)/);
    expect(run.stdout).toMatch(/API key from \$OPENAI_API_KEY/);
    expect(run.stdout + run.stderr).not.toContain(SECRET);
    expect(s.requests.at(-1)?.authorization).toBe(`Bearer ${SECRET}`);
  });

  it('rejects bad input with one line and exit code 2, never showing the key', async () => {
    const env = { OPENAI_API_KEY: SECRET, MY_KEY: SECRET };
    const closed = await server({});
    await closed.close(); // a port that was just free: nothing listens there now
    const base = ['probe', '--endpoint', closed.url, '--model', 'm'];
    const malformed = join(dir, 'malformed.jsonl');
    writeFileSync(malformed, '{"prompt":"fine"}\n{"prompt":"also fine"}\n{"prompt": oops}\n');
    const runs = await Promise.all([
      tracemark(base, env).done,
      tracemark([...base, '--store', join(dir, 'x.db'), '--prompts', join(dir, 'missing.jsonl')], env).done,
      tracemark([...base, '--store', join(dir, 'x.db'), '--prompts', malformed], env).done,
      tracemark([...base, '--store', join(dir, 'unreachable.db'), '--api-key-env', 'MY_KEY'], env).done,
      tracemark([...base, '--store', join(dir, 'x.db'), '--api-key-env', 'NOT_SET_ANYWHERE'], env).done,
      tracemark([...base, '--store', join(dir, 'x.db'), '--until-alpha', '1e-6'], env).done,
    ]);
    expectOneLineError(runs[0], /probe needs --store <evidence.db>/);
    expectOneLineError(runs[1], /cannot read prompt bank .*missing.jsonl: ENOENT/);
    expectOneLineError(runs[2], /malformed.jsonl line 3: not valid JSON/);
    expectOneLineError(
      runs[3],
      /^tracemark: http:\/\/127.0.0.1:\d+\/v1\/chat\/completions: cannot reach the endpoint \(ECONNREFUSED\)$/m,
    );
    expectOneLineError(runs[4], /\$NOT_SET_ANYWHERE is not set/);
    expectOneLineError(runs[5], /--until-alpha needs the owner's --key-file and --spec/);
  });

  it('stops as soon as the e-process reaches 1/α (--until-alpha), and says so', async () => {
    const key = MasterKey.parse('6d'.repeat(32));
    const keyFile = join(dir, 'owner.key');
    writeFileSync(keyFile, `${key.exportHex()}\n`);
    const spec = { scheme: 'kgw', vocabSize: 200019, gamma: 0.25, delta: 2, contextWidth: 1 };
    const s = await server({ reply: await wordWriter({ spec, key, watermark: true }) });
    const store = join(dir, 'sequential.db');
    const run = await tracemark([
      'probe',
      '--endpoint',
      s.url,
      '--model',
      'fake-model',
      '--prompts',
      bank('seq.jsonl', 40),
      '--samples',
      '5',
      '--store',
      store,
      '--concurrency',
      '2',
      '--until-alpha',
      '1e-6',
      '--key-file',
      keyFile,
      '--spec',
      JSON.stringify(spec),
    ]).done;
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toMatch(
      /stopped early: the e-process reached 10\^[\d.]+ ≥ 1\/α = 10\^6.0 after \d+ responses/,
    );
    const check = EvidenceStore.open(store);
    expect(check.count()).toBeLessThan(200);
    expect(check.runs()[0].outcome).toMatchObject({
      state: 'stopped-by-sequential-test',
      sequential: { alpha: 1e-6 },
    });
    check.close();
    expect(run.stdout + run.stderr).not.toContain(key.exportHex());
  });
});
