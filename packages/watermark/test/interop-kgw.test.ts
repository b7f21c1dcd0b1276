import { describe, expect, it } from 'vitest';
import {
  createInteropScheme,
  GenerationSession,
  type HfKgwScheme,
  hfApproxPValue,
  type LmwKgwScheme,
  lmwPrf,
  lmwSeedingScheme,
  parseInteropSpec,
} from '../src/index';
import { createRng } from '../src/sampler';
import vectors from './fixtures/interop.json';

function closeRel(actual: number, expected: number, tolerance = 1e-9): void {
  if (expected === 0) expect(actual).toBe(0);
  else expect(Math.abs(actual - expected)).toBeLessThanOrEqual(tolerance * Math.abs(expected));
}

function hf(config: object): HfKgwScheme {
  return createInteropScheme({ scheme: 'hf-kgw', ...config }) as HfKgwScheme;
}

function lmw(config: object): LmwKgwScheme {
  return createInteropScheme({ scheme: 'lmw-kgw', ...config }) as LmwKgwScheme;
}

/** A synthetic model: i.i.d. Gaussian logits (σ = 3, so the top 40 hold most of the mass) per step. */
function syntheticLogits(vocabSize: number, seed: string): () => Float32Array {
  const u = createRng(seed);
  return () => {
    const logits = new Float32Array(vocabSize);
    for (let i = 0; i < vocabSize; i += 2) {
      const r = Math.sqrt(-2 * Math.log(1 - u()));
      const a = 2 * Math.PI * u();
      logits[i] = 3 * r * Math.cos(a);
      if (i + 1 < vocabSize) logits[i + 1] = 3 * r * Math.sin(a);
    }
    return logits;
  };
}

function generate(scheme: HfKgwScheme | LmwKgwScheme, steps: number, watermark: boolean): number[] {
  const next = syntheticLogits(scheme.vocabSize, `model-${scheme.spec.scheme}`);
  const session = new GenerationSession(scheme, {
    prompt: [11, 22, 33, 44, 55],
    seed: 'sampling',
    watermark,
  });
  for (let i = 0; i < steps; i++) session.next(next());
  return session.tokens;
}

describe('hf-kgw: transformers WatermarkLogitsProcessor / WatermarkDetector', () => {
  it.each(vectors.hfKgw.greenlists)('reproduces the seed and green list of context $context', (vector) => {
    const scheme = hf(vector.config);
    const context = vector.context;
    const seed =
      vector.config.seedingScheme === 'selfhash'
        ? scheme.seedAt(context, context.length - 1, context[context.length - 1])
        : scheme.seedAt(context, context.length);
    expect(seed.toString()).toBe(vector.seed);
    const greenlist = scheme.greenlist(context);
    expect(greenlist.length).toBe(vector.greenlistSize);
    expect(Array.from(greenlist.subarray(0, vector.head.length))).toEqual(vector.head);
    expect(greenlist.reduce((a, b) => a + b, 0)).toBe(vector.sum);
  });

  it.each(vectors.hfKgw.detections)(
    'reproduces the detector on $kind text ($config.seedingScheme, V=$config.vocabSize)',
    (vector) => {
      const d = hf(vector.config).detect(vector.ids);
      expect(d.numTokensScored).toBe(vector.numTokensScored);
      expect(d.numGreenTokens).toBe(vector.numGreenTokens);
      closeRel(d.zScore, vector.zScore);
      closeRel(hfApproxPValue(d.zScore), vector.hfPValue);
    },
  );

  it('agrees with the Scheme contract: score() is the green flag detect() counts', () => {
    for (const vector of vectors.hfKgw.detections) {
      const scheme = hf(vector.config);
      const d = scheme.detect(vector.ids);
      const first = vector.ids.length - d.greenTokenMask.length;
      d.greenTokenMask.forEach((green, j) => {
        expect(scheme.score(vector.ids, first + j)).toBe(green);
      });
      expect(first).toBe(scheme.contextWidth);
    }
  });

  it('drops a leading BOS only when told its id, and offers tracemark de-duplication separately', () => {
    const ids = [50256, 10, 20, 10, 20, 10, 20, 30];
    expect(hf({ vocabSize: 50257 }).detect(ids).numTokensScored).toBe(7);
    const withBos = hf({ vocabSize: 50257, bosTokenId: 50256 }).detect(ids);
    expect(withBos.bosDropped).toBe(true);
    expect(withBos.numTokensScored).toBe(6);
    // ignore_repeated_ngrams is a no-op upstream; uniqueNgrams counts (10,20), (20,10), (20,30) once each.
    expect(
      hf({ vocabSize: 50257, bosTokenId: 50256, ignoreRepeatedNgrams: true }).detect(ids).numTokensScored,
    ).toBe(6);
    expect(hf({ vocabSize: 50257, bosTokenId: 50256, uniqueNgrams: true }).detect(ids).numTokensScored).toBe(
      3,
    );
  });

  it('fills every default and rejects bad specs with one clear line', () => {
    expect(parseInteropSpec({ scheme: 'hf-kgw', vocabSize: 50257 })).toEqual({
      scheme: 'hf-kgw',
      version: 1,
      vocabSize: 50257,
      seedingScheme: 'lefthash',
      contextWidth: 1,
      hashingKey: 15485863,
      greenlistRatio: 0.25,
      bias: 2,
      ignoreRepeatedNgrams: false,
      uniqueNgrams: false,
    });
    const bad: [object, string][] = [
      [{ scheme: 'hf-kgw' }, 'vocabSize is required'],
      [{ scheme: 'hf-kgw', vocabSize: 100, seedingScheme: 'minhash' }, 'seedingScheme must be one of'],
      [{ scheme: 'hf-kgw', vocabSize: 100, greenlistRatio: 1 }, 'greenlistRatio'],
      [{ scheme: 'hf-kgw', vocabSize: 100, hashingKey: -1 }, 'hashingKey'],
      [{ scheme: 'hf-kgw', vocabSize: 100, hashingKey: '9223372036854775808' }, 'hashingKey'],
      [{ scheme: 'hf-kgw', vocabSize: 100, uniqueNgrams: 'yes' }, 'uniqueNgrams must be true or false'],
      [{ scheme: 'hf-kgw', vocabSize: 100, gamma: 0.5 }, 'unknown field "gamma"'],
      [{ scheme: 'hf-kgw', vocabSize: 3, greenlistRatio: 0.1 }, 'no token could be green'],
    ];
    for (const [spec, message] of bad) {
      expect(() => parseInteropSpec(spec)).toThrow(expect.objectContaining({ code: 'E_INVALID_SPEC' }));
      expect(() => parseInteropSpec(spec)).toThrow(message);
    }
    expect(() => parseInteropSpec({ scheme: 'hf-kwg', vocabSize: 5 })).toThrow(
      expect.objectContaining({ code: 'E_UNKNOWN_SCHEME' }),
    );
    expect(() => parseInteropSpec('{')).toThrow(expect.objectContaining({ code: 'E_INVALID_SPEC' }));
    expect(() => hf({ vocabSize: 100 }).detect([1, 2, 300])).toThrow(
      expect.objectContaining({ code: 'E_TOKEN_RANGE' }),
    );
    expect(() => hf({ vocabSize: 100 }).detect([1])).toThrow(
      expect.objectContaining({ code: 'E_CONTEXT_TOO_SHORT' }),
    );
  });

  it("keys contexts and inputs by what decides the green list (the seed's low 32 bits)", () => {
    const scheme = hf({ vocabSize: 1000, contextWidth: 2 });
    const a = new Uint32Array(2);
    const b = new Uint32Array(2);
    // lefthash seeds from the last token only, whatever contextWidth says.
    scheme.contextKey([1, 2, 7], 3, a);
    scheme.contextKey([5, 9, 7], 3, b);
    expect(a).toEqual(b);
    scheme.inputKey([1, 7, 3], 2, a);
    scheme.inputKey([1, 7, 4], 2, b);
    expect(a).not.toEqual(b);
    const self = hf({ vocabSize: 1000, seedingScheme: 'selfhash', contextWidth: 3 });
    self.contextKey([1, 2, 3], 3, a);
    self.contextKey([1, 4, 3], 3, b);
    expect(a).not.toEqual(b);
  });

  it('accepts hashing keys beyond 2^53 as decimal strings', () => {
    const key = '9223372036854775783';
    const scheme = hf({ vocabSize: 1000, hashingKey: key, seedingScheme: 'selfhash', contextWidth: 2 });
    expect(scheme.spec.hashingKey).toBe(key);
    expect(scheme.seedAt([5, 9], 1, 9)).toBeLessThan(2n ** 64n - 1n);
  });

  it.each([
    { seedingScheme: 'lefthash', contextWidth: 1 },
    { seedingScheme: 'selfhash', contextWidth: 4 },
  ])('embeds through GenerationSession and detects it ($seedingScheme)', (config) => {
    const scheme = hf({ vocabSize: 32000, ...config });
    const marked = scheme.detect(generate(scheme, 200, true));
    const plain = scheme.detect(generate(scheme, 200, false));
    expect(marked.zScore).toBeGreaterThan(6);
    expect(Math.abs(plain.zScore)).toBeLessThan(3.5);
  });
});

describe('lmw-kgw: lm-watermarking extended_watermark_processor', () => {
  it.each(vectors.lmw.prf)('computes $prf', ({ prf, ids, saltKey, value }) => {
    expect(lmwPrf(prf as never, ids, BigInt(saltKey)).toString()).toBe(value);
  });

  it.each(vectors.lmw.detections)(
    'reproduces the detector ($seedingScheme, ignoreRepeatedNgrams $ignoreRepeatedNgrams)',
    ({
      seedingScheme,
      gamma,
      vocabSize,
      ignoreRepeatedNgrams,
      ids,
      numTokensScored,
      numGreenTokens,
      zScore,
      greenTokenMask,
    }) => {
      const d = lmw({ seedingScheme, gamma, vocabSize, ignoreRepeatedNgrams }).detect(ids);
      expect(d.numTokensScored).toBe(numTokensScored);
      expect(d.numGreenTokens).toBe(numGreenTokens);
      closeRel(d.zScore, zScore);
      expect(Array.from(d.greenTokenMask, (g) => g === 1)).toEqual(greenTokenMask);
    },
  );

  it.each(vectors.lmw.windows)(
    'reproduces WinMax with windowSize "$windowSize"',
    ({ seedingScheme, gamma, ids, windowSize, bestWindow, zScore }) => {
      // The window vectors were made with the same 50257-token vocabulary as the detection vectors.
      const d = lmw({ seedingScheme, gamma, vocabSize: 50257, windowSize }).detect(ids);
      expect(d.bestWindow).toBe(bestWindow);
      expect(d.numTokensScored).toBe(bestWindow);
      closeRel(d.zScore, zScore);
    },
  );

  it('parses every named and freeform seeding scheme as upstream does', () => {
    expect(lmwSeedingScheme('simple_1')).toEqual({
      prf: 'additive_prf',
      contextWidth: 1,
      selfSalt: false,
      hashKey: 15485863n,
    });
    expect(lmwSeedingScheme('algorithm-3')).toEqual(lmwSeedingScheme('selfhash'));
    expect(lmwSeedingScheme('skipgram')).toEqual({
      prf: 'skipgram_prf',
      contextWidth: 5,
      selfSalt: false,
      hashKey: 15485863n,
    });
    expect(lmwSeedingScheme('ff-position_prf-3-True-42')).toEqual({
      prf: 'position_prf',
      contextWidth: 3,
      selfSalt: true,
      hashKey: 42n,
    });
    for (const bad of [
      'ff-additive-1-False',
      'ff-additive_prf-x-False',
      'ff-additive_prf-2-true',
      'simple_2',
      'ff-minskipgram_prf-1-False',
    ]) {
      expect(() => lmwSeedingScheme(bad)).toThrow(expect.objectContaining({ code: 'E_INVALID_SPEC' }));
    }
    expect(() => parseInteropSpec({ scheme: 'lmw-kgw', vocabSize: 100, windowSize: '20,x' })).toThrow(
      'windowSize',
    );
  });

  it('runs every PRF through the scheme (freeform schemes, both salt modes)', () => {
    for (const prf of [
      'multiplicative_prf',
      'minfunc_prf',
      'simple_skip_prf',
      'anchored_skipgram_prf',
      'minskipgram_prf',
      'noncomm_prf',
      'position_prf',
    ]) {
      for (const salt of ['True', 'False']) {
        const scheme = lmw({
          vocabSize: 5000,
          seedingScheme: `ff-${prf}-3-${salt}`,
          ignoreRepeatedNgrams: false,
        });
        const ids = Array.from({ length: 40 }, (_, i) => (i * 7919) % 5000);
        const d = scheme.detect(ids);
        expect(d.numTokensScored).toBe(40 - 3 + (salt === 'True' ? 1 : 0));
        d.greenTokenMask.forEach((green, j) => {
          expect(scheme.score(ids, scheme.contextWidth + j)).toBe(green);
        });
      }
    }
  });

  it.each(['simple_1', 'selfhash', 'minhash'])(
    'embeds through GenerationSession and detects it (%s)',
    (seedingScheme) => {
      const scheme = lmw({ vocabSize: 32000, seedingScheme, ignoreRepeatedNgrams: false });
      expect(scheme.detect(generate(scheme, 200, true)).zScore).toBeGreaterThan(6);
      expect(Math.abs(scheme.detect(generate(scheme, 200, false)).zScore)).toBeLessThan(3.5);
    },
  );
});
