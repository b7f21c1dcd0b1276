import {
  ContextPrf,
  canonicalSpec,
  createRng,
  createScheme,
  MasterKey,
  SchemeKey,
} from '@tracemark/watermark';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { CountedTape, controlMasterKey, type SuspectSample } from '../src/index';
import { type Job, scoreBatch, scoreKeys, scoreTape } from '../src/multikey';
import { SIMD_KEYS, SimdGroupScorer } from '../src/multikey-simd';

const owner = MasterKey.parse('3c'.repeat(32));
const masters = [owner, controlMasterKey(owner)];
// An odd count: the last key of the grouped path is paired with itself.
const requests = [
  { master: 0 },
  { master: 0, tenant: 'acme' },
  { master: 1, tenant: 'control-0' },
  { master: 0, tenant: 'beta' },
  { master: 1, tenant: 'control-1' },
];

/** Text over `vocab` ids, skewed so that some contexts are frequent and their tokens share 32-token blocks. */
function samples(seed: string, vocab: number): SuspectSample[] {
  const rng = createRng(seed);
  const word = () => (rng() < 0.5 ? Math.floor(rng() * 64) : Math.floor(rng() * vocab));
  return Array.from({ length: 40 }, () => ({
    prompt: Array.from({ length: 8 }, word),
    output: Array.from({ length: 120 }, word),
  }));
}

/** The job scoreKeys gives its pool: the tape in (context, token) order. */
function jobOf(tape: CountedTape, spec: object): Job {
  const order = Array.from({ length: tape.length }, (_, j) => j).sort(
    (a, b) => tape.ids[2 * a] - tape.ids[2 * b] || tape.ids[2 * a + 1] - tape.ids[2 * b + 1],
  );
  return {
    ids: Uint32Array.from(order.flatMap((j) => [tape.ids[2 * j], tape.ids[2 * j + 1]])),
    stride: 2,
    contextWidth: 1,
    spec,
    masters: masters.map((m) => m.exportHex()),
    requests,
  };
}

/** Each key's sum by the scheme's own `score` at every position. */
function expectedSums(job: Job, spec: object): number[] {
  return requests.map((r) =>
    scoreTape(
      job.ids,
      2,
      1,
      createScheme(spec, masters[r.master], r.tenant === undefined ? {} : { tenant: r.tenant }),
    ),
  );
}

afterEach(() => {
  vi.restoreAllMocks();
});

describe('scoreBatch, grouped KGW h = 1 path', () => {
  it('has WebAssembly SIMD here, and its SipHash seeds are ContextPrf.seedTokens bit for bit', () => {
    const none = new Int32Array(0);
    const groups = {
      singleContext: none,
      singleToken: none,
      multiContext: none,
      multiBase: none,
      multiMask: none,
    };
    const rng = createRng('seeds');
    const vocab = 1 << 24;
    const contexts = Uint32Array.from([
      0,
      1,
      31,
      32,
      65_535,
      200_018,
      vocab - 1,
      ...Array.from({ length: 500 }, () => Math.floor(rng() * vocab)),
    ]);
    const scorer = SimdGroupScorer.create({ ...groups, contexts }, Int32Array.of(-1, 0));
    expect(scorer).toBeDefined();
    const spec = canonicalSpec({ scheme: 'kgw', vocabSize: vocab, gamma: 0.25, contextWidth: 1 });
    for (const [lane, key] of [
      new SchemeKey(owner, spec),
      new SchemeKey(owner, spec, 'acme'),
      new SchemeKey(masters[1], spec, 'control-0'),
      new SchemeKey(MasterKey.parse('ff'.repeat(32)), spec),
      new SchemeKey(MasterKey.parse('00'.repeat(32)), spec, 'beta'),
    ].entries()) {
      const table = scorer?.seed(lane % SIMD_KEYS, key.prfKeyBytes());
      const simd = { lo: new Int32Array(contexts.length), hi: new Int32Array(contexts.length) };
      for (let c = 0; c < contexts.length && table !== undefined; c++) {
        simd.lo[c] = table.lo[table.offset + table.stride * c];
        simd.hi[c] = table.hi[table.offset + table.stride * c];
      }
      const js = { lo: new Int32Array(contexts.length), hi: new Int32Array(contexts.length) };
      new ContextPrf(key, vocab, 1, 'left').seedTokens(contexts, js.lo, js.hi);
      expect(simd).toEqual(js);
      expect(new Set(simd.lo).size).toBe(contexts.length);
    }
  });

  it('gives every key the sum of its scheme scores, for γ of every bit pattern, left and min hashing', () => {
    // The seeding of each path: four keys per pass in SIMD, two in JavaScript.
    const seeding = {
      simd: vi.spyOn(SimdGroupScorer.prototype, 'seed'),
      js: vi.spyOn(ContextPrf.prototype, 'seedTokens'),
    };
    for (const vocab of [2000, 200_019]) {
      const text = samples(`v${vocab}`, vocab);
      for (const gamma of [0.25, 0.5, 0.3, 0.1, 1 / 3, 0.75, 0.9]) {
        for (const hashing of ['left', 'min']) {
          const spec = { scheme: 'kgw', vocabSize: vocab, gamma, contextWidth: 1, hashing };
          const tape = new CountedTape({ scheme: createScheme(spec, owner) });
          for (const sample of text) tape.add(sample);
          const job = jobOf(tape, spec);
          const expected = expectedSums(job, spec);
          // SIMD (the default here) and the JavaScript reference, for each count of keys (odd ones included).
          for (const simd of [true, false]) {
            for (const keyCount of [1, 3, requests.length]) {
              seeding.simd.mockClear();
              seeding.js.mockClear();
              const sums = scoreBatch({ ...job, requests: requests.slice(0, keyCount) }, { simd });
              // The grouped path ran (one batch seeding per key) and its self-check did not fall back.
              expect(seeding.simd).toHaveBeenCalledTimes(simd ? keyCount : 0);
              expect(seeding.js).toHaveBeenCalledTimes(simd ? 0 : keyCount);
              expect(sums).toEqual(expected.slice(0, keyCount));
            }
          }
          expect(new Set(expected).size).toBeGreaterThan(1);
        }
      }
    }
  });

  it('counts every occurrence of a repeated (context, token) pair on a tape without de-duplication', () => {
    const seeding = {
      simd: vi.spyOn(SimdGroupScorer.prototype, 'seed'),
      js: vi.spyOn(ContextPrf.prototype, 'seedTokens'),
    };
    const spec = { scheme: 'kgw', vocabSize: 500, gamma: 0.25, contextWidth: 1 };
    const tape = new CountedTape({ scheme: createScheme(spec, owner), dedup: false });
    for (const sample of samples('repeats', 500)) tape.add(sample);
    const job = jobOf(tape, spec);
    const pairs = new Set(
      Array.from({ length: tape.length }, (_, j) => `${job.ids[2 * j]},${job.ids[2 * j + 1]}`),
    );
    expect(pairs.size).toBeLessThan(tape.length);
    for (const simd of [true, false]) {
      seeding.simd.mockClear();
      seeding.js.mockClear();
      expect(scoreBatch(job, { simd })).toEqual(expectedSums(job, spec));
      // On the grouped path, not the fallback.
      expect(simd ? seeding.simd : seeding.js).toHaveBeenCalledTimes(requests.length);
    }
  });

  it('falls back to the scheme scores from the first key whose seeds disagree with the scheme', () => {
    const spec = { scheme: 'kgw', vocabSize: 2000, gamma: 0.25, contextWidth: 1 };
    const tape = new CountedTape({ scheme: createScheme(spec, owner) });
    for (const sample of samples('fallback', 2000)) tape.add(sample);
    const job = jobOf(tape, spec);
    const expected = expectedSums(job, spec);
    const real = { js: ContextPrf.prototype.seedTokens, simd: SimdGroupScorer.prototype.seed };
    for (const broken of [0, 2, 4]) {
      // JavaScript: the broken key's seeds are flipped; SIMD: it is seeded under a flipped SipHash key.
      let call = 0;
      const seeding = vi.spyOn(ContextPrf.prototype, 'seedTokens').mockImplementation(function (
        this: ContextPrf,
        tokens,
        lo,
        hi,
      ) {
        real.js.call(this, tokens, lo, hi);
        if (call++ === broken) for (let c = 0; c < lo.length; c++) lo[c] ^= 1 << 20;
      });
      expect(scoreBatch(job, { simd: false })).toEqual(expected);
      // Keys are seeded two at a time: the pair of the broken key is the last one seeded.
      expect(seeding).toHaveBeenCalledTimes(Math.min(requests.length, broken - (broken % 2) + 2));
      let simdCall = 0;
      const simdSeeding = vi.spyOn(SimdGroupScorer.prototype, 'seed').mockImplementation(function (
        this: SimdGroupScorer,
        lane,
        key,
      ) {
        const used = simdCall++ === broken ? key.map((b, i) => (i === 3 ? b ^ 1 : b)) : key;
        return real.simd.call(this, lane, used);
      });
      expect(scoreBatch(job)).toEqual(expected);
      // Four at a time: the pass of the broken key is the last one seeded.
      expect(simdSeeding).toHaveBeenCalledTimes(
        Math.min(requests.length, broken - (broken % SIMD_KEYS) + SIMD_KEYS),
      );
      vi.restoreAllMocks();
    }
  });

  it('scores the tape of scoreKeys exactly as the schemes do, in this thread', async () => {
    const spec = { scheme: 'kgw', vocabSize: 200_019, gamma: 0.3, contextWidth: 1 };
    const tape = new CountedTape({ scheme: createScheme(spec, owner) });
    for (const sample of samples('keys', 200_019)) tape.add(sample);
    const { sums, threads } = await scoreKeys(tape, spec, masters, requests, { threads: 1 });
    expect(threads).toBe(1);
    expect(sums).toEqual(
      requests.map((r) =>
        tape.scoreSum(
          createScheme(spec, masters[r.master], r.tenant === undefined ? {} : { tenant: r.tenant }),
        ),
      ),
    );
  });
});
