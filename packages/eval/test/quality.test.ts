import { createRng } from '@tracemark/watermark';
import { describe, expect, it } from 'vitest';
import { EvaluationError } from '../src/errors';
import { crossRequestRepeat, distinct2, identicalSamples, perplexity, type TokenModel } from '../src/quality';

const uniform = (V: number): TokenModel => ({ vocabSize: V, logProb: () => -Math.log(V) });

describe('perplexity', () => {
  it('of a uniform model is the vocabulary size', () => {
    const texts = [
      { prompt: [1, 2], tokens: [3, 4, 5] },
      { prompt: [], tokens: [0, 99] },
    ];
    const result = perplexity(uniform(100), texts);
    expect(result.perplexity).toBeCloseTo(100, 9);
    expect(result.tokens).toBe(5);
    expect(result.floored).toBe(0);
  });

  it('scores each token after its prompt and preceding tokens', () => {
    const contexts: number[][] = [];
    const model: TokenModel = {
      vocabSize: 4,
      logProb: (context) => {
        contexts.push(Array.from(context));
        return Math.log(0.5);
      },
    };
    const result = perplexity(model, [{ prompt: [7, 8], tokens: [1, 2, 3] }], 1e-12);
    expect(contexts).toEqual([
      [7, 8],
      [7, 8, 1],
      [7, 8, 1, 2],
    ]);
    expect(result.perplexity).toBeCloseTo(2, 9);
  });

  it('floors unseen tokens at ε/V and counts them', () => {
    // Token 0 is unseen; the others have probability 1/2 each under a model of vocabulary 3.
    const model: TokenModel = {
      vocabSize: 3,
      logProb: (_, token) => (token === 0 ? Number.NEGATIVE_INFINITY : Math.log(0.5)),
    };
    const eps = 1e-4;
    const result = perplexity(model, [{ prompt: [], tokens: [1, 0, 2, 0] }]);
    expect(result.tokens).toBe(4);
    expect(result.floored).toBe(2);
    const seen = Math.log((1 - eps) * 0.5 + eps / 3);
    const unseen = Math.log(eps / 3);
    expect(result.perplexity).toBeCloseTo(Math.exp(-(2 * seen + 2 * unseen) / 4), 6);
    expect(Number.isFinite(result.perplexity)).toBe(true);
  });

  it('is NaN with no tokens and rejects a bad ε', () => {
    expect(perplexity(uniform(10), []).perplexity).toBeNaN();
    expect(() => perplexity(uniform(10), [], 0)).toThrow(EvaluationError);
    expect(() => perplexity(uniform(10), [], 1)).toThrow(EvaluationError);
  });
});

describe('distinct2', () => {
  it('counts distinct bigrams over all bigrams, within texts', () => {
    expect(distinct2([[1, 2, 3, 4]])).toBe(1);
    expect(distinct2([[1, 1, 1, 1]])).toBeCloseTo(1 / 3, 12);
    expect(distinct2([[1, 2, 1, 2]])).toBeCloseTo(2 / 3, 12); // (1,2) (2,1) (1,2)
    expect(
      distinct2([
        [1, 2, 3],
        [1, 2, 3],
      ]),
    ).toBe(0.5);
    // No bigram spans two texts: (2, 3) is not formed across [1, 2] and [3, 4].
    expect(
      distinct2([
        [1, 2],
        [3, 4],
        [2, 3],
      ]),
    ).toBe(1);
    expect(distinct2([[5], []])).toBe(0);
    expect(distinct2([[2 ** 25, 1, 2 ** 25, 1]])).toBeCloseTo(2 / 3, 12); // ids past the numeric key
  });
});

describe('crossRequestRepeat', () => {
  const w = 4;
  it('counts texts whose ending occurs in another text', () => {
    const a = [1, 2, 3, 9, 8, 7, 6];
    const b = [5, 5, 9, 8, 7, 6];
    const c = [10, 11, 12, 13, 14];
    expect(crossRequestRepeat([a, b, c], w)).toBeCloseTo(2 / 3, 12); // a and b share an ending
    // The ending of d occurs in the middle of e, not the other way round.
    const d = [0, 1, 2, 3];
    const e = [4, 0, 1, 2, 3, 4, 4];
    expect(crossRequestRepeat([d, e], w)).toBe(0.5);
    expect(crossRequestRepeat([a, c], w)).toBe(0);
  });

  it('ignores a repeat within the same text and texts shorter than the width', () => {
    const a = [9, 8, 7, 6, 0, 9, 8, 7, 6];
    expect(crossRequestRepeat([a, [1, 2, 3, 4, 5]], w)).toBe(0);
    // [8, 7, 6] is too short to count, and too short to hold a's ending.
    expect(crossRequestRepeat([a, [8, 7, 6]], w)).toBe(0);
    expect(
      crossRequestRepeat(
        [
          [1, 2],
          [1, 2],
        ],
        w,
      ),
    ).toBe(0);
    expect(
      crossRequestRepeat(
        [
          [1, 2, 3, 4],
          [1, 2, 3, 4],
          [1, 2, 3, 4],
        ],
        w,
      ),
    ).toBe(1);
  });

  it('uses a default width of 20 and rejects a bad one', () => {
    const ending = Array.from({ length: 20 }, (_, i) => 100 + i);
    const x = [1, ...ending];
    const y = [2, 3, ...ending, 4];
    expect(crossRequestRepeat([x, y])).toBe(0.5);
    expect(crossRequestRepeat([x, [2, 3, ...ending.slice(1), 4]])).toBe(0);
    expect(() => crossRequestRepeat([x], 0)).toThrow(EvaluationError);
  });

  it('agrees with a brute-force count on a random set, and is fast on 2,000 texts of 200 tokens', () => {
    const rng = createRng('repeat');
    const texts = Array.from({ length: 300 }, () => Array.from({ length: 30 }, () => Math.floor(rng() * 4)));
    const width = 6;
    const occurs = (needle: number[], hay: number[]) => {
      for (let s = 0; s + needle.length <= hay.length; s++) {
        if (needle.every((t, k) => hay[s + k] === t)) return true;
      }
      return false;
    };
    const brute =
      texts.filter((t, i) => texts.some((u, j) => j !== i && occurs(t.slice(-width), u))).length /
      texts.length;
    expect(brute).toBeGreaterThan(0);
    expect(brute).toBeLessThan(1);
    expect(crossRequestRepeat(texts, width)).toBeCloseTo(brute, 12);

    const big = Array.from({ length: 2000 }, () =>
      Array.from({ length: 200 }, () => Math.floor(rng() * 50_000)),
    );
    for (let i = 0; i < 100; i++) big[2 * i + 1].splice(50, 20, ...big[2 * i].slice(-20));
    const started = performance.now();
    expect(crossRequestRepeat(big)).toBeCloseTo(100 / 2000, 12);
    expect(performance.now() - started).toBeLessThan(2000);
  });
});

describe('identicalSamples', () => {
  it('counts samples identical to another sample of the same prompt', () => {
    expect(
      identicalSamples([
        [[1, 2], [1, 2], [3]],
        [[1, 2], [4], [5]],
      ]),
    ).toBeCloseTo(2 / 6, 12);
    expect(identicalSamples([[[7], [7], [7]]])).toBe(1);
    expect(
      identicalSamples([
        [[1], [2]],
        [[1], [2]],
      ]),
    ).toBe(0); // only within a prompt
    expect(identicalSamples([[[1, 23]], [[12, 3]]])).toBe(0);
    expect(
      identicalSamples([
        [
          [1, 23],
          [12, 3],
        ],
      ]),
    ).toBe(0); // the key separates tokens
    expect(identicalSamples([])).toBe(0);
  });
});
