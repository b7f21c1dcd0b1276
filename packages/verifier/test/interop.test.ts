import {
  createInteropScheme,
  createRng,
  GenerationSession,
  type HfKgwScheme,
  type LmwKgwScheme,
  type Scheme,
} from '@tracemark/watermark';
import { describe, expect, it } from 'vitest';
import { detectTokens } from '../src/detect';
import {
  detectInterop,
  type HfKgwInteropDetection,
  type LmwKgwInteropDetection,
  type SynthIdInteropDetection,
} from '../src/interop';
import { binomialUpperTail } from '../src/stats/index';
import vectors from './fixtures/interop.json';

function closeRel(actual: number, expected: number, tolerance = 1e-9): void {
  if (expected === 0) expect(actual).toBe(0);
  else expect(Math.abs(actual - expected)).toBeLessThanOrEqual(tolerance * Math.abs(expected));
}

describe('detectInterop against the reference detectors', () => {
  it.each(vectors.hfKgw.detections)(
    'hf-kgw: $kind text, $config.seedingScheme, V=$config.vocabSize',
    (vector) => {
      const d = detectInterop(vector.ids, { scheme: 'hf-kgw', ...vector.config }) as HfKgwInteropDetection;
      expect(d.scheme).toBe('hf-kgw');
      expect(d.numTokensScored).toBe(vector.numTokensScored);
      expect(d.numGreenTokens).toBe(vector.numGreenTokens);
      closeRel(d.zScore, vector.zScore);
      closeRel(d.hfPValue, vector.hfPValue);
      const g = Math.trunc(vector.config.vocabSize * vector.config.greenlistRatio);
      expect(d.nullGreenProbability).toBe(g / vector.config.vocabSize);
      expect(d.pValue).toBe(
        binomialUpperTail(d.numGreenTokens, d.numTokensScored, g / vector.config.vocabSize).p,
      );
      if (vector.kind === 'watermarked') expect(d.log10PValue).toBeLessThan(-8);
      else expect(d.pValue).toBeGreaterThan(0.01);
    },
  );

  it.each(vectors.lmw.detections)(
    'lmw-kgw: $seedingScheme, ignoreRepeatedNgrams $ignoreRepeatedNgrams',
    (vector) => {
      const { ids, numTokensScored, numGreenTokens, zScore, pValue, greenTokenMask, ...config } = vector;
      const d = detectInterop(ids, { scheme: 'lmw-kgw', ...config }) as LmwKgwInteropDetection;
      expect(d.numTokensScored).toBe(numTokensScored);
      expect(d.numGreenTokens).toBe(numGreenTokens);
      closeRel(d.zScore, zScore);
      // lm-watermarking reports scipy.stats.norm.sf(z): lmwPValue; pValue is tracemark's exact tail.
      closeRel(d.lmwPValue, pValue);
      expect(d.greenTokenMask).toEqual(greenTokenMask);
      expect(d.pValue).toBe(binomialUpperTail(numGreenTokens, numTokensScored, d.nullGreenProbability).p);
    },
  );

  it.each(vectors.lmw.windows)(
    'lmw-kgw WinMax: windowSize "$windowSize"',
    ({ ids, seedingScheme, gamma, windowSize, bestWindow, zScore, pValue }) => {
      // The window vectors share the detection vectors' 50257-token vocabulary.
      const d = detectInterop(ids, {
        scheme: 'lmw-kgw',
        vocabSize: 50257,
        seedingScheme,
        gamma,
        windowSize,
      }) as LmwKgwInteropDetection;
      expect(d.bestWindow).toBe(bestWindow);
      expect(d.numTokensScored).toBe(bestWindow);
      closeRel(d.zScore, zScore);
      closeRel(d.lmwPValue, pValue);
      expect(d.windowsTried).toBeGreaterThan(0);
      expect(d.correctedPValue).toBeGreaterThanOrEqual(d.pValue);
    },
  );

  it.each(vectors.synthid)('$variant: masks, mean and weighted mean', (vector) => {
    const { variant, ids, gValues, mask, mean, weightedMean, ...config } = vector;
    const d = detectInterop(ids, { scheme: variant, ...config }) as SynthIdInteropDetection;
    expect(d.scheme).toBe(variant);
    expect(d.mask).toEqual(mask);
    closeRel(d.mean, mean);
    closeRel(d.weightedMean, weightedMean);
    const scored = mask.reduce((a, b) => a + b, 0);
    expect(d.numTokensScored).toBe(scored);
    const sum = gValues.reduce((acc, row, r) => acc + (mask[r] ? row.reduce((a, b) => a + b, 0) : 0), 0);
    expect(d.gValueSum).toBe(sum);
    expect(d.gValueCount).toBe(scored * config.keys.length);
    expect(d.nullGValueProbability).toBe(variant === 'hf-synthid' ? 32743 / 65536 : 0.5);
    expect(d.pValue).toBe(binomialUpperTail(sum, scored * config.keys.length, d.nullGValueProbability).p);
  });

  it('accepts the CLI contract specs and fails with one clear line', () => {
    const ids = vectors.hfKgw.detections[0].ids;
    const lefthash = {
      scheme: 'hf-kgw',
      vocabSize: 50257,
      seedingScheme: 'lefthash',
      contextWidth: 1,
      hashingKey: 15485863,
      greenlistRatio: 0.25,
    };
    expect(detectInterop(ids, lefthash).numTokensScored).toBe(119);
    expect(detectInterop(ids, JSON.stringify(lefthash)).numTokensScored).toBe(119);
    expect(
      detectInterop(ids, {
        scheme: 'lmw-kgw',
        vocabSize: 50257,
        gamma: 0.25,
        seedingScheme: 'selfhash',
        ignoreRepeatedNgrams: true,
      }).scheme,
    ).toBe('lmw-kgw');
    const synthid = {
      scheme: 'synthid-text',
      keys: [654, 400, 836],
      ngramLen: 5,
      samplingTableSize: 65536,
      samplingTableSeed: 0,
      contextHistorySize: 1024,
      eosTokenId: 1,
    };
    expect(detectInterop(ids, synthid).numTokensScored).toBeGreaterThan(100);
    const errors: [unknown, ArrayLike<number>, string][] = [
      [{ scheme: 'kgw-hf', vocabSize: 10 }, ids, 'E_UNKNOWN_SCHEME'],
      [{ vocabSize: 10 }, ids, 'E_UNKNOWN_SCHEME'],
      [{ scheme: 'hf-kgw', vocabSize: 50257, greenlistRatio: 2 }, ids, 'E_INVALID_SPEC'],
      ['not json', ids, 'E_INVALID_SPEC'],
      [lefthash, [1, 2, -3], 'E_TOKEN_RANGE'],
      [lefthash, [1, 2, 1.5], 'E_TOKEN_RANGE'],
      [lefthash, [1, 2, 60000], 'E_TOKEN_RANGE'],
    ];
    for (const [spec, tokens, code] of errors) {
      let caught: unknown;
      try {
        detectInterop(tokens, spec);
      } catch (error) {
        caught = error;
      }
      expect(caught).toMatchObject({ name: 'WatermarkError', code });
      expect(String((caught as Error).message)).not.toContain('\n');
    }
  });
});

/** A synthetic model: i.i.d. Gaussian logits (σ = 3) per step, from a seeded stream. */
function syntheticLogits(vocabSize: number, seed: string): () => Float32Array {
  const u = createRng(seed);
  return () => {
    const logits = new Float32Array(vocabSize);
    for (let i = 0; i < vocabSize; i++)
      logits[i] = 3 * Math.sqrt(-2 * Math.log(1 - u())) * Math.cos(2 * Math.PI * u());
    return logits;
  };
}

function generate(scheme: Scheme, steps: number, watermark: boolean): number[] {
  const next = syntheticLogits(scheme.vocabSize, 'interop-model');
  const session = new GenerationSession(scheme, {
    prompt: [17, 4, 250, 9],
    seed: 'interop-sampling',
    watermark,
  });
  for (let i = 0; i < steps; i++) session.next(next());
  return session.tokens;
}

describe('detectInterop keeps KGW schemes (and their green-list caches) between calls', () => {
  it('gives the same result as a new scheme, call after call, across more specs than it keeps', () => {
    const rng = createRng('interop-kept-schemes');
    const ids = Array.from({ length: 300 }, () => Math.floor(rng() * 1000));
    // Repeats, so that second and later contexts hit the cached bitsets.
    const text = [...ids, ...ids.slice(0, 150)];
    const specs = [1, 2, 3, 4, 5, 6].map((key) =>
      key % 2 === 0
        ? { scheme: 'hf-kgw', vocabSize: 1000, hashingKey: key * 1009, greenlistRatio: 0.25 }
        : {
            scheme: 'lmw-kgw',
            vocabSize: 1000,
            gamma: 0.25,
            seedingScheme: `ff-additive_prf-1-False-${key * 1009}`,
            // The legacy green list (the permutation's end) as well.
            selectGreenTokens: key !== 3,
          },
    );
    const fresh = specs.map((spec) => {
      const scheme = createInteropScheme(spec) as HfKgwScheme | LmwKgwScheme;
      return Array.from(scheme.detect(text).greenTokenMask, (g) => g === 1);
    });
    for (let round = 0; round < 3; round++) {
      specs.forEach((spec, i) => {
        const d = detectInterop(text, spec) as HfKgwInteropDetection | LmwKgwInteropDetection;
        expect(d.greenTokenMask).toEqual(fresh[i]);
      });
    }
    const first = detectInterop(text, specs[0]);
    expect(detectInterop(text, { ...specs[0] })).toEqual(first);
  });
});

describe("generation with interop schemes through tracemark's sampler, detected by the same schemes", () => {
  const cases = [
    { name: 'hf-kgw lefthash', spec: { scheme: 'hf-kgw', vocabSize: 32000 } },
    {
      name: 'hf-kgw selfhash',
      spec: { scheme: 'hf-kgw', vocabSize: 32000, seedingScheme: 'selfhash', contextWidth: 4 },
    },
    {
      name: 'hf-synthid',
      spec: {
        scheme: 'hf-synthid',
        vocabSize: 4096,
        keys: Array.from({ length: 24 }, (_, i) => 7919 * (i + 1)),
      },
    },
  ];

  it.each(cases)('$name: p < 1e-6 over 300 tokens, and plain text is not detected', ({ spec }) => {
    const scheme = createInteropScheme(spec);
    const tokens = generate(scheme, 300, true);
    const marked = detectInterop(tokens, spec);
    const plain = detectInterop(generate(scheme, 300, false), spec);
    expect(marked.pValue).toBeLessThan(1e-6);
    expect(plain.pValue).toBeGreaterThan(1e-3);
    // tracemark's own detector works on the same schemes (Scheme contract: score + nullLaw).
    const generic = detectTokens(tokens, { scheme, dedup: 'none', prompt: [17, 4, 250, 9] });
    expect(generic.pValue).toBeLessThan(1e-6);
  });
});
