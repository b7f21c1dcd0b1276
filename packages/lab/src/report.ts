import { mkdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { binomialUpperTail, formatPValue } from '@tracemark/verifier';
import { attackLabel, type LabSchemeName } from './config';
import { fail } from './errors';
import type { LabReport } from './run';
import { type AxisSpec, type Band, decadeTicks, renderPlot, type Series } from './svg';
import type { LabRow } from './tasks';

const SCHEME_COLORS: Record<LabSchemeName, string> = {
  'kgw-h1': '#1f77b4',
  'kgw-h2': '#17becf',
  unigram: '#2ca02c',
  gumbel: '#d62728',
  'gumbel-soft': '#ff7f0e',
  synthid: '#9467bd',
};

/** ρ from light to dark; ρ = 0 in grey. */
function rhoColor(rho: number, rhos: number[]): string {
  if (rho === 0) return '#8c8c8c';
  const positive = rhos.filter((r) => r > 0);
  const palette = ['#fdae61', '#f46d43', '#d73027', '#a50026', '#74add1', '#4575b4', '#313695'];
  return palette[positive.indexOf(rho) % palette.length];
}

/** −log10 p is drawn on a log axis; values below this floor (p > 0.98) are drawn at the floor. */
const EVIDENCE_FLOOR = 0.01;
const evidence = (log10p: number) => Math.max(EVIDENCE_FLOOR, -log10p);

function evidenceAxis(maxEvidence: number): AxisSpec {
  const max = 10 ** Math.max(2, Math.ceil(Math.log10(Math.max(maxEvidence, 1)) + 0.05));
  return {
    label: '−log10 p  (log scale; higher = stronger evidence)',
    min: EVIDENCE_FLOOR,
    max,
    log: true,
    ticks: decadeTicks(EVIDENCE_FLOOR, max, (e) => (e < 0 ? (10 ** e).toFixed(-e) : String(10 ** e))),
  };
}

const REFERENCES = [
  { kind: 'horizontal' as const, value: 6, label: 'p = 1e-6', color: '#b22222' },
  { kind: 'horizontal' as const, value: 2, label: 'p = 0.01', color: '#888888' },
];

/** The attack the plots show: the run's first (none, unless the run names others only). */
const plotted = (report: LabReport) => attackLabel(report.config.attacks?.[0] ?? { kind: 'none' });
const rowAttack = (row: LabRow) => row.attack ?? 'none';

export function plotPValueVsRho(report: LabReport): string {
  const { config } = report;
  const rows = report.rows.filter((r) => r.mode === 'closed' && rowAttack(r) === plotted(report));
  const positive = config.rhos.filter((r) => r > 0);
  const minRho = positive.length > 0 ? Math.min(...positive) : 0.01;
  const maxEvidence = Math.max(...rows.map((r) => evidence(r.log10PValue)));
  const series: Series[] = config.schemes.map((scheme) => ({
    label: scheme,
    color: SCHEME_COLORS[scheme],
    points: rows.filter((r) => r.scheme === scheme).map((r) => [r.rho, evidence(r.log10PValue)]),
  }));
  return renderPlot({
    title: 'Radioactivity: evidence against the share ρ of watermarked training text',
    subtitle: `order-${config.studentOrder} n-gram students, ${config.probes} probes × ${config.probeTokens} tokens, filter width ${config.filterWidth}, seed ${config.seed}`,
    x: {
      label:
        'ρ: share of the student’s training tokens that are the teacher’s watermarked output (log scale)',
      min: minRho / 1.6,
      max: 1.4,
      log: true,
      ticks: positive.map((r) => ({ value: r, label: String(r) })),
    },
    y: evidenceAxis(maxEvidence),
    series,
    references: REFERENCES,
    apart: config.rhos.includes(0) ? { value: 0, label: 'ρ = 0' } : undefined,
  });
}

export function plotTrajectory(report: LabReport, scheme: LabSchemeName): string {
  const rows = report.rows.filter(
    (r) => r.scheme === scheme && r.mode === 'closed' && rowAttack(r) === plotted(report),
  );
  const maxScored = Math.max(100, ...rows.map((r) => r.scored));
  const maxEvidence = Math.max(...rows.flatMap((r) => r.trajectory.map((p) => evidence(p.log10PValue))));
  const xMax = 10 ** Math.ceil(Math.log10(maxScored) + 0.02);
  return renderPlot({
    title: `Radioactivity test of ${scheme} students: evidence as scored tokens accrue`,
    subtitle: `filter width ${report.config.filterWidth}; each line is one student (ρ = share of watermarked training text)`,
    x: {
      label: 'scored tokens (de-duplicated, filtered; log scale)',
      min: 10,
      max: xMax,
      log: true,
      ticks: decadeTicks(10, xMax, (e) => (10 ** e).toLocaleString('en-US')),
    },
    y: evidenceAxis(maxEvidence),
    series: rows.map((row) => ({
      label: `ρ = ${row.rho}`,
      color: rhoColor(row.rho, report.config.rhos),
      points: row.trajectory.map((p) => [p.scored, evidence(p.log10PValue)] as [number, number]),
      markers: false,
    })),
    references: REFERENCES,
  });
}

/** Indices 1..n, every one at the small end and log-spaced above, for a smooth band at modest cost. */
function bandIndices(n: number): number[] {
  const out = new Set<number>();
  for (let i = 1; i <= Math.min(n, 20); i++) out.add(i);
  for (let x = Math.log(20); x < Math.log(n); x += 0.05) out.add(Math.round(Math.exp(x)));
  out.add(n);
  return [...out].sort((a, b) => a - b);
}

/** The `level` quantile of the i-th smallest of n uniforms: P[U(i) ≤ x] = P[Binomial(n, x) ≥ i], by bisection. */
function orderStatisticQuantile(i: number, n: number, level: number): number {
  let lo = 0;
  let hi = 1;
  for (let step = 0; step < 60; step++) {
    const mid = (lo + hi) / 2;
    if (binomialUpperTail(i, n, mid).p < level) lo = mid;
    else hi = mid;
  }
  return (lo + hi) / 2;
}

/** Sorted control p-values against uniform quantiles, per scheme (pooled over ρ), log-log, with a 99 % band. */
export function plotControls(report: LabReport): string {
  const groups = report.config.schemes.map((scheme) => ({
    scheme,
    pValues: report.rows
      .filter((r) => r.scheme === scheme)
      .flatMap((r) => r.controlsRandomized)
      .sort((a, b) => a - b),
  }));
  const n = Math.max(...groups.map((g) => g.pValues.length));
  const smallest = Math.min(0.5 / n, ...groups.flatMap((g) => g.pValues.filter((p) => p > 0)));
  const min = 10 ** Math.floor(Math.log10(smallest));
  const ticks = decadeTicks(min, 1, (e) => (e === 0 ? '1' : `1e${e}`));
  // Pointwise 99 % band of the order statistics: the i-th smallest of n uniforms is Beta(i, n − i + 1).
  const band: Band = {
    lower: [],
    upper: [],
    color: '#e3ebf6',
    label: `99 % band (n = ${n})`,
  };
  for (const i of bandIndices(n)) {
    const q = (i - 0.5) / n;
    band.lower.push([q, Math.max(min, orderStatisticQuantile(i, n, 0.005))]);
    band.upper.push([q, Math.min(1, orderStatisticQuantile(i, n, 0.995))]);
  }
  return renderPlot({
    title: 'Negative controls: p-values of keys that were never used',
    subtitle: `${report.config.controls} unused keys per student, pooled over ρ per scheme (randomized p-values); uniform lies on the diagonal`,
    x: { label: 'uniform quantile (i − ½) / n  (log scale)', min, max: 1, log: true, ticks },
    y: { label: 'sorted control p-value  (log scale)', min, max: 1, log: true, ticks },
    bands: [band],
    series: groups.map((g) => ({
      label: g.scheme,
      color: SCHEME_COLORS[g.scheme],
      points: g.pValues.map((p, i) => [(i + 0.5) / g.pValues.length, Math.max(p, min)] as [number, number]),
      line: false,
    })),
    references: [{ kind: 'diagonal', label: 'uniform (y = x)', color: '#555555' }],
  });
}

const log10Cell = (row: LabRow | undefined) =>
  row === undefined ? '—' : `${row.log10PValue.toFixed(1)} (${row.scored.toLocaleString('en-US')})`;

/** The Markdown summary: the table of log10 p by scheme and ρ, the controls, the run. */
export function resultsMarkdown(report: LabReport): string {
  const { config, summary } = report;
  const rows = report.rows.filter((r) => r.mode === 'closed');
  const readRows = report.rows.filter((r) => r.mode === 'read');
  // One line per (scheme, attack); a run without attacks has one line per scheme, as before.
  const attacks = (config.attacks ?? [{ kind: 'none' as const }]).map(attackLabel);
  const lineLabel = (s: LabSchemeName, a: string) =>
    attacks.length === 1 && a === 'none' ? s : `${s} · ${a}`;
  const cell = (scheme: LabSchemeName, attack: string, rho: number, from = rows) =>
    from.find((r) => r.scheme === scheme && rowAttack(r) === attack && r.rho === rho);
  const header = `| ${attacks.length === 1 && attacks[0] === 'none' ? 'scheme' : 'scheme · attack'} | ${config.rhos.map((r) => `ρ = ${r}`).join(' | ')} |`;
  const rule = `|---|${config.rhos.map(() => '---:').join('|')}|`;
  const table = (value: (row: LabRow | undefined) => string, from = rows) =>
    [
      header,
      rule,
      ...config.schemes.flatMap((s) =>
        attacks.map(
          (a) => `| ${lineLabel(s, a)} | ${config.rhos.map((r) => value(cell(s, a, r, from))).join(' | ')} |`,
        ),
      ),
    ].join('\n');
  const lines = [
    '# tracemark lab: radioactivity of watermarked text in distilled n-gram students',
    '',
    `Profile ${config.profile}, seed ${config.seed}, lab key ${config.keyFingerprint}; ${report.corpus.corpus}.`,
    `Teacher: order-${config.teacherOrder} n-gram on ${report.corpus.trainTokens.toLocaleString('en-US')} tokens; ` +
      `${config.samples} watermarked samples × ${config.teacherTokens} tokens from held-out prompts of ${config.promptTokens} tokens.`,
    `Students: order-${config.studentOrder} n-grams${(config.prune ?? 1) > 1 ? ` pruned of the n-grams (orders ≥ 2) seen fewer than ${config.prune} times` : ''} on ${config.studentTokens.toLocaleString('en-US')} tokens, a share ρ of ` +
      `them the teacher's output (${config.promptsInTraining ? 'each with its prompt, which takes from the clean share' : 'prompts left out'}); ` +
      `each answers ${config.probes} other held-out prompts with ${config.probeTokens} tokens.`,
    `Sampling: ${config.sampling === 'top-k' ? `top-${config.topK}` : 'the full vocabulary'}, temperature ${config.temperature} ` +
      `for the teacher and ${config.probeTemperature} for the probes.`,
    `Schemes: ${config.schemes.map((name) => `${name} ${config.specs[name]}`).join('; ')}.`,
    `Attacks of the distiller: ${attacks.join(', ')}${attacks.length > 1 || attacks[0] !== 'none' ? ' (docs/radioactivity.md, "The distiller fights back"; paraphrase and filter leave the clean ρ = 0 student as it is, so it is run without an attack and under neutralisation only)' : ''}.`,
    `Test: Sander et al. 2024's closed-model test, de-duplicated on (window, token), prompt windows dropped, ` +
      `${config.filterWidth === 0 ? 'no filter' : `filter of width ${config.filterWidth} from the teacher's outputs`}; ` +
      `${config.controls} never-used keys per row.`,
    '',
    '## log10 p-value (scored tokens) by scheme and ρ',
    '',
    table(log10Cell),
    '',
    `## Negative controls: KS p-value of the ${config.controls} unused keys per row, randomized (exact)`,
    '',
    table((row) =>
      row === undefined
        ? '—'
        : `${row.controlsRandomizedKs.pValue.toFixed(3)} (${row.controlsKs.pValue.toFixed(3)})`,
    ),
    '',
    `All ${summary.controls.pValues} control p-values: KS p = ${summary.controls.randomizedKs.pValue.toFixed(3)} ` +
      `randomized (D = ${summary.controls.randomizedKs.statistic.toFixed(4)}), ` +
      `${summary.controls.ks.pValue.toFixed(3)} exact (D = ${summary.controls.ks.statistic.toFixed(4)}); smallest p ` +
      `${formatPValue(summary.controls.minPValue, Math.log10(summary.controls.minPValue))}. ` +
      `By scheme, pooled over ρ (randomized): ${config.schemes
        .map((s) => `${s} ${summary.controls.bySchemeRandomizedKs[s]?.pValue.toFixed(3)}`)
        .join(', ')}.`,
    summary.rhoZero.controlsKs === null || summary.rhoZero.controlsRandomizedKs === null
      ? ''
      : `ρ = 0: the lab key's p-values ${Object.entries(summary.rhoZero.pValues)
          .map(([s, p]) => `${s} ${(p as number).toFixed(3)}`)
          .join(
            ', ',
          )}; their ${rows.filter((r) => r.rho === 0).reduce((n, r) => n + r.controls.length, 0)} ` +
        `control p-values: KS p = ${summary.rhoZero.controlsRandomizedKs.pValue.toFixed(3)} randomized, ` +
        `${summary.rhoZero.controlsKs.pValue.toFixed(3)} exact.`,
    '',
    'An exact p-value of a discrete (binomial) null law is conservative: its atoms make it larger than ' +
      'uniform, which a KS test over many keys sees when few tokens are scored. The randomized p-value ' +
      'P[S > s] + U·P[S = s] (U uniform) is exactly uniform under H0 and is the calibration check.',
    '',
    '## Without the filter: log10 p-value (scored tokens)',
    '',
    table((row) =>
      row === undefined
        ? '—'
        : `${row.unfiltered.log10PValue.toFixed(1)} (${row.unfiltered.scored.toLocaleString('en-US')})`,
    ),
    '',
    ...readingSection(report, readRows, table),
    '## Teacher',
    '',
    '| scheme | samples | tokens | log10 p of its own text (scored) | generation s |',
    '|---|---:|---:|---:|---:|',
    ...config.schemes.map((s) => {
      const t = report.teacher[s];
      return t === undefined
        ? `| ${s} | — | — | — | — |`
        : `| ${s} | ${t.samples} | ${t.tokens.toLocaleString('en-US')} | ${t.selfTest.log10PValue.toFixed(1)} (${t.selfTest.scored.toLocaleString('en-US')}) | ${(t.generateMs / 1000).toFixed(1)} |`;
    }),
    '',
    '## Run',
    '',
    `Wall time ${(report.timings.totalMs / 1000).toFixed(1)} s (teachers done at ${(report.timings.teachersMs / 1000).toFixed(1)} s) ` +
      `with ${config.workers === 1 ? 'no worker threads' : `${config.workers} worker threads`} on ${report.machine.cpus} × ` +
      `${report.machine.cpuModel}, Node ${report.machine.node}, ${report.machine.platform}.`,
    '',
  ];
  return lines.join('\n');
}

/**
 * The reading mode's tables, where the run has it: log10 p by scheme and ρ, the controls, and the scored
 * tokens each mode needed to reach p ≤ 1e-6.
 */
function readingSection(
  report: LabReport,
  readRows: LabRow[],
  table: (value: (row: LabRow | undefined) => string, from?: LabRow[]) => string,
): string[] {
  if (readRows.length === 0) return [];
  const closed = report.rows.filter((r) => r.mode === 'closed');
  const toMillion = (row: LabRow | undefined) =>
    row === undefined
      ? '—'
      : row.scoredToOneInAMillion === null
        ? 'not reached'
        : row.scoredToOneInAMillion.toLocaleString('en-US');
  const bothModes = (row: LabRow | undefined) => {
    const twin =
      row &&
      closed.find((r) => r.scheme === row.scheme && r.rho === row.rho && rowAttack(r) === rowAttack(row));
    return row === undefined ? '—' : `${toMillion(twin)} / ${toMillion(row)}`;
  };
  return [
    '## Reading mode: log10 p-value (scored tokens) by scheme and ρ',
    '',
    `Each student reads the teacher's ${readRows[0].probes.samples.toLocaleString('en-US')} watermarked outputs ` +
      `(${readRows[0].probes.tokens.toLocaleString('en-US')} positions); its most likely next token after each prefix ` +
      "is scored with the lab key (Sander et al. 2024, open-model setting; the verifier's readingTest: each " +
      '(window, prediction) once, windows already read in the same text dropped).',
    '',
    table(log10Cell, readRows),
    '',
    `Controls (KS p of the ${report.config.controls} unused keys per row, randomized):`,
    '',
    table((row) => (row === undefined ? '—' : row.controlsRandomizedKs.pValue.toFixed(3)), readRows),
    '',
    '## Scored tokens to p ≤ 1e-6: closed / read',
    '',
    table(bothModes, readRows),
    '',
  ];
}

/** The files a run writes, by name. */
export function labFiles(report: LabReport): Record<string, string> {
  const files: Record<string, string> = {
    'results.json': `${JSON.stringify(report, null, 2)}\n`,
    'results.md': resultsMarkdown(report),
    'pvalue-vs-rho.svg': plotPValueVsRho(report),
    'controls.svg': plotControls(report),
  };
  for (const scheme of report.config.schemes)
    files[`trajectory-${scheme}.svg`] = plotTrajectory(report, scheme);
  return files;
}

/** Writes results.json, results.md and the SVG plots into `dir` (created if missing); returns the paths. */
export function writeLabOutputs(report: LabReport, dir: string): string[] {
  checkOutputDirectory(dir);
  mkdirSync(dir, { recursive: true });
  return Object.entries(labFiles(report)).map(([name, text]) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  });
}

/** The output path must be a directory or not exist (checked before a run, so that no work is lost). */
export function checkOutputDirectory(dir: string): void {
  let isDirectory: boolean;
  try {
    isDirectory = statSync(dir).isDirectory();
  } catch {
    return;
  }
  if (!isDirectory) fail('E_USAGE', `--out ${dir} exists and is not a directory`);
}
