import { describe, expect, it } from 'vitest';
import {
  createRng,
  createScheme,
  GenerationSession,
  MasterKey,
  Sampler,
  type Scheme,
  SupportBiasScheme,
  WatermarkError,
} from '../src/index';

const key = MasterKey.parse('17'.repeat(32));
const V = 200_019;
const kgw = { scheme: 'kgw', vocabSize: V, gamma: 0.25, delta: 2, contextWidth: 1 };

/** A sorted support of `size` distinct ids in [0, vocab), drawn from a fixed seed. */
function supportOf(vocab: number, size: number, seed = 'support'): Int32Array {
  const rng = createRng(seed);
  const picked = new Set<number>();
  while (picked.size < size) picked.add(Math.floor(rng() * vocab));
  return Int32Array.from(picked).sort();
}

/** The same logits as a full row (−∞ outside the support) and as a row over the support only. */
function rowsOf(support: Int32Array, seed: string): { full: Float32Array; compact: Float32Array } {
  const rng = createRng(seed);
  const full = new Float32Array(V).fill(Number.NEGATIVE_INFINITY);
  const compact = new Float32Array(support.length);
  for (let j = 0; j < support.length; j++) {
    // Ties (a coarse grid) and −0 among the finite logits, as an n-gram row has them.
    const x = rng() < 0.05 ? -0 : Math.round(24 * rng()) / 4 - 3;
    compact[j] = x;
    full[support[j]] = x;
  }
  return { full, compact };
}

function errorCode(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (error) {
    if (error instanceof WatermarkError) return error.code;
    throw error;
  }
  return undefined;
}

describe('Sampler.select over a support', () => {
  it('gives the full row’s candidates, in the same order, with the same logits', () => {
    const support = supportOf(V, 5_000);
    const samplings = [
      { temperature: 1 },
      { temperature: 0.7 },
      { temperature: 0 },
      { temperature: 1, topP: 0.9 },
      { temperature: 0.7, topP: 0.5 },
      { temperature: 1.3, topK: 40 },
      { temperature: 1, topK: 10_000 },
      { temperature: 1, topK: 300, topP: 0.8 },
    ];
    for (const sampling of samplings) {
      for (let r = 0; r < 3; r++) {
        const { full, compact } = rowsOf(support, `select ${r}`);
        const a = new Sampler(V, sampling).select(full);
        const expected = {
          count: a.count,
          logits: Array.from(a.logits.subarray(0, a.count)),
          ids: a.ids === null ? null : Array.from(a.ids.subarray(0, a.count)),
        };
        const b = new Sampler(V, sampling).select(compact, support, support.length);
        const ids = Array.from((b.ids ?? new Int32Array(0)).subarray(0, b.count));
        const logits = Array.from(b.logits.subarray(0, b.count));
        expect(b.count).toBeLessThanOrEqual(support.length);
        if (expected.ids === null) {
          // The whole vocabulary: the support's entries of it, in id order.
          expect(ids).toEqual(Array.from(support));
          expect(logits).toEqual(Array.from(support, (t) => expected.logits[t]));
        } else {
          expect(ids).toEqual(expected.ids);
          expect(logits).toEqual(expected.logits);
        }
      }
    }
  });
});

describe('SupportBiasScheme over a support row', () => {
  it('adds the same bits as over the full row, with and without an account, 16- and 32-bit positions', () => {
    for (const size of [31_480, 70_000]) {
      const support = supportOf(V, size, `bias ${size}`);
      const wrapper = new SupportBiasScheme(createScheme({ ...kgw, accountDelta: 1.5 }, key), support);
      const copy = Int32Array.from(support);
      for (const scheme of [wrapper, wrapper.forAccount('acct-a')]) {
        for (const sequence of [[support[3]], [support[3], support[9]], [support[9], support[9]]]) {
          const { full, compact } = rowsOf(support, `bias ${sequence.join()}`);
          const viaCopy = Float32Array.from(compact);
          scheme.biasLogits(sequence, full);
          scheme.biasLogits(sequence, compact, support, support.length);
          // A different array holding the same tokens takes the same path.
          scheme.biasLogits(sequence, viaCopy, copy, copy.length);
          const expected = Float32Array.from(support, (t) => full[t]);
          expect(Buffer.from(compact.buffer).equals(Buffer.from(expected.buffer))).toBe(true);
          expect(Buffer.from(viaCopy.buffer).equals(Buffer.from(expected.buffer))).toBe(true);
        }
      }
    }
  });
});

describe('GenerationSession.nextOverSupport', () => {
  const specs: Record<string, unknown>[] = [
    kgw,
    { ...kgw, accountDelta: 1.5 },
    { scheme: 'gumbel', vocabSize: V, contextWidth: 1 },
    { scheme: 'gumbel', vocabSize: V, contextWidth: 1, softness: 0.4 },
    { scheme: 'synthid', vocabSize: V, contextWidth: 2 },
  ];

  const rowCache = new Map<Int32Array, ReturnType<typeof rowsOf>[]>();
  const stepRows = (support: Int32Array) => {
    let rows = rowCache.get(support);
    if (rows === undefined) {
      rows = Array.from({ length: 7 }, (_, i) => rowsOf(support, `step ${i}`));
      rowCache.set(support, rows);
    }
    return rows;
  };

  function generate(
    scheme: Scheme,
    support: Int32Array,
    sampling: { temperature: number; topP?: number },
    compactRows: boolean,
    watermark = true,
  ): { tokens: number[]; watermarked: number } {
    const session = new GenerationSession(scheme, {
      prompt: [support[0], support[1]],
      seed: 'same seed',
      sampling,
      watermark,
    });
    for (let step = 0; step < 40; step++) {
      // Few distinct rows, so contexts repeat (chooser schemes skip a repeated context); copies, as bias is in place.
      const rows = stepRows(support)[step % 7];
      // The per-step check of the row is optional for a caller's own rows: the same tokens either way.
      if (compactRows)
        session.nextOverSupport(support, Float32Array.from(rows.compact), { validate: step % 2 === 0 });
      else session.next(Float32Array.from(rows.full));
    }
    return { tokens: session.generated, watermarked: session.watermarkedSteps };
  }

  it('draws the same tokens as `next` on the full row, for logit-bias and chooser schemes', () => {
    const support = supportOf(V, 3_000, 'session');
    for (const spec of specs) {
      const schemes: Scheme[] = [createScheme(spec, key)];
      if (SupportBiasScheme.applies(schemes[0]))
        schemes.push(new SupportBiasScheme(createScheme(spec, key), support));
      for (const scheme of schemes) {
        for (const sampling of [
          { temperature: 1 },
          { temperature: 0.7, topP: 0.9 },
          { temperature: 0 },
          { temperature: 1.2, topP: 0.5 },
        ]) {
          // Without the watermark the path is the same for every scheme: once per sampling is enough.
          for (const watermark of scheme === schemes[0] && spec === specs[0] ? [true, false] : [true]) {
            const full = generate(scheme, support, sampling, false, watermark);
            const compact = generate(scheme, support, sampling, true, watermark);
            expect(compact).toEqual(full);
            expect(new Set(full.tokens).size).toBeGreaterThan(sampling.temperature === 0 ? 0 : 3);
          }
        }
      }
    }
  });

  it('rejects a bad support or bad logits with a one-line error', () => {
    const scheme = createScheme(kgw, key);
    const session = () => new GenerationSession(scheme, { prompt: [1, 2], seed: 1 });
    const row = new Float32Array([0.5, 1, -1]);
    expect(errorCode(() => session().nextOverSupport(Int32Array.of(3, 2, 9), row))).toBe('E_TOKEN_RANGE');
    expect(errorCode(() => session().nextOverSupport(Int32Array.of(3, 4, V), row))).toBe('E_TOKEN_RANGE');
    expect(errorCode(() => session().nextOverSupport(new Int32Array(0), row))).toBe('E_NO_CANDIDATES');
    const support = Int32Array.of(3, 4, 9);
    expect(errorCode(() => session().nextOverSupport(support, new Float32Array(2)))).toBe('E_LOGITS_LENGTH');
    expect(errorCode(() => session().nextOverSupport(support, Float32Array.of(0, Number.NaN, 1)))).toBe(
      'E_NONFINITE_LOGITS',
    );
    expect(
      errorCode(() => session().nextOverSupport(support, Float32Array.of(0, Number.POSITIVE_INFINITY, 1))),
    ).toBe('E_NONFINITE_LOGITS');
    const masked = new Float32Array(3).fill(Number.NEGATIVE_INFINITY);
    expect(errorCode(() => session().nextOverSupport(support, masked))).toBe('E_NO_CANDIDATES');
    const ok = session();
    expect([3, 4, 9]).toContain(ok.nextOverSupport(support, Float32Array.of(0, 1, -2)));
    expect(ok.generated.length).toBe(1);
  });
});
