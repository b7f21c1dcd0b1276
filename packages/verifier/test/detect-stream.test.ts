import { createScheme, MasterKey } from '@tracemark/watermark';
import { describe, expect, it } from 'vitest';
import { type Dedup, detectTokens, TokenStreamDetector, VerifierError } from '../src/index';

const key = MasterKey.parse('11'.repeat(32));
const V = 5000;

/** Text-like ids: a small working vocabulary with repeated phrases, so that every de-duplication rule drops some. */
function sequence(length: number, seed: number): Uint32Array {
  let state = seed >>> 0;
  const next = () => {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    return state / 4294967296;
  };
  const ids = new Uint32Array(length);
  for (let i = 0; i < length; i++) {
    ids[i] = i >= 8 && next() < 0.3 ? ids[i - 8] : Math.floor(next() * (next() < 0.5 ? 40 : V));
  }
  return ids;
}

/** Cuts of [0, n) into pieces, empty ones and ones shorter than the context included. */
function cuts(n: number, seed: number): number[] {
  const out = [0, 0, 1, 1, 3];
  let at = 3;
  let state = seed;
  while (at < n) {
    state = (Math.imul(state, 1103515245) + 12345) >>> 0;
    at = Math.min(n, at + (state % 97));
    out.push(at);
  }
  return out;
}

function streamed(ids: Uint32Array, scheme: ReturnType<typeof createScheme>, dedup: Dedup, at: number[]) {
  const detector = new TokenStreamDetector({ scheme, dedup });
  for (let j = 1; j < at.length; j++) detector.push(ids.subarray(at[j - 1], at[j]));
  if (at[at.length - 1] < ids.length) detector.push(ids.subarray(at[at.length - 1]));
  return detector.result();
}

function onePass(ids: Uint32Array, scheme: ReturnType<typeof createScheme>, dedup: Dedup) {
  const { perToken, bestWindow, ...test } = detectTokens(ids, {
    scheme,
    dedup,
    perToken: false,
    window: false,
  });
  return test;
}

describe('TokenStreamDetector', () => {
  const specs = [
    { scheme: 'kgw', contextWidth: 1 },
    { scheme: 'kgw', contextWidth: 4 },
    { scheme: 'unigram' },
    { scheme: 'kgw', hashing: 'min', contextWidth: 3 },
    { scheme: 'kgw', hashing: 'self', contextWidth: 2 },
    { scheme: 'gumbel', contextWidth: 2 },
    { scheme: 'gumbel', hashing: 'min', contextWidth: 2 },
  ];
  it.each(specs)('gives the one-pass result bit for bit, however the sequence is cut: %j', (spec) => {
    const scheme = createScheme({ ...spec, vocabSize: V }, key);
    for (const dedup of ['pair', 'context', 'none'] as Dedup[]) {
      for (const seed of [1, 2]) {
        const ids = sequence(3000, seed);
        const expected = onePass(ids, scheme, dedup);
        expect(expected.scored).toBeGreaterThan(0);
        if (dedup !== 'none') expect(expected.scored).toBeLessThan(ids.length - scheme.contextWidth);
        // Same fields in the same order, same numbers bit for bit (JSON keeps every digit of a double).
        expect(JSON.stringify(streamed(ids, scheme, dedup, cuts(ids.length, seed)))).toBe(
          JSON.stringify(expected),
        );
        expect(JSON.stringify(streamed(ids, scheme, dedup, [0]))).toBe(JSON.stringify(expected));
      }
    }
  });

  it('agrees on sequences shorter than the context and on nothing at all', () => {
    const scheme = createScheme({ scheme: 'kgw', contextWidth: 4, vocabSize: V }, key);
    for (const length of [0, 1, 3, 4, 5]) {
      const ids = sequence(length, 7);
      const pieces = Array.from({ length: length + 1 }, (_, i) => i);
      expect(JSON.stringify(streamed(ids, scheme, 'pair', pieces))).toBe(
        JSON.stringify(onePass(ids, scheme, 'pair')),
      );
    }
    expect(new TokenStreamDetector({ scheme }).result()).toMatchObject({ tokens: 0, scored: 0, pValue: 1 });
  });

  it('refuses an id outside the vocabulary, naming its position in the whole sequence, and a bad rule', () => {
    const scheme = createScheme({ scheme: 'kgw', vocabSize: V }, key);
    const detector = new TokenStreamDetector({ scheme });
    detector.push([1, 2, 3]);
    expect(() => detector.push([4, V])).toThrow(/token id 5000 at position 4 is outside/);
    expect(() => new TokenStreamDetector({ scheme, dedup: 'all' as Dedup })).toThrow(VerifierError);
  });
});
