import { GenerationSession, type Scheme } from '@tracemark/watermark';
import { fail } from './errors';
import type { NgramModel } from './model';
import { trainNgram } from './train';

/** A prompt and the tokens a model generated after it. */
export interface GeneratedSample {
  prompt: number[];
  output: number[];
}

export interface GenerateOptions {
  /** Tokens generated per prompt. */
  maxTokens: number;
  /** Candidates per step (exact top-k from the model). Default 40. */
  topK?: number;
  temperature?: number;
  /** Seed of the ordinary sampling randomness; sample i uses `${seed}:${i}`. */
  seed: string;
  /** Generate through `scheme` without the watermark (the plain teacher). */
  watermark?: boolean;
}

/**
 * Generates one continuation per prompt with the model, through the watermark scheme when one is given:
 * exact top-k candidates from the trie (`topCandidates`), then `GenerationSession.nextFromCandidates`.
 */
export function generateSamples(
  model: NgramModel,
  scheme: Scheme | null,
  prompts: readonly number[][],
  options: GenerateOptions,
): GeneratedSample[] {
  const topK = options.topK ?? 40;
  if (!(Number.isInteger(options.maxTokens) && options.maxTokens >= 1)) {
    fail('E_INVALID_OPTIONS', `maxTokens must be a positive integer; got ${options.maxTokens}`);
  }
  const ids = new Int32Array(topK);
  const logits = new Float32Array(topK);
  // Without a scheme the session still needs one for its bookkeeping; the watermark is then off.
  const sessionScheme = scheme ?? plainScheme(model.vocabSize);
  return prompts.map((prompt, i) => {
    const session = new GenerationSession(sessionScheme, {
      prompt,
      seed: `${options.seed}:${i}`,
      watermark: scheme !== null && options.watermark !== false,
      sampling: { temperature: options.temperature ?? 1 },
    });
    for (let step = 0; step < options.maxTokens; step++) {
      const count = model.topCandidates(session.tokens, topK, ids, logits);
      session.nextFromCandidates(ids, logits, count);
    }
    return { prompt: Array.from(prompt), output: session.generated };
  });
}

/** A scheme stand-in for unwatermarked generation: never asked to embed or score. */
function plainScheme(vocabSize: number): Scheme {
  const unused = (): never => fail('E_INVALID_OPTIONS', 'the plain scheme embeds and scores nothing');
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
  /** Share ρ of the student's training tokens that are the teacher's watermarked output. */
  rho: number;
  /** Total training tokens of the student. */
  totalTokens: number;
}

/**
 * The training documents of a student: ρ·T tokens of the teacher's outputs, then (1 − ρ)·T tokens of
 * clean documents, each taken whole in order until its budget is met (the last one cut). The teacher's
 * outputs are trained on as documents of their own, prompt excluded, as a distiller would harvest them.
 */
export function studentDocuments(
  clean: readonly ArrayLike<number>[],
  watermarked: readonly ArrayLike<number>[],
  mix: StudentMix,
): ArrayLike<number>[] {
  const { rho, totalTokens } = mix;
  if (!(rho >= 0 && rho <= 1)) fail('E_INVALID_OPTIONS', `rho must be in [0, 1]; got ${rho}`);
  const take = (from: readonly ArrayLike<number>[], budget: number, what: string): ArrayLike<number>[] => {
    const out: ArrayLike<number>[] = [];
    let left = Math.round(budget);
    for (const doc of from) {
      if (left <= 0) break;
      const piece = doc.length <= left ? doc : Array.prototype.slice.call(doc, 0, left);
      out.push(piece);
      left -= piece.length;
    }
    if (left > 0) fail('E_INVALID_OPTIONS', `not enough ${what} tokens for the student mix (${left} short)`);
    return out;
  };
  return [
    ...take(watermarked, rho * totalTokens, 'watermarked'),
    ...take(clean, (1 - rho) * totalTokens, 'clean'),
  ];
}

/** Trains a student n-gram model on token-id documents. */
export function trainStudent(
  documents: Iterable<ArrayLike<number>>,
  order: number,
  vocabSize: number,
): NgramModel {
  return trainNgram(documents, { order, tokenizer: null, vocabSize });
}
