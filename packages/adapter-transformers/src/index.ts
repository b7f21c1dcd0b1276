/**
 * tracemark in transformers.js (`@huggingface/transformers` 3.x): a `LogitsProcessor` for
 * `model.generate({ ..., logits_processor: [processor] })` and for pipelines (`generator(text, { ...,
 * logits_processor: [processor] })`).
 *
 * - Logit-bias schemes (KGW, Unigram) add their bias to each row in place; transformers.js then samples
 *   as configured. With `do_sample: true` its temperature warper runs before user processors, so the bias
 *   is added to the tempered logits, as `candidateStep` does; top-k is applied after the bias.
 * - Distortion-free schemes (Gumbel-max, SynthID) choose the token themselves from the row's full
 *   distribution and set every other logit to −Infinity, so transformers.js can only pick that token. Run
 *   them with `do_sample: false` (greedy picks the chosen token; transformers.js' own top-k and
 *   temperature then do not touch the distribution) and give the processor the temperature, top-k and
 *   top-p you want in `sampling`.
 */
import { LogitsProcessor, type PreTrainedModel, Tensor } from '@huggingface/transformers';
import {
  checkReadTokens,
  chooserOf,
  GenerationSession,
  type ReadOptions,
  type ReadResult,
  readSettings,
  readWindows,
  type SamplingOptions,
  type Scheme,
  WatermarkError,
} from '@tracemark/watermark';

export interface WatermarkProcessorOptions {
  /**
   * Distortion-free schemes only: the temperature, top-k and top-p that the processor applies before it
   * chooses (transformers.js' own sampling controls do not apply under `do_sample: false`). Default: the
   * model's distribution as it is (temperature 1, no truncation).
   */
  sampling?: SamplingOptions;
  /**
   * Seed of the plain sampling that distortion-free schemes fall back to when a context window repeats
   * within a sequence. Each sequence gets its own stream derived from it. Default: fresh
   * entropy.
   */
  seed?: string | number;
  /** Set to false to run the same code path without the watermark (a control). Default true. */
  watermark?: boolean;
}

interface RowState {
  session: GenerationSession;
}

/**
 * A transformers.js logits processor that embeds a tracemark watermark. One instance may serve many
 * `generate` calls, one at a time: a row whose ids do not continue the previous call's row starts a new
 * sequence. Call `reset()` to start over explicitly.
 */
export class WatermarkLogitsProcessor extends LogitsProcessor {
  readonly scheme: Scheme;
  readonly options: Readonly<WatermarkProcessorOptions>;
  /** Rows processed, over all calls. */
  steps = 0;
  /** Rows that carried the watermark (not: watermark off, context too short, repeated context). */
  watermarkedSteps = 0;
  #rows: RowState[] = [];
  /** Sessions started so far: each gets its own stream of the seed. */
  #started = 0;
  readonly #tail: number[] = [];
  /** Whether the scheme draws the token itself (chooserOf) rather than biasing the row. */
  readonly #chooser: boolean;

  constructor(scheme: Scheme, options: WatermarkProcessorOptions = {}) {
    super();
    if (!scheme || typeof scheme.choose !== 'function') {
      throw new WatermarkError(
        'E_INVALID_SPEC',
        'WatermarkLogitsProcessor needs a keyed scheme (createScheme)',
      );
    }
    this.#chooser = chooserOf(scheme);
    if (!this.#chooser && options.sampling !== undefined) {
      throw new WatermarkError(
        'E_INVALID_SAMPLING',
        'sampling options apply to distortion-free schemes only; a logit-bias scheme uses generate()’s own',
      );
    }
    this.scheme = scheme;
    this.options = { ...options };
  }

  /** Forgets every row's state: the next call starts new sequences. */
  reset(): void {
    this.#rows = [];
  }

  /** Called by transformers.js once per step with every row's ids so far and the `[batch, vocab]` logits. */
  override _call(input_ids: bigint[][], logits: Tensor): Tensor {
    const { scheme } = this;
    const vocab = scheme.vocabSize;
    if (logits.type !== 'float32' || logits.dims.length !== 2) {
      throw new WatermarkError(
        'E_LOGITS_LENGTH',
        `expected float32 logits of shape [batch, vocab]; got ${logits.type} [${logits.dims.join(', ')}]`,
      );
    }
    const [batch, width] = logits.dims;
    if (width !== vocab) {
      throw new WatermarkError(
        'E_LOGITS_LENGTH',
        `the model's logits have ${width} entries per row but the scheme's vocabSize is ${vocab}: create the scheme with the model's logits width (config.vocab_size)`,
      );
    }
    if (input_ids.length !== batch) {
      throw new WatermarkError('E_LOGITS_LENGTH', `${input_ids.length} id rows for ${batch} logits rows`);
    }
    const data = logits.data as Float32Array;
    const on = this.options.watermark !== false;
    for (let r = 0; r < batch; r++) {
      const row = data.subarray(r * vocab, (r + 1) * vocab);
      this.steps++;
      if (this.#chooser) this.#choose(r, input_ids[r], row);
      else if (on) this.#bias(input_ids[r], row);
    }
    return logits;
  }

  /** Logit-bias schemes need only the last `contextWidth` ids, converted from bigint. */
  #bias(ids: bigint[], row: Float32Array): void {
    const h = this.scheme.contextWidth;
    if (ids.length < h) return;
    const tail = this.#tail;
    tail.length = h;
    for (let i = 0; i < h; i++) tail[i] = Number(ids[ids.length - h + i]);
    this.scheme.biasLogits!(tail, row);
    this.watermarkedSteps++;
  }

  /** Distortion-free schemes: the row's session chooses; every other logit is masked. */
  #choose(r: number, ids: bigint[], row: Float32Array): void {
    const session = this.#sessionFor(r, ids);
    const before = session.watermarkedSteps;
    const token = session.next(row);
    this.watermarkedSteps += session.watermarkedSteps - before;
    row.fill(Number.NEGATIVE_INFINITY);
    row[token] = 0;
  }

  /**
   * The session of row r, continued when `ids` extends the tokens it holds by what transformers.js
   * appended (normally the token this processor chose), started anew otherwise.
   */
  #sessionFor(r: number, ids: bigint[]): GenerationSession {
    const state = this.#rows[r];
    if (state !== undefined) {
      const tokens = state.session.tokens;
      const n = tokens.length;
      if (ids.length === n && n > 0) {
        const last = Number(ids[n - 1]);
        // Another processor or a stopping rule may have replaced the chosen token: keep the real one.
        if (tokens[n - 1] !== last) tokens[n - 1] = last;
        return state.session;
      }
    }
    this.#started++;
    const { seed } = this.options;
    const session = new GenerationSession(this.scheme, {
      prompt: ids.map(Number),
      sampling: this.options.sampling,
      seed: seed === undefined ? undefined : `${seed}:${this.#started}`,
      watermark: this.options.watermark !== false,
    });
    this.#rows[r] = { session };
    return session;
  }
}

/** Convenience: `createWatermarkProcessor(scheme)` is `new WatermarkLogitsProcessor(scheme)`. */
export function createWatermarkProcessor(
  scheme: Scheme,
  options?: WatermarkProcessorOptions,
): WatermarkLogitsProcessor {
  return new WatermarkLogitsProcessor(scheme, options);
}

/** The model's context size from its config, if it gives one. */
export function contextSizeOf(model: PreTrainedModel): number | undefined {
  const config = model.config as unknown as Record<string, unknown>;
  for (const name of ['max_position_embeddings', 'n_positions', 'max_seq_len', 'n_ctx']) {
    const value = config[name];
    if (typeof value === 'number' && Number.isInteger(value) && value > 0) return value;
  }
  return undefined;
}

/**
 * Reads a suspect model (Sander et al. 2024, open-model reading mode): runs the causal LM over `tokens`
 * (ids of its vocabulary, as given: add a BOS token yourself if the text should start with one) with
 * teacher forcing, one forward pass per window of `input_ids` [1, n] → logits [1, n, V], and returns for
 * every position the argmax of the logits (and with `topK > 1` the k most likely ids and their
 * log-softmax values).
 *
 * A text longer than `chunk` (default: the model's context size) is read in windows of at most `chunk`
 * tokens: each window after the first starts `overlap` tokens (default chunk / 2) before the first
 * position not read yet, so those tokens are its context, and only the positions after them are taken
 * from it. Each position is read once. No KV cache is carried between windows.
 */
export async function readPredictions(
  model: PreTrainedModel,
  tokens: readonly number[],
  options: ReadOptions = {},
): Promise<ReadResult> {
  const { topK, chunk, overlap } = readSettings(options, contextSizeOf(model), tokens.length);
  const vocabSize = (model.config as unknown as { vocab_size?: unknown }).vocab_size;
  checkReadTokens(tokens, typeof vocabSize === 'number' ? vocabSize : undefined);
  const n = tokens.length;
  const predictions = new Int32Array(n + 1);
  predictions[0] = -1;
  const topIds = topK > 1 ? new Int32Array((n + 1) * topK).fill(-1) : undefined;
  const topLogprobs = topK > 1 ? new Float32Array((n + 1) * topK).fill(Number.NaN) : undefined;
  const windows = readWindows(n, chunk, overlap);
  const ids = new Int32Array(topK);
  const values = new Float64Array(topK);
  for (const { start, end, keepFrom } of windows) {
    const length = end - start;
    const input_ids = new Tensor('int64', BigInt64Array.from(tokens.slice(start, end), BigInt), [1, length]);
    const attention_mask = new Tensor('int64', new BigInt64Array(length).fill(1n), [1, length]);
    const output = (await model({ input_ids, attention_mask })) as { logits?: Tensor };
    const logits = output.logits;
    if (
      logits === undefined ||
      logits.type !== 'float32' ||
      logits.dims.length !== 3 ||
      logits.dims[0] !== 1 ||
      logits.dims[1] !== length
    ) {
      throw new WatermarkError(
        'E_LOGITS_LENGTH',
        `expected float32 logits of shape [1, ${length}, vocab]; got ${logits ? `${logits.type} [${logits.dims.join(', ')}]` : 'none'}`,
      );
    }
    const V = logits.dims[2];
    const data = logits.data as Float32Array;
    for (let t = keepFrom; t < end; t++) {
      const row = data.subarray((t - start) * V, (t - start + 1) * V);
      const position = t + 1;
      let best = 0;
      for (let v = 1; v < V; v++) if (row[v] > row[best]) best = v;
      predictions[position] = best;
      if (topIds === undefined) continue;
      // Top-k by insertion (k ≤ 20), ties to the lower id, then the log-softmax of each.
      ids.fill(-1);
      values.fill(Number.NEGATIVE_INFINITY);
      let filled = 0;
      for (let v = 0; v < V; v++) {
        const x = row[v];
        if (filled === topK && !(x > values[topK - 1])) continue;
        let j = filled < topK ? filled++ : topK - 1;
        while (j > 0 && x > values[j - 1]) {
          values[j] = values[j - 1];
          ids[j] = ids[j - 1];
          j--;
        }
        values[j] = x;
        ids[j] = v;
      }
      const max = values[0];
      let sum = 0;
      for (let v = 0; v < V; v++) sum += Math.exp(row[v] - max);
      const logZ = max + Math.log(sum);
      for (let j = 0; j < topK; j++) {
        topIds[position * topK + j] = ids[j];
        topLogprobs![position * topK + j] = values[j] - logZ;
      }
    }
  }
  return { predictions, topIds, topLogprobs, positions: n, passes: windows.length };
}

export { MAX_READ_TOP_K, type ReadOptions, type ReadResult, readWindows } from '@tracemark/watermark';
