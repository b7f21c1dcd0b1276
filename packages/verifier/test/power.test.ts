import { describe, expect, it } from 'vitest';
import { binomialUpperTail, exactBinomialPower, normalQuantileUpper, requiredTokens } from '../src/index';

/** The smallest n with power ≥ target, by brute force over every n with a fresh critical-value search. */
function bruteForce(gamma: number, p1: number, alpha: number, power: number): number {
  for (let n = 1; ; n++) {
    let c = 0;
    while (c <= n && binomialUpperTail(c, n, gamma).p > alpha) c++;
    if (c <= n && binomialUpperTail(c, n, p1).p >= power) return n;
  }
}

describe('requiredTokens', () => {
  it('finds the smallest n exactly, against brute force', () => {
    for (const q of [
      { gamma: 0.25, effect: 0.1, alpha: 1e-3, power: 0.8 },
      { gamma: 0.5, effect: 0.2, alpha: 0.01, power: 0.9 },
      { gamma: 0.25, effect: 0.25, alpha: 1e-6, power: 0.95 },
    ]) {
      const result = requiredTokens(q);
      expect(result.tokens).toBe(bruteForce(q.gamma, q.gamma + q.effect, q.alpha, q.power));
      expect(result.actualAlpha).toBeLessThanOrEqual(q.alpha);
      expect(result.actualPower).toBeGreaterThanOrEqual(q.power);
    }
  });

  it('answers the planning question of the issue (γ 0.25, effect 0.01, α 1e-6, power 0.9)', () => {
    const result = requiredTokens({ gamma: 0.25, effect: 0.01, alpha: 1e-6, power: 0.9 });
    expect(result.tokens).toBe(69_043);
    expect(result.normalApproximation).toBe(68_667);
    const at = exactBinomialPower(result.tokens, 0.25, 0.26, 1e-6);
    expect(at.power).toBeGreaterThanOrEqual(0.9);
    expect(at.actualAlpha).toBeLessThanOrEqual(1e-6);
    expect(exactBinomialPower(result.tokens - 1, 0.25, 0.26, 1e-6).power).toBeLessThan(0.9);
  });

  it('inverts the normal tail accurately', () => {
    expect(normalQuantileUpper(0.025)).toBeCloseTo(1.959963985, 8);
    expect(normalQuantileUpper(1e-6)).toBeCloseTo(4.753424309, 8);
    expect(normalQuantileUpper(0.9)).toBeCloseTo(-1.281551566, 8);
  });

  it('refuses impossible questions with one clear message', () => {
    expect(() => requiredTokens({ gamma: 0.25, effect: 0.8, alpha: 1e-6, power: 0.9 })).toThrow(/effect/);
    expect(() => requiredTokens({ gamma: 0.25, effect: 1e-7, alpha: 1e-6, power: 0.9 })).toThrow(/too small/);
    expect(() => requiredTokens({ gamma: 0.25, effect: 0.01, alpha: 0, power: 0.9 })).toThrow(/alpha/);
  });
});
