import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadTokenizer } from '@tracemark/verifier';
import { createScheme, MasterKey } from '@tracemark/watermark';
import { afterAll, describe, expect, it } from 'vitest';
import { ConfigError, readConfig } from '../src/config';
import { ChoiceRun, type ServedModel } from '../src/generate';
import { supportOf } from '../src/models';
import { loadApiToken, loadMasterKey } from '../src/secrets';
import { SupportBiasScheme } from '../src/support-bias';
import { StreamDecoder, TokenBytes } from '../src/text';
import { tempDir, testKey, testModels } from './helpers';

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe('SupportBiasScheme', () => {
  it("biases exactly as the scheme's own full-vocabulary call, from the cache too", async () => {
    const { teacher } = await testModels();
    const spec = { scheme: 'kgw', vocabSize: 200_019, gamma: 0.25, delta: 2, contextWidth: 1 };
    const plain = createScheme(spec, testKey());
    const cached = new SupportBiasScheme(createScheme(spec, testKey()), supportOf(teacher));
    const context = teacher.encode('The Queen said to the Hatter, and the');
    for (let end = 1; end <= context.length; end++) {
      for (let round = 0; round < 2; round++) {
        const sequence = context.slice(0, end);
        const a = teacher.logits(sequence);
        const b = teacher.logits(sequence);
        plain.biasLogits!(sequence, a);
        cached.biasLogits(sequence, b);
        expect(Buffer.from(b.buffer).equals(Buffer.from(a.buffer))).toBe(true);
      }
    }
    expect(cached.hits).toBeGreaterThan(0);
    expect(cached.score(context, 3)).toBe(plain.score(context, 3));
    // Detection through the wrapper is the inner scheme's: batched scores, and the keys it de-duplicates on.
    const positions = Int32Array.from(context.slice(1).map((_, j) => j + 1));
    const [viaWrapper, viaInner] = [new Float64Array(positions.length), new Float64Array(positions.length)];
    cached.scoreMany?.(Uint32Array.from(context), positions, positions.length, viaWrapper);
    plain.scoreMany?.(Uint32Array.from(context), positions, positions.length, viaInner);
    expect(Array.from(viaWrapper)).toEqual(Array.from(viaInner));
    expect(Array.from(viaInner)).toEqual(Array.from(positions, (i) => plain.score(context, i)));
    const minHash = createScheme({ ...spec, contextWidth: 3, hashing: 'min' }, testKey());
    const wrappedMin = new SupportBiasScheme(minHash, supportOf(teacher));
    const [a, b] = [new Uint32Array(2), new Uint32Array(2)];
    wrappedMin.inputKey?.(context, 5, a);
    minHash.inputKey?.(context, 5, b);
    expect(wrappedMin.inputKey).toBeDefined();
    expect(Array.from(a)).toEqual(Array.from(b));
    expect(cached.inputKey).toBeUndefined();
    expect(SupportBiasScheme.applies(createScheme({ scheme: 'gumbel', vocabSize: 200_019 }, testKey()))).toBe(
      false,
    );
    expect(SupportBiasScheme.applies(createScheme({ ...spec, hashing: 'self' }, testKey()))).toBe(false);
  });

  it('is exact for a support too large for 16-bit positions', () => {
    const spec = { scheme: 'kgw', vocabSize: 200_019, gamma: 0.25, delta: 2, contextWidth: 1 };
    const support = Int32Array.from({ length: 70_000 }, (_, i) => 2 * i);
    const plain = createScheme(spec, testKey());
    const cached = new SupportBiasScheme(createScheme(spec, testKey()), support);
    const row = () => {
      const logits = new Float32Array(200_019).fill(Number.NEGATIVE_INFINITY);
      for (const t of support) logits[t] = (t % 97) / 10;
      return logits;
    };
    for (const context of [[5], [77], [5]]) {
      const a = row();
      const b = row();
      plain.biasLogits!(context, a);
      cached.biasLogits(context, b);
      expect(Buffer.from(b.buffer).equals(Buffer.from(a.buffer))).toBe(true);
    }
    expect(cached.hits).toBe(1);
  });
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
