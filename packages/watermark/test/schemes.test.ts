import { describe, expect, it } from 'vitest';
import {
  createInteropScheme,
  createRng,
  createScheme,
  GenerationBatch,
  GenerationSession,
  type KgwScheme,
  keyedSpec,
  MasterKey,
  Sampler,
  type Scheme,
  SchemeBase,
  SchemeKey,
} from '../src/index';
import { interopFingerprint } from '../src/interop/common';

const key = MasterKey.parse('42'.repeat(32));
const V = 500;

/** A deterministic toy model: logits that depend on the last token, so contexts matter. */
function toyLogits(sequence: number[], vocab = V): Float32Array {
  const last = sequence[sequence.length - 1] ?? 0;
  const rng = createRng(`toy:${last}`);
  const out = new Float32Array(vocab);
  for (let i = 0; i < vocab; i++)
    out[i] = 3 * Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());
  return out;
}

function generate(
  scheme: Scheme,
  steps: number,
  options: ConstructorParameters<typeof GenerationSession>[1] = {},
) {
  const session = new GenerationSession(scheme, { prompt: [1, 2, 3, 4], ...options });
  for (let i = 0; i < steps; i++) session.next(toyLogits(session.tokens, scheme.vocabSize));
  return session;
}

describe('embedding and scoring share one definition', () => {
  it.each(['left', 'min', 'self'] as const)(
    'KGW (%s): the bias lands exactly on the tokens that score green',
    (hashing) => {
      const scheme = createScheme(
        { scheme: 'kgw', vocabSize: V, contextWidth: 2, hashing, selfCandidates: V },
        key,
      );
      const context = [7, 99];
      const logits = new Float32Array(V);
      scheme.biasLogits?.(context, logits);
      let green = 0;
      for (let t = 0; t < V; t++) {
        const score = scheme.score([...context, t], 2);
        expect(logits[t]).toBe(score === 1 ? 2 : 0);
        green += score;
      }
      expect(green).toBeGreaterThan(V * 0.15);
      expect(green).toBeLessThan(V * 0.35);
    },
  );

  it('KGW on a candidate subset biases the same tokens as on the full vocabulary', () => {
    const scheme = createScheme({ scheme: 'kgw', vocabSize: V }, key);
    const full = new Float32Array(V);
    scheme.biasLogits?.([5], full);
    const ids = Int32Array.from([3, 17, 250, 499, 0]);
    const subset = new Float32Array(ids.length);
    scheme.biasLogits?.([5], subset, ids, ids.length);
    expect(Array.from(subset)).toEqual(Array.from(ids, (t) => full[t]));
  });

  it('SelfHash biases only the most likely candidates', () => {
    const scheme = createScheme(
      { scheme: 'kgw', vocabSize: V, hashing: 'self', selfCandidates: 5 },
      key,
    ) as KgwScheme;
    const logits = new Float32Array(V).map((_, t) => -t / 10);
    scheme.biasLogits([9], logits);
    for (let t = 5; t < V; t++) expect(logits[t]).toBe(Math.fround(-t / 10));
    for (let t = 0; t < 5; t++)
      expect(logits[t] - Math.fround(-t / 10)).toBeCloseTo(scheme.isGreen([9], 1, t) ? 2 : 0, 5);
  });

  it('Gumbel-max picks the candidate with the largest score when candidates are equally likely', () => {
    const scheme = createScheme({ scheme: 'gumbel', vocabSize: V, contextWidth: 1, softness: 0 }, key);
    for (let context = 0; context < 50; context++) {
      const chosen = scheme.choose([context], new Float32Array(V), null, V, () => 0.5);
      let best = -1;
      let bestScore = -1;
      for (let t = 0; t < V; t++) {
        const s = scheme.score([context, t], 1);
        if (s > bestScore) [best, bestScore] = [t, s];
      }
      expect(chosen).toBe(best);
    }
  });

  it('SynthID tournament favours tokens with many g-values set', () => {
    const scheme = createScheme({ scheme: 'synthid', vocabSize: V, contextWidth: 1, depth: 20 }, key);
    const uniform = createRng(1);
    let total = 0;
    for (let context = 0; context < 200; context++) {
      const chosen = scheme.choose([context], new Float32Array(V), null, V, uniform);
      total += scheme.score([context, chosen], 1);
    }
    // With 500 equally likely candidates the winner's score is far above the null mean of 10.
    expect(total / 200).toBeGreaterThan(14);
  });
});

describe('determinism', () => {
  it('Gumbel-max output is a function of key and context alone', () => {
    const scheme = createScheme({ scheme: 'gumbel', vocabSize: V, contextWidth: 2, softness: 0 }, key);
    const logits = toyLogits([3]);
    const a = scheme.choose([1, 2], logits, null, V, createRng(1));
    const b = scheme.choose([1, 2], logits, null, V, createRng(2));
    expect(a).toBe(b);
    const other = createScheme(
      { scheme: 'gumbel', vocabSize: V, contextWidth: 2, softness: 0 },
      MasterKey.parse('12'.repeat(32)),
    );
    const picks = new Set<number>();
    for (let c = 0; c < 20; c++) picks.add(other.choose([c, c], logits, null, V, Math.random) - a);
    expect(picks.size).toBeGreaterThan(1);
  });

  it.each([
    { scheme: 'kgw', vocabSize: V },
    { scheme: 'gumbel', vocabSize: V },
    { scheme: 'synthid', vocabSize: V },
  ])('$scheme: the same key, seed and logits give the same generation', (spec) => {
    const scheme = createScheme(spec, key);
    const a = generate(scheme, 60, { seed: 'request-1', sampling: { topK: 40 } }).tokens;
    const b = generate(scheme, 60, { seed: 'request-1', sampling: { topK: 40 } }).tokens;
    expect(a).toEqual(b);
  });

  it('a batch equals its rows generated one by one', () => {
    const scheme = createScheme({ scheme: 'synthid', vocabSize: V }, key);
    const rows = [
      { prompt: [1, 2, 3, 4], seed: 1 },
      { prompt: [4, 3, 2, 1], seed: 2, watermark: false },
    ];
    const batch = new GenerationBatch(scheme, rows);
    const single = rows.map((row) => new GenerationSession(scheme, row));
    for (let step = 0; step < 30; step++) {
      const matrix = new Float32Array(2 * V);
      for (const [r, s] of single.entries()) matrix.set(toyLogits(s.tokens), r * V);
      const tokens = batch.next(matrix);
      for (const [r, s] of single.entries()) expect(s.next(toyLogits(s.tokens))).toBe(tokens[r]);
    }
    expect(batch.sessions.map((s) => s.tokens)).toEqual(single.map((s) => s.tokens));
    expect(batch.sessions[1].watermarkedSteps).toBe(0);
  });
});

describe('GumbelSoft (softness τ > 0)', () => {
  it('draws t with probability ∝ exp((logit_t + G_t) / τ), G_t the key’s Gumbel noise', () => {
    const vocab = 6;
    const tau = 0.5;
    const logits = Float32Array.from([0, -0.5, -1, 0.3, -2, -0.1]);
    const soft = createScheme({ scheme: 'gumbel', vocabSize: vocab, contextWidth: 1, softness: tau }, key);
    // r_t is exp(−score_t) complemented: score = −ln(1 − r), so r = 1 − e^(−score) and G = −ln(−ln r).
    const weights = Array.from({ length: vocab }, (_, t) => {
      const r = -Math.expm1(-soft.score([4, t], 1));
      return Math.exp((logits[t] - Math.log(-Math.log(r))) / tau);
    });
    const total = weights.reduce((a, b) => a + b, 0);
    const uniform = createRng('soft-law');
    const draws = 20_000;
    const counts = new Array(vocab).fill(0);
    for (let i = 0; i < draws; i++)
      counts[soft.choose([4], Float32Array.from(logits), null, vocab, uniform)]++;
    for (let t = 0; t < vocab; t++) {
      const p = weights[t] / total;
      // Within 4.5 binomial standard deviations of the law (a false alarm about once in 10^5 runs).
      expect(Math.abs(counts[t] - draws * p)).toBeLessThan(4.5 * Math.sqrt(draws * p * (1 - p)) + 1);
    }
  });

  it('is detected with the same key at every softness: τ shapes sampling, not the key', () => {
    const specs = [0, 0.5, 2].map((softness) => ({
      scheme: 'gumbel',
      vocabSize: V,
      contextWidth: 2,
      softness,
    }));
    const fingerprints = specs.map((spec) => createScheme(spec, key).keyFingerprint);
    expect(new Set(fingerprints).size).toBe(1);
    expect(keyedSpec(specs[1])).toBe(keyedSpec(specs[0]));
    expect(createScheme({ scheme: 'kgw', vocabSize: V }, key).keyFingerprint).not.toBe(fingerprints[0]);
  });

  it('keeps samples of one prompt apart where argmax sampling repeats them', () => {
    const distinct = (softness: number) => {
      const scheme = createScheme({ scheme: 'gumbel', vocabSize: V, contextWidth: 2, softness }, key);
      const texts = new Set<string>();
      for (let i = 0; i < 8; i++)
        texts.add(generate(scheme, 30, { prompt: [1, 2], seed: `n-${i}` }).tokens.join());
      return texts.size;
    };
    expect(distinct(0)).toBe(1);
    expect(distinct(0.5)).toBe(8);
  });
});

describe('repeated contexts', () => {
  it.each([{ scheme: 'gumbel' }, { scheme: 'synthid' }])(
    '$scheme spends the keyed randomness of a context window once per sequence',
    (partial) => {
      const scheme = createScheme({ ...partial, vocabSize: 20, contextWidth: 1 }, key);
      const session = new GenerationSession(scheme, { prompt: [0], seed: 3 });
      for (let i = 0; i < 200; i++) session.next(new Float32Array(20));
      // Only 20 distinct one-token windows exist, so at most 20 steps can carry the watermark.
      const windows = new Set(session.tokens.slice(0, -1));
      expect(session.watermarkedSteps).toBeLessThanOrEqual(windows.size);
      expect(session.watermarkedSteps).toBeGreaterThan(5);
    },
  );

  it('KGW keeps biasing repeated contexts (it is not distortion-free)', () => {
    const scheme = createScheme({ scheme: 'kgw', vocabSize: 20 }, key);
    const session = new GenerationSession(scheme, { prompt: [0], seed: 3 });
    for (let i = 0; i < 100; i++) session.next(new Float32Array(20));
    expect(session.watermarkedSteps).toBe(100);
  });
});

describe('sampler', () => {
  const logits = Float32Array.from([0.5, 3, -1, 2, Number.NEGATIVE_INFINITY, 2.5, 0]);

  it('greedy picks the argmax', () => {
    const { logits: l, ids, count } = new Sampler(7, { temperature: 0 }).select(logits);
    expect(count).toBe(1);
    expect(ids?.[0]).toBe(1);
    expect(l[0]).toBe(3);
  });

  it('top-k keeps the k largest, in decreasing order, and never a masked token', () => {
    const set = new Sampler(7, { topK: 3 }).select(logits);
    expect(Array.from(set.ids ?? [])).toEqual([1, 5, 3]);
    const all = new Sampler(7, { topK: 6 }).select(logits);
    expect(all.count).toBe(6);
    expect(Array.from(all.ids ?? [])).not.toContain(4);
  });

  it('top-p keeps the smallest prefix that reaches the mass', () => {
    const probs = Array.from(logits, (x) => Math.exp(x));
    const total = probs.reduce((a, b) => a + b, 0);
    const p1 = probs[1] / total;
    const p15 = (probs[1] + probs[5]) / total;
    expect(new Sampler(7, { topP: p1 * 0.99 }).select(logits).count).toBe(1);
    expect(new Sampler(7, { topP: (p1 + p15) / 2 }).select(logits).count).toBe(2);
    expect(new Sampler(7, { topP: 1 - 1e-9 }).select(logits).count).toBe(6);
    expect(new Sampler(7, { topK: 2, topP: 0.99 }).select(logits).count).toBe(2);
  });

  it('temperature scales the logits without touching the caller’s array', () => {
    const copy = Float32Array.from(logits);
    const set = new Sampler(7, { temperature: 2 }).select(logits);
    expect(set.logits[1]).toBe(1.5);
    expect(Array.from(logits)).toEqual(Array.from(copy));
  });

  it('top-p over a large vocabulary grows its prefix until it holds the mass', () => {
    const big = new Float32Array(10_000).map((_, i) => -i / 2000);
    const set = new Sampler(10_000, { topP: 0.5 }).select(big);
    const total = big.reduce((a, x) => a + Math.exp(x), 0);
    let mass = 0;
    for (let i = 0; i < set.count; i++) mass += Math.exp(set.logits[i]);
    expect(mass / total).toBeGreaterThanOrEqual(0.5 - 1e-9);
    expect((mass - Math.exp(set.logits[set.count - 1])) / total).toBeLessThan(0.5);
  });
});

describe('candidate sets from the caller', () => {
  // Argmax sampling is independent of the candidates' order, so the two paths must agree token for token.
  it('gives the full-vocabulary result when the candidates are every unmasked token', () => {
    const scheme = createScheme({ scheme: 'gumbel', vocabSize: V, contextWidth: 1, softness: 0 }, key);
    const logits = toyLogits([3]);
    const ids = Int32Array.from({ length: V }, (_, i) => i);
    for (let context = 0; context < 30; context++) {
      const full = generate(scheme, 0, { prompt: [context] });
      full.next(Float32Array.from(logits));
      const sparse = new GenerationSession(scheme, { prompt: [context] });
      sparse.nextFromCandidates(ids, Float32Array.from(logits));
      expect(sparse.tokens).toEqual(full.tokens);
    }
  });

  it('rejects malformed candidate sets with one clear line', () => {
    const scheme = createScheme({ scheme: 'kgw', vocabSize: V }, key);
    const session = new GenerationSession(scheme, { prompt: [1] });
    const cases: [Int32Array, Float32Array, number | undefined, RegExp][] = [
      [Int32Array.from([1, V]), new Float32Array(2), undefined, /candidate id 500 is outside the vocabulary/],
      [Int32Array.from([1, 2]), Float32Array.from([0, Number.NaN]), undefined, /candidate logit 1 is NaN/],
      [
        Int32Array.from([1, 2]),
        new Float32Array(2).fill(Number.NEGATIVE_INFINITY),
        undefined,
        /every candidate logit is -Infinity/,
      ],
      [Int32Array.from([1, 2]), new Float32Array(2), 3, /candidate count 3/],
    ];
    for (const [ids, logits, count, message] of cases) {
      expect(() => session.nextFromCandidates(ids, logits, count)).toThrow(message);
    }
    expect(session.tokens).toEqual([1]);
  });
});

describe('identity fields', () => {
  it('come from the spec, the scheme and its key, in one shared base', () => {
    const native: [Record<string, unknown>, Scheme['nullLaw'], boolean, number][] = [
      [{ scheme: 'kgw', vocabSize: V, contextWidth: 2 }, { kind: 'bernoulli', p: 0.25 }, false, 2],
      [{ scheme: 'unigram', vocabSize: V }, { kind: 'bernoulli', p: 0.25 }, false, 0],
      [{ scheme: 'gumbel', vocabSize: V, contextWidth: 3, softness: 0 }, { kind: 'exponential' }, true, 3],
      [{ scheme: 'gumbel', vocabSize: V, contextWidth: 3 }, { kind: 'exponential' }, false, 3],
      [{ scheme: 'synthid', vocabSize: V, depth: 7 }, { kind: 'binomial', trials: 7, p: 0.5 }, true, 4],
    ];
    for (const [spec, nullLaw, distortionFree, contextWidth] of native) {
      const scheme = createScheme(spec, key, { tenant: 'acme' });
      const derived = new SchemeKey(key, keyedSpec(spec), 'acme');
      expect(scheme).toBeInstanceOf(SchemeBase);
      expect(scheme.spec.vocabSize).toBe(V);
      expect([scheme.vocabSize, scheme.contextWidth, scheme.distortionFree, scheme.nullLaw]).toEqual([
        V,
        contextWidth,
        distortionFree,
        nullLaw,
      ]);
      expect([scheme.keyFingerprint, scheme.masterFingerprint, scheme.tenant]).toEqual([
        derived.fingerprint,
        key.fingerprint,
        'acme',
      ]);
    }
    const interop: [Record<string, unknown>, number, boolean][] = [
      [{ scheme: 'hf-kgw', vocabSize: V, contextWidth: 3, seedingScheme: 'selfhash' }, 2, false],
      [{ scheme: 'lmw-kgw', vocabSize: V, seedingScheme: 'minhash' }, 4, false],
      [{ scheme: 'synthid-text', vocabSize: V, keys: [1, 2, 3], ngramLen: 3 }, 2, true],
      [{ scheme: 'hf-synthid', vocabSize: V, keys: [1, 2], samplingTableSize: 64 }, 4, true],
    ];
    for (const [spec, contextWidth, distortionFree] of interop) {
      const scheme = createInteropScheme(spec);
      expect(scheme).toBeInstanceOf(SchemeBase);
      expect([scheme.vocabSize, scheme.contextWidth, scheme.distortionFree]).toEqual([
        V,
        contextWidth,
        distortionFree,
      ]);
      expect([scheme.keyFingerprint, scheme.masterFingerprint, scheme.tenant]).toEqual([
        interopFingerprint(String(spec.scheme), scheme.spec),
        `interop:${spec.scheme}`,
        undefined,
      ]);
    }
  });
});
