import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createRng, createScheme, GenerationSession, MasterKey } from '@tracemark/watermark';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import {
  buildWindowFilter,
  CountedTape,
  investigate,
  kolmogorovSmirnovUniform,
  parseVerifySummary,
  radioactivityTest,
  randomizedPValue,
  type SuspectSample,
  scoreKeys,
  tapeIsKeyIndependent,
} from '../src/index';
import { evidenceBody, signEvidence } from '../src/report/bundle';
import { renderReportHtml } from '../src/report/html';
import { EvidenceStore, sha256Hex } from '../src/store/index';
import { controlMasterKey, parseTenantList } from '../src/verify/keys';
import { scoreBatch } from '../src/verify/multikey';
import { wordWriter } from './probe-fake-server';

const CLI = fileURLToPath(new URL('../src/cli.ts', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'tracemark-verify-'));
const V = 2000;
const owner = MasterKey.parse('44'.repeat(32));
const spec = { scheme: 'kgw', vocabSize: V, gamma: 0.25, delta: 2, contextWidth: 1 };

function logits(last: number): Float32Array {
  const rng = createRng(`ctx:${last}`);
  const out = new Float32Array(V);
  for (let t = 0; t < V; t++)
    out[t] = 2.5 * Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());
  return out;
}

function samplesFrom(
  tenant: string | undefined,
  watermark: boolean,
  count: number,
  length: number,
): SuspectSample[] {
  const scheme = createScheme(spec, owner, tenant === undefined ? {} : { tenant });
  return Array.from({ length: count }, (_, k) => {
    const prompt = [k + 1, (k * 7) % V, (k * 13) % V];
    const session = new GenerationSession(scheme, { prompt, seed: `${tenant}/${k}`, watermark });
    for (let i = 0; i < length; i++) session.next(logits(session.tokens[session.tokens.length - 1]));
    return { prompt, output: session.generated };
  });
}

/** Random text with heavy repetition and outputs that quote their prompts: every skip rule is exercised. */
function messySamples(seed: string): SuspectSample[] {
  const rng = createRng(seed);
  const word = () => Math.floor(rng() * 50) + (rng() < 0.2 ? 0 : Math.floor(rng() * 500));
  return Array.from({ length: 30 }, () => {
    const prompt = Array.from({ length: 12 }, word);
    const output: number[] = [];
    while (output.length < 80) {
      if (rng() < 0.2) output.push(...prompt.slice(0, 5));
      else output.push(word());
    }
    return { prompt, output };
  });
}

describe('CountedTape', () => {
  it('counts exactly the positions radioactivityTest counts, for every kind of scheme', () => {
    const samples = messySamples('tape');
    const filter = buildWindowFilter(
      samples.slice(0, 10).map((s) => s.output),
      2,
    );
    const specs = [
      { scheme: 'kgw', vocabSize: V, contextWidth: 0 },
      { scheme: 'kgw', vocabSize: V, contextWidth: 1 },
      { scheme: 'kgw', vocabSize: V, contextWidth: 3 },
      { scheme: 'kgw', vocabSize: V, contextWidth: 3, hashing: 'min' },
      { scheme: 'gumbel', vocabSize: V, contextWidth: 2 },
      { scheme: 'synthid', vocabSize: V, contextWidth: 2 },
    ];
    for (const s of specs) {
      for (const withFilter of [false, true]) {
        const scheme = createScheme(s, owner, { tenant: 'x' });
        const expected = radioactivityTest(samples, { scheme, filter: withFilter ? filter : undefined });
        const independent = tapeIsKeyIndependent(scheme.spec as never);
        expect(independent).toBe(!(s.hashing === 'min'));
        const tape = new CountedTape({
          contextWidth: scheme.contextWidth,
          filter: withFilter ? filter : undefined,
          dedupScheme: independent ? undefined : scheme,
        });
        for (const sample of samples) tape.add(sample);
        expect(tape.counts).toEqual({
          seen: expected.seen,
          scored: expected.scored,
          skipped: expected.skipped,
          samples: expected.samples,
        });
        expect(tape.scoreSum(scheme)).toBeCloseTo(expected.scoreSum, 9);
        expect(expected.skipped.duplicate).toBeGreaterThan(0);
        expect(expected.skipped.promptWindow).toBeGreaterThan(0);
      }
    }
  });

  it('scores many keys the same in worker threads as in this thread', async () => {
    const samples = messySamples('threads');
    const tape = new CountedTape({ contextWidth: 1 });
    for (const sample of samples) tape.add(sample);
    const requests = Array.from({ length: 12 }, (_, i) => ({ master: i % 2, tenant: `t${i}` }));
    const masters = [owner, controlMasterKey(owner)];
    const inline = await scoreKeys(tape, spec, masters, requests, { threads: 1 });
    const threaded = await scoreKeys(tape, spec, masters, requests, { threads: 2 });
    expect(inline.threads).toBe(1);
    // Workers load the built watermark package; where it cannot be loaded the keys are scored here instead.
    expect([1, 2]).toContain(threaded.threads);
    expect(threaded.sums).toEqual(inline.sums);
    const direct = requests.map((r) =>
      tape.scoreSum(createScheme(spec, masters[r.master], { tenant: r.tenant })),
    );
    expect(inline.sums).toEqual(direct);
  });
});

describe('scoreBatch', () => {
  it('scores KGW h = 1 per context exactly as the scheme does, and falls back to score() if it ever would not', async () => {
    const watermark = await import('@tracemark/watermark');
    const samples = messySamples('grouped');
    const tape = new CountedTape({ contextWidth: 1 });
    for (const sample of samples) tape.add(sample);
    // Sorted as scoreKeys sorts it.
    const order = Array.from({ length: tape.length }, (_, j) => j).sort(
      (a, b) => tape.ids[2 * a] - tape.ids[2 * b] || tape.ids[2 * a + 1] - tape.ids[2 * b + 1],
    );
    const ids = Uint32Array.from(order.flatMap((j) => [tape.ids[2 * j], tape.ids[2 * j + 1]]));
    const requests = [{ master: 0 }, { master: 0, tenant: 'x' }, { master: 1, tenant: 'control-0' }];
    const masters = [owner, controlMasterKey(owner)];
    for (const gamma of [0.25, 0.5, 0.1, 1 / 3, 0.9]) {
      for (const hashing of ['left', 'min']) {
        const s = { scheme: 'kgw', vocabSize: V, gamma, contextWidth: 1, hashing };
        const job = {
          ids,
          stride: 2,
          contextWidth: 1,
          spec: s,
          masters: masters.map((m) => m.exportHex()),
          requests,
        };
        let hashes = 0;
        const counting = {
          ...watermark,
          seededHash32: (lo: number, hi: number, t: number) => {
            hashes++;
            return watermark.seededHash32(lo, hi, t);
          },
        };
        const expected = requests.map((r) =>
          tape.scoreSum(
            createScheme(s, masters[r.master], r.tenant === undefined ? {} : { tenant: r.tenant }),
          ),
        );
        expect(scoreBatch(counting, job)).toEqual(expected);
        expect(hashes).toBeGreaterThan(tape.length); // the per-context path ran
        const broken = {
          ...watermark,
          seededHash32: (lo: number, hi: number, t: number) => watermark.seededHash32(lo, hi, t) ^ 1,
        };
        expect(scoreBatch(broken, job)).toEqual(expected);
      }
    }
  });
});

describe('investigate', () => {
  it('attributes a suspect to the tenant whose outputs it learnt, with passing controls', async () => {
    const samples = samplesFrom('acme', true, 20, 60);
    const tenants = ['alpha', 'beta', 'acme', ...Array.from({ length: 17 }, (_, i) => `tenant-${i}`)];
    const result = await investigate(samples, { spec, key: owner, tenants, controls: 40 });
    // The owner's untenanted key is not the one used: its test is null.
    expect(result.pValue).toBeGreaterThan(1e-3);
    const acme = result.tenants?.find((t) => t.id === 'acme');
    expect(acme?.adjustedLog10PValue).toBeLessThan(-20);
    for (const t of result.tenants ?? []) if (t.id !== 'acme') expect(t.adjustedPValue).toBeGreaterThan(1e-3);
    expect(result.controls.count).toBe(40);
    expect(result.controls.passed).toBe(true);
    expect(result.controls.pValues).toHaveLength(40);
    expect(new Set(result.controls.keyFingerprints).size).toBe(40);
    expect(result.verdict.detected).toBe(false);
  });

  it("detects the owner's watermark, with the e-process and trajectory over the same tape", async () => {
    const samples = samplesFrom(undefined, true, 15, 60);
    const result = await investigate(samples, { spec, key: owner });
    expect(result.log10PValue).toBeLessThan(-15);
    expect(result.sequential.scored).toBe(result.scored);
    expect(result.sequential.scoreSum).toBe(result.scoreSum);
    expect(result.sequential.log10AnytimePValue).toBeLessThan(-8);
    expect(result.controls.count).toBe(50);
    expect(result.controls.passed).toBe(true);
    expect(result.controls.atOrBelowOwner).toBe(0);
    expect(result.verdict).toMatchObject({ detected: true, controlsPassed: true });
    expect(result.verdict.text).toMatch(/^watermark detected at α = 0.001/);
    // The verdict says so when the controls fail (forced here with a threshold no KS p-value reaches).
    const strict = await investigate(samples, { spec, key: owner, controlsAlpha: 0.9999999 });
    expect(strict.verdict.controlsPassed).toBe(false);
    expect(strict.verdict.text).toMatch(/control keys FAILED: their p-values are not uniform/);
    await expect(investigate(samples, { spec, key: owner, controls: 5 })).rejects.toThrow(/controls must be/);
  });

  it('randomizes discrete control p-values to exact uniformity under H0', () => {
    const rng = createRng('uniform');
    const law = { kind: 'bernoulli', p: 0.25 } as const;
    const values: number[] = [];
    for (let i = 0; i < 400; i++) {
      let k = 0;
      for (let j = 0; j < 30; j++) k += rng() < 0.25 ? 1 : 0;
      values.push(randomizedPValue(law, k, 30, rng()));
    }
    expect(kolmogorovSmirnovUniform(values).pValue).toBeGreaterThan(0.01);
  });

  it('reads tenant lists as lines or a JSON array', () => {
    expect(parseTenantList('# tenants\nacme\n\nbeta\r\n', 't')).toEqual(['acme', 'beta']);
    expect(parseTenantList('["a","b"]', 't')).toEqual(['a', 'b']);
    expect(() => parseTenantList('a\na\n', 't')).toThrow('t: tenant id "a" appears twice');
    expect(() => parseTenantList('[1]', 't')).toThrow(/array of strings/);
    expect(() => parseTenantList('#\n', 't')).toThrow(/lists no tenant ids/);
  });
});

describe('tracemark verify', () => {
  const bigSpec = { scheme: 'kgw', vocabSize: 200019, gamma: 0.25, delta: 2, contextWidth: 1 };
  const keyFile = join(dir, 'owner.key');
  writeFileSync(keyFile, `# test key\n${owner.exportHex()}\n`);

  async function storeOf(path: string, watermark: boolean): Promise<void> {
    const write = await wordWriter({ spec: bigSpec, key: owner, watermark });
    const store = EvidenceStore.open(path, { create: true });
    store.bindModel('suspect');
    const run = store.startRun({});
    for (let i = 0; i < 40; i++) {
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
        endpoint: 'http://127.0.0.1:1/v1',
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
    store.finishRun(run, { state: 'complete' });
    store.close();
  }

  const tracemark = (args: string[]) =>
    spawnSync(process.execPath, ['--import', 'tsx', CLI, 'verify', ...args], {
      encoding: 'utf8',
      timeout: 60_000,
    });

  const tracemarkAsync = (args: string[]) =>
    new Promise<{ status: number | null; stderr: string }>((resolve) => {
      const child = spawn(process.execPath, ['--import', 'tsx', CLI, 'verify', ...args], {
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

    const text = tracemark([...args, '--fail-on-detect']);
    expect(text.status).toBe(1);
    expect(text.stdout).toMatch(/^suspect {6}suspect: 40 responses in /);
    expect(text.stdout).toMatch(/controls {5}50 never-used keys: .* → passed/);
    expect(text.stdout).toMatch(/verdict {6}watermark detected at α = 0.001/);
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
