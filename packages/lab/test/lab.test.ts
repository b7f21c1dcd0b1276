import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gutenbergBook, gutenbergCorpus, O200K_VOCAB_SIZE, o200kBase } from '@tracemark/ngram';
import {
  canonicalSpec,
  createScheme,
  GenerationSession,
  MasterKey,
  type Scheme,
  type SchemeSpec,
} from '@tracemark/watermark';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  buildModels,
  generateSamples,
  LabError,
  type LabOptions,
  type LabReport,
  labKeys,
  labSpec,
  resultsMarkdown,
  runLab,
  servingScheme,
  studentText,
  trainModel,
  writeLabOutputs,
} from '../src/index';

const dir = mkdtempSync(join(tmpdir(), 'tracemark-lab-'));

/**
 * A strict little XML well-formedness check (no dependency): balanced, properly nested tags, quoted
 * attributes, no stray `<` or `&` in text, and an <svg> root in the SVG namespace.
 */
function expectWellFormedSvg(text: string): void {
  const stack: string[] = [];
  let roots = 0;
  let at = 0;
  const tag = /<(\/?)([A-Za-z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>/y;
  while (at < text.length) {
    const lt = text.indexOf('<', at);
    const chunk = text.slice(at, lt === -1 ? text.length : lt);
    expect(chunk).not.toMatch(/&(?!(lt|gt|amp|apos|quot|#\d+);)/);
    if (lt === -1) break;
    tag.lastIndex = lt;
    const m = tag.exec(text);
    expect(m, `malformed tag at ${text.slice(lt, lt + 60)}`).not.toBeNull();
    const [whole, closing, name, , selfClosing] = m as RegExpExecArray;
    if (closing) {
      expect(stack.pop()).toBe(name);
    } else if (!selfClosing) {
      if (stack.length === 0) roots++;
      stack.push(name);
    } else if (stack.length === 0) {
      roots++;
    }
    at = lt + whole.length;
  }
  expect(stack).toEqual([]);
  expect(roots).toBe(1);
  expect(text.trimStart()).toMatch(/^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg" width="\d+" height="\d+"/);
}

/** The run rejects with a LabError of this code whose message is one line matching `message`. */
async function expectLabError(run: Promise<unknown>, code: string, message: RegExp): Promise<void> {
  const error = await run.then(
    () => null,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(LabError);
  expect((error as LabError).code).toBe(code);
  expect((error as LabError).message).toMatch(message);
  expect((error as LabError).message).not.toContain('\n');
}

describe('the quick profile', () => {
  const out = join(dir, 'quick');
  let report: LabReport;
  let results: LabReport;

  beforeAll(async () => {
    report = await runLab({ quick: true });
    await writeLabOutputs(report, out);
    results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
  }, 200_000);

  it('writes results.json with one row per (scheme, rho) in the documented shape', () => {
    expect(results.config.profile).toBe('quick');
    expect(results.config.sampling).toBe('top-k');
    expect(results.config.promptsInTraining).toBe(false);
    const { schemes, rhos } = results.config;
    expect(schemes).toEqual(['kgw-h1', 'kgw-h2', 'unigram', 'gumbel', 'synthid']);
    expect(rhos).toEqual([0, 1]);
    expect(results.rows).toHaveLength(schemes.length * rhos.length);
    for (const row of results.rows) {
      expect(schemes).toContain(row.scheme);
      expect(rhos).toContain(row.rho);
      expect(row.pValue).toBeGreaterThanOrEqual(0);
      expect(row.pValue).toBeLessThanOrEqual(1);
      expect(Number.isFinite(row.log10PValue)).toBe(true);
      expect(row.scored).toBeGreaterThan(200);
      expect(row.controls.length).toBeGreaterThanOrEqual(20);
      for (const p of row.controls) expect(p >= 0 && p <= 1).toBe(true);
      // The verifier's result base: the scheme identity and the null law the p-value was computed under.
      expect(canonicalSpec(row.spec)).toBe(results.config.specs[row.scheme]);
      expect(row.nullLaw.kind).toMatch(/^(bernoulli|binomial|exponential)$/);
      expect(row.masterFingerprint).toBe(results.config.keyFingerprint);
      expect(Number.isFinite(row.scoreSum)).toBe(true);
    }
    // The lab key is never written; only fingerprints are.
    expect(readFileSync(join(out, 'results.json'), 'utf8')).toMatch(/"keyFingerprint": "tm1:[0-9a-f]{16}"/);
  });

  it('detects every rho = 1 student at p < 1e-6 and no rho = 0 student at p < 1e-3', () => {
    for (const row of results.rows.filter((r) => r.rho === 1))
      expect(row.log10PValue, row.scheme).toBeLessThan(-6);
    for (const row of results.rows.filter((r) => r.rho === 0))
      expect(row.pValue, row.scheme).toBeGreaterThan(1e-3);
  });

  it('gives control p-values consistent with uniform (KS over all unused keys and per row)', () => {
    expect(results.summary.controls.pValues).toBeGreaterThanOrEqual(50);
    expect(results.summary.controls.randomizedKs.pValue).toBeGreaterThan(0.01);
    expect(results.summary.controls.ks.pValue).toBeGreaterThan(0.01);
    // Ten rows of 50 keys: each above 0.01 / 10 (Bonferroni).
    for (const row of results.rows) expect(row.controlsRandomizedKs.pValue).toBeGreaterThan(0.001);
    // Every lab scheme counts the same positions under every key, so the controls were scored on the lab
    // key's tape.
    for (const row of results.rows) expect(row.controlsMethod).toBe('shared-positions');
  });

  it('writes the Markdown table and well-formed SVG plots', () => {
    const md = readFileSync(join(out, 'results.md'), 'utf8');
    expect(md).toContain('| scheme | ρ = 0 | ρ = 1 |');
    expect(md).toMatch(/\| kgw-h1 \| -?\d+\.\d \([\d,]+\) \|/);
    const plots = [
      'pvalue-vs-rho.svg',
      'controls.svg',
      ...results.config.schemes.map((s) => `trajectory-${s}.svg`),
    ];
    for (const name of plots) {
      const path = join(out, name);
      expect(existsSync(path), name).toBe(true);
      expectWellFormedSvg(readFileSync(path, 'utf8'));
    }
    expect(readFileSync(join(out, 'pvalue-vs-rho.svg'), 'utf8')).toContain('p = 1e-6');
  });
});

describe('the reading mode (--mode closed,read)', () => {
  let report: LabReport;
  beforeAll(async () => {
    report = await runLab({ quick: true, modes: ['closed', 'read'] });
  }, 200_000);
  const row = (scheme: string, rho: number, mode: string) =>
    report.rows.find((r) => r.scheme === scheme && r.rho === rho && r.mode === mode);

  it('reads every student on the teacher outputs, except under Unigram (no window to read)', () => {
    expect(report.config.modes).toEqual(['closed', 'read']);
    expect(report.rows.filter((r) => r.mode === 'closed')).toHaveLength(10);
    expect(report.rows.filter((r) => r.mode === 'read').map((r) => r.scheme)).not.toContain('unigram');
    expect(report.rows.filter((r) => r.mode === 'read')).toHaveLength(8);
    for (const r of report.rows.filter((x) => x.mode === 'read')) {
      expect(r.probes.samples).toBe(report.config.samples);
      expect(r.filterWidth).toBe(0);
      expect(r.controlsMethod).toBe('shared-positions');
    }
  });

  it('detects every distilled student with more evidence per scored token than the closed test, and no clean one', () => {
    for (const scheme of ['kgw-h1', 'kgw-h2', 'gumbel', 'synthid']) {
      const read = row(scheme, 1, 'read');
      const closed = row(scheme, 1, 'closed');
      expect(read?.log10PValue, scheme).toBeLessThan(-30);
      expect(read?.scoredToOneInAMillion, scheme).not.toBeNull();
      expect(read?.scoredToOneInAMillion as number, scheme).toBeLessThanOrEqual(
        closed?.scoredToOneInAMillion as number,
      );
      // The trap: a clean student reading watermarked text finds nothing.
      expect(row(scheme, 0, 'read')?.pValue, scheme).toBeGreaterThan(1e-3);
    }
    // Its controls: 8 rows of 50 keys, uniform (each above 0.01 / 8).
    for (const r of report.rows.filter((x) => x.mode === 'read'))
      expect(r.controlsRandomizedKs.pValue, `${r.scheme} ${r.rho}`).toBeGreaterThan(0.00125);
  });

  it('writes the reading tables beside the closed ones', () => {
    const md = resultsMarkdown(report);
    expect(md).toContain('## Reading mode: log10 p-value');
    expect(md).toContain('## Scored tokens to p ≤ 1e-6: closed / read');
  });
});

describe('the lab on a custom corpus', () => {
  it('holds out every fifth document and gives the same results with worker threads as in-process', async () => {
    const corpus = join(dir, 'alice.txt');
    writeFileSync(corpus, gutenbergBook('carroll-alice'));
    const options: LabOptions = {
      corpus,
      schemes: ['kgw-h1', 'gumbel'],
      rhos: [0, 1],
      samples: 40,
      probes: 150,
      controls: 20,
      seed: 'custom',
    };
    const a = await runLab({ ...options, workers: 1 });
    // Two threads run the built worker module ('@tracemark/lab/worker'): `pnpm build` first.
    const b = await runLab({ ...options, workers: 2 });
    expect(a.corpus.corpus).toContain('every 5th held out');
    expect(b.config.workers).toBe(2);
    const strip = (rows: LabReport['rows']) => rows.map(({ timings: _t, ...rest }) => rest);
    expect(strip(b.rows)).toEqual(strip(a.rows));
    const detected = a.rows.find((r) => r.scheme === 'kgw-h1' && r.rho === 1);
    expect(detected?.log10PValue).toBeLessThan(-6);
  }, 240_000);
});

describe('the demo profile, as the demo server builds its students', () => {
  let report: LabReport;

  beforeAll(async () => {
    report = await runLab({ profile: 'demo-test' });
  }, 200_000);

  it('detects the distilled student (rho 0.3, full vocabulary, prompts kept) and not the clean one', () => {
    expect(report.config).toMatchObject({
      profile: 'demo-test',
      sampling: 'full-vocabulary',
      promptsInTraining: true,
      rhos: [0, 0.3],
      studentTokens: 10_000,
    });
    const distilled = report.rows.find((r) => r.rho === 0.3);
    const clean = report.rows.find((r) => r.rho === 0);
    expect(distilled?.student.watermarkedTokens).toBe(3000);
    expect(distilled?.student.promptTokens).toBe(30 * 16);
    expect(distilled?.log10PValue).toBeLessThan(-6);
    expect(clean?.pValue).toBeGreaterThan(1e-3);
    // Two rows of 50 keys: each above 0.01 / 2 (Bonferroni).
    for (const row of report.rows) expect(row.controlsRandomizedKs.pValue).toBeGreaterThan(0.005);
  });

  it("builds, caches and reloads the demo server's models: with the lab's key, the lab run's students", async () => {
    const modelDir = join(dir, 'models');
    const key = labKeys(report.config.seed).owner;
    const spec = labSpec('kgw-h1', O200K_VOCAB_SIZE) as unknown as SchemeSpec;
    const lines: string[] = [];
    const log = (line: string) => lines.push(line);
    const built = await buildModels({ profile: 'demo-test', key, spec, modelDir, log });
    expect(built.lab).toMatchObject({
      profile: 'demo-test',
      share: 0.3,
      teacherSamples: 30,
      teacherTokens: 3000,
      promptTokensDistilled: 480,
      cleanTokensDistilled: 6520,
      cleanTokensClean: 10_000,
      sampling: 'full-vocabulary',
      promptsInTraining: true,
    });
    const row = (rho: number) => report.rows.find((r) => r.rho === rho);
    expect(built.teacher.info.trainedTokens).toBe(report.corpus.trainTokens);
    expect(built.distilled.info.ngrams).toEqual(row(0.3)?.student.ngrams);
    expect(built.clean.info.ngrams).toEqual(row(0)?.student.ngrams);
    expect(lines.some((l) => l.startsWith('loading'))).toBe(false);

    const again = await buildModels({ profile: 'demo-test', key, spec, modelDir, log });
    expect(lines.filter((l) => l.startsWith('loading'))).toHaveLength(2);
    expect(again.lab).toEqual(built.lab);
    expect(again.distilled.info.ngrams).toEqual(built.distilled.info.ngrams);
    // Another key gives other teacher samples, hence other students, cached apart.
    const other = await buildModels({ profile: 'demo-test', key: labKeys('other').owner, spec, modelDir });
    expect(other.distilled.info.ngrams).not.toEqual(built.distilled.info.ngrams);
    expect(other.clean.info.ngrams).toEqual(built.clean.info.ngrams);
  });
});

describe('the student mix', () => {
  const clean = [
    Int32Array.from({ length: 50 }, (_, i) => i),
    Int32Array.from({ length: 50 }, (_, i) => 100 + i),
  ];
  const samples = [0, 1, 2].map((k) => ({
    prompt: [1000 + k, 1001 + k],
    output: Array.from({ length: 10 }, (_, i) => 2000 + 10 * k + i),
  }));

  it('takes round(rho T) output tokens, prompts left out, and fills the rest with clean text', () => {
    const text = studentText(clean, samples, { rho: 0.25, totalTokens: 100, withPrompts: false });
    expect(text.documents.map((d) => d.length)).toEqual([10, 10, 5, 50, 25]);
    expect(text).toMatchObject({ watermarkedTokens: 25, promptTokens: 0, cleanTokens: 75, samples: 3 });
  });

  it('keeps each sample with its prompt, whose tokens come out of the clean share', () => {
    const text = studentText(clean, samples, { rho: 0.25, totalTokens: 100, withPrompts: true });
    expect(text.documents.map((d) => d.length)).toEqual([12, 12, 7, 50, 19]);
    expect(Array.from(text.documents[2])).toEqual([1002, 1003, 2020, 2021, 2022, 2023, 2024]);
    expect(text).toMatchObject({ watermarkedTokens: 25, promptTokens: 6, cleanTokens: 69 });
    expect(text.documents.reduce((n, d) => n + d.length, 0)).toBe(100);
  });

  it('refuses a mix the text cannot fill', () => {
    expect(() => studentText(clean, samples, { rho: 0.5, totalTokens: 100, withPrompts: false })).toThrow(
      /not enough teacher output for the student mix \(20 tokens short\)/,
    );
    expect(() => studentText(clean, samples, { rho: 0, totalTokens: 200, withPrompts: false })).toThrow(
      /not enough clean text for the student mix \(100 tokens short\)/,
    );
  });
});

describe('lab errors', () => {
  it.each([
    [{ rhos: [2] }, 'E_USAGE', /--rho values must be numbers in \[0, 1\]; got 2/],
    [
      { schemes: ['nope'] },
      'E_USAGE',
      /unknown scheme "nope"; expected kgw-h1, kgw-h2, unigram, gumbel, gumbel-soft, synthid/,
    ],
    [{ samples: 0 }, 'E_USAGE', /--samples must be an integer in \[1, /],
    [{ workers: 0 }, 'E_USAGE', /--workers must be an integer in \[1, /],
    [{ modes: ['open'] }, 'E_USAGE', /unknown mode "open"; expected closed, read/],
    [{ modes: [] }, 'E_USAGE', /--mode needs at least one mode/],
    [{ profile: 'nope' }, 'E_USAGE', /unknown profile "nope"; expected default, quick, demo, demo-test/],
    [{ profile: 'demo', quick: true }, 'E_USAGE', /--quick is the quick profile/],
    [{ corpus: join(dir, 'no-such-corpus') }, 'E_INPUT', /--corpus .*no-such-corpus does not exist/],
  ])('%j is refused in one line', async (extra, code, message) => {
    await expectLabError(runLab({ quick: true, ...(extra as LabOptions) }), code, message);
  });

  it('reports a corpus without text files, and one too small for the run, in one line', async () => {
    const empty = join(dir, 'empty-corpus');
    mkdirSync(empty);
    await expectLabError(runLab({ quick: true, corpus: empty }), 'E_INPUT', /holds no \.txt or \.jsonl file/);
    const tiny = join(dir, 'tiny.txt');
    writeFileSync(tiny, 'One short paragraph.\n\nAnother one.\n');
    const tooSmall = /the held-out text gives 0 prompts of 16 tokens; the run needs 1000/;
    await expectLabError(runLab({ quick: true, corpus: tiny }), 'E_INPUT', tooSmall);
    // The same error raised in a worker thread comes back as the same one-line LabError.
    await expectLabError(runLab({ quick: true, corpus: tiny, workers: 2 }), 'E_INPUT', tooSmall);
  });

  it('refuses an output path that is a file', async () => {
    const file = join(dir, 'a-file');
    writeFileSync(file, 'x');
    const report = { config: { schemes: [] } } as unknown as LabReport;
    await expectLabError(
      writeLabOutputs(report, file),
      'E_USAGE',
      /--out .*a-file exists and is not a directory/,
    );
  });
});

describe('sampling over the full vocabulary', () => {
  const text = gutenbergCorpus('train', { books: ['carroll-alice'] }).map((d) => o200kBase.encode(d.text));
  const model = trainModel(text, 3);
  const prompts = text
    .filter((d) => d.length >= 8)
    .slice(0, 6)
    .map((d) => d.slice(0, 8));
  const key = MasterKey.fromBytes(new Uint8Array(32).fill(7));

  /** What a server does: a session over the full logits row of every step. */
  function served(scheme: Scheme, watermark: boolean, seed: string): number[][] {
    return prompts.map((prompt, i) => {
      const session = new GenerationSession(scheme, { prompt, seed: `${seed}:${i}`, watermark });
      for (let step = 0; step < 40; step++) session.next(model.logits(session.tokens));
      return session.generated;
    });
  }

  it.each([
    ['no watermark', null],
    ['KGW', { scheme: 'kgw', gamma: 0.25, delta: 2, contextWidth: 1 }],
    ['Gumbel', { scheme: 'gumbel', contextWidth: 2 }],
  ])('draws the tokens a full-row session draws (%s)', async (_, spec) => {
    const scheme = createScheme({ ...(spec ?? { scheme: 'kgw' }), vocabSize: model.vocabSize }, key);
    const options = { maxTokens: 40, sampling: 'full-vocabulary', seed: 'same' } as const;
    const samples = await generateSamples(model, spec === null ? null : scheme, prompts, options);
    expect(samples.map((s) => s.output)).toEqual(served(scheme, spec !== null, 'same'));
    if (spec?.scheme === 'kgw') {
      // The server's support-restricted bias changes nothing either.
      expect(samples.map((s) => s.output)).toEqual(
        served(servingScheme(scheme.spec as SchemeSpec, key, model), true, 'same'),
      );
    }
  });
});
