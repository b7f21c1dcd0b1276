import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadTokenizer, type Tokenizer, writeKeyFile } from '@tracemark/verifier';
import { createScheme, MasterKey } from '@tracemark/watermark';
import { beforeAll, describe, expect, it } from 'vitest';
import { expectOneLineError, tracemark } from './support/cli';
import { wordModel, wordModelIds } from './support/word-model';

const dir = mkdtempSync(join(tmpdir(), 'tracemark-scan-'));
const keyFile = join(dir, 'owner.key');
const corpus = join(dir, 'corpus');
const SPEC = '{"scheme":"kgw","vocabSize":200019,"gamma":0.25,"delta":2,"contextWidth":1}';

function generate(
  key: MasterKey,
  tokenizer: Tokenizer,
  words: number[],
  seed: string,
  watermark: boolean,
  length = 300,
): string {
  return tokenizer.decode(wordModelIds(createScheme(SPEC, key), words, seed, length, watermark));
}

const ENGLISH =
  'It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of ' +
  'foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the season of Light, ' +
  'it was the season of Darkness, it was the spring of hope, it was the winter of despair.';

let marked: string[];
let plain: string[];

beforeAll(async () => {
  const key = MasterKey.parse('23'.repeat(32));
  writeKeyFile(keyFile, key);
  const tokenizer = await loadTokenizer('o200k_base');
  const words = wordModel(tokenizer);
  marked = ['m1', 'm2', 'm3'].map((seed) => generate(key, tokenizer, words, seed, true));
  plain = ['p1', 'p2'].map((seed) => generate(key, tokenizer, words, seed, false));
  mkdirSync(join(corpus, 'nested'), { recursive: true });
  writeFileSync(join(corpus, 'a-marked.txt'), marked[0]);
  writeFileSync(join(corpus, 'b-plain.txt'), plain[0]);
  writeFileSync(join(corpus, 'c-english.txt'), ENGLISH);
  writeFileSync(join(corpus, 'd-empty.txt'), '');
  writeFileSync(join(corpus, 'nested', 'e-marked.txt'), marked[1]);
  writeFileSync(join(corpus, 'nested', 'f-plain.txt'), plain[1]);
  writeFileSync(join(corpus, 'nested', 'g-marked.txt'), marked[2]);
  writeFileSync(join(corpus, '.hidden'), marked[0]);
});

type Record = {
  id: string;
  line?: number;
  scheme: string;
  keyFingerprint: string;
  nullLaw: { kind: string; p?: number };
  tokens: number;
  scored: number;
  scoreSum: number;
  pValue: number;
  log10PValue: number;
  detected: boolean;
};

function records(stdout: string): Record[] {
  return stdout
    .trim()
    .split('\n')
    .map((line) => JSON.parse(line) as Record);
}

describe('tracemark scan', () => {
  it('scans a directory with 1 and 2 workers: one line per document, the same results, a summary', () => {
    const one = tracemark(['scan', corpus, '--spec', SPEC, '--key-file', keyFile, '--workers', '1']);
    const two = tracemark(['scan', corpus, '--spec', SPEC, '--key-file', keyFile, '--workers', '2']);
    for (const run of [one, two]) {
      expect(run.code, run.stderr).toBe(0);
      expect(run.stderr.trim().split('\n')).toHaveLength(1);
    }
    expect(two.stdout).toBe(one.stdout);
    const out = records(one.stdout);
    expect(out.map((r) => r.id)).toEqual([
      'a-marked.txt',
      'b-plain.txt',
      'c-english.txt',
      'd-empty.txt',
      'nested/e-marked.txt',
      'nested/f-plain.txt',
      'nested/g-marked.txt',
    ]);
    for (const r of out) {
      expect(r.detected).toBe(r.id.includes('marked'));
      if (r.detected) {
        expect(r.log10PValue).toBeLessThan(-20);
        expect(r.tokens).toBe(300);
      }
    }
    expect(out.find((r) => r.id === 'd-empty.txt')).toMatchObject({ tokens: 0, scored: 0, pValue: 1 });
    // Each record is the one result type: the scheme identity and what the p-value was computed from.
    const keyFingerprint = createScheme(SPEC, MasterKey.parse('23'.repeat(32))).keyFingerprint;
    for (const r of out) {
      expect(r).toMatchObject({ scheme: 'kgw', keyFingerprint, nullLaw: { kind: 'bernoulli' } });
      expect(Number.isInteger(r.scoreSum) && r.scoreSum >= 0 && r.scoreSum <= r.scored).toBe(true);
    }
    expect(one.stderr).toMatch(
      /^scan: 7 documents, [\d,]+ tokens \([\d,]+ scored\) in [\d.]+ s with 1 worker .*: 3 detected at α = 0\.001 \(expected false positives 0\.00700\); [\d,]+ documents\/s, [\d,]+ tokens\/s$/m,
    );
    expect(two.stderr).toMatch(/with 2 workers/);
  });

  it('reads JSON Lines with --text-field and --id-field, from a file or standard input', () => {
    const jsonl = join(dir, 'docs.jsonl');
    const lines = [
      JSON.stringify({ doc: 'first', body: marked[0] }),
      '',
      JSON.stringify({ body: plain[0], extra: [1, 2] }),
      JSON.stringify({ doc: 7, body: marked[1] }),
    ];
    writeFileSync(jsonl, `${lines.join('\n')}\n`);
    const args = [
      '--jsonl',
      '--text-field',
      'body',
      '--id-field',
      'doc',
      '--spec',
      SPEC,
      '--key-file',
      keyFile,
    ];
    const run = tracemark(['scan', jsonl, ...args, '--workers', '2', '--summary-json']);
    expect(run.code, run.stderr).toBe(0);
    const out = records(run.stdout);
    expect(out.map((r) => [r.id, r.line, r.detected])).toEqual([
      ['first', 1, true],
      [`${jsonl}:3`, 3, false],
      ['7', 4, true],
    ]);
    const summary = JSON.parse(run.stderr);
    expect(summary).toMatchObject({ documents: 3, detected: 2, workers: 2, expectedFalsePositives: 0.003 });
    expect(summary.tokensPerSecond).toBeGreaterThan(0);
    const fromStdin = tracemark(['scan', '-', ...args, '--workers', '1'], lines.join('\n'));
    expect(records(fromStdin.stdout).map((r) => r.log10PValue)).toEqual(out.map((r) => r.log10PValue));
  });

  it.each([
    [
      'a missing corpus',
      [join(dir, 'missing'), '--spec', SPEC, '--key-file', keyFile],
      /cannot read corpus .*missing: ENOENT/,
    ],
    [
      '--workers 0',
      [corpus, '--spec', SPEC, '--key-file', keyFile, '--workers', '0'],
      /--workers must be an integer/,
    ],
    ['no spec', [corpus, '--key-file', keyFile], /scan needs --spec/],
    ['no key', [corpus, '--spec', SPEC], /scan needs a key/],
    ['no corpus', ['--spec', SPEC, '--key-file', keyFile], /scan needs one corpus/],
  ])('rejects %s with one line and exit code 2', (_label, args, message) => {
    expectOneLineError(tracemark(['scan', ...(args as string[])]), message as RegExp);
  });

  it('names the line of a bad JSONL record, and a record without the text field', () => {
    const bad = join(dir, 'bad.jsonl');
    writeFileSync(bad, `${JSON.stringify({ text: marked[0] })}\n{"text": "unterminated\n`);
    const common = ['--jsonl', '--spec', SPEC, '--key-file', keyFile, '--workers', '1'];
    expectOneLineError(tracemark(['scan', bad, ...common]), /bad\.jsonl:2: not valid JSON/);
    const noField = join(dir, 'nofield.jsonl');
    writeFileSync(noField, `${JSON.stringify({ text: 'ok' })}\n\n${JSON.stringify({ body: 'x' })}\n`);
    expectOneLineError(tracemark(['scan', noField, ...common]), /nofield\.jsonl:3: no string field "text"/);
  });
});
