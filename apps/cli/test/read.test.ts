/**
 * `tracemark read` (reading mode) end to end, through the built CLI: an endpoint (the fake OpenAI server answering
 * echo requests in the demo server's shape), the tiny GGUF llama and the tiny ONNX model built at test time, then
 * `verify --store` on the reading store. Resume after --limit and after a kill; bad input in one line.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { EvidenceStore } from '@tracemark/evidence';
import { loadTokenizer } from '@tracemark/verifier';
import { MasterKey } from '@tracemark/watermark';
import { describe, expect, it } from 'vitest';
import { writeTinyLlama } from '../../../packages/adapter-llama-cpp/test/support/gguf';
import { writeTinyModel } from '../../../packages/adapter-transformers/test/support/tiny-model';
import { fakeServers, wordWriter } from '../../../packages/evidence/test/fake-server';
import { CLI, expectOneLineError, tracemarkAsync } from './support/cli';

const dir = mkdtempSync(join(tmpdir(), 'tracemark-read-cli-'));
const server = fakeServers();
const owner = MasterKey.parse('44'.repeat(32));
const keyFile = join(dir, 'owner.key');
writeFileSync(keyFile, `${owner.exportHex()}\n`, { mode: 0o600 });
const spec = { scheme: 'kgw', vocabSize: 200019, gamma: 0.25, delta: 2, contextWidth: 1 };
const specFile = join(dir, 'spec.json');
writeFileSync(specFile, JSON.stringify(spec));
let stores = 0;
const storePath = () => join(dir, `store-${++stores}.db`);

/** Owner texts watermarked with the owner's key (o200k word tokens), as JSON Lines. */
async function ownerTexts(count: number): Promise<{ path: string; tokens: number[][] }> {
  const write = await wordWriter({ spec, key: owner, watermark: true });
  const tokenizer = await loadTokenizer('o200k_base');
  const lines: string[] = [];
  const tokens: number[][] = [];
  for (let i = 0; i < count; i++) {
    const text = write(`owner ${i}`, 0);
    lines.push(JSON.stringify({ text }));
    tokens.push(Array.from(tokenizer.encode(text).ids));
  }
  const path = join(dir, `owner-${count}.jsonl`);
  writeFileSync(path, `${lines.join('\n')}\n`);
  return { path, tokens };
}

/** A suspect trained on the owner's outputs, at its extreme: it predicts each next token of the text. */
const radioactive = (ids: number[]) => ids.map((_, j) => (j === 0 ? null : ids[j]));

function readings(path: string): { textId: string; window: number }[] {
  const store = EvidenceStore.open(path);
  try {
    return [...store.readings()].map((r) => ({ textId: r.textId, window: r.window }));
  } finally {
    store.close();
  }
}

const verifyJson = async (store: string, specArgument = specFile) => {
  const run = await tracemarkAsync([
    'verify',
    '--store',
    store,
    '--key-file',
    keyFile,
    '--spec',
    specArgument,
    '--controls',
    '20',
    '--threads',
    '1',
    '--json',
  ]);
  expect(run.stderr).toBe('');
  expect(run.code).toBe(0);
  return JSON.parse(run.stdout);
};

describe('tracemark read --endpoint', () => {
  it('read --help prints its usage: the three sources, the texts and the store', async () => {
    const help = await tracemarkAsync(['read', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(
      /^Usage: tracemark read \(--endpoint <base URL> --model <name> \| --gguf <file> \| --onnx <dir>\)/,
    );
    for (const option of [
      '--texts <file|dir|file.jsonl>',
      '--store <evidence.db>',
      '--context <n>',
      '--limit <n>',
      '--quiet',
    ])
      expect(help.stdout).toContain(option);
  });

  it('reads every window with echo, stores each answer, and verify --store tests it in reading mode', async () => {
    const texts = await ownerTexts(8);
    const s = await server({ predict: radioactive });
    const store = storePath();
    const args = ['read', '--endpoint', s.url, '--model', 'suspect', '--texts', texts.path, '--store', store];
    const run = await tracemarkAsync([...args, '--context', '32', '--spec', specFile]);
    expect(run.stderr).toMatch(
      /^reading 8 texts with suspect at http:\/\/127\.0\.0\.1:\d+\/v1 \(o200k_base\)/,
    );
    expect(run.code).toBe(0);
    const windows = s.requests.length;
    expect(windows).toBeGreaterThan(8);
    expect(run.stdout).toMatch(
      // Every position but the first of each text (no context) has a prediction.
      new RegExp(
        `^read 8 texts: ${windows} windows, ${windows} read now \\(${texts.tokens.reduce((n, t) => n + t.length - 1, 0)} positions predicted\\)`,
      ),
    );
    const body = s.requests[0].body;
    expect(body).toEqual({
      model: 'suspect',
      prompt: texts.tokens[0].slice(0, 32),
      echo: true,
      max_tokens: 0,
      logprobs: 1,
      return_token_ids: true,
    });
    expect(readings(store)).toHaveLength(windows);

    const report = await verifyJson(store);
    expect(report.mode).toBe('read');
    expect(report.reading.texts).toBe(8);
    const positions = texts.tokens.reduce((n, t) => n + t.length, 0);
    expect(report.reading.positions).toBe(positions);
    expect(report.reading.skipped).toMatchObject({ context: 8, missing: 0 });
    expect(report.readingEvidence).toMatchObject({
      sourceKind: 'endpoint',
      context: 32,
      overlap: 16,
      windows,
    });
    expect(report.responses.sha256).toHaveLength(windows);
    expect(report.pValue).toBeLessThan(1e-6);
    expect(report.verdict.detected).toBe(true);

    const text = await tracemarkAsync([
      'verify',
      '--store',
      store,
      '--key-file',
      keyFile,
      '--spec',
      specFile,
      '--controls',
      '20',
      '--threads',
      '1',
    ]);
    expect(text.code).toBe(0);
    expect(text.stdout).toMatch(
      /^evidence {5}reading mode: the suspect's top-1 next token on 8 owner texts/m,
    );
    expect(text.stdout).toMatch(
      /^positions {4}\d+ read, \d+ scored \(not scored: 8 before the first full window \(context\), \d+ repeated windows, 0 missing/m,
    );
  });

  it('a clean suspect is not detected; missing positions are counted, never scored', async () => {
    const texts = await ownerTexts(6);
    // Predicts a fixed function of the last token (independent of the key), and answers only 20 positions per window.
    const s = await server({
      predict: (ids) => ids.map((_, j) => (j === 0 ? null : (ids[j - 1] * 31 + 7) % 200000)),
      echoPositions: 20,
    });
    const store = storePath();
    const run = await tracemarkAsync([
      'read',
      '--endpoint',
      s.url,
      '--model',
      'clean',
      '--texts',
      texts.path,
      '--store',
      store,
      '--context',
      '32',
      '--quiet',
    ]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    const report = await verifyJson(store);
    expect(report.mode).toBe('read');
    expect(report.reading.skipped.missing).toBeGreaterThan(0);
    expect(report.verdict.detected).toBe(false);
    expect(report.pValue).toBeGreaterThan(1e-3);
  });

  it('resumes after --limit and after a kill: the same rows, no duplicates', async () => {
    const texts = await ownerTexts(6);
    const s = await server({ predict: radioactive, delayMs: 60 });
    const store = storePath();
    const args = [
      'read',
      '--endpoint',
      s.url,
      '--model',
      'suspect',
      '--texts',
      texts.path,
      '--store',
      store,
      '--context',
      '16',
      '--quiet',
    ];
    const first = await tracemarkAsync([...args, '--limit', '3']);
    expect(first.code).toBe(0);
    expect(first.stdout).toMatch(/, 3 read now .*\n\d+ windows left: run the same command again/);
    expect(readings(store)).toHaveLength(3);

    // Killed mid-run (SIGKILL, no cleanup), then run again.
    const child = spawn(process.execPath, [CLI, ...args], {
      env: { ...process.env, NO_COLOR: '1' },
      stdio: 'ignore',
    });
    const deadline = Date.now() + 30_000;
    while (readings(store).length < 6 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    child.kill('SIGKILL');
    await new Promise((r) => child.on('close', r));
    const afterKill = readings(store).length;
    expect(afterKill).toBeGreaterThanOrEqual(6);

    const rest = await tracemarkAsync(args);
    expect(rest.code).toBe(0);
    const all = readings(store);
    const keys = all.map((r) => `${r.textId}#${r.window}`);
    expect(new Set(keys).size).toBe(keys.length);
    expect(rest.stdout).toMatch(
      new RegExp(
        `: ${all.length} windows, ${all.length - afterKill} read now .*, ${afterKill} already stored`,
      ),
    );
    // Every window asked for once, but for the one in flight when the kill came.
    expect(s.requests.length).toBeGreaterThanOrEqual(all.length);
    expect(s.requests.length).toBeLessThanOrEqual(all.length + 1);

    const again = await tracemarkAsync(args);
    expect(again.stdout).toMatch(/, 0 read now/);
    expect(readings(store)).toHaveLength(all.length);
    const report = await verifyJson(store);
    expect(report.readingEvidence.incompleteTexts).toBe(0);
    expect(report.readingEvidence.windows).toBe(all.length);
  });

  it('an endpoint that refuses echo or logprobs, or answers without logprobs: one line naming it, exit 2', async () => {
    const texts = await ownerTexts(2);
    const refusing = await server({
      failures: [
        {
          status: 400,
          body: JSON.stringify({
            error: { message: "'echo' is not supported", type: 'invalid_request_error', param: 'echo' },
          }),
        },
      ],
    });
    const base = ['--model', 'm', '--texts', texts.path, '--context', '32', '--quiet'];
    expectOneLineError(
      await tracemarkAsync(['read', '--endpoint', refusing.url, ...base, '--store', storePath()]),
      /the endpoint refused the reading request \(echo\): .*HTTP 400/,
    );
    const noLogprobs = await server({ echoFormat: 'none' });
    expectOneLineError(
      await tracemarkAsync(['read', '--endpoint', noLogprobs.url, ...base, '--store', storePath()]),
      /without logprobs \(sent echo: true, logprobs: 1\)/,
    );
    const textOnly = await server({ predict: radioactive, echoFormat: 'text' });
    expectOneLineError(
      await tracemarkAsync(['read', '--endpoint', textOnly.url, ...base, '--store', storePath()]),
      /names the top tokens .* by their text only/,
    );
  });

  it('bad input: one line, exit 2', async () => {
    const s = await server({ predict: radioactive });
    const bad = join(dir, 'bad.jsonl');
    writeFileSync(bad, '{"text":"fine text here"}\n{"text": oops\n');
    const endpoint = ['--endpoint', s.url, '--model', 'm'];
    expectOneLineError(
      await tracemarkAsync(['read', ...endpoint, '--texts', bad, '--store', storePath()]),
      /--texts bad\.jsonl line 2: not valid JSON/,
    );
    writeFileSync(bad, '{"tokens":[1,-2]}\n');
    expectOneLineError(
      await tracemarkAsync(['read', ...endpoint, '--texts', bad, '--store', storePath()]),
      /line 1: "tokens" must be an array of token ids/,
    );
    const texts = (await ownerTexts(2)).path;
    expectOneLineError(
      await tracemarkAsync(['read', '--texts', texts, '--store', storePath()]),
      /read needs one suspect/,
    );
    expectOneLineError(
      await tracemarkAsync([
        'read',
        ...endpoint,
        '--gguf',
        'x.gguf',
        '--texts',
        texts,
        '--store',
        storePath(),
      ]),
      /read needs one suspect/,
    );
    expectOneLineError(
      await tracemarkAsync(['read', ...endpoint, '--store', storePath()]),
      /read needs --texts/,
    );
    expectOneLineError(
      await tracemarkAsync(['read', '--endpoint', s.url, '--texts', texts, '--store', storePath()]),
      /--endpoint needs --model/,
    );
    expectOneLineError(
      await tracemarkAsync(['read', ...endpoint, '--texts', join(dir, 'none.txt'), '--store', storePath()]),
      /--texts .*none\.txt: no such file or directory/,
    );
    expectOneLineError(
      await tracemarkAsync(['read', ...endpoint, '--texts', texts, '--store', storePath(), '--context', '1']),
      /--context must be an integer from 2/,
    );
    expectOneLineError(
      await tracemarkAsync([
        'read',
        '--gguf',
        join(dir, 'missing.gguf'),
        '--texts',
        texts,
        '--store',
        storePath(),
      ]),
      /--gguf .*missing\.gguf: no such file/,
    );
    // A store of probe responses is not read into, and a reading store is not probed.
    const closed = storePath();
    const probe = EvidenceStore.open(closed, { create: true });
    probe.bindModel('m');
    probe.close();
    expectOneLineError(
      await tracemarkAsync(['read', ...endpoint, '--texts', texts, '--store', closed]),
      /holds probe responses \(closed mode\), not readings \(reading mode\): use another --store/,
    );
    const reading = storePath();
    expect(
      (await tracemarkAsync(['read', ...endpoint, '--texts', texts, '--store', reading, '--quiet'])).code,
    ).toBe(0);
    expectOneLineError(
      await tracemarkAsync(['probe', ...endpoint, '--store', reading]),
      /holds readings \(reading mode\), not probe responses/,
    );
    expectOneLineError(
      await tracemarkAsync(['read', ...endpoint, '--texts', texts, '--store', reading, '--context', '64']),
      /was read with chunk 1024, overlap 512: resume with the same settings/,
    );
  });
});

describe('tracemark read with local models', () => {
  const localTexts = join(dir, 'local-texts');
  mkdirSync(localTexts);
  writeFileSync(
    join(localTexts, 'a.txt'),
    'The owner wrote this text, and the suspect reads it token by token.',
  );
  writeFileSync(
    join(localTexts, 'b.txt'),
    'A second text, longer than one window of the read, so that it is cut in two.',
  );
  writeFileSync(join(localTexts, 'c.txt'), 'x');

  it('--gguf: the tiny llama reads the texts with its own tokenizer; verify tests the store in reading mode', async () => {
    const gguf = writeTinyLlama(join(dir, 'tiny.gguf'));
    const store = storePath();
    const tinySpec = JSON.stringify({ ...spec, vocabSize: 259 });
    const args = [
      'read',
      '--gguf',
      gguf,
      '--texts',
      localTexts,
      '--store',
      store,
      '--context',
      '48',
      '--spec',
      tinySpec,
    ];
    const run = await tracemarkAsync(args);
    expect(run.code).toBe(0);
    // 'x' is two tokens here (a space prefix and the byte): read too.
    expect(run.stdout).toMatch(/^read 3 texts: \d+ windows/);
    const rows = readings(store);
    expect(rows.length).toBeGreaterThan(2);
    const again = await tracemarkAsync(args);
    expect(again.stdout).toMatch(/, 0 read now .*, \d+ already stored/);
    expect(readings(store)).toEqual(rows);

    const report = await verifyJson(store, tinySpec);
    expect(report.mode).toBe('read');
    expect(report.readingEvidence).toMatchObject({
      sourceKind: 'gguf',
      source: gguf,
      context: 48,
      overlap: 24,
    });
    expect(report.tokenizer).toBe('gguf:tiny.gguf');
    expect(report.reading.texts).toBe(3);
    expect(report.reading.skipped.missing).toBe(0);
    expect(report.scored).toBeGreaterThan(0);
    expect(report.pValue).toBeGreaterThan(0);
    expect(report.pValue).toBeLessThanOrEqual(1);
  });

  it('--onnx: the tiny ONNX model reads the texts offline; verify tests the store in reading mode', async () => {
    const model = writeTinyModel(join(dir, 'onnx'), 'tiny-lm');
    const store = storePath();
    const tinySpec = JSON.stringify({ ...spec, vocabSize: 257 });
    const run = await tracemarkAsync([
      'read',
      '--onnx',
      model,
      '--texts',
      localTexts,
      '--store',
      store,
      '--context',
      '40',
      '--quiet',
    ]);
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(
      /^read 2 texts \(1 shorter than 2 tokens, not read\): \d+ windows, \d+ read now/,
    );
    const report = await verifyJson(store, tinySpec);
    expect(report.mode).toBe('read');
    expect(report.readingEvidence).toMatchObject({
      sourceKind: 'onnx',
      source: model,
      context: 40,
      overlap: 20,
    });
    // Byte-level: each text's positions are its UTF-8 bytes.
    const positions = ['a.txt', 'b.txt'].reduce(
      (n, f) =>
        n +
        Buffer.byteLength(
          f === 'a.txt'
            ? 'The owner wrote this text, and the suspect reads it token by token.'
            : 'A second text, longer than one window of the read, so that it is cut in two.',
        ),
      0,
    );
    expect(report.reading.positions).toBe(positions);
    expect(report.scored).toBeGreaterThan(0);
    expect(report.pValue).toBeLessThanOrEqual(1);
  });
});
