import { type ChildProcess, spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { EvidenceStore, sha256Hex } from '@tracemark/evidence';
import { MasterKey } from '@tracemark/watermark';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { fakeServers, wordWriter } from '../../../packages/evidence/test/fake-server';
import { Progress } from '../src/progress';

// The built CLI: its workers run built code only (CI builds before it tests).
const CLI = fileURLToPath(new URL('../bin/tracemark.js', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'tracemark-probe-'));
const SECRET = 'sk-test-0123456789abcdefSECRET';
/** Fake OpenAI servers, closed after the file's tests. */
const server = fakeServers();

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
  const child = spawn(process.execPath, [CLI, ...args], {
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
    writeFileSync(keyFile, `${key.exportHex()}\n`, { mode: 0o600 });
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
