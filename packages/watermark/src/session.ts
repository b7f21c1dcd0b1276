import { fail } from './errors';
import { KeySet64, windowKey } from './key-set';
import { argmax, assertLogits, createRng, Sampler, type SamplingOptions, sampleCategorical } from './sampler';
import type { Scheme } from './scheme';

/**
 * Whether the scheme draws the token itself from keyed randomness (Gumbel-max, GumbelSoft, SynthID) rather
 * than biasing the logits for an ordinary draw: such a scheme leaves a greedy decode unwatermarked and must
 * not spend a context's randomness twice in one sequence.
 */
export function chooserOf(scheme: Scheme): boolean {
  return scheme.distortionFree || typeof scheme.biasLogits !== 'function';
}

export interface StepResult {
  token: number;
  /** False when the step sampled plainly: watermark off, context too short, or a repeated context. */
  watermarked: boolean;
}

/**
 * One generation step: `(sequence so far, logits) → token`. Logit-bias schemes modify `logits` in place.
 * Distortion-free schemes skip the watermark (plain sampling) when `skip` says the context window was
 * already used, so the same keyed randomness is never spent twice in one sequence.
 */
export function generationStep(
  scheme: Scheme | null,
  sequence: ArrayLike<number>,
  logits: Float32Array,
  sampler: Sampler,
  uniform: () => number,
  skip = false,
): StepResult {
  assertLogits(logits, scheme?.vocabSize ?? logits.length);
  return stepOver(scheme, sequence, logits, null, logits.length, sampler, uniform, skip);
}

/**
 * `generationStep` for a row given on a support only: `logits[j]` is the logit of token `support[j]` (ids
 * increasing), every other token's is −Infinity, as for an n-gram model outside the tokens it saw. Temperature,
 * top-k, top-p, the bias and the draw see the same distribution as over the full row and, with the same
 * uniforms, give the same token (tested): −Infinity entries add exactly 0 to every sum. Costs O(|support|).
 */
export function supportStep(
  scheme: Scheme | null,
  sequence: ArrayLike<number>,
  support: Int32Array,
  logits: Float32Array,
  sampler: Sampler,
  uniform: () => number,
  skip = false,
  validate = true,
): StepResult {
  const count = support.length;
  assertSupport(support, scheme?.vocabSize ?? sampler.vocabSize);
  if (!(logits instanceof Float32Array) || logits.length < count) {
    fail('E_LOGITS_LENGTH', `support logits have ${logits?.length} entries; the support has ${count} tokens`);
  }
  if (validate) assertCandidateLogits(logits, count);
  return stepOver(scheme, sequence, logits, support, count, sampler, uniform, skip);
}

/** The body of a step once its row is checked: `ids` null for a full row, else the tokens of `logits`. */
function stepOver(
  scheme: Scheme | null,
  sequence: ArrayLike<number>,
  logits: Float32Array,
  rowIds: Int32Array | null,
  rowCount: number,
  sampler: Sampler,
  uniform: () => number,
  skip: boolean,
): StepResult {
  const watermarked = scheme !== null && !skip && sequence.length >= scheme.contextWidth;
  if (watermarked && scheme.biasLogits) {
    if (rowIds === null) scheme.biasLogits(sequence, logits);
    else scheme.biasLogits(sequence, logits, rowIds, rowCount);
  }
  const { logits: candidates, ids, count } = sampler.select(logits, rowIds, rowCount);
  if (sampler.greedy)
    return { token: argmax(candidates, ids, count), watermarked: watermarked && chooserOf(scheme) === false };
  if (!watermarked)
    return { token: sampleCategorical(candidates, ids, count, uniform()), watermarked: false };
  return { token: scheme.choose(sequence, candidates, ids, count, uniform), watermarked: true };
}

/**
 * One generation step on a candidate set that the caller has already truncated (a model's top-k, an
 * inference server's top logprobs): `ids[i]` has logit `logits[i]`, before temperature. Logit-bias
 * schemes bias the candidates (after truncation rather than before it, the only order a candidate set
 * allows); distortion-free schemes choose among them. `logits` is modified in place.
 */
export function candidateStep(
  scheme: Scheme | null,
  sequence: ArrayLike<number>,
  ids: Int32Array,
  logits: Float32Array,
  count: number,
  temperature: number,
  uniform: () => number,
  skip = false,
): StepResult {
  assertCandidates(ids, logits, count, scheme?.vocabSize ?? Number.POSITIVE_INFINITY);
  if (temperature > 0 && temperature !== 1) for (let i = 0; i < count; i++) logits[i] /= temperature;
  const watermarked = scheme !== null && !skip && sequence.length >= scheme.contextWidth;
  if (watermarked && scheme.biasLogits) scheme.biasLogits(sequence, logits, ids, count);
  if (temperature === 0)
    return { token: argmax(logits, ids, count), watermarked: watermarked && chooserOf(scheme) === false };
  if (!watermarked) return { token: sampleCategorical(logits, ids, count, uniform()), watermarked: false };
  return { token: scheme.choose(sequence, logits, ids, count, uniform), watermarked: true };
}

function assertCandidates(ids: Int32Array, logits: Float32Array, count: number, vocabSize: number): void {
  if (!(ids instanceof Int32Array) || !(logits instanceof Float32Array)) {
    fail('E_LOGITS_LENGTH', 'candidates must be an Int32Array of ids and a Float32Array of logits');
  }
  if (!(Number.isInteger(count) && count >= 1 && count <= ids.length && count <= logits.length)) {
    fail('E_NO_CANDIDATES', `candidate count ${count} must be between 1 and the length of ids and logits`);
  }
  for (let i = 0; i < count; i++) {
    const id = ids[i];
    if (!(id >= 0 && id < vocabSize))
      fail('E_TOKEN_RANGE', `candidate id ${id} is outside the vocabulary [0, ${vocabSize})`);
  }
  assertCandidateLogits(logits, count);
}

function assertCandidateLogits(logits: Float32Array, count: number): void {
  let masked = 0;
  for (let i = 0; i < count; i++) {
    const x = logits[i];
    if (x - x !== 0) {
      if (x !== Number.NEGATIVE_INFINITY)
        fail('E_NONFINITE_LOGITS', `candidate logit ${i} is ${x}; logits must be finite or -Infinity`);
      masked++;
    }
  }
  if (masked === count)
    fail('E_NO_CANDIDATES', 'every candidate logit is -Infinity: there is no token to choose');
}

/** Supports already checked, with the vocabulary they were checked against: a support is checked once. */
const checkedSupports = new WeakMap<Int32Array, number>();

/** A support is a non-empty Int32Array of token ids in [0, V), strictly increasing. */
function assertSupport(support: Int32Array, vocabSize: number): void {
  if (checkedSupports.get(support) === vocabSize) return;
  if (!(support instanceof Int32Array) || support.length === 0)
    fail('E_NO_CANDIDATES', 'the support must be a non-empty Int32Array of token ids');
  let previous = -1;
  for (let j = 0; j < support.length; j++) {
    const id = support[j];
    if (!(id > previous && id < vocabSize))
      fail('E_TOKEN_RANGE', `support entry ${j} (${id}) is not an increasing token id in [0, ${vocabSize})`);
    previous = id;
  }
  checkedSupports.set(support, vocabSize);
}

export interface GenerationOptions {
  /** Token ids that precede the generation. */
  prompt?: ArrayLike<number>;
  sampling?: SamplingOptions;
  /** Seed of the ordinary sampling randomness; the same seed, key and logits give the same tokens. */
  seed?: string | number;
  /** Set to false to generate without the watermark through the same code path. Default true. */
  watermark?: boolean;
}

/**
 * The state of one generated sequence: its tokens, the contexts whose keyed randomness has been used,
 * and how many steps carried the watermark.
 */
export class GenerationSession {
  readonly scheme: Scheme;
  readonly tokens: number[];
  readonly promptLength: number;
  readonly watermark: boolean;
  readonly sampler: Sampler;
  watermarkedSteps = 0;
  readonly #uniform: () => number;
  /** Keys of the contexts whose keyed randomness this sequence has spent (distortion-free schemes). */
  readonly #usedContexts = new KeySet64(64);
  readonly #key = new Uint32Array(2);

  constructor(scheme: Scheme, options: GenerationOptions = {}) {
    this.scheme = scheme;
    const prompt = Array.from(options.prompt ?? []);
    for (const token of prompt) {
      if (!(Number.isInteger(token) && token >= 0 && token < scheme.vocabSize)) {
        fail('E_TOKEN_RANGE', `prompt token id ${token} is outside the vocabulary [0, ${scheme.vocabSize})`);
      }
    }
    this.tokens = prompt;
    this.promptLength = prompt.length;
    this.watermark = options.watermark ?? true;
    this.sampler = new Sampler(scheme.vocabSize, options.sampling);
    this.#uniform = createRng(options.seed);
  }

  /** Generated tokens, without the prompt. */
  get generated(): number[] {
    return this.tokens.slice(this.promptLength);
  }

  /** Chooses the next token from this step's logits (modified in place by logit-bias schemes). */
  next(logits: Float32Array): number {
    return this.#advance((repeated) =>
      generationStep(
        this.watermark ? this.scheme : null,
        this.tokens,
        logits,
        this.sampler,
        this.#uniform,
        repeated,
      ),
    );
  }

  /**
   * Chooses the next token from a row given on `support` only (see `supportStep`): the same token as `next` on
   * the full row, at O(|support|). `logits` is modified in place by logit-bias schemes; `support` must not change.
   * The support is checked once; `validate: false` skips the per-step pass over `logits` for rows the caller made
   * itself and knows to be finite or −∞ (`NgramModel.supportLogits`): about a tenth of a step.
   */
  nextOverSupport(support: Int32Array, logits: Float32Array, options: { validate?: boolean } = {}): number {
    const validate = options.validate ?? true;
    return this.#advance((repeated) =>
      supportStep(
        this.watermark ? this.scheme : null,
        this.tokens,
        support,
        logits,
        this.sampler,
        this.#uniform,
        repeated,
        validate,
      ),
    );
  }

  /**
   * Chooses the next token from a candidate set the caller truncated (see `candidateStep`): the
   * session's temperature applies, its top-k and top-p do not (the candidate set is the truncation).
   */
  nextFromCandidates(ids: Int32Array, logits: Float32Array, count = ids.length): number {
    const { temperature } = this.sampler.options;
    return this.#advance((repeated) =>
      candidateStep(
        this.watermark ? this.scheme : null,
        this.tokens,
        ids,
        logits,
        count,
        temperature,
        this.#uniform,
        repeated,
      ),
    );
  }

  #advance(step: (repeatedContext: boolean) => StepResult): number {
    const { scheme, tokens } = this;
    const h = scheme.contextWidth;
    const key = this.#key;
    let tracked = false;
    let repeated = false;
    if (this.watermark && chooserOf(scheme) && tokens.length >= h) {
      if (scheme.contextKey) scheme.contextKey(tokens, tokens.length, key);
      else windowKey(tokens, tokens.length - h, tokens.length, key);
      tracked = true;
      repeated = this.#usedContexts.has(key[0], key[1]);
    }
    const result = step(repeated);
    if (result.watermarked) {
      this.watermarkedSteps++;
      if (tracked) this.#usedContexts.add(key[0], key[1]);
    }
    tokens.push(result.token);
    return result.token;
  }
}

/** Sessions for a batch: row r of the logits matrix belongs to sequence r. */
export class GenerationBatch {
  readonly sessions: GenerationSession[];

  constructor(scheme: Scheme, rows: GenerationOptions[]) {
    this.sessions = rows.map((row) => new GenerationSession(scheme, row));
  }

  /** `logits` holds rows × vocabSize values, row-major; returns one token per row. */
  next(logits: Float32Array): Int32Array {
    const vocab = this.sessions[0]?.scheme.vocabSize ?? 0;
    if (logits.length !== vocab * this.sessions.length) {
      fail(
        'E_LOGITS_LENGTH',
        `batch logits have ${logits.length} entries; expected ${this.sessions.length} rows × ${vocab} tokens`,
      );
    }
    const out = new Int32Array(this.sessions.length);
    this.sessions.forEach((session, row) => {
      out[row] = session.next(logits.subarray(row * vocab, (row + 1) * vocab));
    });
    return out;
  }
}
