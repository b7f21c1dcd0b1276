import { describe, expect, it } from 'vitest';
import { binomialUpperTail, EProcess, logGamma, sequentialTest } from '../src/index';

/** xorshift128+ as doubles in [0, 1): fast and reproducible, for millions of simulated tokens. */
function rng(seed: number): () => number {
  let s0 = (seed * 0x9e3779b1) >>> 0 || 1;
  let s1 = (seed ^ 0x85ebca6b) >>> 0 || 2;
  return () => {
    let x = s0;
    const y = s1;
    s0 = y;
    x ^= x << 23;
    x ^= x >>> 17;
    x ^= y ^ (y >>> 26);
    s1 = x >>> 0;
    return ((s0 + s1) >>> 0) / 4294967296;
  };
}

const logBeta = (a: number, b: number) => logGamma(a) + logGamma(b) - logGamma(a + b);

/** Smallest c with P[Binomial(n, p) ≥ c] ≤ level: rejections at or above it are beyond chance. */
function binomialBound(n: number, p: number, level: number): number {
  let c = Math.ceil(n * p);
  while (binomialUpperTail(c, n, p).p > level) c++;
  return c;
}

describe('EProcess', () => {
  it('is the beta-binomial mixture martingale in closed form', () => {
    const gamma = 0.25;
    const e = new EProcess({ kind: 'bernoulli', p: gamma }, { priorStrength: 40 });
    const a = 40 * gamma;
    const b = 40 * (1 - gamma);
    const next = rng(7);
    let k = 0;
    for (let n = 1; n <= 3000; n++) {
      const green = next() < 0.3 ? 1 : 0;
      k += green;
      const logE = e.push(green);
      if (n % 500 === 0) {
        const closed =
          logBeta(a + k, b + n - k) - logBeta(a, b) - k * Math.log(gamma) - (n - k) * Math.log(1 - gamma);
        expect(logE).toBeCloseTo(closed, 8);
      }
    }
    expect(e.state.scored).toBe(3000);
    expect(e.state.scoreSum).toBe(k);
    expect(e.state.log10AnytimePValue).toBeCloseTo(-e.state.log10MaxEValue, 12);
  });

  it('has expectation 1 under H0 (exact enumeration over 12 tokens)', () => {
    // E[E_n] = Σ_k C(n, k) γ^k (1 − γ)^(n − k) E_n(k) = 1 for a martingale started at 1.
    for (const law of [
      { kind: 'bernoulli', p: 0.25 } as const,
      { kind: 'binomial', trials: 3, p: 0.5 } as const,
    ]) {
      const trials = law.kind === 'binomial' ? law.trials : 1;
      const n = 12 * trials;
      let total = 0;
      for (let k = 0; k <= n; k++) {
        const e = new EProcess(law);
        // Any order of the k successes gives the same e-value: feed them in one arrangement.
        let left = k;
        for (let t = 0; t < 12; t++) {
          const bits = Math.min(trials, left);
          left -= bits;
          e.push(bits);
        }
        const logChoose = logGamma(n + 1) - logGamma(k + 1) - logGamma(n - k + 1);
        total += Math.exp(
          logChoose + k * Math.log(law.p) + (n - k) * Math.log(1 - law.p) + e.state.log10EValue * Math.LN10,
        );
      }
      expect(total).toBeCloseTo(1, 9);
    }
  });

  it('keeps the false-positive rate below α when checked after every token (2,000 null streams, n = 5,000)', () => {
    const alpha = 0.01;
    const streams = 2000;
    const n = 5000;
    const gamma = 0.25;
    let rejected = 0;
    let naiveRejected = 0;
    const checkpoints = new Set<number>();
    for (let m = 10; m <= n; m = Math.ceil(m * 1.25)) checkpoints.add(m);
    checkpoints.add(n);
    const next = rng(2024);
    for (let s = 0; s < streams; s++) {
      const e = new EProcess({ kind: 'bernoulli', p: gamma });
      let k = 0;
      let naive = false;
      for (let i = 1; i <= n; i++) {
        const green = next() < gamma ? 1 : 0;
        k += green;
        e.push(green);
        // The fixed-size p-value peeked at as data arrive: what the e-process makes unnecessary.
        if (!naive && checkpoints.has(i) && binomialUpperTail(k, i, gamma).p <= alpha) naive = true;
      }
      if (e.rejects(alpha)) rejected++;
      if (naive) naiveRejected++;
    }
    const bound = binomialBound(streams, alpha, 1e-3);
    console.info(
      `sequential null simulation: ${rejected}/${streams} e-process rejections (rate ${(rejected / streams).toFixed(4)}, α = ${alpha}, bound < ${bound}); the fixed-size test peeked at ${checkpoints.size} times rejects ${naiveRejected}/${streams}`,
    );
    expect(rejected).toBeLessThan(bound);
    // Peeking at the fixed-size p-value inflates its false-positive rate well past α.
    expect(naiveRejected).toBeGreaterThan(2 * alpha * streams);
  });

  it('has power on watermarked streams, and stops early', () => {
    const alpha = 1e-6;
    const next = rng(99);
    for (const [rate, within] of [
      [0.35, 3000],
      [0.3, 12_000],
    ] as const) {
      const stops: number[] = [];
      for (let s = 0; s < 200; s++) {
        const scores = new Uint8Array(within);
        for (let i = 0; i < within; i++) scores[i] = next() < rate ? 1 : 0;
        const result = sequentialTest(scores, { kind: 'bernoulli', p: 0.25 }, { alpha });
        if (result.rejected) stops.push(result.stoppedAt as number);
      }
      stops.sort((a, b) => a - b);
      console.info(
        `sequential power: green rate ${rate} vs γ = 0.25 at α = ${alpha}: ${stops.length}/200 streams stopped within ${within} tokens (median stop ${stops[Math.floor(stops.length / 2)]})`,
      );
      expect(stops.length).toBeGreaterThanOrEqual(190);
    }
  });

  it('is valid for Gumbel (exponential) and SynthID (bit) scores too', () => {
    const next = rng(5);
    let rejectedExp = 0;
    let rejectedBits = 0;
    for (let s = 0; s < 300; s++) {
      const exp = new EProcess({ kind: 'exponential' });
      const bits = new EProcess({ kind: 'binomial', trials: 4, p: 0.5 });
      for (let i = 0; i < 1000; i++) {
        exp.push(-Math.log(1 - next()));
        let set = 0;
        for (let j = 0; j < 4; j++) set += next() < 0.5 ? 1 : 0;
        bits.push(set);
      }
      if (exp.rejects(0.05)) rejectedExp++;
      if (bits.rejects(0.05)) rejectedBits++;
    }
    const bound = binomialBound(300, 0.05, 1e-3);
    expect(rejectedExp).toBeLessThan(bound);
    expect(rejectedBits).toBeLessThan(bound);
    // Watermarked Gumbel scores (the max of 2 exponentials, mean 1.5) are caught quickly.
    const scores = Array.from({ length: 400 }, () => Math.max(-Math.log(1 - next()), -Math.log(1 - next())));
    expect(sequentialTest(scores, { kind: 'exponential' }, { alpha: 1e-6 }).rejected).toBe(true);
  });

  it('rejects a bad prior', () => {
    expect(() => new EProcess({ kind: 'bernoulli', p: 0.25 }, { priorStrength: 0 })).toThrow(/priorStrength/);
  });
});
