import type { Scheme } from '@tracemark/watermark';
import { fail } from './errors';
import { nullTail } from './null-law';
import { schemeIdentity, type TestResult, testResult } from './result';
import { CountedTape, type SkipCounts, type SuspectSample, type WindowFilter } from './tape';

/**
 * The closed-model radioactivity test of Sander et al. 2024 ("Watermarking Makes Language Models
 * Radioactive", NeurIPS, §4): the suspect model's outputs, with the prompts that produced them, are scored
 * as one tape (`CountedTape`). Each PRF input (see `Scheme.inputKey`) counts once across the whole set, and
 * windows that occur in a sample's own prompt are dropped from that sample, so that neither repetition nor
 * text quoted from watermarked prompts can pass for inherited watermark. The p-value is exact under the
 * scheme's null law.
 */
export interface TrajectoryPoint {
  scored: number;
  log10PValue: number;
}

export interface RadioactivityOptions {
  scheme: Scheme;
  /** Keep only tokens whose preceding window is in the owner's text (see `buildWindowFilter`). */
  filter?: WindowFilter;
  /** De-duplicate pairs across the tape (default) and drop prompt windows (default). Off only to show the trap. */
  dedup?: boolean;
  dropPromptWindows?: boolean;
  /** Points of the p-value trajectory per decade of scored tokens, from 10 on (default 8). */
  trajectoryPointsPerDecade?: number;
  /** Stop after this many scored tokens. */
  maxScored?: number;
}

export interface RadioactivityResult extends TestResult {
  /** Output tokens seen (`scored` of them counted). */
  seen: number;
  /** Why the others did not count. */
  skipped: SkipCounts;
  samples: number;
  trajectory: TrajectoryPoint[];
}

export function radioactivityTest(
  samples: readonly SuspectSample[],
  options: RadioactivityOptions,
): RadioactivityResult {
  return radioactivityTape(samples, options).result;
}

/** The radioactivity test and the tape it scored, for callers that go on to score it under other keys. */
export function radioactivityTape(
  samples: readonly SuspectSample[],
  options: RadioactivityOptions,
): { tape: CountedTape; scores: Float64Array; result: RadioactivityResult } {
  const { scheme } = options;
  if (!Array.isArray(samples)) fail('E_INVALID_OPTIONS', 'samples must be an array of { prompt, output }');
  const tape = new CountedTape({
    scheme,
    filter: options.filter,
    dedup: options.dedup,
    dropPromptWindows: options.dropPromptWindows,
    limit: options.maxScored,
  });
  for (const sample of samples) tape.add(sample);
  const scores = tape.scores(scheme);
  const checkpoints = logSpacedCheckpoints(options.trajectoryPointsPerDecade ?? 8);
  const trajectory: TrajectoryPoint[] = [];
  let sum = 0;
  let next = 0;
  for (let j = 0; j < scores.length; j++) {
    sum += scores[j];
    while (next < checkpoints.length && checkpoints[next] === j + 1) {
      trajectory.push({ scored: j + 1, log10PValue: nullTail(scheme.nullLaw, sum, j + 1).log10p });
      next++;
    }
  }
  const { counts } = tape;
  const base = testResult(schemeIdentity(scheme), sum, counts.scored);
  if (counts.scored > 0 && trajectory[trajectory.length - 1]?.scored !== counts.scored) {
    trajectory.push({ scored: counts.scored, log10PValue: base.log10PValue });
  }
  return {
    tape,
    scores,
    result: {
      ...base,
      seen: counts.seen,
      skipped: { ...counts.skipped },
      samples: samples.length,
      trajectory,
    },
  };
}

/** Scored-token counts 10^(1 + k / perDecade), rounded and without repeats, up to 10^10. */
function logSpacedCheckpoints(perDecade: number): number[] {
  const out = new Set<number>();
  for (let k = 0; k <= 9 * perDecade; k++) out.add(Math.round(10 ** (1 + k / perDecade)));
  return [...out].sort((a, b) => a - b);
}
