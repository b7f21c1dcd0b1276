import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type AxisSpec, checkOutputDirectory, decadeTicks, renderPlot, type Series } from '@tracemark/lab';
import { type EvalReport, type EvalRow, FPR_LEVEL } from './run';

const COLORS = [
  '#1f77b4',
  '#d62728',
  '#2ca02c',
  '#9467bd',
  '#ff7f0e',
  '#8c564b',
  '#e377c2',
  '#17becf',
  '#7f7f7f',
];

/** The y axis of every figure: a rate from 0 to 1. */
const TPR_AXIS: AxisSpec = {
  label: 'TPR',
  min: 0,
  max: 1,
  log: false,
  ticks: [0, 0.25, 0.5, 0.75, 1].map((v) => ({ value: v, label: String(v) })),
};

const percent = (x: number) => `${(100 * x).toFixed(1)} %`;
const rate = (x: number) => x.toFixed(2);

function find(report: EvalReport, scheme: string, attack: string, length: number, test: EvalRow['test']) {
  return report.rows.find(
    (r) => r.scheme === scheme && r.attack === attack && r.length === length && r.test === test,
  );
}

/** "text / window" TPRs of a cell, or the text TPR alone where the scheme has no window test. */
function tprCell(report: EvalReport, scheme: string, attack: string, length: number): string {
  const text = find(report, scheme, attack, length, 'text');
  if (text === undefined) return '–';
  const window = find(report, scheme, attack, length, 'window');
  return window === undefined ? rate(text.tpr) : `${rate(text.tpr)} / ${rate(window.tpr)}`;
}

export function summaryMarkdown(report: EvalReport): string {
  const { config } = report;
  const lengths = config.lengths;
  const longest = lengths[lengths.length - 1];
  const schemes = report.schemes.map((s) => s.name);
  const attacks = config.attacks.map((a) => a.label);
  const lines: string[] = [];
  lines.push('# tracemark eval', '');
  lines.push(
    `Command: \`${report.command}\` on ${report.machine.cores} cores (${report.machine.cpu}), Node ${report.machine.node}.`,
  );
  lines.push('');
  lines.push(`> ${report.models.caveat}`, '');
  lines.push(
    `Reference model: order-${report.models.reference.order} n-gram of ${report.models.reference.tokens.toLocaleString('en-US')} tokens (${report.models.reference.corpus}). ` +
      `Independent model: order-${report.models.independent.order} n-gram of ${report.models.independent.tokens.toLocaleString('en-US')} tokens (${report.models.independent.corpus}). ` +
      `Sampling: top-${config.topK}, temperature ${config.temperature}, prompts of ${config.promptTokens} held-out tokens. ` +
      `${config.texts} watermarked and ${config.texts} plain texts per scheme (the same prompts); α = ${config.alpha}; seed ${JSON.stringify(config.seed)}.`,
  );
  if (report.rewriter !== null) lines.push('', `Rewrite attack: ${report.rewriter}.`);
  lines.push('');
  lines.push('| scheme | spec | test |', '|---|---|---|');
  for (const s of report.schemes) lines.push(`| ${s.name} | \`${JSON.stringify(s.spec)}\` | ${s.test} |`);
  lines.push('');

  lines.push(`## Detectability: TPR at α = ${config.alpha}, no attack (whole text / best window)`, '');
  lines.push(
    `| scheme | ${lengths.map((l) => `T = ${l}`).join(' | ')} |`,
    `|---|${lengths.map(() => '---').join('|')}|`,
  );
  for (const s of schemes)
    lines.push(`| ${s} | ${lengths.map((l) => tprCell(report, s, 'none', l)).join(' | ')} |`);
  lines.push('');

  // Longest first: the usual table; shorter lengths show where each scheme's robustness runs out.
  for (const length of [...lengths].reverse()) {
    lines.push(`## Robustness: TPR at α = ${config.alpha}, T = ${length} (whole text / best window)`, '');
    lines.push(`| scheme | ${attacks.join(' | ')} |`, `|---|${attacks.map(() => '---').join('|')}|`);
    for (const s of schemes)
      lines.push(`| ${s} | ${attacks.map((a) => tprCell(report, s, a, length)).join(' | ')} |`);
    lines.push('');
  }
  // Each attack at the longest length any scheme was tested at (EXP-edit stops short of the longest).
  const edits = attacks
    .filter((a) => a !== 'none')
    .map((a) => {
      const rows = report.rows.filter((r) => r.attack === a && r.test === 'text');
      if (rows.length === 0) return null;
      const at = Math.max(...rows.map((r) => r.length));
      return `${a} ${percent((rows.find((r) => r.length === at) as EvalRow).editRate)} (T = ${at})`;
    })
    .filter((x) => x !== null);
  lines.push(
    `Edit distance of the attacked texts from the originals, over their length: ${edits.join(', ')}.`,
    '',
  );

  lines.push(`## False positives: plain texts with p ≤ α, every cell`, '');
  const outside = report.rows.filter((r) => r.falsePositives > r.falsePositiveLimit);
  const fpTotal = report.rows.reduce((n, r) => n + r.falsePositives, 0);
  const expected = report.rows.reduce((n, r) => n + r.texts * r.alpha, 0);
  const limits = [...new Set(report.rows.map((r) => `${r.falsePositiveLimit} of ${r.texts}`))].join(', ');
  lines.push(
    `${report.rows.length} cells (scheme × attack × length × test); ${fpTotal} false positives in all, against ` +
      `${expected.toFixed(1)} expected at a rate of exactly α. Each plain text is tested with a key of its own, so a ` +
      `cell's count is Binomial(texts, FPR); it is checked against the upper end of the Binomial(texts, α) interval ` +
      `at the simultaneous level ${FPR_LEVEL} over all cells (Bonferroni): at most ${limits}. ` +
      (outside.length === 0
        ? 'Every cell is within its interval.'
        : `Outside: ${outside.map((r) => `${r.scheme} ${r.attack} T=${r.length} ${r.test} (${r.falsePositives})`).join('; ')}.`),
  );
  lines.push('');
  lines.push(`| scheme | ${attacks.join(' | ')} |`, `|---|${attacks.map(() => '---').join('|')}|`);
  for (const s of schemes) {
    const cells = attacks.map((a) => {
      const rows = report.rows.filter((r) => r.scheme === s && r.attack === a);
      if (rows.length === 0) return '–';
      const fp = rows.reduce((n, r) => n + r.falsePositives, 0);
      const tests = rows.reduce((n, r) => n + r.texts, 0);
      return `${fp} / ${tests}`;
    });
    lines.push(`| ${s} | ${cells.join(' | ')} |`);
  }
  lines.push('', 'Each cell: false positives / plain tests, summed over lengths and both tests.', '');

  if (report.calibration.length > 0) {
    lines.push(`## Calibration of the plain p-values, T = ${longest}, no attack`, '');
    lines.push(
      '| scheme | texts | share p ≤ 0.01 | share p ≤ 0.1 | within 99 % interval |',
      '|---|---|---|---|---|',
    );
    for (const c of report.calibration)
      lines.push(
        `| ${c.scheme} | ${c.texts} | ${rate(c.below001)} | ${rate(c.below01)} | ${c.within ? 'yes' : 'no'} |`,
      );
    lines.push('');
  }

  lines.push('## Quality', '');
  lines.push(
    '| scheme | perplexity ratio (reference) | perplexity ratio (independent) | distinct-2 | cross-request repeat | identical samples |',
    '|---|---|---|---|---|---|',
  );
  for (const q of report.quality)
    lines.push(
      `| ${q.scheme} | ${q.perplexityRatio.toFixed(3)} | ${q.independentPerplexityRatio.toFixed(3)} | ${q.distinct2.toFixed(3)} | ${percent(q.crossRequestRepeat)} | ${percent(q.identicalSamples)} |`,
    );
  lines.push(
    '',
    `Perplexity ratio: of the watermarked texts over the plain texts' (T = ${longest}), under the reference model and under the independent one. ` +
      `Cross-request repeat: share of texts whose last ${config.repeatWidth} tokens occur in another text of the set. ` +
      `Identical samples: share of ${config.samplesPerPrompt} samples of each of ${config.samplePrompts} prompts identical to another sample of the same prompt.`,
    '',
  );

  if (report.roc.length > 0) {
    lines.push(`## ROC, T = ${report.roc[0].length}, no attack`, '');
    lines.push('| scheme | AUC |', '|---|---|');
    for (const r of report.roc) lines.push(`| ${r.scheme} | ${r.auc.toFixed(4)} |`);
    lines.push('');
  }

  lines.push('## Time', '');
  lines.push(
    Object.entries(report.timings)
      .map(([k, v]) => `${k} ${v.toFixed(1)} s`)
      .join('; '),
    '',
  );
  return `${lines.join('\n')}\n`;
}

function tprVsLength(report: EvalReport): string {
  const lengths = report.config.lengths;
  const series: Series[] = report.schemes
    .map((s, i) => ({
      label: s.name,
      color: COLORS[i % COLORS.length],
      points: lengths
        .map((l) => find(report, s.name, 'none', l, 'text'))
        .filter((r) => r !== undefined)
        .map((r) => [r.length, r.tpr] as [number, number]),
    }))
    .filter((series) => series.points.length > 0);
  return renderPlot({
    title: `TPR at α = ${report.config.alpha} against length, no attack`,
    subtitle: 'whole-text test; n-gram reference model (not an LLM)',
    x: {
      label: 'tokens',
      min: lengths[0],
      max: lengths[lengths.length - 1],
      log: true,
      ticks: lengths.map((l) => ({ value: l, label: String(l) })),
    },
    y: TPR_AXIS,
    series,
  });
}

function robustness(report: EvalReport, longest: number): string {
  const attacks = report.config.attacks.map((a) => a.label);
  const series: Series[] = report.schemes
    .map((s, i) => ({
      label: s.name,
      color: COLORS[i % COLORS.length],
      points: attacks
        .map((a, j) => [j, find(report, s.name, a, longest, 'text')] as const)
        .filter(([, r]) => r !== undefined)
        .map(([j, r]) => [j, (r as EvalRow).tpr] as [number, number]),
    }))
    .filter((series) => series.points.length > 0);
  return renderPlot({
    title: `TPR at α = ${report.config.alpha} under each attack, T = ${longest}`,
    subtitle: 'whole-text test; n-gram reference model (not an LLM)',
    x: {
      label: 'attack',
      min: -0.5,
      max: attacks.length - 0.5,
      log: false,
      ticks: attacks.map((a, j) => ({ value: j, label: a })),
    },
    y: TPR_AXIS,
    series,
    // Room for every attack's label under the axis.
    width: Math.max(820, 270 + 110 * attacks.length),
  });
}

function rocPlot(report: EvalReport): string {
  const n = report.config.texts;
  const floor = 1 / (2 * n);
  const series: Series[] = report.roc
    .map((r, i) => ({
      label: r.scheme,
      color: COLORS[i % COLORS.length],
      markers: false,
      points: r.points.map(([fpr, tpr]) => [Math.max(fpr, floor), tpr] as [number, number]),
    }))
    .filter((series) => series.points.length > 0);
  return renderPlot({
    title: `ROC at T = ${report.roc[0]?.length ?? ''} tokens, no attack`,
    subtitle: `FPR from ${n} plain texts (below 1/${n} drawn at 1/${2 * n}); n-gram reference model (not an LLM)`,
    x: {
      label: 'false-positive rate',
      min: floor,
      max: 1,
      log: true,
      ticks: decadeTicks(floor, 1, (e) => `1e${e}`),
    },
    y: TPR_AXIS,
    series,
  });
}

/** Writes results.json, summary.md and the figures into `dir`; returns the file paths. */
export function writeEvalOutputs(report: EvalReport, dir: string): string[] {
  checkOutputDirectory(dir);
  mkdirSync(dir, { recursive: true });
  const files: Record<string, string> = {
    'results.json': `${JSON.stringify(report, null, 2)}\n`,
    'summary.md': summaryMarkdown(report),
    'tpr-vs-length.svg': tprVsLength(report),
  };
  for (const length of report.config.lengths) files[`robustness-${length}.svg`] = robustness(report, length);
  if (report.roc.length > 0) files['roc.svg'] = rocPlot(report);
  return Object.entries(files).map(([name, content]) => {
    const path = join(dir, name);
    writeFileSync(path, content);
    return path;
  });
}
