import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MasterKey } from '@tracemark/watermark';
import { beforeAll, describe, expect, it } from 'vitest';
import { CLI, expectOneLineError, tracemark } from './support/cli';

const dir = mkdtempSync(join(tmpdir(), 'tracemark-pipes-'));
const keyFile = join(dir, 'owner.key');
const SPEC = '{"scheme":"kgw","vocabSize":200019,"gamma":0.25,"delta":2,"contextWidth":1}';
// Long enough that the output fills the pipe many times over, so the reader's going away hits a write.
const TEXT = 'The harbour was quiet and the boats rested on the warm stones. '.repeat(3000);
const textFile = join(dir, 'long.txt');
const corpusFile = join(dir, 'corpus.jsonl');

beforeAll(() => {
  expect(tracemark(['keygen', '--out', keyFile]).code).toBe(0);
  writeFileSync(textFile, TEXT);
  const lines = [];
  for (let i = 0; i < 400; i++)
    lines.push(JSON.stringify({ id: `d${i}`, text: `document ${i}: ${TEXT.slice(0, 400)}` }));
  writeFileSync(corpusFile, `${lines.join('\n')}\n`);
});

/** Runs the built CLI and closes its standard output after the first chunk, as `| head -1` does. */
function closedEarly(args: string[]): Promise<{ code: number | null; stderr: string; received: number }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, NO_COLOR: '1', TRACEMARK_KEY: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    let received = 0;
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      stderr += chunk;
    });
    child.stdout.once('data', (chunk: Buffer) => {
      received = chunk.length;
      child.stdout.destroy();
    });
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stderr, received }));
  });
}

describe('a reader that goes away', () => {
  it.each([
    ['detect (text)', ['detect', textFile, '--spec', SPEC, '--key-file', keyFile]],
    ['detect --json', ['detect', textFile, '--spec', SPEC, '--key-file', keyFile, '--json']],
    ['scan', ['scan', corpusFile, '--jsonl', '--spec', SPEC, '--key-file', keyFile, '--workers', '1']],
  ])('%s ends quietly with its own exit code', async (_name, args) => {
    const run = await closedEarly(args as string[]);
    expect(run.received).toBeGreaterThan(0);
    expect(run.stderr).not.toMatch(/EPIPE|\n\s+at /);
    expect(run.code).toBe(0);
  });

  it('`tracemark detect … | head -1` prints one line and exits 0', () => {
    const bash = spawnSync('bash', ['--version']);
    if (bash.status !== 0) return;
    const quote = (s: string) => `'${s.replace(/'/g, `'\\''`)}'`;
    const line = [process.execPath, CLI, 'detect', textFile, '--spec', SPEC, '--key-file', keyFile]
      .map(quote)
      .join(' ');
    const run = spawnSync(
      'bash',
      ['-c', `${line} 2>"$0" | head -1; echo "exit \${PIPESTATUS[0]}"`, join(dir, 'err.txt')],
      {
        encoding: 'utf8',
        env: { ...process.env, NO_COLOR: '1', TRACEMARK_KEY: '' },
        timeout: 60_000,
      },
    );
    const lines = run.stdout.trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[1]).toBe('exit 0');
    expect(spawnSync('cat', [join(dir, 'err.txt')], { encoding: 'utf8' }).stdout).toBe('');
  });

  it('--json puts only the JSON on standard output', () => {
    const short = join(dir, 'short.txt');
    writeFileSync(short, TEXT.slice(0, 2000));
    const run = tracemark(['detect', short, '--spec', SPEC, '--key-file', keyFile, '--json']);
    expect(run.code).toBe(0);
    expect(() => JSON.parse(run.stdout)).not.toThrow();
    expect(run.stdout.trim().startsWith('{')).toBe(true);
  });
});

describe('key files', () => {
  const detect = (key: string) =>
    tracemark(['detect', '--spec', SPEC, '--key-file', key, '--ids', '[1,2,3]']);

  it('keygen leaves the key file alone in its directory (no temporary file), and fails in one line', () => {
    const own = mkdtempSync(join(tmpdir(), 'tracemark-keygen-'));
    expect(tracemark(['keygen', '--out', join(own, 'a.key')]).code).toBe(0);
    expect(readdirSync(own)).toEqual(['a.key']);
    expect(statSync(join(own, 'a.key')).mode & 0o777).toBe(0o600);
    expectOneLineError(
      tracemark(['keygen', '--out', join(own, 'no', 'b.key')]),
      /cannot create .*b\.key: ENOENT$/m,
    );
    expect(readdirSync(own)).toEqual(['a.key']);
  });

  it.each([
    ['detect', (key: string) => detect(key)],
    ['scan', (key: string) => tracemark(['scan', textFile, '--spec', SPEC, '--key-file', key])],
    [
      'verify',
      (key: string) =>
        tracemark(['verify', '--store', join(dir, 'none.db'), '--key-file', key, '--spec', SPEC]),
    ],
    [
      'probe',
      (key: string) =>
        tracemark([
          'probe',
          '--endpoint',
          'http://127.0.0.1:9/v1',
          '--model',
          'm',
          '--store',
          join(dir, 'never.db'),
          '--until-alpha',
          '1e-3',
          '--key-file',
          key,
          '--spec',
          SPEC,
        ]),
    ],
  ])('%s refuses a key file others can read: exit 2, one line with the mode', (_name, run) => {
    const shared = join(dir, `shared-${_name}.key`);
    writeFileSync(shared, `${MasterKey.generate().exportHex()}\n`, { mode: 0o600 });
    for (const mode of [0o644, 0o640]) {
      chmodSync(shared, mode);
      const result = run(shared);
      expectOneLineError(
        result,
        new RegExp(
          `key file .*shared-${_name}\\.key has mode 0${mode.toString(8)}: other users can read it; chmod 600`,
        ),
      );
      expect(result.stdout).toBe('');
    }
    expect(existsSync(join(dir, 'never.db'))).toBe(false);
  });

  it('names an empty or a truncated key file in one line, without its contents', () => {
    const empty = join(dir, 'empty.key');
    writeFileSync(empty, '', { mode: 0o600 });
    expectOneLineError(detect(empty), /^tracemark: key file .*empty\.key is empty/);
    const hex = MasterKey.generate().exportHex();
    const truncated = join(dir, 'truncated.key');
    writeFileSync(truncated, `# tracemark master key\n${hex.slice(0, 30)}`, { mode: 0o600 });
    const run = detect(truncated);
    expectOneLineError(
      run,
      /^tracemark: key file .*truncated\.key is truncated \(30 of 64 hex characters\)$/m,
    );
    expect(run.stderr).not.toContain(hex.slice(0, 8));
  });

  it.each([
    ['detect', ['detect', '--spec', SPEC, '--ids', '[1,2]']],
    [
      'detect (interop spec)',
      [
        'detect',
        '--spec',
        '{"scheme":"hf-kgw","vocabSize":100,"gamma":0.25,"delta":2,"hashingKey":15485863,"seedingScheme":"lefthash"}',
        '--ids',
        '[1,2]',
      ],
    ],
    ['scan', ['scan', textFile, '--spec', SPEC]],
    ['report', ['report', '--in', join(dir, 'verify.json'), '--out', join(dir, 'out')]],
  ])('%s: --key on the command line is refused, pointing at --key-file and $TRACEMARK_KEY', (_name, args) => {
    const hex = MasterKey.generate().exportHex();
    for (const key of [['--key', hex], [`--key=${hex}`], ['--key']]) {
      const run = tracemark([...(args as string[]), ...key]);
      expectOneLineError(run, /--key is no longer accepted .*: use --key-file <file> or \$TRACEMARK_KEY$/m);
      expect(run.stderr).not.toContain(hex);
    }
  });

  it('reads the key from $TRACEMARK_KEY', () => {
    const key = MasterKey.generate();
    const run = spawnSync(process.execPath, [CLI, 'detect', '--spec', SPEC, '--ids', '[1,2,3,4]', '--json'], {
      encoding: 'utf8',
      env: { ...process.env, NO_COLOR: '1', TRACEMARK_KEY: key.exportHex() },
    });
    expect(run.status).toBe(0);
    expect(JSON.parse(run.stdout).masterFingerprint).toBe(key.fingerprint);
  });
});
