import { describe, expect, it } from 'vitest';
import {
  canonicalSpec,
  createScheme,
  GenerationSession,
  MasterKey,
  parseSpec,
  Sampler,
  WatermarkError,
} from '../src/index';

function errorOf(run: () => unknown): WatermarkError {
  try {
    run();
  } catch (error) {
    if (error instanceof WatermarkError) return error;
    throw error;
  }
  throw new Error('expected a WatermarkError');
}

const key = MasterKey.parse('11'.repeat(32));

describe('scheme specs', () => {
  it('fills defaults and writes a canonical form', () => {
    expect(parseSpec({ scheme: 'kgw', vocabSize: 100 })).toEqual({
      scheme: 'kgw',
      version: 1,
      vocabSize: 100,
      gamma: 0.25,
      delta: 2,
      contextWidth: 1,
      hashing: 'left',
      selfCandidates: 40,
    });
    expect(canonicalSpec('{"vocabSize":100,"scheme":"kgw"}')).toBe(
      '{"contextWidth":1,"delta":2,"gamma":0.25,"hashing":"left","scheme":"kgw","selfCandidates":40,"version":1,"vocabSize":100}',
    );
    expect(parseSpec({ scheme: 'unigram', vocabSize: 100 })).toMatchObject({
      scheme: 'kgw',
      contextWidth: 0,
    });
    expect(parseSpec({ scheme: 'synthid', vocabSize: 100, depth: 64 })).toMatchObject({
      depth: 64,
      contextWidth: 4,
    });
    expect(parseSpec({ scheme: 'gumbel', vocabSize: 100 })).toMatchObject({
      contextWidth: 4,
      hashing: 'left',
    });
  });

  it.each([
    [
      { scheme: 'nope', vocabSize: 10 },
      'E_UNKNOWN_SCHEME',
      /unknown scheme "nope"; expected one of kgw, unigram, gumbel, synthid/,
    ],
    [{ vocabSize: 10 }, 'E_UNKNOWN_SCHEME', /unknown scheme/],
    [
      { scheme: 'kgw', vocabSize: 10, gamma: 0 },
      'E_INVALID_SPEC',
      /gamma must be a number in \(0, 1\); got 0/,
    ],
    [
      { scheme: 'kgw', vocabSize: 10, gamma: 1 },
      'E_INVALID_SPEC',
      /gamma must be a number in \(0, 1\); got 1/,
    ],
    [{ scheme: 'kgw', vocabSize: 10, gamma: 1.5 }, 'E_INVALID_SPEC', /gamma/],
    [{ scheme: 'kgw', vocabSize: 10, gamma: '0.5' }, 'E_INVALID_SPEC', /gamma.*got "0.5"/],
    [{ scheme: 'kgw', vocabSize: 10, delta: -1 }, 'E_INVALID_SPEC', /delta must be a number in \[0, /],
    [
      { scheme: 'kgw', vocabSize: 10, contextWidth: -1 },
      'E_INVALID_SPEC',
      /contextWidth must be an integer in \[0, 16\]; got -1/,
    ],
    [{ scheme: 'kgw', vocabSize: 10, contextWidth: 17 }, 'E_INVALID_SPEC', /contextWidth.*got 17/],
    [{ scheme: 'kgw', vocabSize: 10, contextWidth: 1.5 }, 'E_INVALID_SPEC', /contextWidth/],
    [
      { scheme: 'kgw', vocabSize: 10, hashing: 'min', contextWidth: 0 },
      'E_INVALID_SPEC',
      /contextWidth must be an integer in \[1, 16\]/,
    ],
    [
      { scheme: 'kgw', vocabSize: 10, hashing: 'right' },
      'E_INVALID_SPEC',
      /hashing must be one of "left", "min", "self"/,
    ],
    [
      { scheme: 'synthid', vocabSize: 10, depth: 0 },
      'E_INVALID_SPEC',
      /depth must be an integer in \[1, 64\]; got 0/,
    ],
    [{ scheme: 'synthid', vocabSize: 10, depth: 65 }, 'E_INVALID_SPEC', /depth.*got 65/],
    [{ scheme: 'kgw' }, 'E_INVALID_SPEC', /vocabSize is required/],
    [{ scheme: 'kgw', vocabSize: 1 }, 'E_INVALID_SPEC', /vocabSize must be an integer/],
    [{ scheme: 'kgw', vocabSize: 10, version: 2 }, 'E_INVALID_SPEC', /unsupported version 2/],
    [{ scheme: 'kgw', vocabSize: 10, gama: 0.5 }, 'E_INVALID_SPEC', /unknown field "gama"/],
    ['{"scheme":', 'E_INVALID_SPEC', /not valid JSON/],
    [[1, 2], 'E_INVALID_SPEC', /must be a JSON object/],
    [null, 'E_INVALID_SPEC', /must be a JSON object/],
  ])('rejects %j with %s', (spec, code, message) => {
    const error = errorOf(() => parseSpec(spec));
    expect(error.code).toBe(code);
    expect(error.message).toMatch(message);
    expect(error.message).not.toContain('\n');
  });
});

describe('generation and scoring inputs', () => {
  const scheme = createScheme({ scheme: 'kgw', vocabSize: 8 }, key);

  it('rejects logits of the wrong length', () => {
    const session = new GenerationSession(scheme, { prompt: [1] });
    const error = errorOf(() => session.next(new Float32Array(9)));
    expect(error.code).toBe('E_LOGITS_LENGTH');
    expect(error.message).toBe('logits have 9 entries but the vocabulary has 8 tokens');
    expect(errorOf(() => session.next([0, 1] as unknown as Float32Array)).code).toBe('E_LOGITS_LENGTH');
  });

  it('rejects NaN and +Infinity logits, and rows with no finite logit', () => {
    const session = new GenerationSession(scheme, { prompt: [1] });
    const nan = new Float32Array(8);
    nan[3] = Number.NaN;
    expect(errorOf(() => session.next(nan)).message).toBe(
      'logit 3 is NaN; logits must be finite or -Infinity',
    );
    const inf = new Float32Array(8);
    inf[0] = Number.POSITIVE_INFINITY;
    expect(errorOf(() => session.next(inf)).code).toBe('E_NONFINITE_LOGITS');
    expect(errorOf(() => session.next(new Float32Array(8).fill(Number.NEGATIVE_INFINITY))).code).toBe(
      'E_NO_CANDIDATES',
    );
    expect(session.tokens).toEqual([1]);
  });

  it('rejects token ids outside the vocabulary', () => {
    expect(errorOf(() => new GenerationSession(scheme, { prompt: [1, 8] })).message).toBe(
      'prompt token id 8 is outside the vocabulary [0, 8)',
    );
    expect(errorOf(() => new GenerationSession(scheme, { prompt: [-1] })).code).toBe('E_TOKEN_RANGE');
    expect(errorOf(() => new GenerationSession(scheme, { prompt: [0.5] })).code).toBe('E_TOKEN_RANGE');
    expect(errorOf(() => scheme.score([1, 9], 1)).code).toBe('E_TOKEN_RANGE');
    expect(errorOf(() => scheme.score([9, 1], 1)).code).toBe('E_TOKEN_RANGE');
    expect(errorOf(() => scheme.biasLogits?.([99], new Float32Array(8))).code).toBe('E_TOKEN_RANGE');
  });

  it('refuses to score a token that has no full context', () => {
    const wide = createScheme({ scheme: 'gumbel', vocabSize: 8, contextWidth: 3 }, key);
    expect(errorOf(() => wide.score([1, 2, 3], 2)).code).toBe('E_CONTEXT_TOO_SHORT');
    expect(Number.isFinite(wide.score([1, 2, 3, 4], 3))).toBe(true);
  });

  it('rejects bad sampling options', () => {
    expect(errorOf(() => new Sampler(8, { temperature: -1 })).code).toBe('E_INVALID_SAMPLING');
    expect(errorOf(() => new Sampler(8, { topK: 1.5 })).message).toMatch(/topK must be an integer/);
    expect(errorOf(() => new Sampler(8, { topP: 0 })).message).toMatch(/topP must be a number in \(0, 1\]/);
    expect(errorOf(() => new Sampler(8, { temperature: Number.NaN })).code).toBe('E_INVALID_SAMPLING');
  });
});
