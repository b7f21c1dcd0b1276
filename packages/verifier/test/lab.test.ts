import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gutenbergBook } from '@tracemark/ngram';
import { beforeAll, describe, expect, it } from 'vitest';
import { expectOneLineError, tracemark } from './support/cli';

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

interface Row {
  scheme: string;
  rho: number;
  pValue: number;
  log10PValue: number;
  scored: number;
  controls: number[];
  controlsRandomizedKs: { pValue: number };
  controlsMethod: string;
}

describe('tracemark lab --quick', () => {
  const out = join(dir, 'quick');
  let run: ReturnType<typeof tracemark>;
  let results: {
    rows: Row[];
    config: { schemes: string[]; rhos: number[]; controls: number; profile: string };
    summary: { controls: { ks: { pValue: number }; randomizedKs: { pValue: number }; pValues: number } };
  };

  beforeAll(() => {
    run = tracemark(['lab', '--quick', '--quiet', '--out', out], undefined, 180_000);
    results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
  }, 200_000);

  it('runs and writes results.json with one row per (scheme, rho) in the documented shape', () => {
    expect(run.code, run.stderr).toBe(0);
    expect(results.config.profile).toBe('quick');
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
    // The controls were scored on the lab key's positions (their selection reproduced the full test exactly).
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

describe('tracemark lab on a custom corpus', () => {
  it('holds out every fifth document and gives the same results with worker threads as in-process', () => {
    const corpus = join(dir, 'alice.txt');
    writeFileSync(corpus, gutenbergBook('carroll-alice'));
    const args = ['lab', '--quiet', '--corpus', corpus, '--scheme', 'kgw-h1,gumbel', '--rho', '0,1'];
    args.push('--samples', '40', '--probes', '150', '--controls', '20', '--seed', 'custom');
    const inProcess = tracemark([...args, '--workers', '1', '--out', join(dir, 'w1')], undefined, 120_000);
    expect(inProcess.code, inProcess.stderr).toBe(0);
    const threaded = tracemark([...args, '--workers', '2', '--out', join(dir, 'w2')], undefined, 120_000);
    expect(threaded.code, threaded.stderr).toBe(0);
    const read = (d: string) => JSON.parse(readFileSync(join(dir, d, 'results.json'), 'utf8'));
    const [a, b] = [read('w1'), read('w2')];
    expect(a.corpus.corpus).toContain('every 5th held out');
    expect(b.config.workers).toBe(2);
    const strip = (rows: Array<Record<string, unknown>>) => rows.map(({ timings: _t, ...rest }) => rest);
    expect(strip(b.rows)).toEqual(strip(a.rows));
    const detected = a.rows.find((r: Row) => r.scheme === 'kgw-h1' && r.rho === 1);
    expect(detected.log10PValue).toBeLessThan(-6);
  }, 240_000);
});

describe('tracemark lab usage errors', () => {
  it.each([
    [['--rho', '2'], /--rho values must be numbers in \[0, 1\]; got 2/],
    [['--rho', '0,abc'], /--rho values must be numbers in \[0, 1\]; got abc/],
    [['--scheme', 'nope'], /unknown scheme "nope"; expected kgw-h1, kgw-h2, unigram, gumbel, synthid/],
    [['--samples', '0'], /--samples must be an integer in \[1, /],
    [['--samples', 'many'], /--samples must be an integer; got many/],
    [['--corpus', join(dir, 'no-such-corpus')], /--corpus .*no-such-corpus does not exist/],
    [['--workers', '0'], /--workers must be an integer in \[1, /],
    [['--bogus'], /Unknown option '--bogus'/],
  ])('%j exits 2 with one line', (extra, message) => {
    expectOneLineError(
      tracemark(['lab', '--quick', '--out', join(dir, 'never'), ...(extra as string[])]),
      message,
    );
    expect(existsSync(join(dir, 'never'))).toBe(false);
  });

  it('reports a corpus without text files, and one too small for the run, in one line', () => {
    const empty = join(dir, 'empty-corpus');
    mkdirSync(empty);
    expectOneLineError(
      tracemark(['lab', '--quick', '--out', join(dir, 'never'), '--corpus', empty]),
      /holds no \.txt or \.jsonl file/,
    );
    const tiny = join(dir, 'tiny.txt');
    writeFileSync(tiny, 'One short paragraph.\n\nAnother one.\n');
    expectOneLineError(
      tracemark(['lab', '--quick', '--out', join(dir, 'never'), '--corpus', tiny]),
      /the held-out text gives 0 prompts of 16 tokens; the run needs 1000/,
    );
  });

  it('refuses an --out path that is a file', () => {
    const file = join(dir, 'a-file');
    writeFileSync(file, 'x');
    expectOneLineError(
      tracemark(['lab', '--quick', '--out', file]),
      /--out .*a-file exists and is not a directory/,
    );
  });
});
