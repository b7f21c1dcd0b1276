import { mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createScheme, GenerationSession, MasterKey } from '@tracemark/watermark';
import { beforeAll, describe, expect, it } from 'vitest';
import { expectOneLineError, tracemark } from './support/cli';

const dir = mkdtempSync(join(tmpdir(), 'tracemark-cli-'));
const keyFile = join(dir, 'owner.key');
const SPEC = '{"scheme":"kgw","vocabSize":200019,"gamma":0.25,"delta":2,"contextWidth":1}';

let key: MasterKey;
let watermarkedIds: number[];

beforeAll(() => {
  const made = tracemark(['keygen', '--out', keyFile]);
  expect(made.code).toBe(0);
  key = MasterKey.parse(
    readFileSync(keyFile, 'utf8')
      .split('\n')
      .filter((l) => !l.startsWith('#'))
      .join(''),
  );
  const scheme = createScheme(SPEC, key);
  const session = new GenerationSession(scheme, { prompt: [1000], seed: 'cli' });
  for (let i = 0; i < 150; i++) {
    const logits = new Float32Array(200019).fill(-20);
    const last = session.tokens[session.tokens.length - 1];
    for (let t = 0; t < 64; t++) logits[(last * 31 + t * 997) % 200019] = 3 * Math.sin(t);
    session.next(logits);
  }
  watermarkedIds = session.tokens;
});

describe('tracemark keygen', () => {
  it('writes a 0600 key file with its fingerprint, and refuses to overwrite it', () => {
    expect(statSync(keyFile).mode & 0o777).toBe(0o600);
    const text = readFileSync(keyFile, 'utf8');
    expect(text).toContain(`# fingerprint ${key.fingerprint}`);
    const again = tracemark(['keygen', '--out', keyFile]);
    expectOneLineError(again, /already exists; refusing to overwrite/);
    expect(readFileSync(keyFile, 'utf8')).toBe(text);
    expectOneLineError(tracemark(['keygen']), /keygen needs --out <file>/);
  });
});

describe('tracemark detect --ids', () => {
  it('detects watermarked ids, with exit code 1 only under --fail-on-detect', () => {
    const idsFile = join(dir, 'ids.json');
    writeFileSync(idsFile, JSON.stringify(watermarkedIds));
    const run = tracemark(['detect', '--spec', SPEC, '--key-file', keyFile, '--ids', idsFile, '--json']);
    expect(run.code).toBe(0);
    const result = JSON.parse(run.stdout);
    expect(result.log10PValue).toBeLessThan(-10);
    expect(result.scored).toBeGreaterThan(100);
    expect(result.masterFingerprint).toBe(key.fingerprint);
    expect(run.stdout).not.toContain(key.exportHex());
    expect(
      tracemark(['detect', '--spec', SPEC, '--key-file', keyFile, '--ids', idsFile, '--fail-on-detect']).code,
    ).toBe(1);
  });

  it('does not detect the ids with another key, even under --fail-on-detect', () => {
    const other = join(dir, 'other.key');
    expect(tracemark(['keygen', '--out', other]).code).toBe(0);
    const run = tracemark([
      'detect',
      '--spec',
      SPEC,
      '--key-file',
      other,
      '--ids',
      JSON.stringify(watermarkedIds),
      '--fail-on-detect',
    ]);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/verdict\s+no watermark detected at α = 0.001/);
    expect(run.stdout).toMatch(/tokens\s+151 seen, \d+ scored \(de-duplication: pair\)/);
  });

  it('tests tenants together with Holm-adjusted p-values', () => {
    const run = tracemark([
      'detect',
      '--spec',
      SPEC,
      '--key-file',
      keyFile,
      '--ids',
      JSON.stringify(watermarkedIds),
      '--tenant',
      'a',
      '--tenant',
      'b',
      '--json',
    ]);
    expect(run.code).toBe(0);
    const { results } = JSON.parse(run.stdout);
    expect(results.map((r: { tenant: string }) => r.tenant)).toEqual(['a', 'b']);
    for (const r of results) expect(r.adjustedPValue).toBeGreaterThanOrEqual(r.pValue);
  });
});

describe('tracemark detect: bad input', () => {
  it.each([
    [['detect', '--key-file', keyFile, '--ids', '[1,2,3]'], /detect needs --spec/],
    [
      ['detect', '--spec', '{"scheme":"nope","vocabSize":10}', '--key-file', keyFile, '--ids', '[1,2]'],
      /unknown scheme "nope"/,
    ],
    [
      ['detect', '--spec', '{"scheme":"kgw"', '--key-file', keyFile, '--ids', '[1,2]'],
      /--spec is not valid JSON/,
    ],
    [['detect', '--spec', SPEC, '--ids', '[1,2]'], /detect needs a key/],
    [
      ['detect', '--spec', SPEC, '--key-file', join(dir, 'missing.key'), '--ids', '[1,2]'],
      /cannot read key file .*ENOENT/,
    ],
    [
      ['detect', '--spec', SPEC, '--key-file', keyFile, '--ids', '[5]'],
      /has 1 token; kgw with context width 1 needs at least 2/,
    ],
    [
      ['detect', '--spec', SPEC, '--key-file', keyFile, '--ids', '[1,"a"]'],
      /must be a JSON array of non-negative integer token ids/,
    ],
    [
      ['detect', '--spec', SPEC, '--key-file', keyFile, '--ids', '[1,2]', '--dedup', 'all'],
      /--dedup must be pair, context or none/,
    ],
    [
      ['detect', '--spec', SPEC, '--key-file', keyFile, '--ids', '[1,2]', '--alpha', '2'],
      /--alpha must be a number in \(0, 1\)/,
    ],
    [['detect', '--spec', SPEC, '--key-file', keyFile, '--bogus'], /unknown option '--bogus'/],
    [['detect', '--spec'], /option '--spec <json\|file>' argument missing/],
    [['frobnicate'], /unknown command 'frobnicate'/],
    [['help', 'frobnicate'], /unknown command 'frobnicate'/],
  ])('%j', (args, message) => {
    expectOneLineError(tracemark(args as string[]), message);
  });

  it('never prints key material for a malformed key', () => {
    const secretish = `${'ab'.repeat(31)}zz`;
    const bad = join(dir, 'bad.key');
    writeFileSync(bad, secretish, { mode: 0o600 });
    for (const [run, message] of [
      [
        tracemark(['detect', '--spec', SPEC, '--key-file', bad, '--ids', '[1,2]']),
        /does not hold a master key/,
      ],
      [
        tracemark(['detect', '--spec', SPEC, '--key', secretish, '--ids', '[1,2]']),
        /--key is no longer accepted/,
      ],
    ] as const) {
      expectOneLineError(run, message);
      expect(run.stderr + run.stdout).not.toContain('abab');
    }
  });
});

describe('tracemark detect on text', () => {
  const text =
    'The harbour was quiet. 港口很安静。 🌊 Boats rested, and the gulls 🐦 slept on the warm stones.';

  it('reads a file or standard input, and marks every token', () => {
    const file = join(dir, 'text.txt');
    writeFileSync(file, text);
    const fromFile = tracemark(['detect', file, '--spec', SPEC, '--key-file', keyFile, '--json']);
    expect(fromFile.code).toBe(0);
    const result = JSON.parse(fromFile.stdout);
    expect(result.tokens).toBeGreaterThan(20);
    expect(
      result.perToken.map((t: { start: number; end: number }) => text.slice(t.start, t.end)).join(''),
    ).toBe(text);
    const fromStdin = tracemark(['detect', '-', '--spec', SPEC, '--key-file', keyFile, '--json'], text);
    expect(JSON.parse(fromStdin.stdout).scoreSum).toBe(result.scoreSum);
    const human = tracemark(['detect', file, '--spec', SPEC, '--key-file', keyFile]);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/p-value\s+\S+\s+\(log10 /);
    expect(human.stdout).toMatch(/\[[+-]/);
    expect(human.stdout).toContain('港');
  });

  it.each([
    [['-'], '   \n', /the text is empty/],
    [['-', '--tokenizer', 'gpt5_base'], 'hello there', /unknown tokenizer "gpt5_base"/],
    [[join(dir, 'nope.txt')], undefined, /cannot read text file .*nope\.txt: ENOENT/],
    [['-', '--tokenizer', join(dir, 'missing', 'tokenizer.json')], 'hello there', /tokenizer/],
  ])('rejects %j', (extra, input, message) => {
    const run = tracemark(
      ['detect', ...(extra as string[]), '--spec', SPEC, '--key-file', keyFile],
      input as string | undefined,
    );
    expectOneLineError(run, message as RegExp);
  });

  it('rejects invalid UTF-8 without guessing', () => {
    const file = join(dir, 'latin1.txt');
    writeFileSync(file, Buffer.from([0x63, 0x61, 0x66, 0xe9, 0x20, 0xff]));
    expectOneLineError(
      tracemark(['detect', file, '--spec', SPEC, '--key-file', keyFile]),
      /is not valid UTF-8/,
    );
  });
});

describe('tracemark detect on interop specs (the CLI contract)', () => {
  const vectors = JSON.parse(
    readFileSync(
      fileURLToPath(new URL('../../../packages/verifier/test/fixtures/interop.json', import.meta.url)),
      'utf8',
    ),
  );

  it('reports transformers WatermarkDetector counts, z-score and hfPValue beside the exact p-value', () => {
    for (const vector of vectors.hfKgw.detections.slice(0, 3)) {
      const spec = JSON.stringify({ scheme: 'hf-kgw', ...vector.config });
      const run = tracemark(['detect', '--spec', spec, '--ids', JSON.stringify(vector.ids), '--json']);
      expect(run.code).toBe(0);
      const out = JSON.parse(run.stdout);
      expect(out.numTokensScored).toBe(vector.numTokensScored);
      expect(out.numGreenTokens).toBe(vector.numGreenTokens);
      expect(out.zScore).toBeCloseTo(vector.zScore, 9);
      expect(out.hfPValue).toBeCloseTo(vector.hfPValue, 9);
      expect(out.pValue).toBeGreaterThan(0);
      expect(out.pValue).toBeLessThanOrEqual(1);
    }
  });

  it('reports lm-watermarking counts and SynthID means', () => {
    const lmw = vectors.lmw.detections[0];
    const lmwSpec = JSON.stringify({
      scheme: 'lmw-kgw',
      vocabSize: lmw.vocabSize,
      gamma: lmw.gamma,
      seedingScheme: lmw.seedingScheme,
      ignoreRepeatedNgrams: lmw.ignoreRepeatedNgrams,
    });
    const out = JSON.parse(
      tracemark(['detect', '--spec', lmwSpec, '--ids', JSON.stringify(lmw.ids), '--json']).stdout,
    );
    expect([out.numTokensScored, out.numGreenTokens]).toEqual([lmw.numTokensScored, lmw.numGreenTokens]);
    const synthid = vectors.synthid[0];
    const synthidSpec = JSON.stringify({
      scheme: synthid.variant,
      keys: synthid.keys,
      ngramLen: synthid.ngramLen,
      samplingTableSize: synthid.samplingTableSize,
      samplingTableSeed: synthid.samplingTableSeed,
      contextHistorySize: synthid.contextHistorySize,
    });
    const s = JSON.parse(
      tracemark(['detect', '--spec', synthidSpec, '--ids', JSON.stringify(synthid.ids), '--json']).stdout,
    );
    expect(s.mean).toBeCloseTo(synthid.mean, 9);
    expect(s.weightedMean).toBeCloseTo(synthid.weightedMean, 9);
  });

  it('needs no key and refuses one', () => {
    const vector = vectors.hfKgw.detections[0];
    const spec = JSON.stringify({ scheme: 'hf-kgw', ...vector.config });
    expectOneLineError(
      tracemark(['detect', '--spec', spec, '--key-file', keyFile, '--ids', JSON.stringify(vector.ids)]),
      /interop schemes are keyed by their spec/,
    );
  });
});

describe('tracemark usage: --help, --version and parse errors', () => {
  const usages: [string, string][] = [
    ['keygen', '--out <file>'],
    ['detect', '--tenant <id>'],
    ['scan', '--workers <n>'],
    ['probe', '--endpoint <base URL>'],
    ['read', '--texts <file|dir|file.jsonl>'],
    ['verify', '--owner-text <file|dir|file.jsonl>'],
    ['attribute', '--accounts <file>'],
    ['report', '--check <bundle.json>'],
    ['lab', '--filter-width <w>'],
    ['eval', '--attacks <a,b>'],
    ['power', '--effect <e>'],
  ];

  it.each(usages)('%s --help and -h print its usage and exit 0', (command, option) => {
    const help = tracemark([command, '--help']);
    expect(help.code).toBe(0);
    expect(help.stderr).toBe('');
    expect(help.stdout).toMatch(new RegExp(`^Usage: tracemark ${command} `));
    expect(help.stdout).toContain(option);
    expect(help.stdout).toMatch(/-h, --help +print this usage/);
    const short = tracemark([command, '-h']);
    expect(short.code).toBe(0);
    expect(short.stdout).toBe(help.stdout);
    // Help wins over the command's own checks: nothing runs, even with arguments it would reject.
    expect(tracemark([command, '--alpha', '5', '--help']).stdout).toBe(help.stdout);
    expect(tracemark(['help', command]).stdout).toBe(help.stdout);
  });

  it('lists every command under --help, and prints the usage with exit code 2 when given none', () => {
    const help = tracemark(['--help']);
    expect(help.code).toBe(0);
    for (const [command] of usages) expect(help.stdout).toMatch(new RegExp(`^  ${command} `, 'm'));
    expect(help.stdout).toMatch(/exit codes: 0 ran/);
    expect(tracemark(['-h']).stdout).toBe(help.stdout);
    expect(tracemark(['help']).stdout).toBe(help.stdout);
    const none = tracemark([]);
    expect(none.code).toBe(2);
    expect(none.stdout).toBe(help.stdout);
  });

  it('prints the version of the package with --version and -V', () => {
    const { version } = JSON.parse(
      readFileSync(fileURLToPath(new URL('../package.json', import.meta.url)), 'utf8'),
    );
    for (const flag of ['--version', '-V']) {
      const run = tracemark([flag]);
      expect(run.code).toBe(0);
      expect(run.stdout).toBe(`${version}\n`);
    }
  });

  it.each(usages.map(([command]) => command))(
    '%s: an unknown option exits 2 with one line, before any work',
    (command) => {
      // commander may add a suggestion on the same line: "(Did you mean --corpus?)".
      expectOneLineError(tracemark([command, '--bogus']), /^tracemark: unknown option '--bogus'/);
    },
  );

  it('keeps suggestions and missing values on the one line', () => {
    expectOneLineError(
      tracemark(['detect', '--jsno']),
      /^tracemark: unknown option '--jsno' \(Did you mean --json\?\)$/m,
    );
    expectOneLineError(tracemark(['power', '--effect']), /option '--effect <e>' argument missing/);
    expectOneLineError(tracemark(['scna']), /unknown command 'scna' \(Did you mean scan\?\)/);
  });
});
