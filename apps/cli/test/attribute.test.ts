import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadTokenizer, writeKeyFile } from '@tracemark/verifier';
import { createScheme, MasterKey } from '@tracemark/watermark';
import { beforeAll, describe, expect, it } from 'vitest';
import { expectOneLineError, tracemark } from './support/cli';
import { wordModel, wordModelIds } from './support/word-model';

const dir = mkdtempSync(join(tmpdir(), 'tracemark-attribute-'));
const keyFile = join(dir, 'owner.key');
const key = MasterKey.parse('23'.repeat(32));
/** A layered spec over the o200k vocabulary (the CLI's default tokenizer). */
const SPEC = '{"scheme":"kgw","vocabSize":200019,"gamma":0.25,"delta":2,"contextWidth":1,"accountDelta":1.5}';
const CANDIDATES = 500;
const LEAKERS = ['acct-17', 'acct-321'];

const datasetFile = join(dir, 'leak.jsonl');
const badFile = join(dir, 'bad.jsonl');
const accountsFile = join(dir, 'accounts.txt');
let lines: string[];

function write(name: string, text: string): string {
  const path = join(dir, name);
  writeFileSync(path, text);
  return path;
}

beforeAll(async () => {
  writeKeyFile(keyFile, key);
  const tokenizer = await loadTokenizer('o200k_base');
  const words = wordModel(tokenizer);
  // wordModelIds continues the one-token prompt [words[0]]: the dataset gives it as the prompt, so that the first
  // token's window is the same as when it was generated (and is not scored, being a prompt window).
  const prompt = tokenizer.decode([words[0]]);
  const texts = (account: string | null, count: number, watermark = true) => {
    const scheme = createScheme(SPEC, key, account === null ? {} : { account });
    return Array.from({ length: count }, (_, k) =>
      tokenizer.decode(wordModelIds(scheme, words, `${account}/${k}`, 120, watermark)),
    );
  };
  lines = [
    ...texts('acct-17', 10).map((text) => JSON.stringify({ prompt, text })),
    // The OpenAI fine-tuning chat format: the assistant messages are the texts, the user messages their prompts.
    ...texts('acct-321', 10).map((text, k) =>
      JSON.stringify({
        messages: [
          { role: 'system', content: 'You are helpful.' },
          { role: 'user', content: prompt },
          { role: 'assistant', content: k % 2 === 0 ? text : [{ type: 'text', text }] },
        ],
      }),
    ),
    // An account outside the candidate list, and plain text.
    ...texts('stranger', 10).map((text) => JSON.stringify({ prompt, text })),
    ...texts(null, 10, false).map((text) => JSON.stringify({ text })),
  ];
  writeFileSync(datasetFile, `${lines.join('\n')}\n`);
  // Malformed lines at 3 (not JSON), 6 (no text) and 9 (text not a string), and a blank line (ignored) at 12.
  const bad = [...lines];
  bad.splice(2, 0, '{"text": "unterminated');
  bad.splice(5, 0, '{"prompt": "no text"}');
  bad.splice(8, 0, '{"text": 42}');
  bad.splice(11, 0, '   ');
  writeFileSync(badFile, `${bad.join('\n')}\n`);
  writeFileSync(accountsFile, `${Array.from({ length: CANDIDATES }, (_, i) => `acct-${i}`).join('\n')}\n\n`);
}, 60_000);

const base = () => ['attribute', '--key-file', keyFile, '--spec', SPEC];

interface Report {
  organisation: { pValue: number; log10PValue: number; scored: number; detected: boolean };
  accounts: {
    id: string;
    samples: number | null;
    pValue: number;
    adjustedPValue: number;
    log10PValue: number;
    log10AdjustedPValue: number;
    attributed: boolean;
  }[];
  correction: string;
  alpha: number;
  attributed: string[];
  candidates: number;
  samples: number;
  tokens: number;
  scored: number;
  badLines: { count: number; lines: number[] };
  timings: Record<string, number>;
}

describe('tracemark attribute', () => {
  it('attributes a mixed leak to its two accounts among 500 candidates, and to no other', () => {
    const run = tracemark([...base(), '--dataset', datasetFile, '--accounts', accountsFile, '--top', '3']);
    expect(run.stderr).not.toMatch(/tracemark: /);
    expect(run.code).toBe(0);
    const out = run.stdout;
    expect(out).toMatch(
      /organisation +p (\d\.\d\de-\d+|10\^-\d+\.\d\d) over [\d,]+ scored tokens .*: watermark detected/,
    );
    expect(out).toMatch(/500 accounts; p-values Holm-corrected/);
    expect(out).toMatch(/attributed +2 accounts:/);
    const rows = out.split('\n').filter((line) => /^ {2}\S/.test(line));
    expect(
      rows
        .slice(0, 2)
        .map((row) => row.trim().split(/\s+/)[0])
        .sort(),
    ).toEqual([...LEAKERS].sort());
    for (const row of rows.slice(0, 2)) expect(row).toMatch(/adjusted p .* 10 samples with p ≤ 0.01/);
    expect(out).toMatch(/the 3 most significant other candidates:/);
    expect(rows).toHaveLength(5);
    // Progress and the summary on standard error; the key nowhere.
    expect(run.stderr).toMatch(
      /^attribute: read 40 samples \([\d,]+ tokens\) from .*leak\.jsonl in .*; scoring 500 candidate accounts\n/,
    );
    expect(run.stderr.trim().split('\n').at(-1)).toMatch(
      /^attribute: 40 samples, [\d,]+ tokens \([\d,]+ scored\), 500 candidates: 2 attributed at Holm-adjusted p ≤ 0.001; /,
    );
    expect(out + run.stderr).not.toContain(key.exportHex());
  });

  it('prints the attribution as one JSON object with --json; --quiet silences standard error', () => {
    const run = tracemark([
      ...base(),
      '--dataset',
      datasetFile,
      '--accounts',
      accountsFile,
      '--json',
      '--quiet',
      '--threads',
      '2',
    ]);
    expect(run.code).toBe(0);
    expect(run.stderr).toBe('');
    const report = JSON.parse(run.stdout) as Report;
    expect(report.correction).toBe('holm');
    expect(report.alpha).toBe(1e-3);
    expect(report.candidates).toBe(CANDIDATES);
    expect(report.samples).toBe(40);
    expect(report.tokens).toBeGreaterThanOrEqual(40 * 120);
    expect(report.badLines).toEqual({ count: 0, lines: [] });
    expect(report.organisation.log10PValue).toBeLessThan(-10);
    expect(report.organisation.scored).toBe(report.scored);
    expect(report.organisation.detected).toBe(true);
    expect(new Set(report.attributed)).toEqual(new Set(LEAKERS));
    expect(report.accounts).toHaveLength(CANDIDATES);
    expect(report.accounts.filter((a) => a.attributed).map((a) => a.id)).toEqual(report.attributed);
    for (let i = 1; i < report.accounts.length; i++)
      expect(report.accounts[i].log10AdjustedPValue).toBeGreaterThanOrEqual(
        report.accounts[i - 1].log10AdjustedPValue,
      );
    for (const account of report.accounts.slice(0, 2)) {
      expect(account.adjustedPValue).toBeLessThan(1e-3);
      expect(account.adjustedPValue).toBeGreaterThanOrEqual(account.pValue);
      expect(account.samples).toBe(10);
    }
    expect(report.accounts[2].attributed).toBe(false);
    expect(report.accounts[2].samples).toBeNull();
    expect(Object.keys(report.timings).sort()).toEqual(['readMs', 'scoreMs', 'tapeMs']);
    expect(run.stdout).not.toContain(key.exportHex());
  });

  it('fails on the first malformed line, with its number; --on-bad-line skip counts and lists them', () => {
    expectOneLineError(
      tracemark([...base(), '--dataset', badFile, '--accounts', accountsFile]),
      /bad\.jsonl, line 3: not valid JSON \(--on-bad-line skip/,
    );
    const run = tracemark([
      ...base(),
      '--dataset',
      badFile,
      '--accounts',
      accountsFile,
      '--on-bad-line',
      'skip',
      '--json',
    ]);
    expect(run.code).toBe(0);
    const report = JSON.parse(run.stdout) as Report;
    expect(report.badLines).toEqual({ count: 3, lines: [3, 6, 9] });
    expect(report.samples).toBe(40);
    expect(new Set(report.attributed)).toEqual(new Set(LEAKERS));
    expect(run.stderr).toMatch(/3 malformed lines skipped/);
    const noText = write('no-text.jsonl', `${lines[0]}\n{"prompt": "x"}\n`);
    expectOneLineError(
      tracemark([...base(), '--dataset', noText, '--accounts', accountsFile]),
      /line 2: no "text" field/,
    );
    const badChat = write(
      'bad-chat.jsonl',
      `${JSON.stringify({ messages: [{ role: 'user', content: 'hi' }] })}\n`,
    );
    expectOneLineError(
      tracemark([...base(), '--dataset', badChat, '--accounts', accountsFile]),
      /line 1: "messages" has no assistant message with text/,
    );
  });

  it('prints its usage with --help', () => {
    const help = tracemark(['attribute', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/^Usage: tracemark attribute --dataset <file.jsonl> --accounts <file> /);
    expect(help.stdout).toContain('--on-bad-line <rule>');
  });

  it('refuses a duplicate, an empty or an invalid account list, and a dataset with no scorable token', () => {
    const duplicate = write('duplicate.txt', 'acct-1\nacct-2\n\nacct-1\n');
    expectOneLineError(
      tracemark([...base(), '--dataset', datasetFile, '--accounts', duplicate]),
      /account id "acct-1" appears twice \(lines 1 and 4\)/,
    );
    const empty = write('empty.txt', '\n  \n');
    expectOneLineError(
      tracemark([...base(), '--dataset', datasetFile, '--accounts', empty]),
      /empty\.txt lists no account ids/,
    );
    const tooLong = write('long.txt', `acct-1\n${'x'.repeat(300)}\n`);
    expectOneLineError(
      tracemark([...base(), '--dataset', datasetFile, '--accounts', tooLong]),
      /long\.txt, line 2: an account id must be/,
    );
    const unscorable = write('unscorable.jsonl', '{"text": ""}\n{"text": "hi"}\n');
    expectOneLineError(
      tracemark([...base(), '--dataset', unscorable, '--accounts', accountsFile]),
      /no scorable token/,
    );
    const nothing = write('nothing.jsonl', '\n');
    expectOneLineError(
      tracemark([...base(), '--dataset', nothing, '--accounts', accountsFile]),
      /nothing\.jsonl holds no samples/,
    );
    expectOneLineError(
      tracemark([
        'attribute',
        '--key-file',
        keyFile,
        '--spec',
        '{"scheme":"kgw","vocabSize":200019,"gamma":0.25,"delta":2,"contextWidth":1}',
        '--dataset',
        datasetFile,
        '--accounts',
        accountsFile,
      ]),
      /no account layer/,
    );
    expectOneLineError(
      tracemark([...base(), '--dataset', join(dir, 'missing.jsonl'), '--accounts', accountsFile]),
      /cannot read dataset .*missing\.jsonl: ENOENT/,
    );
    expectOneLineError(
      tracemark(['attribute', '--spec', SPEC, '--dataset', datasetFile, '--accounts', accountsFile]),
      /attribute needs a key: --key-file <file> or \$TRACEMARK_KEY/,
    );
    expectOneLineError(tracemark([...base(), '--dataset', datasetFile]), /attribute needs --accounts <file>/);
    expectOneLineError(
      tracemark([...base(), '--dataset', datasetFile, '--accounts', accountsFile, '--on-bad-line', 'ignore']),
      /--on-bad-line must be skip or fail/,
    );
  });
});
