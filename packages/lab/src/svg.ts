/**
 * Small, dependency-free SVG line plots for the lab: log or linear axes, ticks, labels, a legend, and
 * reference lines. Every string that reaches the SVG goes through `escapeXml`.
 */

export interface Tick {
  value: number;
  label: string;
}

export interface AxisSpec {
  label: string;
  min: number;
  max: number;
  log: boolean;
  ticks: Tick[];
}

export interface Series {
  label: string;
  color: string;
  points: [number, number][];
  /** Draw the line (default true) and the point markers (default true). */
  line?: boolean;
  markers?: boolean;
  dashed?: boolean;
}

export interface ReferenceLine {
  /** A horizontal line at y = value, or the diagonal y = x. */
  kind: 'horizontal' | 'diagonal';
  value?: number;
  label: string;
  color?: string;
}

/** A band between two curves, drawn under the series (e.g. a KS acceptance band). */
export interface Band {
  lower: [number, number][];
  upper: [number, number][];
  color: string;
  label: string;
}

export interface PlotSpec {
  title: string;
  subtitle?: string;
  x: AxisSpec;
  y: AxisSpec;
  series: Series[];
  references?: ReferenceLine[];
  bands?: Band[];
  /** Extra x positions drawn apart from the axis (e.g. ρ = 0 on a log axis): position → label. */
  apart?: { value: number; label: string };
  width?: number;
  height?: number;
}

export function escapeXml(text: string): string {
  return text.replace(
    /[<>&'"]/g,
    (c) => `&${{ '<': 'lt', '>': 'gt', '&': 'amp', "'": 'apos', '"': 'quot' }[c]};`,
  );
}

const fmt = (v: number) => (Math.round(v * 100) / 100).toString();

export function renderPlot(spec: PlotSpec): string {
  const width = spec.width ?? 820;
  const height = spec.height ?? 480;
  const legendWidth = 170;
  const margin = { left: 78, right: legendWidth + 20, top: spec.subtitle ? 62 : 46, bottom: 58 };
  const apartWidth = spec.apart ? 56 : 0;
  const plotLeft = margin.left + apartWidth;
  const plotRight = width - margin.right;
  const plotTop = margin.top;
  const plotBottom = height - margin.bottom;
  const scale = (axis: AxisSpec, from: number, to: number) => {
    const f = (v: number) => (axis.log ? Math.log10(v) : v);
    const lo = f(axis.min);
    const hi = f(axis.max);
    return (v: number) => {
      const clamped = Math.min(Math.max(v, axis.min), axis.max);
      return from + ((f(clamped) - lo) / (hi - lo)) * (to - from);
    };
  };
  const sx = scale(spec.x, plotLeft, plotRight);
  const sy = scale(spec.y, plotBottom, plotTop);
  const apartX = margin.left + apartWidth / 2 - 6;
  const xOf = (x: number) => (spec.apart && x === spec.apart.value ? apartX : sx(x));
  const out: string[] = [];
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ` +
      `font-family="Helvetica, Arial, sans-serif" font-size="12">`,
  );
  out.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`);
  out.push(
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${escapeXml(spec.title)}</text>`,
  );
  if (spec.subtitle) {
    out.push(
      `<text x="${width / 2}" y="40" text-anchor="middle" fill="#555">${escapeXml(spec.subtitle)}</text>`,
    );
  }
  // Grid and ticks.
  for (const tick of spec.x.ticks) {
    const x = fmt(sx(tick.value));
    out.push(`<line x1="${x}" y1="${plotTop}" x2="${x}" y2="${plotBottom}" stroke="#e4e4e4"/>`);
    out.push(`<line x1="${x}" y1="${plotBottom}" x2="${x}" y2="${plotBottom + 5}" stroke="#333"/>`);
    out.push(`<text x="${x}" y="${plotBottom + 18}" text-anchor="middle">${escapeXml(tick.label)}</text>`);
  }
  for (const tick of spec.y.ticks) {
    const y = fmt(sy(tick.value));
    out.push(`<line x1="${plotLeft}" y1="${y}" x2="${plotRight}" y2="${y}" stroke="#e4e4e4"/>`);
    out.push(`<line x1="${margin.left - 5}" y1="${y}" x2="${margin.left}" y2="${y}" stroke="#333"/>`);
    out.push(
      `<text x="${margin.left - 8}" y="${y}" text-anchor="end" dominant-baseline="middle">${escapeXml(tick.label)}</text>`,
    );
  }
  if (spec.apart) {
    const x = fmt(apartX);
    out.push(`<line x1="${x}" y1="${plotBottom}" x2="${x}" y2="${plotBottom + 5}" stroke="#333"/>`);
    out.push(
      `<text x="${x}" y="${plotBottom + 18}" text-anchor="middle">${escapeXml(spec.apart.label)}</text>`,
    );
    // The break between the apart slot and the axis proper.
    const b = plotLeft - 10;
    out.push(
      `<line x1="${b - 4}" y1="${plotBottom + 6}" x2="${b + 2}" y2="${plotBottom - 6}" stroke="#333"/>`,
    );
    out.push(
      `<line x1="${b + 2}" y1="${plotBottom + 6}" x2="${b + 8}" y2="${plotBottom - 6}" stroke="#333"/>`,
    );
  }
  // Axes frame.
  out.push(
    `<rect x="${margin.left}" y="${plotTop}" width="${plotRight - margin.left}" height="${plotBottom - plotTop}" ` +
      `fill="none" stroke="#333"/>`,
  );
  out.push(
    `<text x="${(plotLeft + plotRight) / 2}" y="${height - 16}" text-anchor="middle" font-size="13">${escapeXml(spec.x.label)}</text>`,
  );
  const yMid = (plotTop + plotBottom) / 2;
  out.push(
    `<text x="18" y="${yMid}" text-anchor="middle" font-size="13" transform="rotate(-90 18 ${yMid})">${escapeXml(spec.y.label)}</text>`,
  );
  out.push(
    `<clipPath id="plot"><rect x="${margin.left}" y="${plotTop}" width="${plotRight - margin.left}" height="${plotBottom - plotTop}"/></clipPath>`,
  );
  out.push('<g clip-path="url(#plot)">');
  for (const band of spec.bands ?? []) {
    const upper = band.upper.map(([x, y]) => `${fmt(sx(x))},${fmt(sy(y))}`);
    const lower = [...band.lower].reverse().map(([x, y]) => `${fmt(sx(x))},${fmt(sy(y))}`);
    out.push(`<polygon points="${[...upper, ...lower].join(' ')}" fill="${band.color}" stroke="none"/>`);
  }
  for (const ref of spec.references ?? []) {
    const color = ref.color ?? '#888';
    if (ref.kind === 'horizontal' && ref.value !== undefined) {
      const y = fmt(sy(ref.value));
      out.push(
        `<line x1="${margin.left}" y1="${y}" x2="${plotRight}" y2="${y}" stroke="${color}" stroke-dasharray="6 4"/>`,
      );
      out.push(
        `<text x="${plotRight - 4}" y="${Number(y) - 5}" text-anchor="end" fill="${color}">${escapeXml(ref.label)}</text>`,
      );
    } else if (ref.kind === 'diagonal') {
      const lo = Math.max(spec.x.min, spec.y.min);
      const hi = Math.min(spec.x.max, spec.y.max);
      out.push(
        `<line x1="${fmt(sx(lo))}" y1="${fmt(sy(lo))}" x2="${fmt(sx(hi))}" y2="${fmt(sy(hi))}" stroke="${color}" stroke-dasharray="6 4"/>`,
      );
    }
  }
  for (const series of spec.series) {
    const points = series.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y));
    if (series.line !== false) {
      // The line joins the points on the axis proper; a point set apart is not joined.
      const joined = points.filter(([x]) => !(spec.apart && x === spec.apart.value));
      if (joined.length > 1) {
        const d = joined.map(([x, y], i) => `${i === 0 ? 'M' : 'L'}${fmt(xOf(x))},${fmt(sy(y))}`).join(' ');
        out.push(
          `<path d="${d}" fill="none" stroke="${series.color}" stroke-width="2"${series.dashed ? ' stroke-dasharray="5 3"' : ''}/>`,
        );
      }
    }
    if (series.markers !== false) {
      for (const [x, y] of points) {
        out.push(`<circle cx="${fmt(xOf(x))}" cy="${fmt(sy(y))}" r="3.5" fill="${series.color}"/>`);
      }
    }
  }
  out.push('</g>');
  // Legend.
  const legendX = plotRight + 18;
  let legendY = plotTop + 8;
  const legendItems = [
    ...spec.series.map((s) => ({
      label: s.label,
      color: s.color,
      dashed: s.dashed ?? false,
      kind: s.line === false ? 'marker' : 'line',
    })),
    ...(spec.bands ?? []).map((b) => ({ label: b.label, color: b.color, dashed: false, kind: 'band' })),
    ...(spec.references ?? []).map((r) => ({
      label: r.label,
      color: r.color ?? '#888',
      dashed: true,
      kind: 'line',
    })),
  ];
  for (const item of legendItems) {
    if (item.kind === 'band') {
      out.push(`<rect x="${legendX}" y="${legendY - 6}" width="22" height="12" fill="${item.color}"/>`);
    } else if (item.kind === 'marker') {
      out.push(`<circle cx="${legendX + 11}" cy="${legendY}" r="4" fill="${item.color}"/>`);
    } else {
      out.push(
        `<line x1="${legendX}" y1="${legendY}" x2="${legendX + 22}" y2="${legendY}" stroke="${item.color}" stroke-width="2"${item.dashed ? ' stroke-dasharray="5 3"' : ''}/>`,
      );
    }
    out.push(
      `<text x="${legendX + 28}" y="${legendY}" dominant-baseline="middle">${escapeXml(item.label)}</text>`,
    );
    legendY += 20;
  }
  out.push('</svg>');
  return `${out.join('\n')}\n`;
}

/** Ticks at powers of ten between min and max, labelled by `label`. */
export function decadeTicks(min: number, max: number, label: (exponent: number) => string): Tick[] {
  const ticks: Tick[] = [];
  for (let e = Math.ceil(Math.log10(min) - 1e-9); e <= Math.floor(Math.log10(max) + 1e-9); e++) {
    ticks.push({ value: 10 ** e, label: label(e) });
  }
  return ticks;
}
