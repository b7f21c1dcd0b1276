import { KeySet64, type Scheme, windowKey } from '@tracemark/watermark';
import { dedupKey, nullTail, type SchemeIdentity, schemeIdentity, zScore } from './detect';
import { fail } from './errors';
import { followsPromptWindow, promptWindows } from './prompt-windows';

/**
 * The closed-model radioactivity test of Sander et al. 2024 ("Watermarking Makes Language Models
 * Radioactive", NeurIPS, §4): the suspect model's outputs, with the prompts that produced them, are scored
 * as one tape. Each PRF input (see `Scheme.inputKey`) counts once across the whole set, and windows that occur
 * in a sample's own prompt are dropped from that sample, so that neither repetition nor text quoted from watermarked prompts can
 * pass for inherited watermark. The p-value is exact under the scheme's null law.
 */
export interface SuspectSample {
  prompt: ArrayLike<number>;
  output: ArrayLike<number>;
}

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

export interface RadioactivityResult extends SchemeIdentity {
  pValue: number;
  log10PValue: number;
  zScore: number;
  /** Output tokens seen, and those that counted. */
  seen: number;
  scored: number;
  scoreSum: number;
  /** Why the others did not count. */
  skipped: { context: number; duplicate: number; promptWindow: number; filtered: number };
  samples: number;
  trajectory: TrajectoryPoint[];
}

/** Windows of the owner's own watermarked text, and their width in tokens. */
export interface WindowFilter {
  windows: KeySet64;
  width: number;
}

/**
 * The filter of Sander et al. §4.2: the windows of `width` tokens that occur in the owner's watermarked
 * text. A student model reproduces its training data most faithfully after such windows, so keeping only
 * the tokens that follow one concentrates the evidence. The width may exceed the scheme's context: a
 * longer window picks the contexts that a higher-order student has learnt from the watermarked text
 * itself. Selecting by the preceding window never looks at the scored token, so under H0 the kept scores
 * keep their null law.
 */
export function buildWindowFilter(texts: Iterable<ArrayLike<number>>, width: number): WindowFilter {
  if (!(Number.isInteger(width) && width >= 1))
    fail('E_INVALID_OPTIONS', `filter width must be an integer ≥ 1; got ${width}`);
  const windows = new KeySet64();
  const key = new Uint32Array(2);
  for (const text of texts) {
    for (let end = width; end <= text.length; end++) {
      windowKey(text, end - width, end, key);
      windows.add(key[0], key[1]);
    }
  }
  return { windows, width };
}

export function radioactivityTest(
  samples: SuspectSample[],
  options: RadioactivityOptions,
): RadioactivityResult {
  const { scheme } = options;
  if (!Array.isArray(samples)) fail('E_INVALID_OPTIONS', 'samples must be an array of { prompt, output }');
  const h = scheme.contextWidth;
  const dedup = options.dedup ?? true;
  const dropPromptWindows = options.dropPromptWindows ?? true;
  const maxScored = options.maxScored ?? Number.POSITIVE_INFINITY;
  const filter = options.filter;
  const tape = new KeySet64();
  const key = new Uint32Array(2);
  const skipped = { context: 0, duplicate: 0, promptWindow: 0, filtered: 0 };
  const checkpoints = logSpacedCheckpoints(options.trajectoryPointsPerDecade ?? 8);
  const trajectory: TrajectoryPoint[] = [];
  let seen = 0;
  let scored = 0;
  let sum = 0;
  let next = 0;
  for (const { prompt, output } of samples) {
    // The output is scored in the context of its prompt: the first tokens' windows reach into the prompt.
    const sequence = concat(prompt, output);
    const promptKeys = dropPromptWindows ? promptWindows(prompt, h) : null;
    for (let i = prompt.length; i < sequence.length && scored < maxScored; i++) {
      seen++;
      if (i < h) {
        skipped.context++;
        continue;
      }
      if (promptKeys !== null && followsPromptWindow(promptKeys, sequence, i, h, key)) {
        skipped.promptWindow++;
        continue;
      }
      if (filter !== undefined) {
        if (i < filter.width) {
          skipped.filtered++;
          continue;
        }
        windowKey(sequence, i - filter.width, i, key);
        if (!filter.windows.has(key[0], key[1])) {
          skipped.filtered++;
          continue;
        }
      }
      if (dedup) {
        dedupKey(scheme, sequence, i, 'pair', key);
        if (!tape.add(key[0], key[1])) {
          skipped.duplicate++;
          continue;
        }
      }
      scored++;
      sum += scheme.score(sequence, i);
      while (next < checkpoints.length && checkpoints[next] === scored) {
        trajectory.push({ scored, log10PValue: nullTail(scheme.nullLaw, sum, scored).log10p });
        next++;
      }
    }
  }
  const tail = nullTail(scheme.nullLaw, sum, scored);
  if (scored > 0 && trajectory[trajectory.length - 1]?.scored !== scored) {
    trajectory.push({ scored, log10PValue: tail.log10p });
  }
  return {
    ...schemeIdentity(scheme),
    pValue: tail.p,
    log10PValue: tail.log10p,
    zScore: zScore(scheme.nullLaw, sum, scored),
    seen,
    scored,
    scoreSum: sum,
    skipped,
    samples: samples.length,
    trajectory,
  };
}

function concat(a: ArrayLike<number>, b: ArrayLike<number>): Uint32Array {
  const out = new Uint32Array(a.length + b.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i];
  for (let i = 0; i < b.length; i++) out[a.length + i] = b[i];
  return out;
}

/** Scored-token counts 10^(1 + k / perDecade), rounded and without repeats, up to 10^10. */
function logSpacedCheckpoints(perDecade: number): number[] {
  const out = new Set<number>();
  for (let k = 0; k <= 9 * perDecade; k++) out.add(Math.round(10 ** (1 + k / perDecade)));
  return [...out].sort((a, b) => a - b);
}
