import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { fakeServers } from '../../../packages/evidence/test/fake-server';
import { expectOneLineError, tracemark, tracemarkAsync } from './support/cli';

/** Fake OpenAI servers, closed after the file's tests. */
const server = fakeServers();

const dir = mkdtempSync(join(tmpdir(), 'tracemark-eval-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('tracemark eval --quick (the CI run of the harness)', () => {
  it('writes results.json, summary.md and the figures, for every scheme and attack', () => {
    const out = join(dir, 'quick');
    const run = tracemark(['eval', '--quick', '--out', out], undefined, 300_000);
    expect(run.stderr).not.toMatch(/tracemark: /);
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(/^wrote 6 files to /);
    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
    const schemes = results.schemes.map((s: { name: string }) => s.name);
    expect(schemes).toEqual([
      'kgw-h1',
      'kgw-selfhash',
      'unigram',
      'gumbel',
      'gumbel-argmax',
      'synthid',
      'hf-kgw',
      'exp-edit',
    ]);
    for (const row of results.rows) {
      expect(Object.keys(row)).toEqual(
        expect.arrayContaining([
          'scheme',
          'attack',
          'strength',
          'length',
          'alpha',
          'tpr',
          'fpr',
          'texts',
          'test',
        ]),
      );
      expect(row.falsePositives).toBeLessThanOrEqual(row.falsePositiveLimit);
    }
    // Every scheme, attack and length has a whole-text row (EXP-edit: the token edits only, not copy-paste);
    // every scheme but EXP-edit a window row too.
    const attacks = results.config.attacks.length;
    const lengths = results.config.lengths.length;
    expect(results.rows.filter((r: { test: string }) => r.test === 'text')).toHaveLength(
      7 * attacks * lengths + (attacks - 1) * lengths,
    );
    expect(
      results.rows.filter(
        (r: { scheme: string; attack: string }) => r.scheme === 'exp-edit' && r.attack === 'copypaste-0.25',
      ),
    ).toHaveLength(0);
    expect(results.rows.filter((r: { test: string }) => r.test === 'window')).toHaveLength(
      7 * attacks * lengths,
    );
    expect(results.quality.map((q: { scheme: string }) => q.scheme)).toEqual(['plain', ...schemes]);
    for (const q of results.quality) {
      for (const field of [
        'perplexityRatio',
        'independentPerplexityRatio',
        'distinct2',
        'crossRequestRepeat',
        'identicalSamples',
      ])
        expect(Number.isFinite(q[field])).toBe(true);
    }
    expect(results.models.caveat).toMatch(/not LLMs/);
    const summary = readFileSync(join(out, 'summary.md'), 'utf8');
    expect(summary).toMatch(/## Detectability/);
    expect(summary).toMatch(/not LLMs/);
    for (const svg of ['tpr-vs-length.svg', 'robustness-25.svg', 'robustness-50.svg', 'roc.svg'])
      expect(readFileSync(join(out, svg), 'utf8')).toMatch(/^<svg[^>]*>[\s\S]*<\/svg>\s*$/);
  });

  it('rejects bad options with one line and exit code 2, writing nothing', () => {
    const out = join(dir, 'never');
    expectOneLineError(
      tracemark(['eval', '--quick', '--attacks', 'foo-0.1', '--out', out]),
      /attack "foo-0.1"/,
    );
    expectOneLineError(
      tracemark(['eval', '--quick', '--attacks', 'sub-1.5', '--out', out]),
      /strength in \(0, 1\)/,
    );
    expectOneLineError(
      tracemark(['eval', '--quick', '--alpha', '2', '--out', out]),
      /--alpha must be a number in \(0, 1\)/,
    );
    expectOneLineError(
      tracemark(['eval', '--quick', '--schemes', 'kgw-h9', '--out', out]),
      /unknown scheme "kgw-h9"/,
    );
    expectOneLineError(
      tracemark(['eval', '--quick', '--lengths', '25,x', '--out', out]),
      /--lengths values must be an integer/,
    );
    const file = join(dir, 'a-file');
    writeFileSync(file, 'x');
    expectOneLineError(tracemark(['eval', '--quick', '--out', file]), /exists and is not a directory/);
    expectOneLineError(
      tracemark(['eval', '--quick', '--corpus', join(dir, 'missing'), '--out', out]),
      /missing/,
    );
  });

  it('runs the rewrite attack through an OpenAI-compatible endpoint, with the key from the environment', async () => {
    const SECRET = 'sk-test-rewrite-0123456789SECRET';
    // A "rewrite" that keeps nothing of the text: the watermark must be gone, and the plain arm stays plain.
    const endpoint = await server({
      apiKey: SECRET,
      reply: () => 'The rain in Spain falls mainly on the plain, and the wind blows where it will.',
    });
    const out = join(dir, 'rewrite');
    const run = await tracemarkAsync(
      [
        'eval',
        '--quick',
        '--schemes',
        'kgw-h1',
        '--attacks',
        'none,rewrite',
        '--lengths',
        '50',
        '--texts',
        '8',
        '--rewrite-endpoint',
        endpoint.url,
        '--rewrite-model',
        'rewriter',
        '--api-key-env',
        'REWRITE_KEY',
        '--out',
        out,
        '--quiet',
      ],
      { REWRITE_KEY: SECRET },
    );
    expect(run.stderr).toBe('');
    expect(run.code).toBe(0);
    // 8 watermarked and 8 plain texts, one length: 16 requests, each with the instruction and the text.
    expect(endpoint.requests).toHaveLength(16);
    for (const request of endpoint.requests) {
      expect(request.authorization).toBe(`Bearer ${SECRET}`);
      const messages = request.body.messages as { content: string }[];
      expect(messages.at(-1)?.content).toMatch(/^Rewrite the following text in your own words/);
    }
    const results = JSON.parse(readFileSync(join(out, 'results.json'), 'utf8'));
    const row = (attack: string) =>
      results.rows.find((r: { attack: string; test: string }) => r.attack === attack && r.test === 'text');
    expect(row('none').tpr).toBeGreaterThan(0.5);
    expect(row('rewrite').tpr).toBe(0);
    expect(row('rewrite').editRate).toBeGreaterThan(0.5);
    expect(results.rewriter).toMatch(/^rewriter at /);
    for (const file of ['results.json', 'summary.md'])
      expect(readFileSync(join(out, file), 'utf8')).not.toContain(SECRET);
  });

  it('refuses the rewrite attack without an endpoint', () => {
    expectOneLineError(
      tracemark(['eval', '--quick', '--attacks', 'none,rewrite', '--out', join(dir, 'never')]),
      /the rewrite attack needs an endpoint/,
    );
  });
});
