/**
 * `tracemark read` against the real demo server, in process (its test models and key): the teacher writes the
 * owner's watermarked texts over HTTP, the students read them through `echo` with `return_token_ids`, and
 * `verify --store` tests each reading store.
 */
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApp, TEST_KEY_HEX, type TestApp } from '../../demo-server/test/helpers';
import { tracemarkAsync } from './support/cli';

const dir = mkdtempSync(join(tmpdir(), 'tracemark-read-demo-'));
let t: TestApp;
let url: string;
let textsPath: string;
const keyFile = join(dir, 'teacher.key');
writeFileSync(keyFile, `${TEST_KEY_HEX}\n`, { mode: 0o600 });

beforeAll(async () => {
  t = await startApp({ PORT: '0' });
  url = `${await t.app.listen({ host: '127.0.0.1', port: 0 })}/v1`;
  const lines: string[] = [];
  for (let i = 0; i < 12; i++) {
    const response = await fetch(`${url}/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model: 'tracemark-teacher',
        prompt: `Once upon a time, story number ${i},`,
        max_tokens: 150,
        temperature: 1,
        seed: i,
      }),
    });
    expect(response.status).toBe(200);
    const body = (await response.json()) as { choices: { text: string }[] };
    lines.push(JSON.stringify({ text: body.choices[0].text }));
  }
  textsPath = join(dir, 'teacher.jsonl');
  writeFileSync(textsPath, `${lines.join('\n')}\n`);
});

afterAll(async () => {
  await t?.cleanup();
});

async function readAndVerify(model: string) {
  const store = join(dir, `${model}.db`);
  const read = await tracemarkAsync([
    'read',
    '--endpoint',
    url,
    '--model',
    model,
    '--texts',
    textsPath,
    '--store',
    store,
    '--context',
    '64',
    '--quiet',
  ]);
  expect(read.stderr).toBe('');
  expect(read.code).toBe(0);
  expect(read.stdout).toMatch(/^read 12 texts: \d+ windows, \d+ read now/);
  const verify = await tracemarkAsync([
    'verify',
    '--store',
    store,
    '--key-file',
    keyFile,
    '--spec',
    JSON.stringify(t.config.spec),
    '--controls',
    '20',
    '--threads',
    '1',
    '--json',
  ]);
  expect(verify.stderr).toBe('');
  expect(verify.code).toBe(0);
  return JSON.parse(verify.stdout);
}

describe('tracemark read against the demo server', () => {
  it('reads the students through echo with token ids; verify tests each store in reading mode', async () => {
    const distilled = await readAndVerify('tracemark-student-distilled');
    const clean = await readAndVerify('tracemark-student-clean');
    for (const report of [distilled, clean]) {
      expect(report.mode).toBe('read');
      expect(report.readingEvidence.sourceKind).toBe('endpoint');
      expect(report.reading.texts).toBe(12);
      expect(report.reading.skipped.missing).toBe(0);
      expect(report.scored).toBeGreaterThan(100);
      expect(Object.keys(report.reportedModels)).toHaveLength(1);
    }
    expect(Object.keys(distilled.reportedModels)).toEqual(['tracemark-student-distilled']);
    // The student distilled from the teacher's outputs predicts its green tokens; the clean one does not.
    // (measured: log10 p ≈ −12 against −0.25 over 762 scored positions each)
    expect(distilled.log10PValue).toBeLessThan(-6);
    expect(distilled.verdict.detected).toBe(true);
    expect(clean.log10PValue).toBeGreaterThan(-3);
    expect(clean.verdict.detected).toBe(false);
  });
});
