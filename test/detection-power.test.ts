/**
 * Power of the verifier: text generated with a key is detected with that key and not with another, and a
 * short watermarked passage inside plain text is found by the window test. The model is the seeded synthetic
 * bigram model (V = 1,000, σ = 3: about 3.4 nats per token); prompts, sampling and keys are all fixed.
 */
import { type DetectionResult, detectTokens } from '@tracemark/verifier';
import { createScheme, MasterKey, type SamplingOptions } from '@tracemark/watermark';
import { describe, expect, it } from 'vitest';
import { continueText, EntropyMeter, randomPrompt } from './support/generation';
import { AttainedSize, binomialTails } from './support/null-calibration';
import { SyntheticModel } from './support/synthetic-model';

const MASTER = MasterKey.parse('8e41d0c7a95b3f261e0d4c8b7a3f9e25d6c1b0a4f8e7d3c29b5a1f0e6d4c8b37');
const V = 1000;
const SIGMA = 3;
const PROMPT = 8;
const HALF_ALPHA = 0.0005;

const model = new SyntheticModel(V, SIGMA, 'detection-power');
const KGW = { scheme: 'kgw', gamma: 0.25, delta: 2, contextWidth: 1, hashing: 'left' };

describe('watermarked text is detected, and only with its key', () => {
  const TEXTS = 200;
  const LENGTH = 200;
  const ALPHA = 1e-3;

  it.each<{ name: string; spec: object; sampling?: SamplingOptions }>([
    { name: 'KGW γ=0.25 δ=2 h=1', spec: KGW },
    { name: 'KGW γ=0.25 δ=2 h=1, top-k 40', spec: KGW, sampling: { topK: 40 } },
    { name: 'Gumbel-max h=2, top-k 40', spec: { scheme: 'gumbel', contextWidth: 2 }, sampling: { topK: 40 } },
    {
      name: 'SynthID m=30 h=4, top-k 40',
      spec: { scheme: 'synthid', contextWidth: 4, depth: 30 },
      sampling: { topK: 40 },
    },
  ])('$name: 200 texts of 200 tokens', ({ name, spec, sampling }) => {
    const scheme = createScheme({ ...spec, vocabSize: V }, MASTER, { tenant: 'power' });
    const other = createScheme({ ...spec, vocabSize: V }, MASTER, { tenant: 'power-other' });
    const meter = new EntropyMeter(model);
    const own: DetectionResult[] = [];
    const foreign: DetectionResult[] = [];
    for (let i = 0; i < TEXTS; i++) {
      const prompt = randomPrompt(PROMPT, V, `power:${name}:prompt:${i}`);
      const generated = continueText(model, scheme, prompt, LENGTH, {
        seed: `power:${name}:${i}`,
        watermark: true,
        ...(sampling ? { sampling } : {}),
      });
      const tokens = [...prompt, ...generated];
      meter.addText(tokens, PROMPT);
      own.push(detectTokens(tokens, { scheme, prompt, perToken: false, window: false }));
      foreign.push(detectTokens(tokens, { scheme: other, prompt, perToken: false, window: false }));
    }
    // A realistic entropy: the model's next-token distribution averages 2–4 nats over the generated steps.
    expect(meter.mean).toBeGreaterThan(2);
    expect(meter.mean).toBeLessThan(4);
    expect(Math.min(...own.map((r) => r.scored))).toBeGreaterThan(0.9 * LENGTH);

    const detected = own.filter((r) => r.pValue < ALPHA).length;
    expect(detected, `${name}: ${detected} of ${TEXTS} detected`).toBeGreaterThanOrEqual(0.9 * TEXTS);

    // Another key sees no watermark: its detections are within chance of the test's attained size.
    const size = new AttainedSize(other.nullLaw, ALPHA);
    const expected = foreign.reduce((total, r) => total + size.of(r.scored), 0);
    const falseDetections = foreign.filter((r) => r.pValue <= ALPHA).length;
    const what = `${name}, other key: ${falseDetections} detections, ${expected.toFixed(2)} expected`;
    expect(binomialTails(falseDetections, TEXTS, expected / TEXTS).upper, what).toBeGreaterThan(HALF_ALPHA);
    expect(binomialTails(falseDetections, TEXTS, ALPHA).upper, what).toBeGreaterThan(HALF_ALPHA);
  });
});

describe('windowed detection finds a watermarked passage inside plain text', () => {
  const scheme = createScheme({ ...KGW, vocabSize: V }, MASTER, { tenant: 'window' });
  const PLAIN = 675;
  const PASSAGE = 150;
  const CASES = 10;

  it('150 watermarked tokens in the middle of 1,500', () => {
    for (let c = 0; c < CASES; c++) {
      const prompt = randomPrompt(PROMPT, V, `window:prompt:${c}`);
      const before = continueText(model, scheme, prompt, PLAIN, {
        seed: `window:before:${c}`,
        watermark: false,
      });
      const passage = continueText(model, scheme, [...prompt, ...before], PASSAGE, {
        seed: `window:passage:${c}`,
        watermark: true,
      });
      const after = continueText(model, scheme, [...prompt, ...before, ...passage], PLAIN, {
        seed: `window:after:${c}`,
        watermark: false,
      });
      const text = [...before, ...passage, ...after];
      expect(text.length).toBe(1500);

      const result = detectTokens(text, { scheme, perToken: false });
      const window = result.bestWindow;
      const what = `case ${c}: whole-text p ${result.pValue.toExponential(2)}, window ${JSON.stringify(window)}`;
      expect(window, what).not.toBeNull();
      if (window === null) return;
      expect(window.correctedPValue, what).toBeLessThan(1e-4);
      // The window overlaps the passage [PLAIN, PLAIN + PASSAGE).
      expect(window.start, what).toBeLessThan(PLAIN + PASSAGE);
      expect(window.end, what).toBeGreaterThan(PLAIN);
      // Diluted by 1,350 plain tokens, the whole text is weaker evidence than the passage's window.
      expect(result.log10PValue, what).toBeGreaterThan(window.correctedLog10PValue);
    }
  });

  it('1,500 plain tokens give no significant window', () => {
    for (let c = 0; c < CASES; c++) {
      const prompt = randomPrompt(PROMPT, V, `window:plain-prompt:${c}`);
      const text = continueText(model, scheme, prompt, 1500, { seed: `window:plain:${c}`, watermark: false });
      const result = detectTokens(text, { scheme, perToken: false });
      const window = result.bestWindow;
      expect(window).not.toBeNull();
      expect(window?.correctedPValue, `case ${c}: ${JSON.stringify(window)}`).toBeGreaterThan(1e-3);
    }
  });
});
