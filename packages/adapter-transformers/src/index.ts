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
import { LogitsProcessor, type Tensor } from '@huggingface/transformers';
import {
  chooserOf,
  GenerationSession,
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
