import type { NgramModel } from '@tracemark/ngram';
import { createRng } from '@tracemark/watermark';
import type { LabConfig } from './config';
import type { GeneratedSample, LogitAdjust } from './distill';

/**
 * The distiller who fights back: what a distiller can do, with the means it has, against a watermark it
 * suspects in the text it harvests. Each attack is run for real on the lab's n-gram pipeline (see
 * `LabAttack` in config.ts for the list, and docs/radioactivity.md, "The distiller fights back").
 */

/** The teacher samples a student of share ρ takes (whole, in order; the last one cut), as `studentText` counts. */
export function samplesFor(samples: readonly GeneratedSample[], tokens: number): number {
  let left = tokens;
  let used = 0;
  for (const { output } of samples) {
    if (left <= 0) break;
    left -= output.length;
    used++;
  }
  return used;
}

/** Draws one token from top-k candidates at a temperature (softmax over the candidates' logits). */
function drawCandidate(
  ids: Int32Array,
  logits: Float32Array,
  count: number,
  temperature: number,
  u: number,
): number {
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < count; i++) if (logits[i] > max) max = logits[i];
  let total = 0;
  const weights = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    weights[i] = Math.exp((logits[i] - max) / temperature);
    total += weights[i];
  }
  let target = u * total;
  for (let i = 0; i < count; i++) {
    target -= weights[i];
    if (target <= 0) return ids[i];
  }
  return ids[count - 1];
}

export interface ParaphraseResult {
  samples: GeneratedSample[];
  /** Output tokens looked at, chosen for redrawing, and changed by the redraw (a draw can be the same token). */
  tokens: number;
  chosen: number;
  changed: number;
}

/**
 * Paraphrase: a plain model (the teacher's unwatermarked twin: the same n-gram model, sampled without the
 * scheme, top-k at the teacher's temperature) redraws each output token with probability `share`, given the
 * prompt and the (already paraphrased) tokens before it. Only the first `count` samples are rewritten (the
 * ones the student takes); the others are returned as they are.
 */
export function paraphraseSamples(
  config: Pick<LabConfig, 'topK' | 'temperature'>,
  plain: NgramModel,
  samples: readonly GeneratedSample[],
  share: number,
  count: number,
  seed: string,
): ParaphraseResult {
  const random = createRng(seed);
  const ids = new Int32Array(config.topK);
  const logits = new Float32Array(config.topK);
  const width = plain.order - 1;
  let tokens = 0;
  let chosen = 0;
  let changed = 0;
  const out = samples.map((sample, index) => {
    if (index >= count) return sample;
    const text = [...sample.prompt, ...sample.output];
    const start = sample.prompt.length;
    for (let i = start; i < text.length; i++) {
      tokens++;
      if (random() >= share) continue;
      chosen++;
      const found = plain.topCandidates(text.slice(Math.max(0, i - width), i), config.topK, ids, logits);
      if (found === 0) continue;
      const drawn = drawCandidate(ids, logits, found, config.temperature, random());
      if (drawn !== text[i]) changed++;
      text[i] = drawn;
    }
    return { prompt: sample.prompt, output: text.slice(start) };
  });
  return { samples: out, tokens, chosen, changed };
}

/** Mean natural log-likelihood per output token of a sample under a model (read after its prompt). */
export function sampleLogLikelihood(model: NgramModel, sample: GeneratedSample): number {
  const text = [...sample.prompt, ...sample.output];
  const width = model.order - 1;
  let sum = 0;
  let n = 0;
  for (let i = sample.prompt.length; i < text.length; i++) {
    const lp = model.logProb(text.slice(Math.max(0, i - width), i), text[i]);
    // A token the reference never saw: as unlikely as the least likely token it knows, roughly.
    sum += Number.isFinite(lp) ? lp : -20;
    n++;
  }
  return n === 0 ? 0 : sum / n;
}

export interface FilterResult {
  /** The samples kept, in their harvested order. */
  samples: GeneratedSample[];
  harvested: number;
  dropped: number;
}

/**
 * Filter: of `harvested` samples, the distiller drops the floor(share × harvested) whose mean per-token
 * log-likelihood under its plain reference model is lowest (the least natural to it), and keeps the rest
 * in order. The caller harvests enough that the kept ones still fill the student's share ρ.
 */
export function filterSamples(
  reference: NgramModel,
  samples: readonly GeneratedSample[],
  share: number,
  harvested: number,
): FilterResult {
  const pool = samples.slice(0, harvested);
  const dropped = Math.floor(share * pool.length);
  const scores = pool.map((sample, i) => ({ i, score: sampleLogLikelihood(reference, sample) }));
  scores.sort((a, b) => a.score - b.score || a.i - b.i);
  const drop = new Set(scores.slice(0, dropped).map((s) => s.i));
  return { samples: pool.filter((_, i) => !drop.has(i)), harvested: pool.length, dropped };
}

/** A stealing estimate of the watermark's bias: log frequency ratios by (window, token). */
export interface BiasEstimate {
  /** Width h of the windows (the scheme's context width; 0: per token). */
  width: number;
  /** Teacher outputs and tokens the estimate was made from. */
  samples: number;
  tokens: number;
  /** Estimated log-biases > 0, by window key then token. */
  bias: Map<string, Map<number, number>>;
  /** (window, token) pairs with a positive estimate. */
  pairs: number;
}

/** Pseudo-count added to both the observed and the expected count of a (window, token) pair. */
export const NEUTRALISE_PSEUDOCOUNT = 0.5;

const windowKey = (text: ArrayLike<number>, end: number, width: number): string => {
  let key = '';
  for (let i = end - width; i < end; i++) key += `${i < 0 ? -1 : text[i]},`;
  return key;
};

/**
 * The bias estimate of a distiller who has N teacher outputs and a plain reference model (Jovanović et al.
 * 2024, "Watermark stealing", simplified): for each (window w of the h tokens before a position, token t)
 * seen in the outputs, the observed count c(w, t) is set against the count the reference expects,
 * E(w, t) = Σ over the positions with window w of p_ref(t | the tokens before that position). The estimated
 * log-bias is log((c + ½) / (E + ½)) where it is positive; a KGW green token after its window is emitted about
 * e^δ times as often as the unwatermarked model would, so the estimate approaches δ for tokens seen often
 * and is damped for those seen once. The reference reads the full preceding context (an n-gram model reads a
 * short context as the start of a document, so a bare window would be the wrong question).
 */
export function estimateBias(
  reference: NgramModel,
  samples: readonly GeneratedSample[],
  width: number,
): BiasEstimate {
  const observed = new Map<string, Map<number, number>>();
  const expected = new Map<string, Map<number, number>>();
  const positions = new Map<string, number[][]>();
  const span = reference.order - 1;
  let tokens = 0;
  for (const sample of samples) {
    const text = [...sample.prompt, ...sample.output];
    for (let i = sample.prompt.length; i < text.length; i++) {
      const key = windowKey(text, i, width);
      let row = observed.get(key);
      if (row === undefined) {
        row = new Map();
        observed.set(key, row);
        positions.set(key, []);
      }
      row.set(text[i], (row.get(text[i]) ?? 0) + 1);
      (positions.get(key) as number[][]).push(text.slice(Math.max(0, i - span), i));
      tokens++;
    }
  }
  for (const [key, row] of observed) {
    const contexts = positions.get(key) as number[][];
    const sums = new Map<number, number>();
    for (const context of contexts)
      for (const t of row.keys()) sums.set(t, (sums.get(t) ?? 0) + Math.exp(reference.logProb(context, t)));
    expected.set(key, sums);
  }
  const bias = new Map<string, Map<number, number>>();
  let pairs = 0;
  for (const [key, row] of observed) {
    const sums = expected.get(key) as Map<number, number>;
    for (const [t, c] of row) {
      const b = Math.log((c + NEUTRALISE_PSEUDOCOUNT) / ((sums.get(t) ?? 0) + NEUTRALISE_PSEUDOCOUNT));
      if (!(b > 0)) continue;
      let out = bias.get(key);
      if (out === undefined) {
        out = new Map();
        bias.set(key, out);
      }
      out.set(t, b);
      pairs++;
    }
  }
  return { width, samples: samples.length, tokens, bias, pairs };
}

/** The student's decoding with the estimated bias subtracted from its candidates' logits. */
export function neutraliser(estimate: BiasEstimate): LogitAdjust {
  return (context, ids, logits, count) => {
    const row = estimate.bias.get(windowKey(context, context.length, estimate.width));
    if (row === undefined) return;
    for (let i = 0; i < count; i++) {
      const b = row.get(ids[i]);
      if (b !== undefined) logits[i] -= b;
    }
  };
}
