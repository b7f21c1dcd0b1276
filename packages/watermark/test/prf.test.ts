import { describe, expect, it } from 'vitest';
import { ContextPrf, canonicalSpec, MasterKey, SchemeKey, WatermarkError } from '../src/index';

const master = MasterKey.parse('5a'.repeat(32));
const V = 50_000;

function prfOf(width: number, hashing: 'left' | 'min' | 'self', tenant?: string): ContextPrf {
  const spec = { scheme: 'kgw', vocabSize: V, contextWidth: width, hashing };
  return new ContextPrf(new SchemeKey(master, canonicalSpec(spec), tenant), V, width, hashing);
}

describe('ContextPrf.seedTokens', () => {
  it('gives each one-token window the seed that seed() gives it, for left and min hashing', () => {
    const tokens = Uint32Array.from({ length: 500 }, (_, i) => (i * 7919 + 13) % V);
    for (const hashing of ['left', 'min'] as const) {
      for (const tenant of [undefined, 'acme']) {
        const batch = prfOf(1, hashing, tenant);
        const lo = new Int32Array(tokens.length);
        const hi = new Int32Array(tokens.length);
        batch.seedTokens(tokens, lo, hi);
        const single = prfOf(1, hashing, tenant);
        for (let i = 0; i < tokens.length; i++) {
          single.seed(tokens, i + 1);
          expect([lo[i] >>> 0, hi[i] >>> 0]).toEqual([single.lo, single.hi]);
        }
      }
    }
  });

  it('rejects token ids outside the vocabulary and contexts other than one token', () => {
    const code = (run: () => void) => {
      try {
        run();
      } catch (error) {
        return error instanceof WatermarkError ? error.code : 'other';
      }
      return undefined;
    };
    const out = new Int32Array(1);
    expect(code(() => prfOf(1, 'left').seedTokens([V], out, out))).toBe('E_TOKEN_RANGE');
    expect(code(() => prfOf(1, 'left').seedTokens([1.5], out, out))).toBe('E_TOKEN_RANGE');
    expect(code(() => prfOf(2, 'left').seedTokens([1], out, out))).toBe('E_INVALID_SPEC');
    expect(code(() => prfOf(1, 'self').seedTokens([1], out, out))).toBe('E_INVALID_SPEC');
  });
});
