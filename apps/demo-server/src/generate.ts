import type { NgramModel } from '@tracemark/ngram';
import { GenerationSession, type Scheme, topKIndices } from '@tracemark/watermark';
import { StreamDecoder, type TokenBytes } from './text';

/** A model as the server serves it. */
export interface ServedModel {
  id: string;
  role: 'teacher' | 'teacher-plain' | 'student-distilled' | 'student-clean';
  description: string;
  ngram: NgramModel;
  /** The scheme sessions run with; its watermark is applied only when `watermarked`. */
  scheme: Scheme;
  watermarked: boolean;
  created: number;
  /**
   * Steps over full V-entry rows (`NgramModel.logits`, `GenerationSession.next`) instead of the model's support:
   * the same tokens at O(V) per step. Benchmarks and tests compare against it; the server never sets it.
   */
  fullRows?: boolean;
}

export interface TopLogprob {
  id: number;
  logprob: number;
}

/** One generated token with its log-probability (of the served distribution at temperature 1). */
export interface TokenLogprob {
  id: number;
  logprob: number;
  top: TopLogprob[];
  /** UTF-16 offset in the choice's text where this token's characters start. */
  textStart: number;
}

export type FinishReason = 'stop' | 'length';

export interface ChoiceOptions {
  model: ServedModel;
  prompt: number[];
  maxTokens: number;
  temperature: number;
  topP: number;
  stop: string[];
  seed: string | undefined;
  /** null: no log-probabilities; k ≥ 0: the chosen token's, and the k most likely. */
  logprobs: number | null;
  bytes: TokenBytes;
  /**
   * The scheme this choice runs with instead of the model's: the teacher's view for the request's account
   * (`schemeForAccount`). Absent: the model's own.
   */
  scheme?: Scheme;
}

/**
 * The scheme a request to `model` generates with: for a watermarked model whose scheme has an account layer,
 * its view that embeds `account` too (`forAccount`: shares the model's PRFs and green-list cache); otherwise, or
 * without an account, the model's own (the organisation layer alone).
 */
export function schemeForAccount(model: ServedModel, account: string | undefined): Scheme {
  const scheme = model.scheme as Scheme & { forAccount?: (account: string | undefined) => Scheme };
  if (account === undefined || !model.watermarked) return scheme;
  if ((scheme.spec as { accountDelta?: number }).accountDelta === undefined) return scheme;
  // A layered spec whose scheme cannot embed accounts would silently drop them: fail instead (a stale build).
  if (typeof scheme.forAccount !== 'function')
    throw new Error(
      'the served scheme has an account layer but no forAccount (rebuild @tracemark/watermark)',
    );
  return scheme.forAccount(account);
}

/**
 * One choice of a request: a GenerationSession over the model's logits, an incremental decoder and the stop
 * sequences. `step()` generates one token; `take()` returns the text (and log-probabilities) that can be shown
 * so far: complete characters only, and never text that might still turn out to start a stop sequence.
 */
export class ChoiceRun {
  readonly options: ChoiceOptions;
  readonly session: GenerationSession;
  readonly #decoder: StreamDecoder;
  readonly #logits: Float32Array;
  /** The model's support (rows hold its tokens only), or null for full rows. */
  readonly #support: Int32Array | null;
  readonly #maxStop: number;
  #text = '';
  #emitted = 0;
  #logprobs: TokenLogprob[] = [];
  #logprobsEmitted = 0;
  #topIds: Int32Array;
  finishReason: FinishReason | null = null;

  /** `logits`: scratch for one row, at least the model's support long (V long for `fullRows`); choices may share it. */
  constructor(options: ChoiceOptions, logits: Float32Array) {
    this.options = options;
    const { model } = options;
    this.session = new GenerationSession(options.scheme ?? model.scheme, {
      prompt: options.prompt,
      seed: options.seed,
      watermark: model.watermarked,
      sampling: { temperature: options.temperature, topP: options.topP },
    });
    this.#decoder = new StreamDecoder(options.bytes);
    this.#logits = logits;
    this.#support = model.fullRows === true ? null : model.ngram.support;
    this.#maxStop = options.stop.reduce((m, s) => Math.max(m, s.length), 0);
    this.#topIds = new Int32Array(Math.max(1, options.logprobs ?? 0));
    if (options.maxTokens <= 0) this.finishReason = 'length';
  }

  get done(): boolean {
    return this.finishReason !== null;
  }

  get completionTokens(): number {
    return this.session.tokens.length - this.session.promptLength;
  }

  /** The text so far (complete characters, cut at a stop sequence). */
  get text(): string {
    return this.#text;
  }

  step(): void {
    if (this.done) return;
    const { ngram } = this.options.model;
    const support = this.#support;
    // Every token outside the model's support has logit −∞ (probability 0 with or without the watermark), so the
    // step runs over the support's entries only: the same distribution, the same token for the same seed.
    const logits =
      support === null
        ? ngram.logits(this.session.tokens, this.#logits)
        : ngram.supportLogits(this.session.tokens, this.#logits);
    // Logit-bias schemes add the watermark to `logits` in place: what follows reads the served distribution. The
    // model's own support rows are finite by construction (logs of positive probabilities): no per-step check.
    const token =
      support === null
        ? this.session.next(logits)
        : this.session.nextOverSupport(support, logits, { validate: false });
    const textStart = this.#text.length;
    if (this.options.logprobs !== null)
      this.#logprobs.push(this.#logprobOf(logits, support, token, textStart));
    const before = this.#text.length;
    this.#text += this.#decoder.push(token);
    if (this.#maxStop > 0 && this.#text.length > before) {
      const from = Math.max(0, before - this.#maxStop + 1);
      let cut = -1;
      for (const stop of this.options.stop) {
        const at = this.#text.indexOf(stop, from);
        if (at >= 0 && (cut < 0 || at < cut)) cut = at;
      }
      if (cut >= 0) {
        this.#text = this.#text.slice(0, cut);
        this.finishReason = 'stop';
        return;
      }
    }
    if (this.completionTokens >= this.options.maxTokens) this.finishReason = 'length';
  }

  /** Text and log-probabilities not yet taken that are safe to show. */
  take(): { text: string; logprobs: TokenLogprob[] } {
    let end = this.#text.length;
    if (!this.done && this.#maxStop > 0) end -= this.#heldBack();
    end = Math.max(end, this.#emitted);
    const text = this.#text.slice(this.#emitted, end);
    this.#emitted = end;
    const entries: TokenLogprob[] = [];
    const all = this.#logprobs;
    const finishedByLength = this.finishReason === 'length';
    while (this.#logprobsEmitted < all.length) {
      const entry = all[this.#logprobsEmitted];
      // A token belongs to the text shown once its first character is; at a stop sequence, the tokens that
      // only made up the stop sequence are left out, as their text is. At the length limit every token counts.
      if (!(entry.textStart < end || finishedByLength)) break;
      entries.push(entry);
      this.#logprobsEmitted++;
    }
    if (this.done) this.#logprobsEmitted = all.length;
    return { text, logprobs: entries };
  }

  /** Length of the longest end of the text that is a proper prefix of a stop sequence. */
  #heldBack(): number {
    const text = this.#text;
    for (let k = Math.min(this.#maxStop - 1, text.length); k > 0; k--) {
      const tail = text.slice(text.length - k);
      if (this.options.stop.some((stop) => stop.startsWith(tail))) return k;
    }
    return 0;
  }

  /** `logits[i]` is the logit of token `support[i]` (of token i without a support); −∞ elsewhere adds 0 to Z. */
  #logprobOf(
    logits: Float32Array,
    support: Int32Array | null,
    token: number,
    textStart: number,
  ): TokenLogprob {
    let max = Number.NEGATIVE_INFINITY;
    for (let i = 0; i < logits.length; i++) if (logits[i] > max) max = logits[i];
    let sum = 0;
    for (let i = 0; i < logits.length; i++) {
      const x = logits[i];
      if (x !== Number.NEGATIVE_INFINITY) sum += Math.exp(x - max);
    }
    const logZ = max + Math.log(sum);
    const k = this.options.logprobs ?? 0;
    const top: TopLogprob[] = [];
    if (k > 0) {
      const found = topKIndices(logits, k, this.#topIds);
      for (let i = 0; i < found; i++) {
        const at = this.#topIds[i];
        top.push({ id: support === null ? at : support[at], logprob: logits[at] - logZ });
      }
    }
    const at = support === null ? token : this.options.model.ngram.supportIndex(token);
    return { id: token, logprob: logits[at] - logZ, top, textStart };
  }
}

export interface RunHooks {
  /** Checked between rounds: when it returns true, generation stops (client gone, server shutting down). */
  aborted?: () => boolean;
}

/**
 * Steps every choice round-robin (one token each per round) until all are done, yielding to the event loop
 * every few milliseconds so that one long request never blocks the others, or the shutdown signal. Returns
 * false when `aborted` stopped it.
 */
export async function runChoices(choices: ChoiceRun[], hooks: RunHooks = {}): Promise<boolean> {
  let lastYield = performance.now();
  while (choices.some((c) => !c.done)) {
    if (hooks.aborted?.()) return false;
    for (const choice of choices) choice.step();
    if (performance.now() - lastYield > 8) {
      await new Promise((resolve) => setImmediate(resolve));
      lastYield = performance.now();
    }
  }
  return true;
}
