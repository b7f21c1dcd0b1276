import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EvidenceStore, sha256Hex } from '@tracemark/evidence';
import {
  evidenceBody,
  formatPValue,
  parseVerifySummary,
  renderReportHtml,
  signEvidence,
} from '@tracemark/verifier';
import { createScheme, MasterKey } from '@tracemark/watermark';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { wordWriter } from '../../../packages/evidence/test/fake-server';
import { CLI } from './support/cli';

const dir = mkdtempSync(join(tmpdir(), 'tracemark-verify-'));
const owner = MasterKey.parse('44'.repeat(32));

describe('tracemark verify', () => {
  const bigSpec = { scheme: 'kgw', vocabSize: 200019, gamma: 0.25, delta: 2, contextWidth: 1 };
  const keyFile = join(dir, 'owner.key');
  // Owner-only, as a key file must be.
  writeFileSync(keyFile, `# test key\n${owner.exportHex()}\n`, { mode: 0o600 });

  async function storeOf(
    path: string,
    watermark: boolean,
    options: { endpoint?: string; stopped?: boolean; count?: number } = {},
  ): Promise<void> {
    const write = await wordWriter({ spec: bigSpec, key: owner, watermark });
    const store = EvidenceStore.open(path, { create: true });
    store.bindModel('suspect');
    const run = store.startRun(options.stopped ? { untilAlpha: 1e-6 } : {});
    for (let i = 0; i < (options.count ?? 40); i++) {
      const output = write(`prompt ${i}`, 0);
      const body = new TextEncoder().encode(
        JSON.stringify({ id: `c${i}`, model: 'suspect-v2', choices: [{ message: { content: output } }] }),
      );
      store.insert(run, {
        promptId: `p${i}`,
        sample: 0,
        prompt: `Write about topic ${i}.`,
        system: null,
        api: 'chat',
        endpoint: options.endpoint ?? 'http://127.0.0.1:1/v1',
        requestUrl: 'http://127.0.0.1:1/v1/chat/completions',
        requestBody: '{}',
        requestedModel: 'suspect',
        reportedModel: 'suspect-v2',
        responseId: `c${i}`,
        httpStatus: 200,
        responseBody: body,
        responseSha256: sha256Hex(body),
        output,
        finishReason: 'length',
        requestedAt: new Date(2025, 0, 1, 0, 0, i).toISOString(),
        receivedAt: new Date(2025, 0, 1, 0, 0, i + 1).toISOString(),
        attempts: 1,
      });
    }
    // What `probe --until-alpha` records when the e-process reached 1/α.
    store.finishRun(
      run,
      options.stopped
        ? { state: 'stopped-by-sequential-test', stored: options.count ?? 40, sequential: { alpha: 1e-6 } }
        : { state: 'complete' },
    );
    store.close();
  }

  const tracemark = (args: string[]) =>
    spawnSync(process.execPath, [CLI, 'verify', ...args], {
      encoding: 'utf8',
      timeout: 60_000,
    });

  const tracemarkAsync = (args: string[]) =>
    new Promise<{ status: number | null; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, [CLI, 'verify', ...args], {
        stdio: ['ignore', 'ignore', 'pipe'],
      });
      let stderr = '';
      child.stderr.on('data', (d) => {
        stderr += d;
      });
      child.on('close', (status) => resolve({ status, stderr }));
    });

  it('prints one JSON object with the p-value, controls, tenants, trajectory and the evidence hashes', async () => {
    const store = join(dir, 'marked.db');
    await storeOf(store, true);
    const tenants = join(dir, 'tenants.txt');
    writeFileSync(tenants, 'acme\nbeta\n');
    const args = ['--store', store, '--key-file', keyFile, '--spec', JSON.stringify(bigSpec)];
    const run = tracemark([...args, '--tenants', tenants, '--json']);
    expect(run.status, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout);
    expect(report.log10PValue).toBeLessThan(-10);
    expect(report).toMatchObject({
      command: 'verify',
      model: 'suspect',
      reportedModels: { 'suspect-v2': 40 },
      tokenizer: 'o200k_base',
      keyFingerprint: createScheme(bigSpec, owner).keyFingerprint,
      masterFingerprint: owner.fingerprint,
      spec: { scheme: 'kgw', gamma: 0.25, contextWidth: 1 },
      verdict: { detected: true, controlsPassed: true },
    });
    expect(report.scored).toBeGreaterThan(500);
    expect(report.seen).toBe(40 * 60);
    expect(report.pValue).toBe(10 ** report.log10PValue);
    expect(report.trajectory.at(-1)).toEqual({ scored: report.scored, log10PValue: report.log10PValue });
    expect(report.controls).toMatchObject({
      count: 50,
      passed: true,
      uniformity: { test: 'kolmogorov-smirnov' },
    });
    expect(report.controls.pValues).toHaveLength(50);
    expect(report.tenants.map((t: { id: string }) => t.id)).toEqual(['acme', 'beta']);
    expect(report.tenants[0]).toHaveProperty('adjustedPValue');
    expect(report.responses.count).toBe(40);
    expect(report.responses.sha256).toHaveLength(40);
    expect(report.responses.sha256[0]).toMatch(/^[0-9a-f]{64}$/);
    expect(report.runs).toHaveLength(1);
    expect(report.samples).toHaveLength(3);
    expect(report.samples[0]).toMatchObject({ id: 'p0#0', prompt: 'Write about topic 0.' });
    expect(run.stdout).not.toContain(owner.exportHex());
    // `tracemark report` reads this object as it is, with the controls' own uniformity test.
    const summary = parseVerifySummary(report, 'verify.json');
    expect(summary.controls.ks?.pValue).toBe(report.controls.uniformity.pValue);
    expect(summary.tenants).toHaveLength(2);
    expect(summary.samples).toHaveLength(3);

    // The control and tenant keys scored on two worker threads (the built multi-key worker) give the same report.
    const threaded = tracemark([...args, '--tenants', tenants, '--threads', '2', '--json']);
    expect(threaded.status, threaded.stderr).toBe(0);
    const parallel = JSON.parse(threaded.stdout);
    expect(parallel.timings.threads).toBe(2);
    expect(parallel.controls.pValues).toEqual(report.controls.pValues);
    expect(parallel.tenants).toEqual(report.tenants);

    const text = tracemark([...args, '--fail-on-detect']);
    expect(text.status).toBe(1);
    expect(text.stdout).toMatch(/^suspect {6}suspect: 40 responses in /);
    expect(text.stdout).toMatch(/controls {5}50 never-used keys: .* → passed/);
    expect(text.stdout).toMatch(/verdict {6}watermark detected at α = 0.001 \(exact p = /);
    expect(report.verdict).toMatchObject({
      basis: 'fixed',
      pValueCited: report.pValue,
      log10PValueCited: report.log10PValue,
    });
    expect(report.suspect).toEqual({
      requestedModel: 'suspect',
      reportedModels: { 'suspect-v2': 40 },
      endpoints: ['http://127.0.0.1:1/v1'],
      probeDates: {
        first: new Date(2025, 0, 1, 0, 0, 0).toISOString(),
        last: new Date(2025, 0, 1, 0, 0, 40).toISOString(),
      },
      responses: 40,
      tokens: { seen: report.seen, scored: report.scored },
    });
  });

  it('cites the anytime-valid p after probing stopped on the e-process, in the verdict and the report', async () => {
    const store = join(dir, 'stopped.db');
    await storeOf(store, true, {
      stopped: true,
      count: 12,
      endpoint: 'https://investigator:sk-secret-1@api.example.com/v1?api_key=sk-secret-2#frag',
    });
    const args = ['--store', store, '--key-file', keyFile, '--spec', JSON.stringify(bigSpec)];
    const run = tracemark([...args, '--json']);
    expect(run.status, run.stderr).toBe(0);
    expect(run.stdout).not.toContain('sk-secret');
    const report = JSON.parse(run.stdout);
    expect(report.stoppedBySequentialTest).toBe(true);
    // The fixed-size p is the smaller, and optimistic after the stop: the verdict cites the anytime-valid one.
    expect(report.log10PValue).toBeLessThan(report.sequential.log10AnytimePValue);
    expect(report.verdict).toEqual({
      detected: report.sequential.log10AnytimePValue <= -3,
      pValueCited: 10 ** report.sequential.log10AnytimePValue,
      log10PValueCited: report.sequential.log10AnytimePValue,
      basis: 'anytime',
      controlsPassed: true,
      text: expect.stringMatching(/\(anytime-valid p = .*, as probing stopped on the e-process\)/),
    });
    expect(report.verdict.detected).toBe(true);
    expect(report.suspect).toMatchObject({
      reportedModels: { 'suspect-v2': 12 },
      endpoints: ['https://api.example.com/v1'],
      responses: 12,
    });
    expect(report.responses.endpoints).toEqual(['https://api.example.com/v1']);

    const text = tracemark(args);
    expect(text.status, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/verdict {6}watermark detected at α = 0.001 \(anytime-valid p = /);
    expect(text.stdout).toMatch(/note {9}.*so the verdict cites the anytime-valid p = /);

    // The signed bundle and the HTML headline carry the same p-value, and the suspect.
    const summary = parseVerifySummary(report, 'verify.json');
    expect(summary.verdict).toEqual({
      basis: 'anytime',
      pValueCited: report.verdict.pValueCited,
      log10PValueCited: report.verdict.log10PValueCited,
      controlsPassed: true,
    });
    const body = evidenceBody(summary, owner, { toolVersion: '0', alpha: 1e-3 });
    expect(body.format).toBe('tracemark-evidence/v2');
    expect(body.verdict).toMatchObject({ basis: 'anytime', detected: true });
    expect(body.verdict.log10PValueCited).toBe(report.sequential.log10AnytimePValue);
    expect(body.suspect).toEqual(report.suspect);
    const html = renderReportHtml(signEvidence(body, owner));
    expect(html).toContain(
      `<span id="p-cited">${formatPValue(report.verdict.pValueCited, report.verdict.log10PValueCited)}</span>`,
    );
    expect(html).toMatch(/anytime-valid \(probing stopped when the e-process reached 1\/α\)/);
    expect(html).toMatch(/<dt>fixed-size p<\/dt><dd>[^<]*, not cited: optimistic after a sequential stop/);
    expect(html).toContain('<dt>suspect</dt><dd><code>suspect-v2</code> ×12');
    expect(html).toContain('<dt>endpoint</dt><dd><code>https://api.example.com/v1</code></dd>');
    expect(html).not.toContain('sk-secret');
    // A verdict that cites the fixed-size p after a sequential stop is refused.
    expect(() =>
      parseVerifySummary({ ...report, verdict: { ...report.verdict, basis: 'fixed' } }, 'verify.json'),
    ).toThrow(/field "verdict.basis" is missing or not "anytime" after a sequential stop/);
  });

  it('is inconclusive, and --fail-on-detect does not fire, when the controls fail', async () => {
    const store = join(dir, 'controls.db');
    await storeOf(store, true);
    // A threshold no KS p-value reaches makes the controls fail.
    const args = ['--store', store, '--key-file', keyFile, '--spec', JSON.stringify(bigSpec)];
    const run = tracemark([...args, '--controls-alpha', '0.9999999', '--json']);
    expect(run.status, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout);
    expect(report.log10PValue).toBeLessThan(-10);
    expect(report.controls.passed).toBe(false);
    expect(report.verdict).toMatchObject({ detected: false, controlsPassed: false, basis: 'fixed' });
    expect(report.verdict.text).toMatch(/^inconclusive \(exact p = .*\): the 50 control keys FAILED/);
    const body = evidenceBody(parseVerifySummary(report, 'verify.json'), owner, {
      toolVersion: '0',
      alpha: 1e-3,
    });
    expect(body.verdict).toMatchObject({ detected: false, controlsPassed: false });
    const html = renderReportHtml(signEvidence(body, owner));
    expect(html).toContain('<span class="verdict" id="verdict">inconclusive: the negative controls failed');
    expect(html).toMatch(
      /<tbody><tr class=""><td><code>tm1:[0-9a-f]{16}<\/code>.*<td>inconclusive<\/td><\/tr><\/tbody>/,
    );
    const text = tracemark([...args, '--controls-alpha', '0.9999999', '--fail-on-detect']);
    expect(text.status, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/verdict {6}inconclusive \(exact p = /);
  });

  it("scores only tokens after windows of the owner's own outputs with --owner-text", async () => {
    const store = join(dir, 'filtered.db');
    await storeOf(store, true);
    // The owner served the first 20 of the 40 outputs the suspect gives back.
    const write = await wordWriter({ spec: bigSpec, key: owner, watermark: true });
    const ownerFile = join(dir, 'owner.jsonl');
    writeFileSync(
      ownerFile,
      Array.from({ length: 20 }, (_, i) => JSON.stringify({ text: write(`prompt ${i}`, 0) })).join('\n'),
    );
    const args = ['--store', store, '--key-file', keyFile, '--spec', JSON.stringify(bigSpec)];
    const plain = JSON.parse(tracemark([...args, '--json']).stdout);
    expect(plain.ownerFilter).toBeNull();
    const run = tracemark([...args, '--owner-text', ownerFile, '--filter-width', '2', '--json']);
    expect(run.status, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout);
    expect(report.ownerFilter).toMatchObject({ source: ownerFile, documents: 20, width: 2 });
    expect(report.ownerFilter.windows).toBeGreaterThan(500);
    expect(report.skipped.filtered).toBeGreaterThan(100);
    expect(report.scored).toBeLessThan(plain.scored);
    expect(report.scored).toBeGreaterThan(200);
    expect(report.verdict).toMatchObject({ detected: true, controlsPassed: true });
    // The evidence names the owner text by the SHA-256 of its documents, never by its local path.
    const hash = createHash('sha256');
    for (const line of readFileSync(ownerFile, 'utf8').split('\n'))
      hash.update(JSON.parse(line).text, 'utf8').update(new Uint8Array(1));
    expect(report.ownerFilter.sha256).toBe(hash.digest('hex'));
    const body = evidenceBody(parseVerifySummary(report, 'verify.json'), owner, {
      toolVersion: '0',
      alpha: 1e-3,
    });
    expect(body.ownerFilter).toEqual({
      documents: 20,
      sha256: report.ownerFilter.sha256,
      width: 2,
      windows: report.ownerFilter.windows,
    });
    expect(renderReportHtml(signEvidence(body, owner))).toMatch(
      /<dt>owner-text filter<\/dt><dd>only tokens after one of/,
    );

    const text = tracemark([...args, '--owner-text', ownerFile]);
    expect(text.status, text.stderr).toBe(0);
    expect(text.stdout).toMatch(/filter {7}\d+ windows of 4 tokens from 20 owner documents/);
    expect(text.stdout).toMatch(/, \d+ filtered\)/);

    const empty = join(dir, 'empty-owner.txt');
    writeFileSync(empty, '');
    const cases = [
      [['--owner-text', ownerFile, '--filter-width', '0'], /--filter-width must be an integer from 1 to 16/],
      [['--owner-text', join(dir, 'no-such-owner')], /cannot read corpus .*no-such-owner/],
      [['--owner-text', empty], /--owner-text .*empty-owner.txt holds 0 tokens; the filter needs at least 4/],
    ] as const;
    const runs = await Promise.all(cases.map(([extra]) => tracemarkAsync([...args, ...extra])));
    runs.forEach((bad, i) => {
      expect(bad.status).toBe(2);
      expect(bad.stderr.trim().split('\n')).toHaveLength(1);
      expect(bad.stderr).toMatch(cases[i][1]);
    });
  });

  it('finds nothing in clean outputs, and refuses an altered store or bad input in one line', async () => {
    const clean = join(dir, 'clean.db');
    await storeOf(clean, false);
    const args = ['--key-file', keyFile, '--spec', JSON.stringify(bigSpec)];
    const run = tracemark(['--store', clean, ...args, '--json']);
    expect(run.status, run.stderr).toBe(0);
    const report = JSON.parse(run.stdout);
    expect(report.pValue).toBeGreaterThan(1e-3);
    expect(report.verdict.detected).toBe(false);

    const db = new Database(clean);
    db.prepare("UPDATE responses SET output = 'edited' WHERE seq = 3").run();
    db.close();
    const altered = tracemark(['--store', clean, ...args]);
    expect(altered.status).toBe(2);
    expect(altered.stderr).toMatch(
      /^tracemark: .*clean.db: the text of response 3 is not the text of its body/,
    );

    const empty = join(dir, 'empty.db');
    EvidenceStore.open(empty, { create: true }).close();
    const cases = [
      [args, /verify needs --store <evidence.db>/],
      [['--store', join(dir, 'nope.db'), ...args], /no evidence store at .*nope.db/],
      [['--store', empty, ...args], /holds no responses; run tracemark probe first/],
      [['--store', empty, '--spec', JSON.stringify(bigSpec)], /verify needs the owner's --key-file/],
      [['--store', empty, ...args, '--controls', '5'], /--controls must be an integer from 20/],
    ] as const;
    const runs = await Promise.all(cases.map(([argv]) => tracemarkAsync([...argv])));
    runs.forEach((bad, i) => {
      expect(bad.status).toBe(2);
      expect(bad.stderr.trim().split('\n')).toHaveLength(1);
      expect(bad.stderr).toMatch(cases[i][1]);
    });
  });
});
