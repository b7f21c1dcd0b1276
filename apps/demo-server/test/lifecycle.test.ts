import { spawn } from 'node:child_process';
import { readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { auth, MODEL_DIR, startApp, TEST_KEY_HEX, tempDir } from './helpers';

const samples = [
  {
    prompt: 'The Queen',
    output: 'The Queen was very much surprised at this, and she said so to the Hatter.',
  },
  {
    prompt: 'Alice thought',
    output: 'Alice thought it would be quite as well to say nothing about it at all.',
  },
];

describe('jobs in SQLite', () => {
  it('keep their result across a restart, and a job left queued runs on the next start', async () => {
    const dataDir = tempDir();
    try {
      const first = await startApp({}, { dataDir });
      const done = (
        await first.app.inject({ method: 'POST', url: '/api/verify', headers: auth, payload: { samples } })
      ).json();
      await first.ctx.runner.idle();
      const before = (await first.app.inject({ url: `/api/jobs/${done.id}`, headers: auth })).json();
      expect(before.state).toBe('succeeded');
      await first.cleanup();

      // A server that stops before running its job (jobs off) leaves it queued in the database.
      const second = await startApp({}, { dataDir, startJobs: false });
      const queued = (
        await second.app.inject({ method: 'POST', url: '/api/verify', headers: auth, payload: { samples } })
      ).json();
      expect(queued.state).toBe('queued');
      await second.cleanup();

      const third = await startApp({}, { dataDir });
      const after = (await third.app.inject({ url: `/api/jobs/${done.id}`, headers: auth })).json();
      expect(after).toEqual(before);
      await third.ctx.runner.idle();
      const resumed = (await third.app.inject({ url: `/api/jobs/${queued.id}`, headers: auth })).json();
      expect(resumed.state).toBe('succeeded');
      expect(resumed.result.log10PValue).toBe(after.result.log10PValue);
      await third.cleanup();
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe('graceful shutdown', () => {
  it('lets an open stream finish within the grace period, and ends it cleanly after', async () => {
    for (const [grace, expectEnd] of [
      [30_000, 'finished'],
      [0, 'ended'],
    ] as const) {
      const t = await startApp();
      const address = await t.app.listen({ host: '127.0.0.1', port: 0 });
      const response = await fetch(`${address}/v1/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          model: 'tracemark-teacher',
          prompt: 'The Queen',
          max_tokens: 400,
          stream: true,
        }),
      });
      const reader = response.body!.getReader();
      await reader.read(); // the stream is open
      const stopping = t.cleanup(grace);
      let body = '';
      const decoder = new TextDecoder();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        body += decoder.decode(value, { stream: true });
      }
      await stopping;
      expect(body.endsWith('data: [DONE]\n\n')).toBe(true);
      if (expectEnd === 'finished') expect(body).toContain('"finish_reason":"length"');
      else expect(body).toContain('server_shutting_down');
    }
  });

  it('stops generating when the client goes away mid-stream', async () => {
    const t = await startApp();
    try {
      const address = await t.app.listen({ host: '127.0.0.1', port: 0 });
      const abort = new AbortController();
      const response = await fetch(`${address}/v1/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          model: 'tracemark-teacher',
          messages: [{ role: 'user', content: 'The Queen' }],
          max_tokens: 1000,
          stream: true,
        }),
        signal: abort.signal,
      });
      const reader = response.body!.getReader();
      await reader.read();
      expect(t.ctx.shutdown.activeStreams).toBe(1);
      abort.abort();
      const deadline = Date.now() + 5_000;
      while (t.ctx.shutdown.activeStreams > 0 && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 20));
      expect(t.ctx.shutdown.activeStreams).toBe(0);
    } finally {
      await t.cleanup();
    }
  });

  it('stops on SIGTERM; the log names the token file (0600), never a secret', async () => {
    const dataDir = tempDir();
    const root = fileURLToPath(new URL('..', import.meta.url));
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/main.ts'], {
      cwd: root,
      env: {
        ...process.env,
        TRACEMARK_PROFILE: 'test',
        TRACEMARK_DATA_DIR: dataDir,
        TRACEMARK_MODEL_DIR: MODEL_DIR,
        TRACEMARK_KEY: TEST_KEY_HEX,
        PORT: '0',
      },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
    });
    child.stderr.on('data', (d) => {
      out += d;
    });
    try {
      const url = await new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no start within 60 s:\n${out}`)), 60_000);
        child.stdout.on('data', () => {
          const match = /listening on (http:\/\/[^\s"]+)/.exec(out);
          if (match) {
            clearTimeout(timer);
            resolve(match[1]);
          }
        });
        child.on('exit', () => reject(new Error(`exited early:\n${out}`)));
      });
      const models = await fetch(`${url}/v1/models`);
      expect(models.status).toBe(200);
      const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
      child.kill('SIGTERM');
      expect(await exited).toBe(0);
      expect(out).toContain('SIGTERM: shutting down');
      expect(out).toContain(`API token: generated into ${join(dataDir, 'api-token')}`);
      expect(out).not.toContain(TEST_KEY_HEX);
      const token = readFileSync(join(dataDir, 'api-token'), 'utf8').trim();
      expect(out).not.toContain(token);
      expect(statSync(join(dataDir, 'api-token')).mode & 0o777).toBe(0o600);
    } finally {
      child.kill('SIGKILL');
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
