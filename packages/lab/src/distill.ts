import { setImmediate as yieldToLoop } from 'node:timers/promises';
import { type NgramModel, trainNgram } from '@tracemark/ngram';
import { GenerationSession, type Scheme } from '@tracemark/watermark';
import type { LabConfig, Sampling } from './config';
import { fail } from './errors';

/**
 * The one distillation pipeline, used by every lab run and by the demo server's model build: a teacher
 * trained on the profile's text (`trainTeacher`), its watermarked answers to held-out prompts
 * (`teacherSamples`), students trained on a share ρ of them mixed with clean text (`studentText`,
 * `distillStudent`), and the students' answers to other held-out prompts (`probeStudent`). Every choice
 * (sampling, prompts in or out, orders, budgets, share) is a setting of the run's `LabConfig`.
 */

/** A prompt and the tokens a model generated after it. */
export interface GeneratedSample {
  prompt: number[];
  output: number[];
}

/**
 * Changes the candidates' logits before a token is drawn (in place): `context` is every token so far (prompt
 * included), `ids` and `logits` the first `count` candidates. The neutralising distiller's decoding.
 */
export type LogitAdjust = (
  context: ArrayLike<number>,
  ids: Int32Array,
  logits: Float32Array,
  count: number,
) => void;

export interface GenerateOptions {
  /** Tokens generated per prompt. */
  maxTokens: number;
  /** Exact top-k candidates from the model (default), or the full vocabulary. */
  sampling?: Sampling;
  /** Candidates per step for 'top-k'. Default 40. */
  topK?: number;
  temperature?: number;
  /** Seed of the ordinary sampling randomness; sample i uses `${seed}:${i}`. */
  seed: string;
  /** Called after each sample with the samples done and the total. */
  onProgress?: (done: number, total: number) => void;
  /** Changes the candidates' logits before each draw (the neutralise attack). */
  adjust?: LogitAdjust;
}

/** Time between yields to the event loop, so that a server building its models stays responsive. */
const YIELD_MS = 100;

/**
 * Generates one continuation per prompt, through the watermark scheme when one is given (null: the model's
 * own distribution), with `GenerationSession.nextFromCandidates`. 'top-k' takes the exact top-k candidates
 * from the model's trie (`topCandidates`). 'full-vocabulary' takes every token of the model's support: an
 * n-gram model gives −∞ to every token it never saw, so the support carries the whole distribution (at
 * temperature 1 the tokens drawn are those of a session over the full logits row, as a server samples;
 * tested), at a fraction of the cost of a pass over all 200,019 entries.
 */
export async function generateSamples(
  model: NgramModel,
  scheme: Scheme | null,
  prompts: readonly number[][],
  options: GenerateOptions,
): Promise<GeneratedSample[]> {
  const sampling = options.sampling ?? 'top-k';
  const topK = options.topK ?? 40;
  if (!(Number.isInteger(options.maxTokens) && options.maxTokens >= 1))
    fail('E_USAGE', `maxTokens must be a positive integer; got ${options.maxTokens}`);
  if (!(Number.isInteger(topK) && topK >= 1)) fail('E_USAGE', `topK must be a positive integer; got ${topK}`);
  const support = sampling === 'full-vocabulary' ? supportOf(model) : null;
  const row = support === null ? null : new Float32Array(model.vocabSize);
  const ids = support ?? new Int32Array(topK);
  const logits = new Float32Array(ids.length);
  // Without a scheme the session still needs one for its bookkeeping; the watermark is then off.
  const sessionScheme = scheme ?? plainScheme(model.vocabSize);
  const samples: GeneratedSample[] = [];
  let lastYield = performance.now();
  for (let i = 0; i < prompts.length; i++) {
    const prompt = prompts[i];
    const session = new GenerationSession(sessionScheme, {
      prompt,
      seed: `${options.seed}:${i}`,
      watermark: scheme !== null,
      sampling: { temperature: options.temperature ?? 1 },
    });
    for (let step = 0; step < options.maxTokens; step++) {
      let count: number;
      if (row === null) {
        count = model.topCandidates(session.tokens, topK, ids, logits);
      } else {
        model.logits(session.tokens, row);
        for (let j = 0; j < ids.length; j++) logits[j] = row[ids[j]];
        count = ids.length;
      }
      options.adjust?.(session.tokens, ids, logits, count);
      session.nextFromCandidates(ids, logits, count);
      if (performance.now() - lastYield > YIELD_MS) {
        await yieldToLoop();
        lastYield = performance.now();
      }
    }
    samples.push({ prompt: Array.from(prompt), output: session.generated });
    options.onProgress?.(i + 1, prompts.length);
  }
  return samples;
}

/** The token ids of the model's support: the tokens it saw in training (every other logit is −∞). */
export function supportOf(model: NgramModel): Int32Array {
  const out: number[] = [];
  for (let t = 0; t < model.vocabSize; t++) if (model.isKnown(t)) out.push(t);
  return Int32Array.from(out);
}

/** A scheme stand-in for unwatermarked generation: never asked to embed or score. */
function plainScheme(vocabSize: number): Scheme {
  const unused = (): never => fail('E_INTERNAL', 'the plain scheme embeds and scores nothing');
  return {
    spec: { scheme: 'none', version: 1, vocabSize },
    vocabSize,
    contextWidth: 0,
    distortionFree: false,
    nullLaw: { kind: 'bernoulli', p: 0.5 },
    keyFingerprint: 'none',
    masterFingerprint: 'none',
    tenant: undefined,
    choose: unused,
    score: unused,
  };
}

export interface StudentMix {
  /** Share ρ of the student's training tokens that are the teacher's outputs. */
  rho: number;
  /** Total training tokens of the student. */
  totalTokens: number;
  /** Keep each sample's prompt before its output (the prompts count against the clean share). */
  withPrompts: boolean;
}

/** A student's training documents, and what they are made of. */
export interface StudentText {
  documents: ArrayLike<number>[];
  /** The teacher's output tokens, the prompt tokens kept with them, and the clean tokens. */
  watermarkedTokens: number;
  promptTokens: number;
  cleanTokens: number;
  /** Teacher samples used. */
  samples: number;
}

/**
 * The training documents of a student: round(ρ·T) tokens of the teacher's outputs, taken whole in order
 * (the last one cut), each with its prompt before it when `withPrompts`; then clean documents, taken whole
 * in order until round((1 − ρ)·T) tokens less the prompts' are met (the last one cut). Without prompts the
 * outputs are documents of their own, as a distiller who harvests answers would keep them.
 */
export function studentText(
  clean: readonly ArrayLike<number>[],
  samples: readonly GeneratedSample[],
  mix: StudentMix,
): StudentText {
  const { rho, totalTokens, withPrompts } = mix;
  if (!(rho >= 0 && rho <= 1)) fail('E_USAGE', `rho must be in [0, 1]; got ${rho}`);
  const documents: ArrayLike<number>[] = [];
  let left = Math.round(rho * totalTokens);
  let promptTokens = 0;
  let used = 0;
  for (const { prompt, output } of samples) {
    if (left <= 0) break;
    const piece = output.length <= left ? output : output.slice(0, left);
    documents.push(withPrompts ? [...prompt, ...piece] : piece);
    if (withPrompts) promptTokens += prompt.length;
    left -= piece.length;
    used++;
  }
  if (left > 0) fail('E_INPUT', `not enough teacher output for the student mix (${left} tokens short)`);
  const watermarkedTokens = Math.round(rho * totalTokens);
  const cleanBudget = Math.round((1 - rho) * totalTokens) - promptTokens;
  if (cleanBudget < 0)
    fail('E_USAGE', `the prompts of the student's ${used} teacher samples exceed its clean share`);
  let cleanLeft = cleanBudget;
  for (const doc of clean) {
    if (cleanLeft <= 0) break;
    const piece = doc.length <= cleanLeft ? doc : Array.prototype.slice.call(doc, 0, cleanLeft);
    documents.push(piece);
    cleanLeft -= piece.length;
  }
  if (cleanLeft > 0) fail('E_INPUT', `not enough clean text for the student mix (${cleanLeft} tokens short)`);
  return { documents, watermarkedTokens, promptTokens, cleanTokens: cleanBudget, samples: used };
}

/** An n-gram model of token-id documents, with the o200k_base tokenizer (so that it can serve text). */
export function trainModel(
  documents: Iterable<ArrayLike<number>>,
  order: number,
  meta: Record<string, unknown> = {},
  minCount = 1,
): NgramModel {
  return trainNgram(documents, { order, meta, minCount });
}

/** The teacher of a run: an n-gram model of the teacher's text. */
export function trainTeacher(
  config: LabConfig,
  text: Iterable<ArrayLike<number>>,
  meta: Record<string, unknown> = {},
): NgramModel {
  return trainModel(text, config.teacherOrder, { role: 'teacher', ...meta });
}

/**
 * The teacher's watermarked answers to the teacher prompts, `teacherTokens` each, sampled as the run's
 * profile says; `label` (the scheme's name) keeps the samples of different schemes independent.
 */
export function teacherSamples(
  config: LabConfig,
  teacher: NgramModel,
  scheme: Scheme,
  prompts: readonly number[][],
  label: string,
  onProgress?: (done: number, total: number) => void,
): Promise<GeneratedSample[]> {
  return generateSamples(teacher, scheme, prompts, {
    maxTokens: config.teacherTokens,
    sampling: config.sampling,
    topK: config.topK,
    temperature: config.temperature,
    seed: `${config.seed}:teacher:${label}`,
    onProgress,
  });
}

/** A student with share ρ of the teacher's samples in its training text (ρ = 0: the clean student). */
export function distillStudent(
  config: LabConfig,
  clean: readonly ArrayLike<number>[],
  samples: readonly GeneratedSample[],
  rho: number,
  meta: Record<string, unknown> = {},
): { model: NgramModel; text: Omit<StudentText, 'documents'> } {
  const { documents, ...text } = studentText(clean, rho === 0 ? [] : samples, {
    rho,
    totalTokens: config.studentTokens,
    withPrompts: config.promptsInTraining,
  });
  const model = trainModel(documents, config.studentOrder, meta, config.prune ?? 1);
  return { model, text };
}

/** A student's answers to the probe prompts, `probeTokens` each, sampled as the run's profile says. */
export function probeStudent(
  config: LabConfig,
  student: NgramModel,
  prompts: readonly number[][],
  label: string,
  adjust?: LogitAdjust,
): Promise<GeneratedSample[]> {
  return generateSamples(student, null, prompts, {
    maxTokens: config.probeTokens,
    sampling: config.sampling,
    topK: config.topK,
    temperature: config.probeTemperature,
    seed: `${config.seed}:probe:${label}`,
    adjust,
  });
}
