import { gutenbergCorpus, o200kBase } from '@tracemark/ngram';
import { createScheme } from '@tracemark/watermark';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  controlGroup,
  estimateBias,
  filterSamples,
  type GeneratedSample,
  generateSamples,
  LabError,
  type LabOptions,
  type LabReport,
  labKeys,
  labSpec,
  neutraliser,
  paraphraseSamples,
  resolveLabConfig,
  runLab,
  sampleLogLikelihood,
  trainModel,
} from '../src/index';

const docs = gutenbergCorpus('train', { books: ['carroll-alice'] }).map((d) => o200kBase.encode(d.text));
const heldOut = gutenbergCorpus('train', { books: ['bryant-stories'] }).map((d) => o200kBase.encode(d.text));
const prompts = heldOut.filter((d) => d.length >= 16).map((d) => d.slice(0, 16));

/** Σ_w p(w | context) over the tokens the model knows. */
function mass(model: ReturnType<typeof trainModel>, context: number[]): number {
  let sum = 0;
  for (let w = 0; w < model.vocabSize; w++) if (model.isKnown(w)) sum += Math.exp(model.logProb(context, w));
  return sum;
}

describe('pruned students (--prune)', () => {
  it('drop the rare n-grams, change the model and stay normalised', () => {
    const full = trainModel(docs, 3);
    const pruned = trainModel(docs, 3, {}, 2);
    expect(pruned.info.ngrams[0]).toBe(full.info.ngrams[0]);
    expect(pruned.info.ngrams[1]).toBeLessThan(full.info.ngrams[1]);
    expect(pruned.info.ngrams[2]).toBeLessThan(full.info.ngrams[2] / 2);
    let changed = 0;
    for (const doc of docs.slice(5, 10)) {
      const context = doc.slice(0, 2);
      expect(mass(pruned, context)).toBeCloseTo(1, 9);
      if (Math.abs(pruned.logProb(context, doc[2]) - full.logProb(context, doc[2])) > 1e-6) changed++;
    }
    expect(changed).toBeGreaterThan(0);
  });

  it('are built by distillStudent when the config asks', () => {
    const config = resolveLabConfig({ quick: true, prune: 3, studentOrder: 3, teacherOrder: 4 }, 1);
    expect(config.prune).toBe(3);
    expect(config.studentOrder).toBe(3);
    expect(config.teacherOrder).toBe(4);
  });
});

describe('the attacks of the distiller', () => {
  const teacher = trainModel(docs, 4);
  const scheme = createScheme(labSpec('kgw-h1', o200kBase.vocabSize), labKeys('attacks').owner);
  let samples: GeneratedSample[];
  beforeAll(async () => {
    samples = await generateSamples(teacher, scheme, prompts.slice(0, 120), { maxTokens: 50, seed: 't' });
  });

  it('paraphrase redraws about the share s of the tokens, with the plain teacher, and only the first samples', () => {
    const result = paraphraseSamples({ topK: 40, temperature: 1 }, teacher, samples, 0.5, 100, 'p');
    expect(result.tokens).toBe(100 * 50);
    expect(result.chosen / result.tokens).toBeGreaterThan(0.46);
    expect(result.chosen / result.tokens).toBeLessThan(0.54);
    expect(result.changed).toBeLessThanOrEqual(result.chosen);
    expect(result.changed).toBeGreaterThan(0.5 * result.chosen);
    let differ = 0;
    for (let i = 0; i < 100; i++)
      for (let j = 0; j < 50; j++) if (result.samples[i].output[j] !== samples[i].output[j]) differ++;
    expect(differ).toBe(result.changed);
    expect(result.samples.slice(100)).toEqual(samples.slice(100));
    // The redrawn text is plain: its green share falls towards γ = 0.25 from the teacher's.
    const green = (list: GeneratedSample[]) => {
      let g = 0;
      let n = 0;
      for (const s of list) {
        const text = [...s.prompt, ...s.output];
        for (let i = s.prompt.length; i < text.length; i++, n++) g += scheme.score(text, i) as number;
      }
      return g / n;
    };
    expect(green(result.samples.slice(0, 100))).toBeLessThan(green(samples.slice(0, 100)) - 0.05);
  });

  it('filter drops floor(s × harvested) samples, the least likely under the reference', () => {
    const reference = trainModel(heldOut.slice(0, 400), 3);
    const result = filterSamples(reference, samples, 0.3, 100);
    expect(result.harvested).toBe(100);
    expect(result.dropped).toBe(30);
    expect(result.samples).toHaveLength(70);
    const kept = new Set(result.samples);
    const score = (s: GeneratedSample) => sampleLogLikelihood(reference, s);
    const worstKept = Math.min(...result.samples.map(score));
    const dropped = samples.slice(0, 100).filter((s) => !kept.has(s));
    expect(dropped).toHaveLength(30);
    for (const s of dropped) expect(score(s)).toBeLessThanOrEqual(worstKept);
    // Kept samples stay in their harvested order.
    const index = result.samples.map((s) => samples.indexOf(s));
    expect(index).toEqual([...index].sort((a, b) => a - b));
  });

  it('neutralise estimates positive biases on the green tokens and subtracts them from the candidates', () => {
    const reference = trainModel(heldOut.slice(0, 400), 4);
    const estimate = estimateBias(reference, samples, 1);
    expect(estimate.samples).toBe(samples.length);
    expect(estimate.pairs).toBeGreaterThan(100);
    // The biased (window, token) pairs are mostly green under the key.
    let green = 0;
    let n = 0;
    for (const [key, row] of estimate.bias) {
      const previous = Number(key.split(',')[0]);
      for (const token of row.keys()) {
        green += scheme.score([previous, token], 1) as number;
        n++;
      }
    }
    expect(green / n).toBeGreaterThan(0.4);
    const [window, row] = estimate.bias.entries().next().value as [string, Map<number, number>];
    const [token, bias] = row.entries().next().value as [number, number];
    const ids = Int32Array.from([token, token + 1]);
    const logits = Float32Array.from([1, 1]);
    neutraliser(estimate)([Number(window.split(',')[0])], ids, logits, 2);
    expect(logits[0]).toBeCloseTo(1 - bias, 5);
  });
});

describe('a lab run with attacks', () => {
  let report: LabReport;
  beforeAll(async () => {
    report = await runLab({
      quick: true,
      schemes: ['kgw-h1'],
      rhos: [0, 0.02, 0.5],
      samples: 300,
      probes: 300,
      controls: 20,
      modes: ['closed', 'read'],
      attacks: ['none', 'paraphrase:0.5', 'filter:0.3', 'neutralise:150'],
    });
  }, 200_000);

  const row = (rho: number, attack: string, mode: string) => {
    const found = report.rows.find((r) => r.rho === rho && r.attack === attack && r.mode === mode);
    expect(found, `${rho} ${attack} ${mode}`).toBeDefined();
    return found as LabReport['rows'][number];
  };

  it('gives every row its attack and mode, both modes for each (ρ, attack); ρ = 0 without paraphrase and filter', () => {
    for (const rho of [0.02, 0.5])
      for (const attack of ['none', 'paraphrase:0.5', 'filter:0.3', 'neutralise:150'])
        for (const mode of ['closed', 'read']) expect(row(rho, attack, mode).pValue).toBeLessThanOrEqual(1);
    expect(report.rows.filter((r) => r.rho === 0).map((r) => `${r.attack}/${r.mode}`)).toEqual([
      'none/closed',
      'none/read',
      'neutralise:150/closed',
      'neutralise:150/read',
    ]);
    expect(report.rows).toHaveLength(4 * 2 * 2 + 4);
    expect(row(0.5, 'paraphrase:0.5', 'closed').attackStats.redrawn).toBeGreaterThan(0);
    expect(row(0.5, 'filter:0.3', 'closed').attackStats.dropped).toBeGreaterThan(0);
    expect(row(0.5, 'neutralise:150', 'read').attackStats.samples).toBe(150);
  });

  it('weakens the evidence as it should: paraphrase and neutralise lower the green share of the ρ = 0.5 student', () => {
    const share = (r: LabReport['rows'][number]) => r.scoreSum / r.scored;
    const plain = row(0.5, 'none', 'closed');
    expect(plain.log10PValue).toBeLessThan(-6);
    expect(share(row(0.5, 'neutralise:150', 'closed'))).toBeLessThan(share(plain) - 0.03);
    expect(share(row(0.5, 'paraphrase:0.5', 'closed'))).toBeLessThan(share(plain));
    expect(share(row(0.5, 'neutralise:150', 'read'))).toBeLessThan(share(row(0.5, 'none', 'read')));
  });

  it('uses a control group of its own for every (ρ, mode, attack)', () => {
    expect(controlGroup(0.05, 'closed', 'none')).toBe('rho0.05');
    expect(controlGroup(0.05, 'read', 'none')).toBe('read-rho0.05');
    expect(controlGroup(0.05, 'read', 'filter:0.3')).toBe('read-rho0.05-filter:0.3');
    const closed = row(0.5, 'none', 'closed');
    const read = row(0.5, 'none', 'read');
    // Different keys: their p-values on the two tapes do not coincide pairwise.
    expect(closed.controls.filter((p, j) => p === read.controls[j]).length).toBeLessThan(3);
    expect(report.config.controlTenants).toContain('control-read-rho<ρ>-<j>');
  });
});

describe('lab option validation', () => {
  const refuse = (options: LabOptions, message: RegExp) => {
    let error: unknown = null;
    try {
      resolveLabConfig(options, 1);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(LabError);
    expect((error as LabError).code).toBe('E_USAGE');
    expect((error as LabError).message).toMatch(message);
    expect((error as LabError).message).not.toContain('\n');
  };

  it('sets γ, δ and h of the schemes that have them', () => {
    const config = resolveLabConfig({ schemes: ['kgw-h2'], gamma: 0.25, delta: 3, contextWidth: 3 }, 1);
    expect(labSpec('kgw-h2', 100, config)).toMatchObject({ gamma: 0.25, delta: 3, contextWidth: 3 });
    expect(labSpec('kgw-h2', 100)).toMatchObject({ delta: 2, contextWidth: 2 });
    expect(resolveLabConfig({ rhos: [0.01, 0.02] }, 1).rhos).toEqual([0.01, 0.02]);
  });

  it('refuses what does not apply or is out of range, in one line', () => {
    refuse({ schemes: ['kgw-h1', 'gumbel'], delta: 3 }, /--delta does not apply to gumbel/);
    refuse({ schemes: ['unigram'], contextWidth: 2 }, /--context-width does not apply to unigram/);
    refuse({ schemes: ['synthid'], gamma: 0.5 }, /--gamma does not apply to synthid/);
    refuse({ schemes: ['kgw-h1'], gamma: 1.5 }, /--gamma must be a number in \(0, 1\)/);
    refuse({ schemes: ['kgw-h1'], delta: 0 }, /--delta must be/);
    refuse({ schemes: ['kgw-h1'], contextWidth: 5 }, /--context-width must be an integer in \[1, 4\]/);
    refuse({ teacherOrder: 6 }, /--teacher-order must be an integer in \[2, 5\]/);
    refuse({ studentOrder: 1 }, /--student-order must be an integer in \[2, 5\]/);
    refuse({ prune: 0 }, /--prune must be an integer/);
    refuse({ attacks: ['paraphrase:1.5'] }, /paraphrase:<s> needs a share s in \(0, 1\)/);
    refuse({ attacks: ['filter'] }, /filter:<s> needs a share/);
    refuse({ attacks: ['neutralise:0'] }, /neutralise:<N> needs a number N/);
    refuse({ attacks: ['scrub:1'] }, /unknown attack "scrub:1"/);
    refuse({ attacks: [] }, /--attack needs at least one attack/);
    refuse({ quick: true, attacks: ['neutralise:500'] }, /needs 500 teacher outputs; the run has 200/);
    refuse({ quick: true, attacks: ['filter:0.3'] }, /filter:0.3 at rho 1 needs 286 teacher samples/);
  });
});
