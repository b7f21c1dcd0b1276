import { spawn, spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect } from 'vitest';

/**
 * The built CLI, as installed: scan and multi-key workers run built JavaScript only, so these tests run what
 * `pnpm build` made (CI builds before it tests).
 */
export const CLI = fileURLToPath(new URL('../../bin/tracemark.js', import.meta.url));

export interface CliRun {
  code: number | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs the real CLI in a child process, as a user would: no colours, and no key from the environment unless a
 * test passes one.
 */
export function tracemark(args: string[], input?: string, timeout = 180_000): CliRun {
  const result = spawnSync(process.execPath, [CLI, ...args], {
    input,
    encoding: 'utf8',
    env: { ...process.env, NO_COLOR: '1', TRACEMARK_KEY: '' },
    timeout,
  });
  return { code: result.status, stdout: result.stdout, stderr: result.stderr };
}

/**
 * The real CLI in a child process that does not block this one, for tests whose servers answer from this
 * process (a fake OpenAI endpoint): same environment rules as `tracemark`, plus `env`.
 */
export function tracemarkAsync(args: string[], env: Record<string, string> = {}): Promise<CliRun> {
  const child = spawn(process.execPath, [CLI, ...args], {
    env: { ...process.env, NO_COLOR: '1', TRACEMARK_KEY: '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => {
    stdout += d;
  });
  child.stderr.on('data', (d) => {
    stderr += d;
  });
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })));
}

/** Exit code 2 and one line on standard error that names the problem, without a stack trace. */
export function expectOneLineError(run: { code: number | null; stderr: string }, message: RegExp): void {
  expect(run.code).toBe(2);
  expect(run.stderr.trim().split('\n')).toHaveLength(1);
  expect(run.stderr).toMatch(/^tracemark: /);
  expect(run.stderr).toMatch(message);
  expect(run.stderr).not.toMatch(/\n\s+at /);
}
