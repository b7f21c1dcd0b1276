import {
  alignedStatistic,
  canonicalJson,
  createRng,
  ExpEditGenerator,
  ExpEditKey,
  type ExpEditSpec,
  MasterKey,
  SchemeKey,
} from '@tracemark/watermark';
import { describe, expect, it } from 'vitest';
import { expEditTest, VerifierError } from '../src/index';

const V = 1000;
const K = 99;
const master = MasterKey.parse('5a'.repeat(32));
const spec: ExpEditSpec = { scheme: 'exp-edit', version: 1, vocabSize: V, keyLength: 256, gap: 0 };

function secretKey(tenant: string): ExpEditKey {
  return ExpEditKey.fromSchemeKey(spec, new SchemeKey(master, canonicalJson(spec), tenant));
}

/**
 * The synthetic model: a fixed random logits row per position, N(0, σ²) per token. σ = 4 gives about
 * 2.2 nats per token, the range of a sampled LM; at higher entropy even the aligned score survives the edits.
 */
const SIGMA = 4;
const rows: Float32Array[] = Array.from({ length: 50 }, (_, position) => {
  const rng = createRng(`model:${position}`);
  const row = new Float32Array(V);
  for (let t = 0; t < V; t++)
    row[t] = SIGMA * Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());
  return row;
});

function generate(key: ExpEditKey, label: string, length = 50): number[] {
  const gen = new ExpEditGenerator(key, createRng(`shift:${label}`));
  return rows.slice(0, length).map((row) => gen.next(row, null, V));
}

/** Ordinary (unwatermarked) sampling from the same model. */
function plainSample(rng: () => number, length: number): number[] {
  return rows.slice(0, length).map((row) => {
    let max = Number.NEGATIVE_INFINITY;
    for (const x of row) max = Math.max(max, x);
    let z = 0;
    for (const x of row) z += Math.exp(x - max);
    let u = rng() * z;
    for (let t = 0; t < V; t++) {
      u -= Math.exp(row[t] - max);
      if (u <= 0) return t;
    }
    return V - 1;
  });
}

/** The reference's attacks (watermarking/attacks.py): delete a fraction, then insert random tokens. */
function edit(tokens: number[], label: string, fraction = 0.2): number[] {
  const rng = createRng(`edit:${label}`);
  const out = tokens.slice();
  const count = Math.round(fraction * tokens.length);
  for (let k = 0; k < count; k++) out.splice(Math.floor(rng() * out.length), 1);
  for (let k = 0; k < count; k++) out.splice(Math.floor(rng() * (out.length + 1)), 0, Math.floor(rng() * V));
  return out;
}

/** The same permutation test with the position-aligned (non-Levenshtein) EXP statistic. */
function alignedPValue(tokens: number[], key: ExpEditKey): number {
  const observed = alignedStatistic(key, tokens).statistic;
  const rng = createRng('aligned-null');
  let atMost = 0;
  for (let k = 0; k < K; k++)
    if (alignedStatistic(ExpEditKey.fresh(spec, rng), tokens).statistic <= observed) atMost++;
  return (1 + atMost) / (K + 1);
}

describe('expEditTest', () => {
  it('detects watermarked texts, and still does after 20 % deletions and 20 % insertions', () => {
    const texts = 10;
    let alignedMissed = 0;
    for (let i = 0; i < texts; i++) {
      const key = secretKey(`gen-${i}`);
      const tokens = generate(key, `${i}`);
      if (i < 3) {
        const clean = expEditTest(tokens, key, { nullKeys: K });
        expect(clean.pValue).toBeLessThanOrEqual(3 / (K + 1));
        expect(clean.scored).toBe(50);
        expect(clean.zScore).toBeGreaterThan(3);
        expect(alignedPValue(tokens, key)).toBe(1 / (K + 1));
      }
      const edited = edit(tokens, `${i}`);
      expect(edited.length).toBe(50);
      const result = expEditTest(edited, key, { nullKeys: K });
      expect(result.pValue).toBeLessThanOrEqual(5 / (K + 1));
      if (alignedPValue(edited, key) > 0.05) alignedMissed++;
    }
    // The position-aligned score loses the alignment at the first edit: it misses several edited texts
    // that the Levenshtein statistic finds (Kuditipudi et al. 2023, §4, insertion/deletion experiments).
    expect(alignedMissed).toBeGreaterThanOrEqual(3);
  });

  it('is calibrated on plain text: P(p ≤ 0.1) within a binomial 99.9 % interval of 0.1', () => {
    const trials = 100;
    const rng = createRng('calibration');
    let small = 0;
    for (let i = 0; i < trials; i++) {
      // Half uniform random tokens, half ordinary samples from the model (repeats included); short texts
      // keep the test fast, and the permutation test is valid at any length.
      const tokens =
        i % 2 === 0 ? Array.from({ length: 12 }, () => Math.floor(rng() * V)) : plainSample(rng, 12);
      const result = expEditTest(tokens, secretKey(`cal-${i}`), { nullKeys: K, seed: `cal:${i}` });
      expect(result.pValue).toBeGreaterThanOrEqual(1 / (K + 1));
      if (result.pValue <= 0.1) small++;
    }
    // Binomial(100, 0.1): P(X ≤ 1) ≈ 0.0003 and P(X ≥ 21) ≈ 0.0008 (two-sided 99.9 %: [2, 20]).
    expect(small).toBeGreaterThanOrEqual(2);
    expect(small).toBeLessThanOrEqual(20);
  });

  it('is deterministic for the same key, seed and text, and its null never depends on the secret', () => {
    const key = secretKey('det');
    const tokens = edit(generate(key, 'det', 30), 'det');
    const a = expEditTest(tokens, key, { nullKeys: 30, seed: 's' });
    const b = expEditTest(tokens, secretKey('det'), { nullKeys: 30, seed: 's' });
    expect(b).toEqual(a);
    const other = expEditTest(tokens, secretKey('another'), { nullKeys: 30, seed: 's' });
    expect(other.nullMean).toBe(a.nullMean);
    expect(other.nullSd).toBe(a.nullSd);
    expect(a.log10PValue).toBeCloseTo(Math.log10(a.pValue), 12);
    expect(a.nullKeys).toBe(30);
    expect(a.shift).toBeGreaterThanOrEqual(0);
    expect(a.shift).toBeLessThan(256);
    const defaults = expEditTest(tokens.slice(0, 5), key, { nullKeys: 10 });
    expect(expEditTest(tokens.slice(0, 5), key, { nullKeys: 10 })).toEqual(defaults);
  });

  it('stopAbove: stops once p must exceed it, and agrees with the full test on every level ≤ stopAbove', () => {
    const rng = createRng('stop');
    for (let i = 0; i < 8; i++) {
      const key = secretKey(`stop-${i}`);
      // Half watermarked (detected: never stops), half plain (stops after a few keys).
      const tokens = i % 2 === 0 ? generate(key, `stop-${i}`, 20) : plainSample(rng, 20);
      for (const statistic of ['levenshtein', 'local'] as const) {
        const full = expEditTest(tokens, key, { nullKeys: K, statistic });
        expect(full.stopped).toBe(false);
        expect(full.evaluatedKeys).toBe(K);
        expect(full.statisticKind).toBe(statistic);
        for (const stopAbove of [0.01, 0.05]) {
          const early = expEditTest(tokens, key, { nullKeys: K, statistic, stopAbove });
          expect(early.statistic).toBe(full.statistic);
          expect(early.pValue <= stopAbove).toBe(full.pValue <= stopAbove);
          expect(early.pValue).toBeLessThanOrEqual(full.pValue);
          if (early.stopped) {
            expect(early.pValue).toBeGreaterThan(stopAbove);
            expect(early.evaluatedKeys).toBeLessThan(K);
          } else expect(early).toEqual(full);
        }
      }
    }
  });

  it("'local': tracemark's semi-global variant still detects 30 % deletion where the aligned score fails", () => {
    const texts = 10;
    let detected = 0;
    let alignedDetected = 0;
    for (let i = 0; i < texts; i++) {
      const key = secretKey(`local-${i}`);
      const tokens = generate(key, `local-${i}`);
      const rng = createRng(`delete:${i}`);
      for (let k = 0; k < 15; k++) tokens.splice(Math.floor(rng() * tokens.length), 1);
      const result = expEditTest(tokens, key, { nullKeys: K, statistic: 'local', localGap: 1 });
      expect(result.scored).toBe(35);
      if (result.pValue <= 0.01) detected++;
      if (alignedPValue(tokens, key) <= 0.01) alignedDetected++;
    }
    expect(detected).toBeGreaterThanOrEqual(8);
    expect(alignedDetected).toBeLessThanOrEqual(detected - 4);
  });

  it("'local' is calibrated on plain text: P(p ≤ 0.1) within a binomial 99.9 % interval of 0.1", () => {
    const trials = 100;
    const rng = createRng('local-calibration');
    let small = 0;
    for (let i = 0; i < trials; i++) {
      const tokens =
        i % 2 === 0 ? Array.from({ length: 20 }, () => Math.floor(rng() * V)) : plainSample(rng, 20);
      const result = expEditTest(tokens, secretKey(`lcal-${i}`), {
        nullKeys: K,
        seed: `lcal:${i}`,
        statistic: 'local',
        localGap: 1,
      });
      if (result.pValue <= 0.1) small++;
    }
    // Binomial(100, 0.1), two-sided 99.9 %: [2, 20].
    expect(small).toBeGreaterThanOrEqual(2);
    expect(small).toBeLessThanOrEqual(20);
  });

  it('rejects bad input', () => {
    const key = secretKey('bad');
    expect(() => expEditTest([], key)).toThrow(VerifierError);
    expect(() => expEditTest([1, V], key, { nullKeys: 5 })).toThrow(/outside the vocabulary/);
    expect(() => expEditTest([1, 2], key, { nullKeys: 0 })).toThrow(/nullKeys/);
    expect(() => expEditTest([1, 2], key, { nullKeys: 2.5 })).toThrow(/nullKeys/);
    // @ts-expect-error: not a statistic
    expect(() => expEditTest([1, 2], key, { statistic: 'gumbel' })).toThrow(/statistic/);
    expect(() => expEditTest([1, 2], key, { statistic: 'local', localGap: 0 })).toThrow(/localGap/);
    expect(() => expEditTest([1, 2], key, { stopAbove: 0 })).toThrow(/stopAbove/);
    expect(() => expEditTest([1, 2], key, { stopAbove: 1.5 })).toThrow(/stopAbove/);
  });
});
