import { createRng } from '@tracemark/watermark';
import { describe, expect, it } from 'vitest';
import {
  ATTACK_KINDS,
  type Attack,
  type AttackContext,
  type AttackStats,
  applyAttack,
  editRate,
  parseAttack,
  parseAttacks,
} from '../src/attacks';
import { EvaluationError } from '../src/errors';

/** The attacks applied to tokens here (rewrite goes through an endpoint, in the harness). */
const TOKEN_ATTACKS = ATTACK_KINDS.filter((k) => k !== 'none' && k !== 'rewrite');

const VOCAB = 5000;
const TEXTS = 200;
const LENGTH = 100;
const S = 0.3;
/** Two-sided 99.9 % normal quantile. */
const Z = 3.29;
/** Tokens at or above this id come from the attack (random, model or host), never from the source text. */
const FOREIGN = VOCAB;
/** Probability that the paraphrase model draws a token different from the original. */
const Q = 0.5;

function corpus(seed: string): number[][] {
  const rng = createRng(seed);
  return Array.from({ length: TEXTS }, () => Array.from({ length: LENGTH }, () => Math.floor(rng() * VOCAB)));
}

/**
 * A context whose random, host and model tokens are foreign (≥ FOREIGN), so the tests can tell them apart.
 * The in-place model (for sub-model, paraphrase) returns the original token with probability 1 − Q; the
 * inserting one (ins-model) always a foreign token.
 */
function context(
  seed: string,
  tokens: readonly number[],
  prompt: readonly number[] = [1, 2, 3],
  inserting = false,
): AttackContext {
  const draw = createRng(`${seed}/draw`);
  const foreign = () => FOREIGN + Math.floor(draw() * VOCAB);
  return {
    rng: createRng(seed),
    randomToken: foreign,
    sampleNext: (ctx) => (inserting || draw() < Q ? foreign() : tokens[ctx.length - prompt.length]),
    prompt,
    host: Array.from({ length: tokens.length + 5 }, foreign),
  };
}

/** Asserts `count` successes in `n` trials lie in the binomial 99.9 % interval around p. */
function expectBinomial(count: number, n: number, p: number): void {
  const half = Z * Math.sqrt(n * p * (1 - p)) + 1;
  expect(Math.abs(count - n * p)).toBeLessThanOrEqual(half);
}

function attackAll(kind: Attack['kind'], strength = S, seed = 'attack') {
  const attack: Attack = { kind, strength, label: `${kind}-${strength}` };
  const texts = corpus('texts');
  return texts.map((tokens, i) => ({
    tokens,
    out: applyAttack(
      attack,
      tokens,
      context(`${seed}/${kind}/${i}`, tokens, [1, 2, 3], kind === 'ins-model'),
    ),
  }));
}

describe('applyAttack at strength 0.3 on 200 texts of 100 tokens', () => {
  const n = TEXTS * LENGTH;

  it('none copies', () => {
    for (const { tokens, out } of attackAll('none', 0)) {
      expect(out).toEqual(tokens);
      expect(out).not.toBe(tokens);
    }
  });

  it('sub and sub-model change a share s of positions, in place', () => {
    for (const kind of ['sub', 'sub-model'] as const) {
      let changed = 0;
      for (const { tokens, out } of attackAll(kind)) {
        expect(out).toHaveLength(tokens.length);
        for (let i = 0; i < tokens.length; i++) if (out[i] !== tokens[i]) changed++;
      }
      expectBinomial(changed, n, S);
    }
  });

  it('sub-model keeps the original when the model only offers it, and counts it', () => {
    const tokens = Array.from({ length: 50 }, () => 7);
    const stats: AttackStats = { kept: 0 };
    let calls = 0;
    const ctx: AttackContext = {
      ...context('kept', tokens),
      sampleNext: () => {
        calls++;
        return 7;
      },
    };
    const out = applyAttack(parseAttack('sub-model-0.5'), tokens, ctx, stats);
    expect(out).toEqual(tokens);
    expect(stats.kept).toBeGreaterThan(0);
    expect(calls).toBe(stats.kept * 8);
  });

  it('del removes a share s of tokens, keeping the order of the rest', () => {
    let removed = 0;
    for (const { tokens, out } of attackAll('del')) {
      removed += tokens.length - out.length;
      let j = 0; // out is a subsequence of tokens
      for (const t of tokens) if (j < out.length && out[j] === t) j++;
      expect(j).toBe(out.length);
    }
    expectBinomial(removed, n, S);
  });

  it('ins and ins-model insert about s·L tokens, one at most after each token', () => {
    for (const kind of ['ins', 'ins-model'] as const) {
      let inserted = 0;
      for (const { tokens, out } of attackAll(kind)) {
        const own = out.filter((t) => t < FOREIGN);
        expect(own).toEqual(tokens);
        for (let i = 1; i < out.length; i++) {
          if (out[i] >= FOREIGN) expect(out[i - 1]).toBeLessThan(FOREIGN);
        }
        inserted += out.length - own.length;
      }
      expectBinomial(inserted, n, S);
    }
  });

  it('trunc keeps the first round((1 − s)·L) tokens', () => {
    for (const { tokens, out } of attackAll('trunc')) expect(out).toEqual(tokens.slice(0, 70));
    expect(applyAttack(parseAttack('trunc-0.99'), [4, 5], context('t', [4, 5]))).toEqual([4]);
  });

  it('copypaste pastes the first round(s·L) source tokens as one span into the host', () => {
    let fromSource = 0;
    const starts = new Set<number>();
    for (const { tokens, out } of attackAll('copypaste')) {
      expect(out).toHaveLength(tokens.length);
      const start = out.findIndex((t) => t < FOREIGN);
      starts.add(start);
      expect(out.slice(start, start + 30)).toEqual(tokens.slice(0, 30));
      fromSource += out.filter((t) => t < FOREIGN).length;
    }
    expectBinomial(fromSource, n, S);
    expect(fromSource).toBe(TEXTS * 30);
    expect(starts.size).toBeGreaterThan(20); // the start is random
  });

  it('paraphrase resamples a share s of positions (the model keeps the token with probability 1 − Q)', () => {
    let changed = 0;
    for (const { tokens, out } of attackAll('paraphrase')) {
      expect(out).toHaveLength(tokens.length);
      for (let i = 0; i < tokens.length; i++) if (out[i] !== tokens[i]) changed++;
    }
    expectBinomial(changed, n, S * Q);
  });

  it('every attack but none changes at least 95 % of texts', () => {
    for (const kind of TOKEN_ATTACKS) {
      const results = attackAll(kind);
      const changed = results.filter(({ tokens, out }) => editRate(tokens, out) > 0).length;
      expect(changed, kind).toBeGreaterThanOrEqual(0.95 * TEXTS);
    }
  });

  it('is deterministic under the same seed and differs under another', () => {
    for (const kind of TOKEN_ATTACKS) {
      const a = attackAll(kind, S, 'one').map((r) => r.out);
      expect(
        attackAll(kind, S, 'one').map((r) => r.out),
        kind,
      ).toEqual(a);
      // Truncation draws nothing: only the randomized attacks must differ under another seed.
      if (kind !== 'trunc')
        expect(
          attackAll(kind, S, 'two').map((r) => r.out),
          kind,
        ).not.toEqual(a);
    }
  });

  it('passes the prompt and the attacked prefix to the model', () => {
    const tokens = [10, 11, 12, 13];
    const seen: number[][] = [];
    const ctx: AttackContext = {
      ...context('prefix', tokens, [1, 2]),
      rng: () => 0, // every position resampled
      sampleNext: (c) => {
        seen.push([...c]);
        return 100 + c.length;
      },
    };
    expect(applyAttack(parseAttack('paraphrase-0.5'), tokens, ctx)).toEqual([102, 103, 104, 105]);
    expect(seen).toEqual([
      [1, 2],
      [1, 2, 102],
      [1, 2, 102, 103],
      [1, 2, 102, 103, 104],
    ]);
  });
});

describe('editRate', () => {
  it('is the Levenshtein distance over the original length', () => {
    expect(editRate([1, 2, 3, 4], [1, 2, 3, 4])).toBe(0);
    expect(editRate([1, 2, 3, 4], [1, 9, 3, 4])).toBe(0.25);
    expect(editRate([1, 2, 3, 4], [1, 3, 4])).toBe(0.25);
    expect(editRate([1, 2, 3, 4], [1, 2, 7, 3, 4])).toBe(0.25);
    expect(editRate([1, 2, 3, 4], [])).toBe(1);
    expect(editRate([], [])).toBe(0);
  });
});

describe('parseAttack', () => {
  it('accepts none and <kind>-<strength>', () => {
    expect(parseAttack('none')).toEqual({ kind: 'none', strength: 0, label: 'none' });
    expect(parseAttack('sub-0.3')).toEqual({ kind: 'sub', strength: 0.3, label: 'sub-0.3' });
    expect(parseAttack('sub-model-0.1')).toEqual({
      kind: 'sub-model',
      strength: 0.1,
      label: 'sub-model-0.1',
    });
    expect(parseAttack('ins-model-0.2').kind).toBe('ins-model');
    expect(parseAttack('copypaste-0.25')).toEqual({
      kind: 'copypaste',
      strength: 0.25,
      label: 'copypaste-0.25',
    });
    for (const kind of TOKEN_ATTACKS) expect(parseAttack(`${kind}-0.5`).kind).toBe(kind);
    // The endpoint rewrite takes no strength, and only the harness (with an endpoint) applies it.
    expect(parseAttack('rewrite')).toEqual({ kind: 'rewrite', strength: 0, label: 'rewrite' });
    expect(() => parseAttack('rewrite-0.5')).toThrow(/takes no strength/);
  });

  it('rejects malformed labels with a one-line E_USAGE error', () => {
    for (const label of [
      'sub',
      'sub-1.5',
      'foo-0.1',
      'del-0',
      '',
      'trunc-1',
      'none-0.1',
      'sub-0.3\nx',
      'sub--0.1',
    ]) {
      let error: unknown;
      try {
        parseAttack(label);
      } catch (e) {
        error = e;
      }
      expect(error, label).toBeInstanceOf(EvaluationError);
      expect((error as EvaluationError).code).toBe('E_USAGE');
      expect((error as EvaluationError).message).not.toContain('\n');
    }
  });

  it('parses a list, de-duplicated, in order', () => {
    expect(parseAttacks('sub-0.3, none,del-0.1,sub-0.3').map((a) => a.label)).toEqual([
      'sub-0.3',
      'none',
      'del-0.1',
    ]);
    expect(() => parseAttacks('sub-0.3,,del-0.1')).toThrow(EvaluationError);
  });
});
