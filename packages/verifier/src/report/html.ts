import type { DetectionResult } from '../detect';
import { formatPValue } from '../format';
import { nullMoments } from '../null-law';
import type { EvidenceBundle } from './bundle';

/** A stored output with its detection (per-token entries with character offsets). */
export interface HighlightedSample {
  id: string;
  text: string;
  result: DetectionResult;
}

/** Escapes text for HTML and SVG element content and for double- or single-quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"']/g, (c) => ESCAPES[c]);
}

const ESCAPES: Record<string, string> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
};

function pText(p: number, log10p: number | undefined): string {
  return formatPValue(p, log10p ?? (p > 0 ? Math.log10(p) : Number.NEGATIVE_INFINITY));
}

/** Coordinates rounded to 0.1 px keep the SVG small. */
function r1(x: number): string {
  return (Math.round(x * 10) / 10).toString();
}

/** About `target` round tick values (1, 2 or 5 × 10^k apart) from 0 to at least `max`. */
function niceTicks(max: number, target = 5): number[] {
  if (!(max > 0)) return [0, 1];
  const raw = max / target;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) ?? 10 * magnitude;
  const ticks: number[] = [];
  for (let v = 0; v < max + step * 0.999; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

const WIDTH = 520;
const HEIGHT = 320;
const M = { left: 60, right: 20, top: 18, bottom: 48 };
const PLOT_W = WIDTH - M.left - M.right;
const PLOT_H = HEIGHT - M.top - M.bottom;

function svgOpen(id: string, title: string): string {
  return (
    `<svg id="${id}" class="chart" xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" ` +
    `viewBox="0 0 ${WIDTH} ${HEIGHT}" role="img" aria-label="${escapeHtml(title)}"><title>${escapeHtml(title)}</title>` +
    `<rect x="${M.left}" y="${M.top}" width="${PLOT_W}" height="${PLOT_H}" class="plot"/>`
  );
}

function emptyChart(id: string, title: string, message: string): string {
  return `${svgOpen(id, title)}<text x="${WIDTH / 2}" y="${HEIGHT / 2}" text-anchor="middle" class="muted">${escapeHtml(message)}</text></svg>`;
}

/** −log10 p against scored tokens on a log axis, with the α threshold. */
export function trajectorySvg(trajectory: { scored: number; log10PValue: number }[], alpha: number): string {
  const title = 'p-value trajectory: −log10 p against scored tokens';
  const points = trajectory.filter((p) => p.scored > 0 && Number.isFinite(p.log10PValue));
  if (points.length === 0) return emptyChart('trajectory', title, 'no trajectory in the verify result');
  const lx = points.map((p) => Math.log10(p.scored));
  let x0 = Math.floor(Math.min(...lx));
  let x1 = Math.ceil(Math.max(...lx));
  if (x1 === x0) {
    x0 -= 0.5;
    x1 += 0.5;
  }
  const threshold = -Math.log10(alpha);
  const ys = points.map((p) => Math.max(0, -p.log10PValue));
  const yTicks = niceTicks(Math.max(...ys, threshold) * 1.05);
  const y1 = yTicks[yTicks.length - 1];
  const X = (scored: number) => M.left + ((Math.log10(scored) - x0) / (x1 - x0)) * PLOT_W;
  const Y = (v: number) => M.top + PLOT_H - (v / y1) * PLOT_H;
  let out = svgOpen('trajectory', title);
  for (let k = Math.ceil(x0); k <= Math.floor(x1); k++) {
    const x = r1(X(10 ** k));
    out += `<line x1="${x}" x2="${x}" y1="${M.top}" y2="${M.top + PLOT_H}" class="grid"/>`;
    out += `<text x="${x}" y="${M.top + PLOT_H + 16}" text-anchor="middle">${k <= 3 ? String(10 ** k) : `1e${k}`}</text>`;
  }
  for (const v of yTicks) {
    const y = r1(Y(v));
    out += `<line x1="${M.left}" x2="${M.left + PLOT_W}" y1="${y}" y2="${y}" class="grid"/>`;
    out += `<text x="${M.left - 6}" y="${y}" dy="0.32em" text-anchor="end">${v}</text>`;
  }
  const ty = r1(Y(threshold));
  out += `<line x1="${M.left}" x2="${M.left + PLOT_W}" y1="${ty}" y2="${ty}" class="threshold"/>`;
  out += `<text x="${M.left + PLOT_W - 4}" y="${ty}" dy="-0.4em" text-anchor="end" class="threshold-label">α = ${escapeHtml(String(alpha))}</text>`;
  const path = points.map((p, i) => `${i === 0 ? 'M' : 'L'}${r1(X(p.scored))},${r1(Y(ys[i]))}`).join('');
  out += `<path d="${path}" class="series"/>`;
  points.forEach((p, i) => {
    out += `<circle cx="${r1(X(p.scored))}" cy="${r1(Y(ys[i]))}" r="2.6" class="dot"><title>${p.scored} scored: log10 p = ${p.log10PValue.toFixed(2)}</title></circle>`;
  });
  out += `<text x="${M.left + PLOT_W / 2}" y="${HEIGHT - 8}" text-anchor="middle" class="axis-label">scored tokens (log scale)</text>`;
  out += `<text transform="translate(16 ${M.top + PLOT_H / 2}) rotate(-90)" text-anchor="middle" class="axis-label">−log10 p</text>`;
  return `${out}</svg>`;
}

/** The controls' sorted p-values against uniform quantiles, with the diagonal and a 95 % KS band. */
export function controlsSvg(pValues: number[], ks: { statistic?: number; pValue: number } | null): string {
  const title = 'negative controls: sorted p-values against uniform quantiles';
  if (pValues.length === 0) return emptyChart('controls', title, 'no negative controls in the verify result');
  const sorted = [...pValues].sort((a, b) => a - b);
  const n = sorted.length;
  const X = (u: number) => M.left + u * PLOT_W;
  const Y = (u: number) => M.top + PLOT_H - u * PLOT_H;
  let out = svgOpen('controls', title);
  for (const v of [0, 0.2, 0.4, 0.6, 0.8, 1]) {
    out += `<line x1="${r1(X(v))}" x2="${r1(X(v))}" y1="${M.top}" y2="${M.top + PLOT_H}" class="grid"/>`;
    out += `<line x1="${M.left}" x2="${M.left + PLOT_W}" y1="${r1(Y(v))}" y2="${r1(Y(v))}" class="grid"/>`;
    out += `<text x="${r1(X(v))}" y="${M.top + PLOT_H + 16}" text-anchor="middle">${v}</text>`;
    out += `<text x="${M.left - 6}" y="${r1(Y(v))}" dy="0.32em" text-anchor="end">${v}</text>`;
  }
  // Kolmogorov's asymptotic 95 % band: the empirical CDF stays within ±1.358/√n of the diagonal.
  const d = 1.358 / Math.sqrt(n);
  if (d < 1) {
    const band = [
      [0, d],
      [1 - d, 1],
      [1, 1],
      [1, 1 - d],
      [d, 0],
      [0, 0],
    ]
      .map(([u, v], i) => `${i === 0 ? 'M' : 'L'}${r1(X(u))},${r1(Y(v))}`)
      .join('');
    out += `<path d="${band}Z" class="band"><title>95 % Kolmogorov-Smirnov band (±${d.toFixed(3)})</title></path>`;
  }
  out += `<line x1="${X(0)}" y1="${Y(0)}" x2="${X(1)}" y2="${Y(1)}" class="diagonal"/>`;
  sorted.forEach((p, i) => {
    const q = (i + 0.5) / n;
    out += `<circle cx="${r1(X(q))}" cy="${r1(Y(p))}" r="3" class="dot control"><title>control ${i + 1}: p = ${escapeHtml(pText(p, undefined))} (uniform quantile ${q.toFixed(3)})</title></circle>`;
  });
  const ksText =
    ks === null
      ? `${n} controls`
      : `${n} controls; KS ${ks.statistic === undefined ? '' : `D = ${ks.statistic.toFixed(3)}, `}p = ${pText(ks.pValue, undefined)}`;
  out += `<text x="${M.left + 8}" y="${M.top + 16}" class="caption">${escapeHtml(ksText)}</text>`;
  out += `<text x="${M.left + PLOT_W / 2}" y="${HEIGHT - 8}" text-anchor="middle" class="axis-label">uniform quantile</text>`;
  out += `<text transform="translate(16 ${M.top + PLOT_H / 2}) rotate(-90)" text-anchor="middle" class="axis-label">control p-value (sorted)</text>`;
  return `${out}</svg>`;
}

function attributionTable(bundle: EvidenceBundle): string {
  const { body } = bundle;
  const threshold = Math.log10(body.alpha);
  const rows =
    body.tenants === undefined || body.tenants.length === 0
      ? [
          {
            name: body.keyFingerprint,
            p: pText(body.verdict.pValueCited, body.verdict.log10PValueCited),
            adjusted: '—',
            detected: body.verdict.detected,
          },
        ]
      : [...body.tenants]
          .sort(
            (a, b) =>
              (a.adjustedLog10PValue ?? Math.log10(a.adjustedPValue)) -
              (b.adjustedLog10PValue ?? Math.log10(b.adjustedPValue)),
          )
          .map((t) => ({
            name: t.id,
            p: pText(t.pValue, t.log10PValue),
            adjusted: pText(t.adjustedPValue, t.adjustedLog10PValue),
            // Failed controls leave every tenant undecided, as they do the verdict.
            detected:
              body.verdict.controlsPassed &&
              (t.adjustedLog10PValue ?? Math.log10(t.adjustedPValue)) <= threshold,
          }));
  const head = `<tr><th>${body.tenants === undefined ? 'key' : 'tenant'}</th><th>p-value</th><th>Holm-adjusted p</th><th>at α = ${escapeHtml(String(body.alpha))}</th></tr>`;
  const lines = rows.map(
    (row) =>
      `<tr class="${row.detected ? 'hit' : ''}"><td><code>${escapeHtml(row.name)}</code></td><td>${escapeHtml(row.p)}</td>` +
      `<td>${escapeHtml(row.adjusted)}</td><td>${row.detected ? 'detected' : body.verdict.controlsPassed ? 'not detected' : 'inconclusive'}</td></tr>`,
  );
  return `<table id="attribution"><thead>${head}</thead><tbody>${lines.join('')}</tbody></table>`;
}

/** Tokens shown per sample; the rest of a longer sample is summarised. */
const MAX_SAMPLE_TOKENS = 1500;

function sampleHtml(sample: HighlightedSample): string {
  const { text, result } = sample;
  const { mean } = nullMoments(result.nullLaw);
  const shown = result.perToken.slice(0, MAX_SAMPLE_TOKENS);
  let out = '';
  let cursor = 0;
  for (const entry of shown) {
    if (entry.start > cursor) out += escapeHtml(text.slice(cursor, entry.start));
    const piece = text.slice(Math.max(entry.start, cursor), entry.end);
    cursor = Math.max(cursor, entry.end);
    if (piece.length === 0) continue;
    const cls = !entry.counted || entry.score === null ? 'n' : entry.score > mean ? 'g' : 'r';
    const why = entry.counted
      ? `score ${entry.score?.toFixed(3)}`
      : `not counted: ${entry.reason ?? 'context'}`;
    out += `<span class="${cls}" title="#${entry.index} id ${entry.tokenId}, ${why}">${escapeHtml(piece)}</span>`;
  }
  const rest = result.perToken.length - shown.length;
  if (rest > 0) out += `<span class="more">… ${rest} more tokens not shown</span>`;
  else out += escapeHtml(text.slice(cursor));
  const stats = `${result.tokens} tokens, ${result.scored} scored, p = ${pText(result.pValue, result.log10PValue)}`;
  return (
    `<article class="sample"><h3>${escapeHtml(sample.id)} <small>${escapeHtml(stats)}</small></h3>` +
    `<div class="tokens">${out}</div></article>`
  );
}

const STYLE = `
:root { color-scheme: light; --ink: #1d2330; --muted: #5e6678; --line: #d9dde6; --accent: #2456c7; --hit: #b3261e; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.5 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
  color: var(--ink); background: #f6f7fa; }
main { max-width: 1120px; margin: 0 auto; padding: 24px; }
h1 { font-size: 22px; margin: 0 0 4px; }
h2 { font-size: 17px; margin: 28px 0 10px; }
h3 { font-size: 14px; margin: 0 0 8px; }
h3 small { color: var(--muted); font-weight: normal; margin-left: 8px; }
code, .mono { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, monospace; font-size: 12.5px; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 8px; padding: 16px 18px; }
.verdict { display: inline-block; padding: 3px 10px; border-radius: 999px; font-weight: 600; color: #fff; background: #6b7280; }
.verdict.hit { background: var(--hit); }
.subtitle { color: var(--muted); margin: 0 0 16px; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 18px; margin: 12px 0 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
.charts { display: flex; flex-wrap: wrap; gap: 16px; }
figure { margin: 0; }
figcaption { color: var(--muted); font-size: 12.5px; max-width: 520px; margin-top: 6px; }
svg.chart { background: #fff; border: 1px solid var(--line); border-radius: 8px; font-size: 11px; }
svg.chart text { fill: var(--muted); }
svg.chart .axis-label { fill: var(--ink); font-size: 12px; }
svg.chart .caption { fill: var(--ink); font-size: 12px; }
svg.chart .plot { fill: #fbfcfe; stroke: var(--line); }
svg.chart .grid { stroke: #e8ebf1; }
svg.chart .series { fill: none; stroke: var(--accent); stroke-width: 2; }
svg.chart .dot { fill: var(--accent); }
svg.chart .control { fill: #0f8a6a; fill-opacity: 0.8; }
svg.chart .diagonal { stroke: #9aa2b1; stroke-dasharray: 4 3; }
svg.chart .band { fill: #0f8a6a; fill-opacity: 0.08; stroke: none; }
svg.chart .threshold { stroke: var(--hit); stroke-dasharray: 6 4; }
svg.chart text.threshold-label { fill: var(--hit); }
svg.chart .muted { fill: var(--muted); font-size: 13px; }
table { border-collapse: collapse; width: 100%; background: #fff; border: 1px solid var(--line); }
th, td { text-align: left; padding: 7px 12px; border-bottom: 1px solid var(--line); }
th { background: #eef1f6; font-weight: 600; }
tr.hit td:last-child { color: var(--hit); font-weight: 600; }
.sample { margin-bottom: 14px; }
.tokens { white-space: pre-wrap; overflow-wrap: anywhere; line-height: 1.75; font-size: 13.5px; }
.tokens .g { background: #c9f2d7; border-radius: 2px; }
.tokens .r { background: #f8d3d0; border-radius: 2px; }
.tokens .n { color: #8a90a0; }
.tokens .more { color: var(--muted); font-style: italic; }
.legend span { padding: 1px 6px; border-radius: 2px; margin-right: 8px; }
.legend .g { background: #c9f2d7; } .legend .r { background: #f8d3d0; } .legend .n { color: #8a90a0; }
details { margin-top: 10px; }
footer { color: var(--muted); font-size: 12px; margin-top: 28px; }
`;

/**
 * The report as one HTML document: no script, no external resource (a Content-Security-Policy forbids them),
 * every text escaped. `samples` are shown with each token marked.
 */
export function renderReportHtml(bundle: EvidenceBundle, samples: HighlightedSample[] = []): string {
  const { body, signature } = bundle;
  const title = body.label ?? 'tracemark evidence report';
  const cited = body.verdict;
  const anytime = cited.basis === 'anytime';
  const verdict = !cited.controlsPassed
    ? `<span class="verdict" id="verdict">inconclusive: the negative controls failed</span>`
    : cited.detected
      ? `<span class="verdict hit" id="verdict">watermark detected</span>`
      : `<span class="verdict" id="verdict">no watermark detected</span>`;
  const suspect = body.suspect;
  const reading = body.mode === 'read';
  const facts: [string, string][] = [
    [
      'evidence',
      reading
        ? '<span id="mode">reading mode</span>: the suspect read the owner\'s watermarked texts and its top-1 predictions were scored (Sander et al. 2024, open-model setting)'
        : '<span id="mode">closed mode</span>: the suspect\'s answers to probe prompts were scored',
    ],
    [
      'p-value',
      `<span id="p-cited">${escapeHtml(pText(cited.pValueCited, cited.log10PValueCited))}</span> <span class="mono">(log10 ${cited.log10PValueCited.toFixed(3)})</span> ${
        anytime ? 'anytime-valid (probing stopped when the e-process reached 1/α)' : 'exact, fixed-size test'
      }`,
    ],
    ...(anytime
      ? ([
          [
            'fixed-size p',
            `${escapeHtml(pText(body.pValue, body.log10PValue))}, not cited: optimistic after a sequential stop`,
          ],
        ] as [string, string][])
      : []),
    ...(suspect === undefined
      ? []
      : ([
          [
            'suspect',
            `${Object.entries(suspect.reportedModels)
              .map(([name, n]) => `<code>${escapeHtml(name)}</code> ×${n.toLocaleString('en')}`)
              .join(', ')} (as the endpoint reported it${
              suspect.requestedModel === null
                ? ''
                : `; requested <code>${escapeHtml(suspect.requestedModel)}</code>`
            })`,
          ],
          [
            'endpoint',
            suspect.endpoints.length === 0
              ? '—'
              : suspect.endpoints.map((e) => `<code>${escapeHtml(e)}</code>`).join(', '),
          ],
          [
            'probed',
            `${escapeHtml(suspect.probeDates.first ?? '?')} to ${escapeHtml(suspect.probeDates.last ?? '?')}`,
          ],
        ] as [string, string][])),
    [
      'tokens',
      `${body.counts.scored.toLocaleString('en')} scored of ${body.counts.seen.toLocaleString('en')} seen`,
    ],
    [
      'responses',
      `${body.counts.responses.toLocaleString('en')} stored responses (SHA-256 of each in the bundle)`,
    ],
    ['scheme', `<code>${escapeHtml(JSON.stringify(body.spec))}</code>`],
    [
      'key',
      body.keyFingerprint === body.masterFingerprint
        ? `<code>${escapeHtml(body.keyFingerprint)}</code>`
        : `<code>${escapeHtml(body.keyFingerprint)}</code> (master key <code>${escapeHtml(body.masterFingerprint)}</code>)`,
    ],
    ['tokenizer', `<code>${escapeHtml(body.tokenizer)}</code>`],
    ...(body.ownerFilter === undefined
      ? []
      : ([
          [
            'owner-text filter',
            `only tokens after one of ${body.ownerFilter.windows.toLocaleString('en')} windows of ${body.ownerFilter.width} tokens from ${body.ownerFilter.documents.toLocaleString('en')} owner documents (SHA-256 <code>${escapeHtml(body.ownerFilter.sha256)}</code>)`,
          ],
        ] as [string, string][])),
    [
      'created',
      `${escapeHtml(body.createdAt)} by ${escapeHtml(body.tool.name)} ${escapeHtml(body.tool.version)}`,
    ],
    ['signature', `<code>HMAC-SHA256 ${escapeHtml(signature.value)}</code>`],
  ];
  const hashes = body.responses.sha256;
  const hashList = hashes
    .slice(0, 200)
    .map((h) => escapeHtml(h))
    .join('\n');
  const samplesSection =
    samples.length === 0
      ? '<p class="subtitle">No samples: the verify result carried none and no --samples file was given.</p>'
      : `<p class="subtitle">Tokens marked with scheme key <code>${escapeHtml(samples[0].result.keyFingerprint)}</code>${samples[0].result.tenant === undefined ? '' : ` (tenant <code>${escapeHtml(samples[0].result.tenant)}</code>)`}; each sample is tested on its own.</p><p class="legend"><span class="g">scored above the null mean</span><span class="r">scored at or below it</span><span class="n">not counted</span></p>${samples.map(sampleHtml).join('')}`;
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${escapeHtml(title)}</title>
<style>${STYLE}</style>
</head>
<body>
<main>
<h1>${escapeHtml(title)}</h1>
<p class="subtitle">Evidence that ${reading ? "a suspect model's predictions carry" : 'text carries'} the watermark of key <code>${escapeHtml(body.keyFingerprint)}</code>, from ${anytime ? 'an anytime-valid sequential test' : 'an exact test'} at α = ${escapeHtml(String(body.alpha))}.</p>
<section class="card">
${verdict}
<dl class="facts">${facts.map(([k, v]) => `<dt>${escapeHtml(k)}</dt><dd>${v}</dd>`).join('')}</dl>
<details><summary>SHA-256 of the stored responses (${hashes.length})</summary><pre class="mono">${hashList}${hashes.length > 200 ? `\n… ${hashes.length - 200} more in bundle.json` : ''}</pre></details>
</section>
<h2>Evidence</h2>
<div class="charts">
<figure>${trajectorySvg(body.trajectory, body.alpha)}<figcaption>The exact p-value as scored tokens accumulate; a watermark drives it down steadily, text without one stays near the top. The dashed line is α.</figcaption></figure>
<figure>${controlsSvg(body.controls.pValues, body.controls.ks)}<figcaption>The same test with control keys or on text that cannot carry the watermark: these p-values should lie along the diagonal (uniform), within the shaded band.</figcaption></figure>
</div>
<h2>Attribution</h2>
${attributionTable(bundle)}
<h2>Samples</h2>
${samplesSection}
<footer>Check the signed bundle with <code>tracemark report --check bundle.json --key-file &lt;key&gt;</code>. This page makes no network request and runs no script.</footer>
</main>
</body>
</html>
`;
}
