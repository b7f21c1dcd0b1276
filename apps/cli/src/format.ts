import { styleText } from 'node:util';
import { type DetectionResult, formatPValue, type InteropDetection, nullMoments } from '@tracemark/verifier';

type Style = Parameters<typeof styleText>[0];

function paint(style: Style, text: string, color: boolean): string {
  return color ? styleText(style, text) : text;
}

/**
 * The text with each token marked: counted tokens above the null mean in green, below it in red, tokens
 * that did not count dimmed. Without colour, counted tokens are bracketed [+…] or [-…].
 */
export function highlightText(text: string, result: DetectionResult, color: boolean): string {
  const { mean } = nullMoments(result.nullLaw);
  let out = '';
  let cursor = 0;
  for (const entry of result.perToken) {
    if (entry.start > cursor) out += text.slice(cursor, entry.start);
    const piece = text.slice(Math.max(entry.start, cursor), entry.end);
    cursor = Math.max(cursor, entry.end);
    if (piece.length === 0) continue;
    if (!entry.counted || entry.score === null) out += paint('dim', piece, color);
    else if (entry.score > mean) out += color ? paint(['bgGreen', 'black'], piece, true) : `[+${piece}]`;
    else out += color ? paint(['bgRed', 'white'], piece, true) : `[-${piece}]`;
  }
  return out + text.slice(cursor);
}

export function summaryLines(result: DetectionResult, alpha: number): string[] {
  const lines = [
    `scheme       ${result.scheme}  ${JSON.stringify(result.spec)}`,
    `key          ${result.masterFingerprint}${result.tenant === undefined ? '' : ` tenant ${result.tenant}`} (scheme key ${result.keyFingerprint})`,
    `tokens       ${result.tokens} seen, ${result.scored} scored (de-duplication: ${result.dedup})`,
    `p-value      ${formatPValue(result.pValue, result.log10PValue)}  (log10 ${result.log10PValue.toFixed(3)}; exact ${describeLaw(result)})`,
    `z-score      ${result.zScore.toFixed(2)}  (a convenience, not the test)`,
  ];
  if (result.adjustedPValue !== undefined && result.adjustedLog10PValue !== undefined) {
    lines.push(
      `Holm-adjusted ${formatPValue(result.adjustedPValue, result.adjustedLog10PValue)} across the keys tested`,
    );
  }
  const w = result.bestWindow;
  if (w !== null) {
    lines.push(
      `best window  tokens ${w.start}–${w.end - 1} (${w.scored} scored): p ${formatPValue(w.pValue, w.log10PValue)}, ` +
        `corrected over ${w.windowsTried} windows ${formatPValue(w.correctedPValue, w.correctedLog10PValue)}`,
    );
  }
  const detected = result.log10PValue <= Math.log10(alpha);
  lines.push(`verdict      ${detected ? 'watermark detected' : 'no watermark detected'} at α = ${alpha}`);
  return lines;
}

function describeLaw(result: DetectionResult): string {
  const law = result.nullLaw;
  if (law.kind === 'bernoulli')
    return `binomial tail of ${result.scoreSum} green in ${result.scored}, γ = ${law.p}`;
  if (law.kind === 'binomial')
    return `binomial tail of ${result.scoreSum} of ${law.trials * result.scored} g-values`;
  return `Gamma(${result.scored}, 1) tail of score sum ${result.scoreSum.toFixed(2)}`;
}

export function interopSummaryLines(result: InteropDetection, alpha: number): string[] {
  const lines = [`scheme       ${result.scheme} (interoperable with its reference implementation)`];
  if ('numGreenTokens' in result) {
    lines.push(`tokens       ${result.numTokensScored} scored, ${result.numGreenTokens} green`);
  } else {
    lines.push(
      `tokens       ${result.numTokensScored} scored; mean ${result.mean.toFixed(4)}, weighted mean ${result.weightedMean.toFixed(4)}`,
    );
  }
  lines.push(
    `p-value      ${formatPValue(result.pValue, result.log10PValue)}  (log10 ${result.log10PValue.toFixed(3)}; exact)`,
  );
  if ('hfPValue' in result) {
    const shown =
      result.hfPValue > 0 ? formatPValue(result.hfPValue, Math.log10(result.hfPValue)) : '0 (underflows)';
    lines.push(`hfPValue     ${shown}  (transformers' normal approximation)`);
  }
  if ('zScore' in result)
    lines.push(`z-score      ${result.zScore.toFixed(2)}  (a convenience, not the test)`);
  const detected = result.log10PValue <= Math.log10(alpha);
  lines.push(`verdict      ${detected ? 'watermark detected' : 'no watermark detected'} at α = ${alpha}`);
  return lines;
}
