import { createRng, createScheme, GenerationSession, MasterKey } from '@tracemark/watermark';
import { describe, expect, it, vi } from 'vitest';
import {
  buildWindowFilter,
  CountedTape,
  controlMasterKey,
  investigate,
  kolmogorovSmirnovUniform,
  parseTenantList,
  radioactivityTape,
  radioactivityTest,
  randomizedPValue,
  type SuspectSample,
  scoreBatch,
  scoreKeys,
} from '../src/index';
import { citeVerdict } from '../src/investigate';

// scoreBatch draws KGW green bits from the package's seededHash32 itself: the tests count those calls, and
// break them, to see its per-context path run and its self-check fall back to score().
const prf = vi.hoisted(() => ({ calls: 0, flip: 0 }));
vi.mock('@tracemark/watermark', async (importOriginal) => {
  const actual = await importOriginal<typeof import('@tracemark/watermark')>();
  return {
    ...actual,
    seededHash32: (lo: number, hi: number, t: number) => {
      prf.calls++;
      return actual.seededHash32(lo, hi, t) ^ prf.flip;
    },
  };
});

const V = 2000;
const owner = MasterKey.parse('44'.repeat(32));
const spec = { scheme: 'kgw', vocabSize: V, gamma: 0.25, delta: 2, contextWidth: 1 };

function logits(last: number): Float32Array {
  const rng = createRng(`ctx:${last}`);
  const out = new Float32Array(V);
  for (let t = 0; t < V; t++)
    out[t] = 2.5 * Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());
  return out;
}

function samplesFrom(
  tenant: string | undefined,
  watermark: boolean,
  count: number,
  length: number,
): SuspectSample[] {
  const scheme = createScheme(spec, owner, tenant === undefined ? {} : { tenant });
  return Array.from({ length: count }, (_, k) => {
    const prompt = [k + 1, (k * 7) % V, (k * 13) % V];
    const session = new GenerationSession(scheme, { prompt, seed: `${tenant}/${k}`, watermark });
    for (let i = 0; i < length; i++) session.next(logits(session.tokens[session.tokens.length - 1]));
    return { prompt, output: session.generated };
  });
}

/** Random text with heavy repetition and outputs that quote their prompts: every skip rule is exercised. */
function messySamples(seed: string): SuspectSample[] {
  const rng = createRng(seed);
  const word = () => Math.floor(rng() * 50) + (rng() < 0.2 ? 0 : Math.floor(rng() * 500));
  return Array.from({ length: 30 }, () => {
    const prompt = Array.from({ length: 12 }, word);
    const output: number[] = [];
    while (output.length < 80) {
      if (rng() < 0.2) output.push(...prompt.slice(0, 5));
      else output.push(word());
    }
    return { prompt, output };
  });
}

describe('CountedTape', () => {
  it('counts exactly the positions radioactivityTest counts, for every kind of scheme', () => {
    const samples = messySamples('tape');
    const filter = buildWindowFilter(
      samples.slice(0, 10).map((s) => s.output),
      2,
    );
    const specs = [
      { scheme: 'kgw', vocabSize: V, contextWidth: 0 },
      { scheme: 'kgw', vocabSize: V, contextWidth: 1 },
      { scheme: 'kgw', vocabSize: V, contextWidth: 3 },
      { scheme: 'kgw', vocabSize: V, contextWidth: 3, hashing: 'min' },
      { scheme: 'gumbel', vocabSize: V, contextWidth: 2 },
      { scheme: 'synthid', vocabSize: V, contextWidth: 2 },
    ];
    for (const s of specs) {
      for (const withFilter of [false, true]) {
        const scheme = createScheme(s, owner, { tenant: 'x' });
        const options = { scheme, filter: withFilter ? filter : undefined };
        const expected = radioactivityTest(samples, options);
        const tape = new CountedTape(options);
        // MinHash with h > 1 de-duplicates on a keyed winner: its tape serves its own key only.
        expect(tape.keyIndependent).toBe(!(s.hashing === 'min'));
        for (const sample of samples) tape.add(sample);
        expect(tape.counts).toEqual({
          seen: expected.seen,
          scored: expected.scored,
          skipped: expected.skipped,
          samples: expected.samples,
        });
        expect(tape.scoreSum(scheme)).toBeCloseTo(expected.scoreSum, 9);
        expect(expected.skipped.duplicate).toBeGreaterThan(0);
        expect(expected.skipped.promptWindow).toBeGreaterThan(0);
        // radioactivityTape hands back that tape and its scores in tape order.
        const made = radioactivityTape(samples, options);
        expect(made.result).toEqual(expected);
        expect(made.tape.counts).toEqual(tape.counts);
        expect(made.scores).toHaveLength(expected.scored);
        expect(made.scores.reduce((a, b) => a + b, 0)).toBeCloseTo(expected.scoreSum, 9);
        if (!tape.keyIndependent) {
          expect(() => tape.scoreSum(createScheme(s, owner, { tenant: 'y' }))).toThrow(/another key/);
        }
      }
    }
  });

  it('scores many keys the same in worker threads as in this thread', async () => {
    const samples = messySamples('threads');
    const tape = new CountedTape({ scheme: createScheme(spec, owner) });
    for (const sample of samples) tape.add(sample);
    const requests = Array.from({ length: 12 }, (_, i) => ({ master: i % 2, tenant: `t${i}` }));
    const masters = [owner, controlMasterKey(owner)];
    const inline = await scoreKeys(tape, spec, masters, requests, { threads: 1 });
    const threaded = await scoreKeys(tape, spec, masters, requests, { threads: 2 });
    expect(inline.threads).toBe(1);
    // The pool runs the built worker (dist/multikey-worker.js): the packages are built before the tests run.
    expect(threaded.threads).toBe(2);
    expect(threaded.sums).toEqual(inline.sums);
    const direct = requests.map((r) =>
      tape.scoreSum(createScheme(spec, masters[r.master], { tenant: r.tenant })),
    );
    expect(inline.sums).toEqual(direct);
  });
});

describe('scoreBatch', () => {
  it('scores KGW h = 1 per context exactly as the scheme does, and falls back to score() if it ever would not', () => {
    const samples = messySamples('grouped');
    const requests = [{ master: 0 }, { master: 0, tenant: 'x' }, { master: 1, tenant: 'control-0' }];
    const masters = [owner, controlMasterKey(owner)];
    for (const gamma of [0.25, 0.5, 0.1, 1 / 3, 0.9]) {
      for (const hashing of ['left', 'min']) {
        const s = { scheme: 'kgw', vocabSize: V, gamma, contextWidth: 1, hashing };
        const tape = new CountedTape({ scheme: createScheme(s, owner) });
        for (const sample of samples) tape.add(sample);
        // Sorted as scoreKeys sorts it.
        const order = Array.from({ length: tape.length }, (_, j) => j).sort(
          (a, b) => tape.ids[2 * a] - tape.ids[2 * b] || tape.ids[2 * a + 1] - tape.ids[2 * b + 1],
        );
        const ids = Uint32Array.from(order.flatMap((j) => [tape.ids[2 * j], tape.ids[2 * j + 1]]));
        const job = {
          ids,
          stride: 2,
          contextWidth: 1,
          spec: s,
          masters: masters.map((m) => m.exportHex()),
          requests,
        };
        const expected = requests.map((r) =>
          tape.scoreSum(
            createScheme(s, masters[r.master], r.tenant === undefined ? {} : { tenant: r.tenant }),
          ),
        );
        prf.calls = 0;
        expect(scoreBatch(job)).toEqual(expected);
        expect(prf.calls).toBeGreaterThan(tape.length); // the per-context path ran
        prf.flip = 1;
        try {
          expect(scoreBatch(job)).toEqual(expected);
        } finally {
          prf.flip = 0;
        }
      }
    }
  });
});

describe('investigate', () => {
  it('attributes a suspect to the tenant whose outputs it learnt, with passing controls', async () => {
    const samples = samplesFrom('acme', true, 20, 60);
    const tenants = ['alpha', 'beta', 'acme', ...Array.from({ length: 17 }, (_, i) => `tenant-${i}`)];
    const result = await investigate(samples, { spec, key: owner, tenants, controls: 40 });
    // The owner's untenanted key is not the one used: its test is null.
    expect(result.pValue).toBeGreaterThan(1e-3);
    const acme = result.tenants?.find((t) => t.id === 'acme');
    expect(acme?.adjustedLog10PValue).toBeLessThan(-20);
    for (const t of result.tenants ?? []) if (t.id !== 'acme') expect(t.adjustedPValue).toBeGreaterThan(1e-3);
    expect(result.controls.count).toBe(40);
    expect(result.controls.passed).toBe(true);
    expect(result.controls.pValues).toHaveLength(40);
    expect(new Set(result.controls.keyFingerprints).size).toBe(40);
    expect(result.verdict.detected).toBe(false);
  });

  it("detects the owner's watermark, with the e-process and trajectory over the same tape", async () => {
    const samples = samplesFrom(undefined, true, 15, 60);
    const result = await investigate(samples, { spec, key: owner });
    expect(result.log10PValue).toBeLessThan(-15);
    expect(result.sequential.scored).toBe(result.scored);
    expect(result.sequential.scoreSum).toBe(result.scoreSum);
    expect(result.sequential.log10AnytimePValue).toBeLessThan(-8);
    expect(result.controls.count).toBe(50);
    expect(result.controls.passed).toBe(true);
    expect(result.controls.atOrBelowOwner).toBe(0);
    expect(result.verdict).toMatchObject({
      detected: true,
      controlsPassed: true,
      basis: 'fixed',
      pValueCited: result.pValue,
      log10PValueCited: result.log10PValue,
    });
    expect(result.verdict.text).toMatch(/^watermark detected at α = 0.001 \(exact p = /);
    await expect(investigate(samples, { spec, key: owner, controls: 5 })).rejects.toThrow(/controls must be/);
  });

  it('cites the anytime-valid p after a sequential stop, though the fixed-size p is smaller', async () => {
    // 2 outputs of 15 tokens: the fixed-size p is about 10^-4.2, the anytime-valid p about 10^-0.8.
    const samples = samplesFrom(undefined, true, 2, 15);
    const fixed = await investigate(samples, { spec, key: owner, controls: 20 });
    const anytime = await investigate(samples, { spec, key: owner, controls: 20, stopping: 'anytime' });
    expect(anytime.log10PValue).toBe(fixed.log10PValue);
    expect(anytime.log10PValue).toBeLessThan(-3);
    expect(anytime.sequential.log10AnytimePValue).toBeGreaterThan(anytime.log10PValue);
    expect(fixed.verdict).toMatchObject({ basis: 'fixed', detected: true, controlsPassed: true });
    expect(anytime.verdict).toEqual({
      detected: false,
      pValueCited: 10 ** anytime.sequential.log10AnytimePValue,
      log10PValueCited: anytime.sequential.log10AnytimePValue,
      basis: 'anytime',
      controlsPassed: true,
      text: expect.stringMatching(
        /^no watermark detected at α = 0\.001 \(anytime-valid p = 0\.\d+, as probing stopped on the e-process\)/,
      ),
    });
    // With enough evidence the anytime-valid p detects as well, and is still the one cited.
    const more = await investigate(samplesFrom(undefined, true, 15, 60), {
      spec,
      key: owner,
      stopping: 'anytime',
    });
    expect(more.verdict).toMatchObject({ basis: 'anytime', detected: true });
    expect(more.verdict.log10PValueCited).toBe(more.sequential.log10AnytimePValue);
    expect(more.verdict.log10PValueCited).toBeGreaterThan(more.log10PValue);
    await expect(investigate(samples, { spec, key: owner, stopping: 'whenever' as 'fixed' })).rejects.toThrow(
      /stopping must be 'fixed' or 'anytime'/,
    );
  });

  it('is inconclusive, never detected, when the controls fail', async () => {
    const samples = samplesFrom(undefined, true, 15, 60);
    // Failed controls forced through investigate() with a threshold no KS p-value reaches.
    const strict = await investigate(samples, { spec, key: owner, controlsAlpha: 0.9999999 });
    expect(strict.log10PValue).toBeLessThan(-15);
    expect(strict.controls.passed).toBe(false);
    expect(strict.verdict).toMatchObject({
      detected: false,
      controlsPassed: false,
      basis: 'fixed',
      log10PValueCited: strict.log10PValue,
    });
    expect(strict.verdict.text).toMatch(/^inconclusive \(exact p = .*\): the 50 control keys FAILED/);
    expect(strict.verdict.text).toMatch(/their p-values are not uniform/);
    // And injected directly: controls whose KS test rejects uniformity, after a sequential stop.
    const failed = { count: 40, passed: false, alpha: 0.01, uniformity: { pValue: 1e-5 } };
    const verdict = citeVerdict({
      pValue: 1e-40,
      log10PValue: -40,
      log10AnytimePValue: -12,
      stopping: 'anytime',
      controls: failed,
      alpha: 1e-3,
    });
    expect(verdict).toEqual({
      detected: false,
      pValueCited: 1e-12,
      log10PValueCited: -12,
      basis: 'anytime',
      controlsPassed: false,
      text: 'inconclusive (anytime-valid p = 1.00e-12, as probing stopped on the e-process): the 40 control keys FAILED: their p-values are not uniform (KS p = 1.00e-5 < 0.01); the test is not calibrated on this evidence, so its p-value cannot support a detection',
    });
    const passed = citeVerdict({
      pValue: 1e-40,
      log10PValue: -40,
      log10AnytimePValue: -12,
      stopping: 'anytime',
      controls: { ...failed, passed: true, uniformity: { pValue: 0.4 } },
      alpha: 1e-3,
    });
    expect(passed).toMatchObject({ detected: true, controlsPassed: true, log10PValueCited: -12 });
  });

  it('randomizes discrete control p-values to exact uniformity under H0', () => {
    const rng = createRng('uniform');
    const law = { kind: 'bernoulli', p: 0.25 } as const;
    const values: number[] = [];
    for (let i = 0; i < 400; i++) {
      let k = 0;
      for (let j = 0; j < 30; j++) k += rng() < 0.25 ? 1 : 0;
      values.push(randomizedPValue(law, k, 30, rng()));
    }
    expect(kolmogorovSmirnovUniform(values).pValue).toBeGreaterThan(0.01);
  });

  it('reads tenant lists as lines or a JSON array', () => {
    expect(parseTenantList('# tenants\nacme\n\nbeta\r\n', 't')).toEqual(['acme', 'beta']);
    expect(parseTenantList('["a","b"]', 't')).toEqual(['a', 'b']);
    expect(() => parseTenantList('a\na\n', 't')).toThrow('t: tenant id "a" appears twice');
    expect(() => parseTenantList('[1]', 't')).toThrow(/array of strings/);
    expect(() => parseTenantList('#\n', 't')).toThrow(/lists no tenant ids/);
  });
});
