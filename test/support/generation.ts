import { createRng, GenerationSession, type SamplingOptions, type Scheme } from '@tracemark/watermark';
import { entropy, type SyntheticModel, softmax } from './synthetic-model';

/** Seeded random prompt of `length` token ids below `vocabSize`. */
export function randomPrompt(length: number, vocabSize: number, seed: string): number[] {
  const rng = createRng(seed);
  return Array.from({ length }, () => Math.floor(rng() * vocabSize));
}

/**
 * Continues `prefix` by `steps` tokens sampled from the model, with the scheme's watermark or without it,
 * and returns the new tokens.
 */
export function continueText(
  model: SyntheticModel,
  scheme: Scheme,
  prefix: ArrayLike<number>,
  steps: number,
  options: { seed: string; watermark: boolean; sampling?: SamplingOptions },
): number[] {
  const session = new GenerationSession(scheme, {
    prompt: prefix,
    seed: options.seed,
    watermark: options.watermark,
    ...(options.sampling ? { sampling: options.sampling } : {}),
  });
  for (let i = 0; i < steps; i++) session.next(model.logits(session.tokens));
  return session.generated;
}

/**
 * Entropy in nats of the model's next-token distribution (temperature 1, whole vocabulary) after each
 * context, cached per context (the synthetic model's logits depend on the last token only).
 */
export class EntropyMeter {
  readonly #model: SyntheticModel;
  readonly #cache = new Map<number, number>();
  #total = 0;
  #steps = 0;

  constructor(model: SyntheticModel) {
    this.#model = model;
  }

  /** Adds the entropy at each generated position of `tokens` (positions from `start` on). */
  addText(tokens: ArrayLike<number>, start: number): void {
    for (let i = start; i < tokens.length; i++) {
      const last = i === 0 ? -1 : tokens[i - 1];
      let h = this.#cache.get(last);
      if (h === undefined) {
        h = entropy(softmax(this.#model.logits(i === 0 ? [] : [last])));
        this.#cache.set(last, h);
      }
      this.#total += h;
      this.#steps++;
    }
  }

  get mean(): number {
    return this.#total / this.#steps;
  }
}
