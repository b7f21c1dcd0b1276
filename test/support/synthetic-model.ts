import { createRng } from '@tracemark/watermark';

/**
 * A synthetic language model: for each previous token a fixed random logit vector (Gaussian, scale σ),
 * so that every context has its own distribution with a controlled, realistic entropy.
 * σ = 2.5 over 1,000 tokens gives about 4 nats per token.
 */
export class SyntheticModel {
  readonly vocabSize: number;
  readonly sigma: number;
  readonly #cache = new Map<number, Float32Array>();
  readonly #seed: string;

  constructor(vocabSize: number, sigma: number, seed = 'synthetic') {
    this.vocabSize = vocabSize;
    this.sigma = sigma;
    this.#seed = seed;
  }

  /** A fresh copy of the logits after `sequence` (callers may bias it in place). */
  logits(sequence: ArrayLike<number>): Float32Array {
    const last = sequence.length === 0 ? -1 : sequence[sequence.length - 1];
    let row = this.#cache.get(last);
    if (row === undefined) {
      const rng = createRng(`${this.#seed}:${last}`);
      row = new Float32Array(this.vocabSize);
      for (let i = 0; i < this.vocabSize; i++) {
        row[i] = this.sigma * Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());
      }
      this.#cache.set(last, row);
    }
    return Float32Array.from(row);
  }
}

export function softmax(logits: ArrayLike<number>): Float64Array {
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < logits.length; i++) max = Math.max(max, logits[i]);
  const out = new Float64Array(logits.length);
  let total = 0;
  for (let i = 0; i < logits.length; i++) total += out[i] = Math.exp(logits[i] - max);
  for (let i = 0; i < logits.length; i++) out[i] /= total;
  return out;
}

export function entropy(p: ArrayLike<number>): number {
  let h = 0;
  for (let i = 0; i < p.length; i++) if (p[i] > 0) h -= p[i] * Math.log(p[i]);
  return h;
}

/** Spike entropy S(p, z) = Σ p_k / (1 + z p_k) (Kirchenbauer et al. 2023, Definition 4.1). */
export function spikeEntropy(p: ArrayLike<number>, modulus: number): number {
  let s = 0;
  for (let i = 0; i < p.length; i++) s += p[i] / (1 + modulus * p[i]);
  return s;
}

/** Uniform random token ids from a seeded source: text that no key made. */
export function randomTokens(count: number, vocabSize: number, seed: string): Uint32Array {
  const rng = createRng(seed);
  const out = new Uint32Array(count);
  for (let i = 0; i < count; i++) out[i] = Math.floor(rng() * vocabSize);
  return out;
}
