import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadTokenizer } from '@tracemark/verifier';
import { createScheme, MasterKey } from '@tracemark/watermark';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, readConfig } from '../src/config';
import { ChoiceRun, type ServedModel } from '../src/generate';
import { loadApiToken, loadMasterKey } from '../src/secrets';
import { StreamDecoder, TokenBytes } from '../src/text';
import { tempDir, testKey, testModels } from './helpers';

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe('incremental decoding', () => {
  it('emits a character split across tokens only once it is complete', async () => {
    const tokenizer = await loadTokenizer('o200k_base');
    const ids = Array.from(tokenizer.encodeIds!('a 𝕏 b 🦜'));
    const decoder = new StreamDecoder(new TokenBytes(tokenizer));
    const pieces = ids.map((id) => decoder.push(id));
    expect(pieces.join('')).toBe('a 𝕏 b 🦜');
    expect(pieces.every((p) => !p.includes('\uFFFD'))).toBe(true);
    expect(pieces.filter((p) => p === '').length).toBeGreaterThan(0);
  });
});

describe('ChoiceRun', () => {
  it('holds back text that may start a stop sequence, and cuts at it', async () => {
    const { teacher } = await testModels();
    const tokenizer = await loadTokenizer('o200k_base');
    const scheme = createScheme({ scheme: 'kgw', vocabSize: 200_019 }, testKey());
    const model: ServedModel = {
      id: 'm',
      role: 'teacher-plain',
      description: '',
      ngram: teacher,
      scheme,
      watermarked: false,
      created: 0,
    };
    const bytes = new TokenBytes(tokenizer);
    const options = {
      model,
      prompt: teacher.encode('The Queen'),
      maxTokens: 40,
      temperature: 0,
      topP: 1,
      seed: '1',
      logprobs: null,
      bytes,
    };
    const free = new ChoiceRun({ ...options, stop: [] }, new Float32Array(200_019));
    while (!free.done) free.step();
    const text = free.take().text;
    const stop = text.slice(10, 14);
    const run = new ChoiceRun({ ...options, stop: [stop] }, new Float32Array(200_019));
    let streamed = '';
    while (!run.done) {
      run.step();
      const piece = run.take().text;
      streamed += piece;
      expect(streamed.includes(stop)).toBe(false);
    }
    streamed += run.take().text;
    expect(run.finishReason).toBe('stop');
    expect(streamed).toBe(text.slice(0, text.indexOf(stop)));
  });
});

describe('configuration and secrets', () => {
  it('reads the environment, with defaults and one-line errors', () => {
    const config = readConfig({});
    expect(config.host).toBe('127.0.0.1');
    expect(config.port).toBe(3000);
    expect(config.dataDir.endsWith('.tracemark')).toBe(true);
    expect(config.spec).toMatchObject({ scheme: 'kgw', gamma: 0.25, delta: 2, contextWidth: 1 });
    expect(() => readConfig({ PORT: 'eighty' })).toThrow(ConfigError);
    expect(() => readConfig({ TRACEMARK_SPEC: '{"scheme":"nope"}' })).toThrow(/TRACEMARK_SPEC/);
    expect(() => readConfig({ TRACEMARK_API_TOKEN: 'short' })).toThrow(/16 characters/);
  });

  it('generates the key with mode 0600 once, then reads it; env and key file take precedence', () => {
    const dir = tempDir();
    dirs.push(dir);
    const first = loadMasterKey({ dataDir: dir });
    expect(first.generated).toBe(true);
    expect(statSync(join(dir, 'master.key')).mode & 0o777).toBe(0o600);
    const again = loadMasterKey({ dataDir: dir });
    expect(again.generated).toBe(false);
    expect(again.key.equals(first.key)).toBe(true);
    const other = MasterKey.parse('31'.repeat(32));
    expect(loadMasterKey({ dataDir: dir, keyText: other.exportHex() }).key.equals(other)).toBe(true);
    const file = join(dir, 'other.key');
    writeFileSync(file, `# comment\n${other.exportBase64()}\n`, { mode: 0o600 });
    expect(loadMasterKey({ dataDir: dir, keyFile: file }).key.equals(other)).toBe(true);
    const secretish = 'ab'.repeat(31);
    let message = '';
    try {
      loadMasterKey({ dataDir: dir, keyText: secretish });
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/TRACEMARK_KEY/);
    expect(message).not.toContain(secretish);
    expect(() => loadMasterKey({ dataDir: dir, keyFile: join(dir, 'missing.key') })).toThrow(ConfigError);
  });

  it('generates the API token into the data directory with mode 0600', () => {
    const dir = tempDir();
    dirs.push(dir);
    const token = loadApiToken({ dataDir: dir });
    expect(token.generated).toBe(true);
    expect(token.token.length).toBeGreaterThan(40);
    expect(readFileSync(token.file!, 'utf8').trim()).toBe(token.token);
    expect(statSync(token.file!).mode & 0o777).toBe(0o600);
    expect(loadApiToken({ dataDir: dir }).token).toBe(token.token);
    expect(loadApiToken({ dataDir: dir, apiToken: 'from-the-environment-1234' }).file).toBeUndefined();
  });
});
