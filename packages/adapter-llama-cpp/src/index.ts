/**
 * tracemark in node-llama-cpp (3.x): watermarked generation on a `LlamaContextSequence`.
 *
 * - Logit-bias schemes (KGW, Unigram) go through `tokenBias` in its function form, which node-llama-cpp
 *   calls before every sampling step: it returns the green list of the current context as a logit bias.
 *   llama.cpp's sampler chain applies the bias first, then repetition penalties, top-k, top-p, min-p and
 *   the temperature, so the bias is added before truncation (as KGW defines it) and is divided by the
 *   temperature with the logits. `temperature: 0` (node-llama-cpp's default) is greedy decoding of the
 *   biased logits: still detectable, but with little entropy to spend; pass a temperature.
 * - Distortion-free schemes (Gumbel-max, SynthID) read the next-token distribution with
 *   `evaluateWithMetadata(..., { probabilities: true })`, choose the token with the keyed randomness, and
 *   hand it back to the generator (`next(token)`), which evaluates it instead of llama.cpp's own sample.
 *   The probabilities are those left after the sampler options, so `topK: 0, topP: 1, minP: 0` (the
 *   defaults here) give the model's exact distribution at the given temperature; a top-k or top-p
 *   makes the watermark draw from the truncated distribution, still without distortion relative to it.
 *   Repetition penalties, XTC and grammars change the distribution the same way; a grammar is not enforced
 *   on the token the scheme chooses.
 * - At a large vocabulary the token bias is slow (γ·V entries per step through node-llama-cpp and
 *   llama.cpp), and so is the full distribution (V probabilities per step). `route: 'probabilities'` with a
 *   `topK` runs logit-bias schemes on the top-k candidates instead, and a `topK` makes distortion-free
 *   schemes cheap too: microseconds per token at any V (see BENCHMARKS.md).
 */

import {
  checkReadTokens,
  chooserOf,
  GenerationSession,
  type ReadOptions,
  type ReadResult,
  readSettings,
  readWindows,
  type Scheme,
  WatermarkError,
} from '@tracemark/watermark';
import type { LlamaContextSequence, LlamaModel, SequenceEvaluateOptions, Token } from 'node-llama-cpp';
import { TokenBias } from 'node-llama-cpp';

/** The number of tokens in the model's vocabulary, from its GGUF metadata (undefined when absent). */
export function vocabularySize(model: LlamaModel): number | undefined {
  const metadata = model.fileInfo.metadata as { tokenizer?: { ggml?: { tokens?: readonly unknown[] } } };
  return metadata.tokenizer?.ggml?.tokens?.length;
}

function assertVocabulary(scheme: Scheme, model: LlamaModel): void {
  const size = vocabularySize(model);
  if (size !== undefined && size !== scheme.vocabSize) {
    throw new WatermarkError(
      'E_LOGITS_LENGTH',
      `the model's vocabulary has ${size} tokens but the scheme's vocabSize is ${scheme.vocabSize}: create the scheme with the model's vocabulary size`,
    );
  }
}

/** End-of-generation tokens of each model (node-llama-cpp cannot bias them), found once per model. */
const eogTokens = new WeakMap<LlamaModel, Uint8Array>();

function eogTable(model: LlamaModel, size: number): Uint8Array {
  let table = eogTokens.get(model);
  if (table === undefined || table.length !== size) {
    table = new Uint8Array(size);
    for (let t = 0; t < size; t++) if (model.isEogToken(t as Token)) table[t] = 1;
    eogTokens.set(model, table);
  }
  return table;
}

/**
 * The function form of `tokenBias` for a logit-bias scheme: each call returns the bias of the context
 * `tokens()` ends with (node-llama-cpp calls it before sampling each token). `tokens` must return the
 * whole sequence so far, including the token just evaluated: the sequence's own `contextTokens` does not
 * include it yet when the function is called, so keep the list yourself (as `generateWatermarked` does).
 * End-of-generation tokens cannot be biased in node-llama-cpp; they keep their logit.
 *
 * A KGW bias covers γ·V tokens per step. `TokenBias.set` checks every token with a native call, which
 * costs milliseconds per step at V ≈ 128k, so the entries are written into the bias map directly where
 * node-llama-cpp keeps one (`_biases`, the map its sampler reads), and through `set` otherwise.
 */
export function watermarkTokenBias(
  scheme: Scheme,
  model: LlamaModel,
  tokens: () => ArrayLike<number>,
): () => TokenBias {
  if (typeof scheme.biasLogits !== 'function') {
    throw new WatermarkError(
      'E_INVALID_SPEC',
      `scheme ${scheme.spec.scheme} is not a logit-bias scheme; use generateWatermarked for it`,
    );
  }
  assertVocabulary(scheme, model);
  const V = scheme.vocabSize;
  const scratch = new Float32Array(V);
  const eog = eogTable(model, V);
  return () => {
    const bias = new TokenBias(model.tokenizer);
    const sequence = tokens();
    if (sequence.length < scheme.contextWidth) return bias;
    scratch.fill(0);
    scheme.biasLogits!(sequence, scratch);
    const map = (bias as unknown as { _biases?: unknown })._biases;
    if (map instanceof Map) {
      for (let t = 0; t < V; t++) if (scratch[t] !== 0 && eog[t] === 0) map.set(t, scratch[t]);
      return bias;
    }
    // Public API: group tokens by bias value (one group for KGW: +δ on the green list).
    const groups = new Map<number, Token[]>();
    for (let t = 0; t < V; t++) {
      const value = scratch[t];
      if (value === 0 || eog[t] === 1) continue;
      let group = groups.get(value);
      if (group === undefined) {
        group = [];
        groups.set(value, group);
      }
      group.push(t as Token);
    }
    for (const [logit, group] of groups) bias.set(group, { logit });
    return bias;
  };
}

/** Evaluate options that the adapter leaves to the caller (it owns the token bias and EOG handling). */
export type WatermarkEvaluateOptions = Omit<SequenceEvaluateOptions, 'tokenBias' | 'yieldEogToken'>;

export interface GenerateWatermarkedOptions extends WatermarkEvaluateOptions {
  /** Stop after this many generated tokens. Default: until an end-of-generation token. */
  maxTokens?: number;
  /** Set to false to generate through the same code path without the watermark (a control). */
  watermark?: boolean;
  /**
   * How a logit-bias scheme reaches llama.cpp (distortion-free schemes always use 'probabilities'):
   * - 'tokenBias' (default): the green list as a token bias before every sampling step; llama.cpp
   *   samples. The bias covers γ·V tokens per step, which costs milliseconds per token at V ≈ 128k.
   * - 'probabilities': read the candidates' probabilities (`evaluateWithMetadata`), bias them and draw
   *   here, as `candidateStep` does. With a `topK` (e.g. 40) the bias is added after truncation rather
   *   than before, and the step costs microseconds at any V.
   */
  route?: 'tokenBias' | 'probabilities';
  /**
   * Seed of the draws the adapter makes itself on the 'probabilities' route: every draw of a logit-bias
   * scheme, and the plain draw distortion-free schemes fall back to when a context window repeats
   * within the sequence. Default: fresh entropy. (`seed` seeds llama.cpp's own sampler.)
   */
  samplingSeed?: string | number;
}

/**
 * One watermarked generation: iterate it for the generated tokens (an end-of-generation token ends it
 * and is not yielded). It can be iterated once.
 */
export class WatermarkedGeneration implements AsyncIterable<Token> {
  readonly scheme: Scheme;
  /** The sequence's tokens before the generation (its context and the prompt), then each generated token. */
  readonly tokens: number[];
  readonly promptLength: number;
  /** Generated tokens that carried the watermark (not: context too short, repeated context, control). */
  watermarkedSteps = 0;
  readonly #sequence: LlamaContextSequence;
  readonly #prompt: Token[];
  readonly #options: GenerateWatermarkedOptions;
  readonly #viaProbabilities: boolean;
  #started = false;

  constructor(
    sequence: LlamaContextSequence,
    scheme: Scheme,
    prompt: readonly number[],
    options: GenerateWatermarkedOptions = {},
  ) {
    if (prompt.length === 0) throw new WatermarkError('E_CONTEXT_TOO_SHORT', 'the prompt has no tokens');
    assertVocabulary(scheme, sequence.model);
    this.#viaProbabilities = chooserOf(scheme) || options.route === 'probabilities';
    if (this.#viaProbabilities && options.temperature !== undefined && !(options.temperature > 0)) {
      throw new WatermarkError(
        'E_INVALID_SAMPLING',
        'the probabilities route samples: give a temperature > 0 (greedy decoding leaves nothing to watermark)',
      );
    }
    this.scheme = scheme;
    this.#sequence = sequence;
    this.#prompt = prompt.slice() as Token[];
    this.#options = options;
    this.tokens = [...sequence.contextTokens, ...prompt];
    this.promptLength = this.tokens.length;
  }

  /** The generated tokens so far. */
  get generated(): number[] {
    return this.tokens.slice(this.promptLength);
  }

  [Symbol.asyncIterator](): AsyncIterator<Token> {
    if (this.#started) throw new Error('a WatermarkedGeneration can be iterated once');
    this.#started = true;
    return this.#viaProbabilities ? this.#choose() : this.#bias();
  }

  async *#bias(): AsyncGenerator<Token> {
    const {
      maxTokens = Number.POSITIVE_INFINITY,
      watermark = true,
      route: _route,
      samplingSeed: _seed,
      ...evaluate
    } = this.#options;
    if (!(maxTokens > 0)) return;
    const { scheme, tokens } = this;
    const bias = watermark ? watermarkTokenBias(scheme, this.#sequence.model, () => tokens) : undefined;
    const h = scheme.contextWidth;
    let count = 0;
    for await (const token of this.#sequence.evaluate(this.#prompt, { ...evaluate, tokenBias: bias })) {
      if (watermark && tokens.length >= h) this.watermarkedSteps++;
      tokens.push(token);
      yield token;
      if (++count >= maxTokens) return;
    }
  }

  async *#choose(): AsyncGenerator<Token> {
    const {
      maxTokens = Number.POSITIVE_INFINITY,
      watermark = true,
      samplingSeed,
      route: _route,
      ...evaluate
    } = this.#options;
    if (!(maxTokens > 0)) return;
    const model = this.#sequence.model;
    const session = new GenerationSession(this.scheme, {
      prompt: this.tokens,
      seed: samplingSeed,
      watermark,
    });
    const iterator = this.#sequence.evaluateWithMetadata(
      this.#prompt,
      { probabilities: true },
      { temperature: 1, topK: 0, topP: 1, minP: 0, ...evaluate, yieldEogToken: true },
    );
    let ids = new Int32Array(0);
    let logits = new Float32Array(0);
    let count = 0;
    try {
      let step = await iterator.next();
      while (!step.done) {
        const { probabilities } = step.value;
        const n = probabilities.size;
        if (ids.length < n) {
          ids = new Int32Array(n);
          logits = new Float32Array(n);
        }
        let i = 0;
        for (const [token, p] of probabilities) {
          ids[i] = token;
          logits[i++] = p > 0 ? Math.log(p) : Number.NEGATIVE_INFINITY;
        }
        const before = session.watermarkedSteps;
        const token = session.nextFromCandidates(ids, logits, n) as Token;
        this.watermarkedSteps += session.watermarkedSteps - before;
        if (model.isEogToken(token)) return;
        this.tokens.push(token);
        yield token;
        if (++count >= maxTokens) return;
        step = await iterator.next(token);
      }
    } finally {
      await iterator.return();
    }
  }
}

/**
 * Generates on `sequence` from `prompt` (token ids evaluated after what the sequence already holds) with
 * the scheme's watermark. The watermark's context is the sequence's tokens, so detection should be given
 * the same tokens (`generation.tokens`, with `prompt: ` the tokens before the generation).
 */
export function generateWatermarked(
  sequence: LlamaContextSequence,
  scheme: Scheme,
  prompt: readonly number[],
  options?: GenerateWatermarkedOptions,
): WatermarkedGeneration {
  return new WatermarkedGeneration(sequence, scheme, prompt, options);
}

/**
 * Reads a suspect model (Sander et al. 2024, open-model reading mode): evaluates `tokens` on `sequence`
 * with teacher forcing and returns, for every position, the model's most likely next token (and with
 * `topK > 1` its k most likely tokens and their log-probabilities), from the raw logits (no sampler
 * options, no token bias). `tokens` are ids of the model's vocabulary, evaluated as given (add the BOS
 * token yourself if the text should start with it).
 *
 * The sequence's history is cleared before each pass and after the read. A text longer than `chunk`
 * (default: the context size) is read in windows of at most `chunk` tokens: each window after the first
 * starts `overlap` tokens (default chunk / 2) before the first position not read yet, so those tokens are
 * its context, and only the positions after them are taken from it. Each position is read once.
 */
export async function readPredictions(
  sequence: LlamaContextSequence,
  tokens: readonly number[],
  options: ReadOptions = {},
): Promise<ReadResult> {
  const model = sequence.model;
  const { topK, chunk, overlap } = readSettings(options, sequence.contextSize, tokens.length);
  // Without the tokenizer's token list in the GGUF metadata, llama.cpp's own batch check is the upper bound.
  checkReadTokens(tokens, vocabularySize(model) ?? undefined);
  const n = tokens.length;
  const predictions = new Int32Array(n + 1);
  predictions[0] = -1;
  const topIds = topK > 1 ? new Int32Array((n + 1) * topK).fill(-1) : undefined;
  const topLogprobs = topK > 1 ? new Float32Array((n + 1) * topK).fill(Number.NaN) : undefined;
  const windows = readWindows(n, chunk, overlap);
  const generateNext =
    topK > 1
      ? {
          logits: { filter: { tokens: [], includeTop: topK } },
          totalLogitWeight: true,
          options: { temperature: 0 },
        }
      : { token: true, options: { temperature: 0 } };
  try {
    for (const { start, end, keepFrom } of windows) {
      await sequence.clearHistory();
      const input = [];
      for (let t = start; t < end; t++) {
        input.push(t >= keepFrom ? ([tokens[t] as Token, { generateNext }] as const) : (tokens[t] as Token));
      }
      const outputs = await sequence.controlledEvaluate(
        input as Parameters<LlamaContextSequence['controlledEvaluate']>[0],
      );
      for (let t = keepFrom; t < end; t++) {
        const next = outputs[t - start]?.next;
        const position = t + 1;
        if (next === undefined)
          throw new WatermarkError('E_NO_CANDIDATES', `no logits for position ${position}`);
        if (topIds === undefined) {
          if (next.token == null)
            throw new WatermarkError('E_NO_CANDIDATES', `no token for position ${position}`);
          predictions[position] = next.token;
          continue;
        }
        const { logits, totalLogitWeight } = next;
        if (logits === undefined || totalLogitWeight === undefined || logits.size < topK) {
          throw new WatermarkError('E_NO_CANDIDATES', `fewer than ${topK} logits for position ${position}`);
        }
        let j = 0;
        let max = Number.NaN;
        const logZ = Math.log(totalLogitWeight);
        for (const [token, logit] of logits) {
          if (j === 0) max = logit;
          topIds[position * topK + j] = token;
          topLogprobs![position * topK + j] = logit - max - logZ;
          if (++j === topK) break;
        }
        predictions[position] = topIds[position * topK];
      }
    }
  } finally {
    await sequence.clearHistory();
  }
  return { predictions, topIds, topLogprobs, positions: n, passes: windows.length };
}

export { MAX_READ_TOP_K, type ReadOptions, type ReadResult, readWindows } from '@tracemark/watermark';
