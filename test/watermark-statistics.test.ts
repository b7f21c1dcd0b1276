/**
 * Statistical properties of the watermark schemes, tested with the verifier's exact tail probabilities.
 * Every stream, key and model is seeded, so each test is deterministic; each interval is two-sided 99.9 %.
 */
import {
  binomialLowerTail,
  binomialUpperTail,
  chiSquareUpperTail,
  gammaLowerTail,
  gammaUpperTail,
} from '@tracemark/verifier';
import { createRng, createScheme, GenerationSession, MasterKey, type Scheme } from '@tracemark/watermark';
import { describe, expect, it } from 'vitest';
import { randomTokens, SyntheticModel, softmax, spikeEntropy } from './support/synthetic-model';

const key = MasterKey.parse('5a'.repeat(32));
const HALF_ALPHA = 0.0005;

/** Both tails of the observed sum under the scheme's null law are above 0.05 %. */
function insideNullInterval(scheme: Scheme, total: number, scored: number): { lower: number; upper: number } {
  const law = scheme.nullLaw;
  if (law.kind === 'bernoulli') {
    return {
      upper: binomialUpperTail(total, scored, law.p).p,
      lower: binomialLowerTail(total, scored, law.p).p,
    };
  }
  if (law.kind === 'binomial') {
    const trials = law.trials * scored;
    return {
      upper: binomialUpperTail(total, trials, law.p).p,
      lower: binomialLowerTail(total, trials, law.p).p,
    };
  }
  return { upper: gammaUpperTail(total, scored).p, lower: gammaLowerTail(total, scored).p };
}

describe('unwatermarked token streams follow the null law', () => {
  const V = 50_000;
  it.each([
    { scheme: 'kgw', contextWidth: 1 },
    { scheme: 'kgw', contextWidth: 3, hashing: 'min' },
    { scheme: 'kgw', contextWidth: 2, hashing: 'self', gamma: 0.5 },
    { scheme: 'unigram', gamma: 0.1 },
    { scheme: 'gumbel', contextWidth: 2 },
    { scheme: 'synthid', contextWidth: 4, depth: 30 },
  ])('%j', (spec) => {
    const scheme = createScheme({ ...spec, vocabSize: V }, key);
    const stream = randomTokens(40_000, V, `null:${JSON.stringify(spec)}`);
    let total = 0;
    for (let i = scheme.contextWidth; i < stream.length; i++) total += scheme.score(stream, i);
    const scored = stream.length - scheme.contextWidth;
    const { lower, upper } = insideNullInterval(scheme, total, scored);
    expect(upper).toBeGreaterThan(HALF_ALPHA);
    expect(lower).toBeGreaterThan(HALF_ALPHA);
    if (scheme.nullLaw.kind === 'exponential') expect(Math.abs(total / scored - 1)).toBeLessThan(0.02);
  });
});

describe('KGW raises the green fraction as theory predicts', () => {
  it('matches the exact per-step expectation and exceeds the spike-entropy bound', () => {
    const gamma = 0.25;
    const delta = 2;
    const model = new SyntheticModel(1000, 2.5);
    const scheme = createScheme({ scheme: 'kgw', vocabSize: 1000, gamma, delta, contextWidth: 1 }, key);
    const session = new GenerationSession(scheme, { prompt: [0], seed: 'kgw-theory' });
    const alpha = Math.exp(delta);
    const modulus = ((1 - gamma) * (alpha - 1)) / (1 + (alpha - 1) * gamma);
    let expected = 0;
    let variance = 0;
    let bound = 0;
    let green = 0;
    const steps = 4000;
    for (let step = 0; step < steps; step++) {
      const logits = model.logits(session.tokens);
      const p = softmax(logits);
      // Given this context's actual green list, the step is green with probability α·P_G / (α·P_G + 1 − P_G).
      let greenMass = 0;
      for (let t = 0; t < p.length; t++)
        greenMass += p[t] * scheme.score([...session.tokens.slice(-1), t], 1);
      const pGreen = (alpha * greenMass) / (alpha * greenMass + 1 - greenMass);
      expected += pGreen;
      variance += pGreen * (1 - pGreen);
      // Theorem 4.2 of Kirchenbauer et al. 2023: E[green] ≥ γα S(p, z) / (1 + (α − 1)γ), over random green lists.
      bound += ((gamma * alpha) / (1 + (alpha - 1) * gamma)) * spikeEntropy(p, modulus);
      session.next(logits);
      green += scheme.score(session.tokens, session.tokens.length - 1);
    }
    expect(Math.abs(green - expected)).toBeLessThan(3.29 * Math.sqrt(variance));
    expect(green / steps).toBeGreaterThan(bound / steps - (3.29 * Math.sqrt(variance)) / steps);
    expect(green / steps).toBeGreaterThan(0.45);
  });
});

describe('distortion-free schemes reproduce the model distribution', () => {
  // Eight tokens carry the mass; the rest of a 1,000-token vocabulary is masked, so that each key
  // offers 1,000 distinct one-token contexts, each an independent draw.
  const p = [0.3, 0.2, 0.15, 0.1, 0.1, 0.08, 0.05, 0.02];
  const V = 1000;
  const logits = new Float32Array(V).fill(Number.NEGATIVE_INFINITY);
  p.forEach((q, i) => {
    logits[i] = Math.log(q);
  });

  it.each([
    { scheme: 'gumbel', contextWidth: 1 },
    { scheme: 'synthid', contextWidth: 1, depth: 30 },
  ])('$scheme: chi-square over 20 keys × 1,000 contexts, and determinism for a fixed key', (spec) => {
    const counts = new Array(p.length).fill(0);
    const uniform = createRng(`chi-square:${spec.scheme}`);
    for (let k = 0; k < 20; k++) {
      const scheme = createScheme(
        { ...spec, vocabSize: V },
        MasterKey.parse((k + 16).toString(16).repeat(32)),
      );
      for (let context = 0; context < V; context++)
        counts[scheme.choose([context], logits, null, V, uniform)]++;
    }
    const drawn = counts.reduce((a, b) => a + b, 0);
    expect(drawn).toBe(20_000);
    let chi2 = 0;
    for (let i = 0; i < p.length; i++) chi2 += (counts[i] - drawn * p[i]) ** 2 / (drawn * p[i]);
    expect(chiSquareUpperTail(chi2, p.length - 1).p).toBeGreaterThan(1e-3);

    const fixed = createScheme({ ...spec, vocabSize: V }, key);
    for (let context = 0; context < 50; context++) {
      const first = fixed.choose([context], logits, null, V, () => 0.42);
      const second = fixed.choose([context], logits, null, V, () => 0.42);
      expect(second).toBe(first);
    }
  });
});

describe('keys are independent', () => {
  const V = 100_000;
  const gamma = 0.25;

  function greenSet(scheme: Scheme, context: number): Uint8Array {
    const out = new Uint8Array(V);
    const sequence = [context, 0];
    for (let t = 0; t < V; t++) {
      sequence[1] = t;
      out[t] = scheme.score(sequence, 1);
    }
    return out;
  }

  it.each([
    [
      'two master keys',
      createScheme({ scheme: 'kgw', vocabSize: V, gamma }, key),
      createScheme({ scheme: 'kgw', vocabSize: V, gamma }, MasterKey.parse('a5'.repeat(32))),
    ],
    [
      'two tenants of one key',
      createScheme({ scheme: 'kgw', vocabSize: V, gamma }, key, { tenant: 'acme' }),
      createScheme({ scheme: 'kgw', vocabSize: V, gamma }, key, { tenant: 'globex' }),
    ],
  ])('%s: green lists overlap on γ² of the vocabulary', (_label, a, b) => {
    const ga = greenSet(a, 17);
    const gb = greenSet(b, 17);
    let overlap = 0;
    for (let t = 0; t < V; t++) overlap += ga[t] & gb[t];
    const p2 = a.nullLaw.kind === 'bernoulli' ? a.nullLaw.p ** 2 : Number.NaN;
    expect(binomialUpperTail(overlap, V, p2).p).toBeGreaterThan(HALF_ALPHA);
    expect(binomialLowerTail(overlap, V, p2).p).toBeGreaterThan(HALF_ALPHA);
    expect(Math.abs(overlap / V - gamma * gamma)).toBeLessThan(0.005);
  });
});
