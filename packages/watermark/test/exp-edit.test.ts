import { inspect } from 'node:util';
import { describe, expect, it } from 'vitest';
import {
  alignedStatistic,
  alignmentCost,
  canonicalJson,
  createRng,
  EXP_EDIT_DEFAULTS,
  ExpEditGenerator,
  ExpEditKey,
  type ExpEditSpec,
  editStatistic,
  expEditStep,
  localAlignmentStatistic,
  localAlignmentWidth,
  MasterKey,
  parseExpEditSpec,
  readExpEditSpec,
  SchemeKey,
  WatermarkError,
} from '../src/index';
import { SpecReader } from '../src/spec';

/** 30 tokens generated under `key` over N(0, 2²) logits, seeded by `label` (shift and model). */
function watermarkedText(
  key: ExpEditKey,
  V: number,
  label: string,
): { gen: ExpEditGenerator; tokens: number[] } {
  const gen = new ExpEditGenerator(key, createRng(`${label}-shift`));
  const rng = createRng(`${label}-model`);
  const tokens: number[] = [];
  for (let i = 0; i < 30; i++) {
    const logits = new Float32Array(V);
    for (let t = 0; t < V; t++)
      logits[t] = 2 * Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());
    tokens.push(gen.next(logits, null, V));
  }
  return { gen, tokens };
}

const master = MasterKey.parse('42'.repeat(32));

function spec(raw: Record<string, unknown>): ExpEditSpec {
  return readExpEditSpec(new SpecReader({ scheme: 'exp-edit', ...raw }, 'exp-edit'));
}

function secretKey(s: ExpEditSpec, tenant?: string): ExpEditKey {
  return ExpEditKey.fromSchemeKey(s, new SchemeKey(master, canonicalJson(s), tenant));
}

/**
 * The DP of the reference (github.com/jthickstun/watermark, watermarking/gumbel/gumbel_levenshtein.pyx),
 * written out as a full (m+1) × (m+1) matrix: the slow, obviously-correct version.
 */
function slowAlignment(key: ExpEditKey, tokens: number[], shift: number): number {
  const m = tokens.length;
  const n = key.keyLength;
  const gamma = key.spec.gap;
  const A: number[][] = [];
  for (let i = 0; i <= m; i++) {
    A.push([]);
    for (let j = 0; j <= m; j++) {
      if (i === 0) A[i][j] = j * gamma;
      else if (j === 0) A[i][j] = i * gamma;
      else {
        const cost = Math.log1p(-key.uniform((shift + j - 1) % n, tokens[i - 1]));
        A[i][j] = A[i - 1][j] + gamma;
        if (A[i][j - 1] + gamma < A[i][j]) A[i][j] = A[i][j - 1] + gamma;
        if (A[i - 1][j - 1] + cost < A[i][j]) A[i][j] = A[i - 1][j - 1] + cost;
      }
    }
  }
  return A[m][m];
}

function randomTokens(rng: () => number, length: number, vocab: number): number[] {
  return Array.from({ length }, () => Math.floor(rng() * vocab));
}

describe('readExpEditSpec', () => {
  it('fills the reference defaults n = 256, γ = 0', () => {
    expect(EXP_EDIT_DEFAULTS).toEqual({ keyLength: 256, gap: 0 });
    expect(spec({ vocabSize: 1000 })).toEqual({
      scheme: 'exp-edit',
      version: 1,
      vocabSize: 1000,
      keyLength: 256,
      gap: 0,
    });
    expect(spec({ vocabSize: 50, keyLength: 16, gap: 0.4 })).toMatchObject({ keyLength: 16, gap: 0.4 });
  });

  it('rejects bad fields', () => {
    expect(() => spec({ vocabSize: 10, gap: -1 })).toThrow(/gap/);
    expect(() => spec({ vocabSize: 10, keyLength: 0 })).toThrow(/keyLength/);
    expect(() => spec({ vocabSize: 10, gama: 1 })).toThrow(/unknown field "gama"/);
    expect(() => spec({})).toThrow(/vocabSize/);
    expect(parseExpEditSpec({ scheme: 'exp-edit', vocabSize: 7 })).toEqual(spec({ vocabSize: 7 }));
    expect(() => parseExpEditSpec({ scheme: 'gumbel', vocabSize: 7 })).toThrow(/scheme/);
  });
});

describe('ExpEditKey', () => {
  const s = spec({ vocabSize: 1000, keyLength: 32 });

  it('is a deterministic function of the scheme key, per tenant', () => {
    const a = secretKey(s);
    const b = secretKey(s);
    const c = secretKey(s, 'other');
    for (let j = 0; j < 40; j++) {
      expect(a.uniform(j, 7)).toBe(b.uniform(j, 7));
      expect(a.uniform(j, 7)).not.toBe(c.uniform(j, 7));
      expect(a.uniform(j, 7)).toBe(a.uniform(j + 32, 7));
      expect(a.uniform(j, 7)).toBe(a.uniform(j - 32, 7));
      const u = a.uniform(j, j * 13);
      expect(u > 0 && u < 1).toBe(true);
    }
  });

  it('draws fresh keys from the given source alone', () => {
    const a = ExpEditKey.fresh(s, createRng('fresh'));
    const b = ExpEditKey.fresh(s, createRng('fresh'));
    const c = ExpEditKey.fresh(s, createRng('other'));
    expect(a.uniform(3, 11)).toBe(b.uniform(3, 11));
    expect(a.uniform(3, 11)).not.toBe(c.uniform(3, 11));
    expect(a.fingerprint).toBeUndefined();
  });

  it('shows no seed material', () => {
    const a = secretKey(s);
    expect(JSON.stringify(a)).toBe(JSON.stringify({ scheme: 'exp-edit', fingerprint: a.fingerprint }));
    expect(String(a)).toBe(`ExpEditKey(${a.fingerprint})`);
    expect(inspect(a)).toBe(`ExpEditKey(${a.fingerprint})`);
  });

  it('ξ_j(t) is uniform over positions and tokens', () => {
    const a = secretKey(spec({ vocabSize: 1000 }));
    let sum = 0;
    let count = 0;
    for (let j = 0; j < 256; j++)
      for (let t = 0; t < 100; t++) {
        sum += a.uniform(j, t);
        count++;
      }
    // mean of 25 600 uniforms: sd 0.0018
    expect(Math.abs(sum / count - 0.5)).toBeLessThan(0.01);
  });
});

describe('exponential-minimum sampling', () => {
  it('chooses argmax ξ(t)^(1/p_t) with the normalised softmax', () => {
    const V = 200;
    const s = spec({ vocabSize: V, keyLength: 8 });
    const key = secretKey(s);
    const rng = createRng('logits');
    for (let trial = 0; trial < 20; trial++) {
      const logits = new Float32Array(V);
      for (let i = 0; i < V; i++) logits[i] = 3 * (rng() - 0.5) * 2;
      const z = logits.reduce((acc, x) => acc + Math.exp(x), 0);
      let best = -1;
      let bestValue = Number.NEGATIVE_INFINITY;
      for (let t = 0; t < V; t++) {
        const value = key.uniform(trial, t) ** (z / Math.exp(logits[t]));
        if (value > bestValue) {
          bestValue = value;
          best = t;
        }
      }
      expect(key.chooseAt(trial, logits, null, V)).toBe(best);
      // Candidate subsets: ids map candidate i to its token.
      const ids = Int32Array.from([5, 17, 123]);
      const sub = Float32Array.from([logits[5], logits[17], logits[123]]);
      const chosen = key.chooseAt(trial, sub, ids, 3);
      expect([5, 17, 123]).toContain(chosen);
    }
  });

  it('is distortion-free: over fresh keys the choice follows p', () => {
    const V = 4;
    const s = spec({ vocabSize: V, keyLength: 1 });
    const logits = Float32Array.from([0, Math.log(2), Math.log(3), Math.log(4)]);
    const rng = createRng('distortion');
    const counts = [0, 0, 0, 0];
    const N = 6000;
    for (let k = 0; k < N; k++) counts[ExpEditKey.fresh(s, rng).chooseAt(0, logits, null, V)]++;
    for (let t = 0; t < V; t++) {
      const p = (t + 1) / 10;
      expect(Math.abs(counts[t] / N - p)).toBeLessThan(4 * Math.sqrt((p * (1 - p)) / N));
    }
  });

  it('a generation uses ξ_{(s + i) mod n} with its own random shift', () => {
    const V = 300;
    const s = spec({ vocabSize: V, keyLength: 16 });
    const key = secretKey(s);
    const gen = new ExpEditGenerator(key, createRng('shift'));
    expect(gen.shift).toBeGreaterThanOrEqual(0);
    expect(gen.shift).toBeLessThan(16);
    const rng = createRng('rows');
    for (let i = 0; i < 40; i++) {
      const logits = new Float32Array(V);
      for (let t = 0; t < V; t++) logits[t] = rng() * 4;
      const expected = expEditStep(key, gen.shift, i, logits, null, V);
      expect(expected).toBe(key.chooseAt((gen.shift + i) % 16, logits, null, V));
      expect(gen.next(logits, null, V)).toBe(expected);
    }
    expect(gen.generated).toBe(40);
  });
});

describe('alignment statistic', () => {
  it('equals the full-matrix reference DP on small random cases', () => {
    const rng = createRng('dp');
    for (const gap of [0, 0.4, 1, 3]) {
      for (const n of [1, 5, 13]) {
        const s = spec({ vocabSize: 40, keyLength: n, gap });
        const key = ExpEditKey.fresh(s, rng);
        for (const m of [1, 2, 7, 20]) {
          const tokens = randomTokens(rng, m, 40);
          if (m > 2) tokens[m - 1] = tokens[0]; // a repeated token
          let best = Number.POSITIVE_INFINITY;
          let bestShift = -1;
          for (let shift = 0; shift < n; shift++) {
            const slow = slowAlignment(key, tokens, shift);
            expect(alignmentCost(key, tokens, shift)).toBe(slow);
            if (slow < best) {
              best = slow;
              bestShift = shift;
            }
          }
          expect(editStatistic(key, tokens)).toEqual({ statistic: best, shift: bestShift });
        }
      }
    }
  });

  it('the aligned statistic is the min over shifts of Σ ln(1 − ξ_{s+i}(y_i))', () => {
    const rng = createRng('aligned');
    const s = spec({ vocabSize: 40, keyLength: 9 });
    const key = ExpEditKey.fresh(s, rng);
    const tokens = randomTokens(rng, 15, 40);
    let best = Number.POSITIVE_INFINITY;
    for (let shift = 0; shift < 9; shift++) {
      let sum = 0;
      for (let i = 0; i < tokens.length; i++) sum += Math.log1p(-key.uniform(shift + i, tokens[i]));
      best = Math.min(best, sum);
    }
    expect(alignedStatistic(key, tokens).statistic).toBeCloseTo(best, 10);
  });

  it('is lower for watermarked text, and finds its shift', () => {
    const V = 1000;
    const s = spec({ vocabSize: V });
    const key = secretKey(s);
    const { gen, tokens } = watermarkedText(key, V, 'wm');
    const watermarked = editStatistic(key, tokens);
    expect(watermarked.shift).toBe(gen.shift);
    const plain = editStatistic(key, randomTokens(createRng('plain'), 30, V));
    expect(watermarked.statistic).toBeLessThan(plain.statistic);
  });

  it('rejects token ids outside the vocabulary', () => {
    const key = secretKey(spec({ vocabSize: 10, keyLength: 4 }));
    expect(() => editStatistic(key, [1, 10])).toThrow(WatermarkError);
    expect(() => alignmentCost(key, [1, -1], 0)).toThrow(/outside the vocabulary/);
    expect(() => alignedStatistic(key, [1.5])).toThrow(/outside the vocabulary/);
  });
});

/**
 * tracemark's local (semi-global) variant, written out as a full matrix: the m tokens against the unrolled
 * key ξ_0 … ξ_{W−1} (W = n + 2m − 2, indices mod n), free start and end in the key, global in the text.
 */
function slowLocal(key: ExpEditKey, tokens: number[], gapText: number, gapKey: number) {
  const m = tokens.length;
  const n = key.keyLength;
  const W = n + 2 * m - 2;
  const D: number[][] = [];
  for (let i = 0; i <= m; i++) {
    D.push([]);
    for (let c = 0; c <= W; c++) {
      if (i === 0) D[i][c] = 0;
      else if (c === 0) D[i][c] = i * gapText;
      else {
        const cost = Math.log1p(-key.uniform((c - 1) % n, tokens[i - 1]));
        D[i][c] = Math.min(D[i - 1][c] + gapText, D[i][c - 1] + gapKey, D[i - 1][c - 1] + cost);
      }
    }
  }
  let best = Number.POSITIVE_INFINITY;
  let column = 0;
  for (let c = 0; c <= W; c++) {
    if (D[m][c] < best) {
      best = D[m][c];
      column = c;
    }
  }
  return { statistic: best, end: column === 0 ? 0 : (column - 1) % n };
}

describe('local alignment statistic (tracemark variant)', () => {
  it('equals the full-matrix semi-global DP on small random cases', () => {
    const rng = createRng('local-dp');
    for (const [gapText, gapKey] of [
      [0.5, 0.5],
      [1, 1],
      [0.3, 2],
      [1.5, 0.7],
    ]) {
      for (const n of [1, 5, 13]) {
        const key = ExpEditKey.fresh(spec({ vocabSize: 40, keyLength: n }), rng);
        for (const m of [1, 2, 7, 20]) {
          const tokens = randomTokens(rng, m, 40);
          if (m > 2) tokens[m - 1] = tokens[0];
          const slow = slowLocal(key, tokens, gapText, gapKey);
          const fast = localAlignmentStatistic(key, tokens, gapText, gapKey);
          expect(fast.statistic).toBeCloseTo(slow.statistic, 10);
          expect(fast.end).toBe(slow.end);
          expect(localAlignmentWidth(n, m)).toBe(n + 2 * m - 2);
        }
      }
    }
  });

  it('is at most the reference statistic with the same gap (every shifted window is one of its alignments)', () => {
    const rng = createRng('local-bound');
    for (const gap of [0.5, 1]) {
      const s = spec({ vocabSize: 100, keyLength: 16, gap });
      const key = ExpEditKey.fresh(s, rng);
      for (const m of [3, 10, 25]) {
        const tokens = randomTokens(rng, m, 100);
        expect(localAlignmentStatistic(key, tokens, gap, gap).statistic).toBeLessThanOrEqual(
          editStatistic(key, tokens).statistic + 1e-9,
        );
      }
    }
  });

  it('is lower for watermarked text, and ends where the generation ends in the key', () => {
    const V = 1000;
    const s = spec({ vocabSize: V });
    const key = secretKey(s);
    const { gen, tokens } = watermarkedText(key, V, 'local');
    const watermarked = localAlignmentStatistic(key, tokens, 1, 1);
    expect(watermarked.end).toBe((gen.shift + 29) % 256);
    const plain = localAlignmentStatistic(key, randomTokens(createRng('plain'), 30, V), 1, 1);
    expect(watermarked.statistic).toBeLessThan(plain.statistic);
  });

  it('rejects non-positive gaps and bad tokens; an empty text costs 0', () => {
    const key = secretKey(spec({ vocabSize: 10, keyLength: 4 }));
    expect(() => localAlignmentStatistic(key, [1, 2], 0, 1)).toThrow(/gap/);
    expect(() => localAlignmentStatistic(key, [1, 2], 1, Number.NaN)).toThrow(/gap/);
    expect(() => localAlignmentStatistic(key, [1, 10], 1, 1)).toThrow(/outside the vocabulary/);
    expect(localAlignmentStatistic(key, [], 1, 1)).toEqual({ statistic: 0, end: 0 });
  });
});
