import { describe, expect, it } from 'vitest';
import { type EvalReport, rocCurve, runEvaluation, summaryMarkdown } from '../src/index';

describe('runEvaluation (quick)', () => {
  let report: EvalReport;
  const run = async () => {
    report ??= await runEvaluation({
      quick: true,
      schemes: ['kgw-h1', 'gumbel', 'gumbel-argmax'],
      attacks: 'none,sub-0.3,copypaste-0.25',
    });
    return report;
  };
  const row = (scheme: string, attack: string, length: number, test = 'text') =>
    report.rows.find(
      (r) => r.scheme === scheme && r.attack === attack && r.length === length && r.test === test,
    );

  it('fills every cell: scheme × attack × length × test', async () => {
    await run();
    expect(report.rows).toHaveLength(3 * 3 * 2 * 2);
    for (const r of report.rows) {
      expect(r.texts).toBe(40);
      expect(r.falsePositives).toBeLessThanOrEqual(r.falsePositiveLimit);
      expect(r.tpr).toBeGreaterThanOrEqual(0);
      expect(r.tpr).toBeLessThanOrEqual(1);
    }
  });

  it('detects the watermark without attack, and an attack lowers the detection rate', async () => {
    await run();
    for (const scheme of ['gumbel', 'gumbel-argmax'])
      expect(row(scheme, 'none', 50)?.tpr).toBeGreaterThanOrEqual(0.9);
    // An attack that did nothing would leave the rate where it was: each must cost every scheme something.
    for (const scheme of ['kgw-h1', 'gumbel', 'gumbel-argmax']) {
      for (const attack of ['sub-0.3', 'copypaste-0.25']) {
        expect(row(scheme, attack, 25)?.tpr).toBeLessThan(row(scheme, 'none', 25)?.tpr as number);
        expect(row(scheme, attack, 25)?.editRate).toBeGreaterThan(0.2);
      }
    }
    // The best-window test finds a pasted span that the whole-text test dilutes.
    expect(row('gumbel', 'copypaste-0.25', 50, 'window')?.tpr).toBeGreaterThan(
      row('gumbel', 'copypaste-0.25', 50, 'text')?.tpr as number,
    );
  });

  it('shows the collapse of argmax Gumbel across requests, and GumbelSoft without it', async () => {
    await run();
    const quality = Object.fromEntries(report.quality.map((q) => [q.scheme, q]));
    expect(quality['gumbel-argmax'].identicalSamples).toBeGreaterThan(0.5);
    expect(quality['gumbel-argmax'].crossRequestRepeat).toBeGreaterThan(
      quality.plain.crossRequestRepeat + 0.1,
    );
    expect(quality.gumbel.identicalSamples).toBe(quality.plain.identicalSamples);
    expect(quality.gumbel.crossRequestRepeat).toBeLessThanOrEqual(quality.plain.crossRequestRepeat + 0.02);
    expect(quality.plain.perplexityRatio).toBe(1);
  });

  it('writes a summary with the n-gram caveat and every table', async () => {
    await run();
    const md = summaryMarkdown(report);
    for (const heading of ['## Detectability', '## Robustness', '## False positives', '## Quality', '## ROC'])
      expect(md).toContain(heading);
    expect(md).toContain('not LLMs');
  });
});

describe('rocCurve', () => {
  it('has area 1 for separated p-values, 1/2 for identical ones, and runs from (0, 0) to (1, 1)', () => {
    const low = Float64Array.from([-9, -8, -7]);
    const high = Float64Array.from([-1, -0.5, 0]);
    const separated = rocCurve('kgw-h1', 25, low, high);
    expect(separated.auc).toBe(1);
    expect(separated.points[0]).toEqual([0, 0]);
    expect(separated.points.at(-1)).toEqual([1, 1]);
    expect(rocCurve('kgw-h1', 25, high, high).auc).toBe(0.5);
    expect(rocCurve('kgw-h1', 25, high, low).auc).toBe(0);
  });
});
