/**
 * The investigator's workflow end to end, against the demo server's suspects: start apps/demo-server (test
 * profile), probe `tracemark-student-distilled` and `tracemark-student-clean` over its OpenAI API with the real
 * `tracemark probe`, and verify both with `tracemark verify` (negative controls included).
 *
 * The data directory is kept in the temporary folder with a fixed master key (written as the server's key file
 * before it starts), so the models are built once and later runs load them; requests carry seeds (`--seed`) and
 * the sequential probe runs one request at a time, so every run sees the same responses.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tracemarkAsync } from '../apps/cli/test/support/cli';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const DEMO = join(ROOT, 'apps/demo-server');
const DEMO_MAIN = join(DEMO, 'src/main.ts');
const DATA = join(tmpdir(), 'tracemark-investigate-e2e');
const KEY_HEX = 'a7'.repeat(32);
const work = mkdtempSync(join(tmpdir(), 'tracemark-investigate-'));

let server: ChildProcess | undefined;
let base = '';
let specFile = '';
const keyFile = join(DATA, 'master.key');

/** The built CLI, without an OpenAI key from the environment (the demo server asks for none). */
const tracemark = (args: string[]) => tracemarkAsync(args, { OPENAI_API_KEY: '' });

/** Starts the demo server on a free port and resolves with its base URL once it listens. */
function startDemo(): Promise<string> {
  mkdirSync(DATA, { recursive: true, mode: 0o700 });
  if (!existsSync(keyFile)) writeFileSync(keyFile, `${KEY_HEX}\n`, { mode: 0o600 });
  chmodSync(keyFile, 0o600);
  const child = spawn(process.execPath, ['--import', 'tsx', DEMO_MAIN], {
    cwd: ROOT,
    env: {
      ...process.env,
      PORT: '0',
      HOST: '127.0.0.1',
      TRACEMARK_PROFILE: 'test',
      TRACEMARK_DATA_DIR: DATA,
      TRACEMARK_LOG_REQUESTS: '0',
      TRACEMARK_KEY: '',
      TRACEMARK_KEY_FILE: '',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  server = child;
  let log = '';
  return new Promise((resolve, reject) => {
    const onData = (d: Buffer) => {
      log += d;
      // The server logs JSON lines: the URL ends at the closing quote.
      const match = /listening on (http:\/\/[^\s"]+)/.exec(log);
      if (match) resolve(match[1]);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.on('exit', (code) =>
      reject(new Error(`the demo server exited (${code}) before listening:\n${log}`)),
    );
  });
}

const demoExists = existsSync(join(DEMO, 'package.json'));

describe.skipIf(!demoExists)('investigating the demo server’s students', () => {
  beforeAll(async () => {
    base = await startDemo();
    const info = (await (await fetch(`${base}/api/info`)).json()) as {
      spec: unknown;
      keyFingerprint: string;
    };
    specFile = join(work, 'spec.json');
    writeFileSync(specFile, JSON.stringify(info.spec));
  }, 300_000);

  afterAll(() => {
    server?.kill('SIGTERM');
  });

  it('detects the distilled student: the probe stops on the e-process, verify cites its anytime p < 1e-6', async () => {
    const store = join(work, 'distilled.db');
    const probe = await tracemark([
      'probe',
      '--endpoint',
      `${base}/v1`,
      '--model',
      'tracemark-student-distilled',
      '--store',
      store,
      '--max-tokens',
      '160',
      '--seed',
      '7',
      '--concurrency',
      '1',
      '--until-alpha',
      '1e-6',
      '--key-file',
      keyFile,
      '--spec',
      specFile,
    ]);
    expect(probe.code, probe.stderr).toBe(0);
    expect(probe.stdout).toMatch(/stopped early: the e-process reached/);

    const verify = await tracemark([
      'verify',
      '--store',
      store,
      '--key-file',
      keyFile,
      '--spec',
      specFile,
      '--json',
    ]);
    expect(verify.code, verify.stderr).toBe(0);
    const report = JSON.parse(verify.stdout);
    console.info(
      `distilled: ${report.responses.count} responses, ${report.scored} scored tokens, cited (${report.verdict.basis}) p = 10^${report.verdict.log10PValueCited.toFixed(2)}, fixed-size p = ${report.pValue.toExponential(2)}, controls KS p = ${report.controls.uniformity.pValue.toFixed(3)}`,
    );
    // Probing stopped on the e-process, so the fixed-size p is optimistic: the verdict cites the anytime-valid p.
    expect(report.stoppedBySequentialTest).toBe(true);
    expect(report.sequential.log10AnytimePValue).toBeLessThanOrEqual(-6);
    expect(report.verdict).toMatchObject({
      detected: true,
      basis: 'anytime',
      controlsPassed: true,
      log10PValueCited: report.sequential.log10AnytimePValue,
    });
    expect(report.verdict.pValueCited).toBeLessThan(1e-6);
    expect(report.controls.passed).toBe(true);
    expect(report.suspect).toMatchObject({
      reportedModels: { 'tracemark-student-distilled': report.responses.count },
      endpoints: [`${base}/v1`],
      responses: report.responses.count,
    });
    expect(report.reportedModels).toEqual({ 'tracemark-student-distilled': report.responses.count });
    expect(verify.stdout).not.toContain(readFileSync(keyFile, 'utf8').trim());
  }, 300_000);

  it('finds nothing in the clean student, with passing controls', async () => {
    const store = join(work, 'clean.db');
    const probe = await tracemark([
      'probe',
      '--endpoint',
      `${base}/v1`,
      '--model',
      'tracemark-student-clean',
      '--store',
      store,
      '--max-tokens',
      '96',
      '--seed',
      '7',
    ]);
    expect(probe.code, probe.stderr).toBe(0);
    expect(probe.stdout).toMatch(/stored 64 new responses/);

    const verify = await tracemark([
      'verify',
      '--store',
      store,
      '--key-file',
      keyFile,
      '--spec',
      specFile,
      '--json',
    ]);
    expect(verify.code, verify.stderr).toBe(0);
    const report = JSON.parse(verify.stdout);
    console.info(
      `clean: ${report.responses.count} responses, ${report.scored} scored tokens, p = ${report.pValue.toFixed(3)}, controls KS p = ${report.controls.uniformity.pValue.toFixed(3)}`,
    );
    expect(report.pValue).toBeGreaterThan(0.01);
    expect(report.controls.passed).toBe(true);
    expect(report.controls.count).toBeGreaterThanOrEqual(20);
    expect(report.verdict).toMatchObject({ detected: false, basis: 'fixed', pValueCited: report.pValue });
    expect(report.responses.sha256).toHaveLength(64);
  }, 300_000);
});
