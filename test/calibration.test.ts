/**
 * Calibration of the verifier's p-values on text that no key made: the false-positive rate at level α is the
 * size of the test. Every stream, key and text is fixed, so each run is the same; each interval is two-sided
 * 99.9 % (0.05 % on each side).
 *
 * The exact tests of discrete null laws (Binomial) are conservative: on n scored tokens P(p ≤ α) is the
 * attained size s(n) = P[X ≥ k*], k* the smallest count whose tail is ≤ α, which can be well below α for
 * short texts. The expected number of false positives is therefore Σ s(n_i) over the detections, and the
 * observed number is checked against the Binomial interval around that mean (the count is Poisson-binomial,
 * whose variance is at most the Binomial's, so the interval is conservative), and against α itself.
 */
import { type DetectionResult, detectTokens } from '@tracemark/verifier';
import { createScheme, MasterKey, type Scheme } from '@tracemark/watermark';
import { beforeAll, describe, expect, it } from 'vitest';
import { AttainedSize, binomialTails } from './support/null-calibration';
import { gutenbergPieces, type Pieces, randomPieces } from './support/null-corpus';
import { type Encode, loadO200k, O200K_VOCAB_SIZE } from './support/o200k';

const MASTER = MasterKey.parse('3f9c1a7e52d8b64019e7c2a5f3d1086b4c9e2f7a1d5b8306e4a9c7f2b1d0e5a8');
const HALF_ALPHA = 0.0005;
const ALPHAS = [1e-2, 1e-3];

const SCHEMES = [
  { name: 'KGW h=1 left γ=0.25', spec: { scheme: 'kgw', gamma: 0.25, contextWidth: 1, hashing: 'left' } },
  { name: 'KGW h=2 min γ=0.25', spec: { scheme: 'kgw', gamma: 0.25, contextWidth: 2, hashing: 'min' } },
  { name: 'KGW h=2 self γ=0.5', spec: { scheme: 'kgw', gamma: 0.5, contextWidth: 2, hashing: 'self' } },
  { name: 'Unigram γ=0.25', spec: { scheme: 'unigram', gamma: 0.25 } },
  { name: 'Gumbel-max h=2', spec: { scheme: 'gumbel', contextWidth: 2 } },
  { name: 'SynthID m=30 h=4', spec: { scheme: 'synthid', contextWidth: 4, depth: 30 } },
];

let encode: Encode;

beforeAll(async () => {
  const tokenizer = await loadO200k();
  expect(tokenizer.vocabSize).toBe(O200K_VOCAB_SIZE);
  encode = tokenizer.encode;
});

/** False positives at each α, observed and expected (the sum of the attained sizes). */
interface Tally {
  detections: number;
  observed: number[];
  expected: number[];
}

function emptyTally(): Tally {
  return { detections: 0, observed: ALPHAS.map(() => 0), expected: ALPHAS.map(() => 0) };
}

function count(tally: Tally, result: DetectionResult, sizes: AttainedSize[]): void {
  tally.detections++;
  ALPHAS.forEach((alpha, a) => {
    tally.expected[a] += sizes[a].of(result.scored);
    if (result.pValue <= alpha) tally.observed[a]++;
  });
}

function sum(a: Tally, b: Tally): Tally {
  return {
    detections: a.detections + b.detections,
    observed: a.observed.map((x, i) => x + b.observed[i]),
    expected: a.expected.map((x, i) => x + b.expected[i]),
  };
}

/** The observed counts are inside the 99.9 % interval around the expected ones, and not above α beyond chance. */
function expectCalibrated(tally: Tally, label: string): void {
  ALPHAS.forEach((alpha, a) => {
    const observed = tally.observed[a];
    const what = `${label} at α=${alpha}: ${observed} false positives, ${tally.expected[a].toFixed(1)} expected`;
    const around = binomialTails(observed, tally.detections, tally.expected[a] / tally.detections);
    expect(around.upper, what).toBeGreaterThan(HALF_ALPHA);
    expect(around.lower, what).toBeGreaterThan(HALF_ALPHA);
    expect(binomialTails(observed, tally.detections, alpha).upper, what).toBeGreaterThan(HALF_ALPHA);
  });
}

describe('null calibration: the false-positive rate is the size of the test', () => {
  // 100,000 detections per scheme: 50,000 uniform random token streams (V = 50,000) and 50,000 pieces of the
  // Gutenberg books in o200k_base, 50–100 tokens each. Each key (a tenant of one master key) scores 100 texts.
  // The file's time is that of 600,000 short detectTokens calls: about 15 s on the project's 2-core machine at
  // ~20 µs a call. Lower PER_HALF if that per-call cost grows.
  const PER_HALF = 50_000;
  const TEXTS_PER_KEY = 100;
  let randomText: Pieces;
  let realText: Pieces;

  beforeAll(() => {
    randomText = randomPieces(PER_HALF, 50_000, 50, 100, 'calibration:random');
    // About 2.98 M tokens, 39,700 pieces: the pieces past the end are taken again from the start, by other keys.
    realText = gutenbergPieces(encode, 50, 100, 'calibration:gutenberg');
    expect(realText.count).toBeGreaterThan(30_000);
  });

  function scoreNull(spec: object, pieces: Pieces, vocabSize: number, label: string): Tally {
    const tally = emptyTally();
    let scheme: Scheme | undefined;
    let sizes: AttainedSize[] = [];
    for (let j = 0; j < PER_HALF; j++) {
      if (j % TEXTS_PER_KEY === 0) {
        scheme = createScheme({ ...spec, vocabSize }, MASTER, { tenant: `${label}-${j / TEXTS_PER_KEY}` });
        if (sizes.length === 0) sizes = ALPHAS.map((alpha) => new AttainedSize(scheme!.nullLaw, alpha));
      }
      const text = pieces.piece(j % pieces.count);
      count(tally, detectTokens(text, { scheme: scheme!, perToken: false, window: false }), sizes);
    }
    return tally;
  }

  it.each(SCHEMES)('$name: random streams and Gutenberg text', ({ name, spec }) => {
    const random = scoreNull(spec, randomText, 50_000, 'null-random');
    const real = scoreNull(spec, realText, O200K_VOCAB_SIZE, 'null');
    expect(random.detections + real.detections).toBe(2 * PER_HALF);
    expectCalibrated(random, `${name}, random streams`);
    expectCalibrated(real, `${name}, Gutenberg`);
    expectCalibrated(sum(random, real), `${name}, all`);
  });
});

describe('repetitive text gains no significance under de-duplication', () => {
  const KEYS = 200;
  const ALPHA = 1e-3;
  let texts: { name: string; ids: ArrayLike<number> }[];

  beforeAll(() => {
    const sentence = 'The old lighthouse keeper climbed the winding stairs every evening to light the lamp. ';
    const numbers = Array.from({ length: 500 }, (_, i) => String(i + 1)).join(', ');
    texts = [
      { name: 'one sentence × 50', ids: encode(sentence.repeat(50)) },
      { name: '1, 2, …, 500', ids: encode(numbers) },
    ];
  });

  it.each(SCHEMES)('$name: 200 keys', ({ name, spec }) => {
    for (const { name: textName, ids } of texts) {
      const label = `${name}, ${textName}`;
      let size: AttainedSize | undefined;
      let expected = 0;
      let falsePositives = 0;
      let smallest = 1;
      let falsePositivesNone = 0;
      let largestGain = 0;
      for (let k = 0; k < KEYS; k++) {
        const scheme = createScheme({ ...spec, vocabSize: O200K_VOCAB_SIZE }, MASTER, {
          tenant: `repetitive-${k}`,
        });
        const pair = detectTokens(ids, { scheme, perToken: false, window: false });
        const none = detectTokens(ids, { scheme, dedup: 'none', perToken: false, window: false });
        size ??= new AttainedSize(scheme.nullLaw, ALPHA);
        expected += size.of(pair.scored);
        if (pair.pValue <= ALPHA) falsePositives++;
        if (none.pValue <= ALPHA) falsePositivesNone++;
        smallest = Math.min(smallest, pair.pValue);
        largestGain = Math.max(largestGain, pair.log10PValue - none.log10PValue);
      }
      // Default de-duplication: no more false positives than the test's size allows (the expected count is
      // 0.03–0.2 over the 200 keys), and no p-value that repetition could have made extreme.
      const what = `${label}: ${falsePositives} false positives (${expected.toFixed(2)} expected), smallest p ${smallest.toExponential(2)}`;
      expect(binomialTails(falsePositives, KEYS, expected / KEYS).upper, what).toBeGreaterThan(HALF_ALPHA);
      expect(smallest, what).toBeGreaterThan(1e-7);
      if (textName.startsWith('one sentence')) {
        // Without de-duplication the 50 copies count 50 times: about a third of the keys "detect" the text.
        const inflated = `${label}, dedup 'none': ${falsePositivesNone} false positives, largest gain 10^${largestGain.toFixed(0)}`;
        expect(falsePositivesNone, inflated).toBeGreaterThanOrEqual(20);
        expect(binomialTails(falsePositivesNone, KEYS, ALPHA).upper, inflated).toBeLessThan(1e-20);
        expect(largestGain, inflated).toBeGreaterThan(20);
      }
    }
  });
});

describe('null calibration of the windowed test: the corrected p-value is conservative', () => {
  // 4,000 null texts of 300–600 tokens per scheme (half uniform random streams, half Gutenberg in o200k_base),
  // default window lengths on their length/8 grid. Bonferroni over the windows tried bounds the false-positive
  // rate of the corrected p-value by α whatever the overlap between windows; the observed rate must not
  // exceed α beyond chance, and no corrected p-value may be below its window's own p-value.
  const TEXTS = 2_000;
  const WINDOW_ALPHAS = [0.05, 0.01];
  let randomText: Pieces;
  let realText: Pieces;

  beforeAll(() => {
    randomText = randomPieces(TEXTS, 50_000, 300, 600, 'calibration:window:random');
    realText = gutenbergPieces(encode, 300, 600, 'calibration:window:gutenberg');
    expect(realText.count).toBeGreaterThan(TEXTS);
  });

  it.each(SCHEMES.filter((s) => ['KGW h=1 left γ=0.25', 'Gumbel-max h=2'].includes(s.name)))(
    '$name',
    ({ name, spec }) => {
      const observed = WINDOW_ALPHAS.map(() => 0);
      let uncorrected = 0;
      let windows = 0;
      for (const [pieces, vocabSize, label] of [
        [randomText, 50_000, 'window-random'],
        [realText, O200K_VOCAB_SIZE, 'window'],
      ] as const) {
        for (let j = 0; j < TEXTS; j++) {
          const scheme = createScheme({ ...spec, vocabSize }, MASTER, {
            tenant: `${label}-${Math.floor(j / TEXTS_PER_WINDOW_KEY)}`,
          });
          const window = detectTokens(pieces.piece(j), { scheme, perToken: false }).bestWindow;
          if (window === null) continue;
          windows++;
          expect(window.correctedLog10PValue).toBeGreaterThanOrEqual(window.log10PValue);
          WINDOW_ALPHAS.forEach((alpha, a) => {
            if (window.correctedPValue <= alpha) observed[a]++;
          });
          if (window.pValue <= WINDOW_ALPHAS[0]) uncorrected++;
        }
      }
      expect(windows).toBeGreaterThan(1.9 * TEXTS);
      console.log(
        `${name}: corrected window p ≤ ${WINDOW_ALPHAS.join(' / ')} in ${observed.join(' / ')} of ${windows} null texts; ` +
          `the best window's own p ≤ ${WINDOW_ALPHAS[0]} in ${uncorrected}`,
      );
      // The best of many windows is selected, so its own p-value is far from uniform: without the
      // correction the test would reject most null texts. This is what the correction is for.
      expect(uncorrected).toBeGreaterThan(4 * WINDOW_ALPHAS[0] * windows);
      WINDOW_ALPHAS.forEach((alpha, a) => {
        const what = `${name}: ${observed[a]} of ${windows} corrected window p-values ≤ ${alpha}`;
        expect(binomialTails(observed[a], windows, alpha).upper, what).toBeGreaterThan(HALF_ALPHA);
      });
    },
  );
});

const TEXTS_PER_WINDOW_KEY = 20;
