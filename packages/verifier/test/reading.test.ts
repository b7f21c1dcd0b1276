import { createRng, createScheme, GenerationSession, type KgwScheme, MasterKey } from '@tracemark/watermark';
import { describe, expect, it } from 'vitest';
import {
  investigateReading,
  kolmogorovSmirnovUniform,
  nullTail,
  type ReadText,
  radioactivityTest,
  randomizedPValue,
  readingSamples,
  readingTest,
} from '../src/index';

const V = 800;
const owner = MasterKey.parse('44'.repeat(32));
const spec = { scheme: 'kgw', vocabSize: V, gamma: 0.25, delta: 2, contextWidth: 1 };
const scheme = createScheme(spec, owner) as KgwScheme;

/** The owner's language: logits of the next token given the previous one (a fixed random bigram model). */
const rows = new Map<number, Float32Array>();
function bigram(previous: number): Float32Array {
  let row = rows.get(previous);
  if (row === undefined) {
    const rng = createRng(`bigram:${previous}`);
    row = new Float32Array(V);
    for (let t = 0; t < V; t++)
      row[t] = 2 * Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());
    rows.set(previous, row);
  }
  return row;
}

function argmax(row: ArrayLike<number>): number {
  let best = 0;
  for (let t = 1; t < row.length; t++) if (row[t] > row[best]) best = t;
  return best;
}

/** The owner's watermarked outputs: 60 texts of 80 tokens. */
const texts = Array.from({ length: 60 }, (_, k) => {
  const session = new GenerationSession(scheme, { prompt: [k], seed: `owner-${k}` });
  for (let i = 0; i < 80; i++)
    session.next(Float32Array.from(bigram(session.tokens[session.tokens.length - 1])));
  return session.tokens;
});

/** A suspect read on the texts: `predict(prefix)` is its top-1 next token after the prefix. */
function read(predict: (prefix: number[]) => number): ReadText[] {
  return texts.map((tokens) => ({
    tokens,
    predictions: Array.from({ length: tokens.length + 1 }, (_, i) =>
      i === 0 ? -1 : predict(tokens.slice(0, i)),
    ),
  }));
}

/** A model never trained on the owner's outputs: the bigram's own most likely token. */
const clean = read((prefix) => argmax(bigram(prefix[prefix.length - 1])));

/**
 * A clean model that copies from its context, as an LLM's induction heads do: after a token it has seen before
 * in the text, it predicts what followed it there. It was never trained on watermarked text.
 */
const copying = read((prefix) => {
  const last = prefix[prefix.length - 1];
  for (let j = prefix.length - 2; j >= 0; j--) if (prefix[j] === last) return prefix[j + 1];
  return argmax(bigram(last));
});

/** A model distilled from the owner's outputs: it learnt the green lists' bias. */
const distilled = read((prefix) => {
  const row = Float32Array.from(bigram(prefix[prefix.length - 1]));
  scheme.biasLogits?.(prefix, row);
  return argmax(row);
});

describe('readingSamples: the reading rule', () => {
  it('scores each first window once, and counts what it drops', () => {
    const tokens = [5, 6, 5, 7, 8];
    const predictions = [-1, 9, 9, 9, -1, 9];
    const { samples, positions, skipped } = readingSamples([{ tokens, predictions }], scheme);
    // Position 0 has no window; 3's window (5) was read at 1; 4 has no prediction; 5 reads after the whole text.
    expect(skipped).toEqual({ context: 1, repeatedWindow: 1, missing: 1 });
    expect(positions).toBe(6);
    expect(samples.map((s) => [Array.from(s.prompt), Array.from(s.output)])).toEqual([
      [[5], [9]],
      [[6], [9]],
      [[8], [9]],
    ]);
  });

  it('refuses the Unigram watermark, whose one green list every position of the text shares', () => {
    const unigram = createScheme({ scheme: 'unigram', vocabSize: V }, owner);
    expect(() => readingSamples([{ tokens: [1, 2, 3], predictions: [4, 4, 4, 4] }], unigram)).toThrow(
      /reading mode needs a context window \(h ≥ 1\)/,
    );
  });

  it('refuses input that is not a list of texts, in one line', () => {
    expect(() => readingSamples('text' as never, scheme)).toThrow(/texts must be an array/);
  });
});

describe('readingTest', () => {
  it('detects a distilled suspect from its predictions on the owner texts', () => {
    const result = readingTest(distilled, { scheme });
    expect(result.mode).toBe('read');
    expect(result.texts).toBe(60);
    expect(result.log10PValue).toBeLessThan(-30);
    // Each (window, prediction) pair once: an argmax reader gives at most one pair per distinct window.
    expect(result.scored).toBeGreaterThan(500);
  });

  it('falls into the trap without the rule: a copying clean model looks radioactive on every position', () => {
    // Every position as a sample, repeated windows included: the copies of watermarked continuations count.
    const all = copying.flatMap(({ tokens, predictions }) =>
      Array.from({ length: tokens.length }, (_, i) => i)
        .filter((i) => i >= 1)
        .map((i) => ({ prompt: [tokens[i - 1]], output: [predictions[i]] })),
    );
    expect(radioactivityTest(all, { scheme, dropPromptWindows: false }).log10PValue).toBeLessThan(-6);
    // With it, the same suspect is as chance.
    expect(readingTest(copying, { scheme }).pValue).toBeGreaterThan(1e-3);
  });

  it('is calibrated on clean suspects over 60 never-used keys, the copying one included', async () => {
    for (const suspect of [clean, copying]) {
      const result = await investigateReading(suspect, { spec, key: owner, controls: 60, threads: 1 });
      expect(result.mode).toBe('read');
      expect(result.reading?.texts).toBe(60);
      expect(result.controls.count).toBe(60);
      expect(result.controls.uniformity.pValue).toBeGreaterThan(0.01);
      expect(result.verdict.detected).toBe(false);
    }
    // The same over 200 owner keys (each its own test): the clean suspect's randomized p-values (exactly
    // uniform under H0 for the discrete binomial law) pass a KS test, and none is below 1e-3.
    const uniform = createRng('reading-calibration');
    const exact: number[] = [];
    const randomized = Array.from({ length: 200 }, (_, k) => {
      const key = createScheme(spec, owner, { tenant: `calibration-${k}` });
      const { scoreSum, scored } = readingTest(clean, { scheme: key, trajectoryPointsPerDecade: 1 });
      exact.push(nullTail(key.nullLaw, scoreSum, scored).p);
      return randomizedPValue(key.nullLaw, scoreSum, scored, uniform());
    });
    expect(Math.min(...exact)).toBeGreaterThan(1e-3);
    expect(kolmogorovSmirnovUniform(randomized).pValue).toBeGreaterThan(1e-3);
  });

  it('detects the distilled suspect through investigateReading, with passing controls', async () => {
    const result = await investigateReading(distilled, { spec, key: owner, controls: 50, threads: 1 });
    expect(result.verdict.detected).toBe(true);
    expect(result.controls.passed).toBe(true);
    expect(result.reading?.skipped.context).toBe(60);
  });
});
