/**
 * What transformers' SynthID (SynthIDTextWatermarkLogitsProcessor) and google-deepmind/synthid-text share:
 * the accumulate_hash LCG over int64 tensors, n-gram keys (context, then token, then one key per layer),
 * the context-repetition and end-of-sequence masks, the mean / weighted-mean scores, and the tournament
 * update of the next-token distribution. The two differ in the initial hash and in how a 64-bit key
 * becomes a g-value; see hf-synthid.ts and synthid-text.ts.
 */
import { fail } from '../errors';
import { sampleCategorical } from '../sampler';
import { type NullLaw, type Scheme, SchemeBase } from '../scheme';
import { type BaseSpec, MAX_CONTEXT_WIDTH, MAX_VOCAB_SIZE } from '../spec';
import { checkToken, checkTokens, interopKey } from './common';
import { lcgStep, R64, wordsOf } from './int64';
import { InteropFields, uint64Json } from './spec-fields';

export interface SynthIdInteropSpec extends BaseSpec {
  scheme: 'hf-synthid' | 'synthid-text';
  /** One watermarking key per tournament layer (int64; decimal strings beyond 2^53). */
  keys: (number | string)[];
  ngramLen: number;
  /** hf-synthid only: size and seed of the g-value table `randint(0, 2, size)`. Ignored by synthid-text. */
  samplingTableSize: number;
  samplingTableSeed: number | string;
  /** How many previous contexts the repetition mask remembers. */
  contextHistorySize: number;
  /** Tokens from the first EOS on are masked out of detection. */
  eosTokenId?: number;
}

/** transformers' SynthIDTextWatermarkingConfig defaults (keys have none: they are the key). */
export const SYNTHID_INTEROP_DEFAULTS = {
  ngramLen: 5,
  samplingTableSize: 65536,
  samplingTableSeed: 0,
  contextHistorySize: 1024,
} as const;

/**
 * vocabSize is optional: detection hashes any id, so it only bounds the ids accepted; generation needs
 * the model's real vocabulary size, since the logits rows must have that length.
 */
export function readSynthIdInteropSpec(
  raw: Record<string, unknown>,
  scheme: 'hf-synthid' | 'synthid-text',
): SynthIdInteropSpec {
  const fields = new InteropFields(raw, scheme, ['keys', 'samplingTableSeed', 'eosTokenId']);
  const reader = fields.reader;
  const base = fields.base(MAX_VOCAB_SIZE);
  const keys = fields.int64List('keys', 1024).map(uint64Json);
  const spec: SynthIdInteropSpec = {
    scheme,
    ...base,
    keys,
    ngramLen: reader.integer('ngramLen', 2, MAX_CONTEXT_WIDTH + 1, SYNTHID_INTEROP_DEFAULTS.ngramLen),
    samplingTableSize: reader.integer(
      'samplingTableSize',
      1,
      2 ** 24,
      SYNTHID_INTEROP_DEFAULTS.samplingTableSize,
    ),
    samplingTableSeed: uint64Json(
      fields.uint64('samplingTableSeed', SYNTHID_INTEROP_DEFAULTS.samplingTableSeed),
    ),
    contextHistorySize: reader.integer(
      'contextHistorySize',
      1,
      1 << 20,
      SYNTHID_INTEROP_DEFAULTS.contextHistorySize,
    ),
  };
  const eos = fields.optionalId('eosTokenId', 2 ** 31);
  if (eos !== undefined) spec.eosTokenId = eos;
  reader.done();
  return spec;
}

export interface SynthIdDetection {
  /** Scored n-grams: ids.length − ngramLen + 1. */
  rows: number;
  depth: number;
  /** g-values, row-major: gValues[row · depth + layer] is layer `layer` of the n-gram ending at row + ngramLen − 1. */
  gValues: Uint8Array;
  /** 1 where the n-gram counts: its context not seen in the history, and no EOS at or before its token. */
  mask: Uint8Array;
  /** Unmasked n-grams. */
  numTokensScored: number;
  /** Sum of the unmasked g-values. */
  gValueSum: number;
  /** mean_score: mean of the unmasked g-values (NaN when nothing is unmasked, as upstream's 0/0). */
  mean: number;
  /** weighted_mean_score with upstream's default weights linspace(10, 1, depth), normalised to sum to depth. */
  weightedMean: number;
  /** P[g = 1] for text the key did not choose: the table's mean (hf-synthid) or ½ (synthid-text). */
  nullGValueProbability: number;
}

/** numpy.linspace(start, stop, num) as float64, with the last point set to stop exactly. */
function linspace(start: number, stop: number, num: number): number[] {
  if (num === 1) return [start];
  const step = (stop - start) / (num - 1);
  const out = Array.from({ length: num }, (_, i) => i * step + start);
  out[num - 1] = stop;
  return out;
}

/** The default weights of synthid_text's weighted_mean_score, normalised so that they sum to depth. */
export function synthIdDepthWeights(depth: number): number[] {
  const weights = linspace(10, 1, depth);
  const total = weights.reduce((a, b) => a + b, 0);
  return weights.map((w) => w * (depth / total));
}

/**
 * The tournament update of SynthID generation (transformers SynthIDTextWatermarkLogitsProcessor.update_scores,
 * synthid_text.logits_processing.update_scores): p = softmax(scores); for each layer l,
 * p ← p · (1 + g_l − Σ p·g_l); returns log p, with non-finite values replaced by `floor`.
 *
 * `g` is layer-major: g[l · count + i]. With `float32`, every operation is rounded to float32 in torch's
 * order for a short row (sequential sums, x · (1/Σ) normalisation), which reproduces the float32 tensors
 * of the reference for small candidate sets; otherwise the arithmetic is float64 (generation).
 */
export function tournamentUpdate(
  scores: ArrayLike<number>,
  count: number,
  g: Uint8Array,
  depth: number,
  out: Float32Array,
  options: { float32?: boolean; floor?: number } = {},
): Float32Array {
  const round = options.float32 ? Math.fround : (x: number) => x;
  const floor = options.floor ?? -3.4028234663852886e38;
  const p = new Float64Array(count);
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < count; i++) if (scores[i] > max) max = scores[i];
  let total = 0;
  for (let i = 0; i < count; i++) {
    p[i] = round(Math.exp(round(scores[i] - max)));
    total = round(total + p[i]);
  }
  const inverse = round(1 / total);
  for (let i = 0; i < count; i++) p[i] = round(p[i] * inverse);
  for (let l = 0; l < depth; l++) {
    const row = l * count;
    let mass = 0;
    for (let i = 0; i < count; i++) mass = round(mass + round(g[row + i] * p[i]));
    for (let i = 0; i < count; i++) p[i] = round(p[i] * round(1 + g[row + i] - mass));
  }
  for (let i = 0; i < count; i++) {
    const value = round(Math.log(p[i]));
    out[i] = Number.isFinite(value) ? value : floor;
  }
  return out;
}

/**
 * Shared machinery of the two SynthID variants. Subclasses give the initial hash and the g-values of
 * one (context hash, token) pair.
 */
export abstract class SynthIdInteropBase
  extends SchemeBase<SynthIdInteropSpec>
  implements Scheme<SynthIdInteropSpec>
{
  readonly depth: number;
  readonly keysHi: Uint32Array;
  readonly keysLo: Uint32Array;
  /** Initial hash words (transformers: 1; synthid-text: the keys' SHA-256 IV). */
  protected initHi = 0;
  protected initLo = 1;
  /** Value that replaces −∞ log-probabilities after the update. */
  protected abstract readonly logFloor: number;
  #g = new Uint8Array(0);
  #updated = new Float32Array(0);

  /** contextWidth is ngramLen − 1; the subclass gives the null law of one token's g-value sum. */
  constructor(spec: SynthIdInteropSpec, nullLaw: NullLaw) {
    super(
      spec,
      { contextWidth: spec.ngramLen - 1, distortionFree: true, nullLaw },
      interopKey(spec.scheme, spec),
    );
    this.depth = spec.keys.length;
    this.keysHi = new Uint32Array(this.depth);
    this.keysLo = new Uint32Array(this.depth);
    spec.keys.forEach((key, l) => {
      const { hi, lo } = wordsOf(BigInt(key));
      this.keysHi[l] = hi;
      this.keysLo[l] = lo;
    });
  }

  /** The hash of the ngramLen − 1 tokens before `end`; missing ones are 0, as the generator's initial state. */
  contextHash(sequence: ArrayLike<number>, end: number): { hi: number; lo: number } {
    let hi = this.initHi;
    let lo = this.initLo;
    const h = this.contextWidth;
    for (let j = end - h; j < end; j++) {
      lcgStep(hi, lo, 0, j >= 0 ? sequence[j] : 0);
      hi = R64[1];
      lo = R64[0];
    }
    return { hi, lo };
  }

  /**
   * Writes the depth g-values of `token` after the context hash (ctxHi, ctxLo) to
   * out[at], out[at + stride], …, out[at + (depth − 1)·stride].
   */
  abstract gValuesOf(
    ctxHi: number,
    ctxLo: number,
    token: number,
    out: Uint8Array,
    at: number,
    stride: number,
  ): void;

  score(sequence: ArrayLike<number>, index: number): number {
    checkToken(sequence[index], index, this.vocabSize);
    if (index < this.contextWidth) {
      fail(
        'E_CONTEXT_TOO_SHORT',
        `${this.spec.scheme}: token ${index} has no full context (ngramLen ${this.spec.ngramLen})`,
      );
    }
    const { hi, lo } = this.contextHash(sequence, index);
    const g = this.#buffer(this.depth);
    this.gValuesOf(hi, lo, sequence[index], g, 0, 1);
    let sum = 0;
    for (let l = 0; l < this.depth; l++) sum += g[l];
    return sum;
  }

  #buffer(size: number): Uint8Array {
    if (this.#g.length < size) this.#g = new Uint8Array(size);
    return this.#g;
  }

  /**
   * Scheme.contextKey: the 64-bit context hash, which decides every candidate's g-values (transformers'
   * repetition check compares exactly these hashes).
   */
  contextKey(sequence: ArrayLike<number>, end: number, out: Uint32Array): void {
    const { hi, lo } = this.contextHash(sequence, end);
    out[0] = lo;
    out[1] = hi;
  }

  /** Scheme.inputKey: the n-gram's 64-bit hash before the layer keys, which decides its g-values. */
  inputKey(sequence: ArrayLike<number>, index: number, out: Uint32Array): void {
    const { hi, lo } = this.contextHash(sequence, index);
    lcgStep(hi, lo, 0, sequence[index]);
    out[0] = R64[0];
    out[1] = R64[1];
  }

  /** Layer-major g-values of the candidates after the context ending at `end`. */
  protected candidateGValues(sequence: ArrayLike<number>, ids: Int32Array | null, count: number): Uint8Array {
    const { hi, lo } = this.contextHash(sequence, sequence.length);
    const g = this.#buffer(count * this.depth);
    for (let i = 0; i < count; i++) this.gValuesOf(hi, lo, ids === null ? i : ids[i], g, i, count);
    return g;
  }

  /** The candidates' tournament-updated log-probabilities (valid until the next call). */
  protected updatedScores(
    sequence: ArrayLike<number>,
    logits: Float32Array,
    ids: Int32Array | null,
    count: number,
  ): Float32Array {
    const g = this.candidateGValues(sequence, ids, count);
    if (this.#updated.length < count) this.#updated = new Float32Array(count);
    return tournamentUpdate(logits, count, g, this.depth, this.#updated, { floor: this.logFloor });
  }

  abstract choose(
    sequence: ArrayLike<number>,
    logits: Float32Array,
    ids: Int32Array | null,
    count: number,
    uniform: () => number,
  ): number;

  /** Samples the candidates' distribution as it stands (the update already applied by biasLogits). */
  protected sample(
    logits: Float32Array,
    ids: Int32Array | null,
    count: number,
    uniform: () => number,
  ): number {
    return sampleCategorical(logits, ids, count, uniform());
  }

  /**
   * Upstream detection inputs and the two simple scores: compute_g_values on every n-gram,
   * compute_context_repetition_mask (a context counts the first time its hash is seen among the last
   * contextHistorySize context hashes, a history that starts as zeros), compute_eos_token_mask shifted by
   * ngramLen − 1 as synthid-text's detection code applies it, and mean_score / weighted_mean_score.
   */
  detect(ids: ArrayLike<number>): SynthIdDetection {
    checkTokens(ids, this.vocabSize);
    const n = this.spec.ngramLen;
    if (ids.length < n) {
      fail(
        'E_CONTEXT_TOO_SHORT',
        `${this.spec.scheme}: ${ids.length} tokens hold no n-gram of ngramLen = ${n}`,
      );
    }
    const rows = ids.length - n + 1;
    const depth = this.depth;
    const gValues = new Uint8Array(rows * depth);
    const mask = new Uint8Array(rows);
    const history = new ContextHistory(this.spec.contextHistorySize);
    let eosAt = ids.length;
    if (this.spec.eosTokenId !== undefined) {
      for (let i = 0; i < ids.length; i++) {
        if (ids[i] === this.spec.eosTokenId) {
          eosAt = i;
          break;
        }
      }
    }
    const weights = synthIdDepthWeights(depth);
    let scored = 0;
    let sum = 0;
    let weighted = 0;
    for (let row = 0; row < rows; row++) {
      const { hi, lo } = this.contextHash(ids, row + n - 1);
      this.gValuesOf(hi, lo, ids[row + n - 1], gValues, row * depth, 1);
      const fresh = history.push(hi, lo);
      mask[row] = fresh && row + n - 1 < eosAt ? 1 : 0;
      if (mask[row] === 0) continue;
      scored++;
      for (let l = 0; l < depth; l++) {
        const g = gValues[row * depth + l];
        sum += g;
        weighted += g * weights[l];
      }
    }
    return {
      rows,
      depth,
      gValues,
      mask,
      numTokensScored: scored,
      gValueSum: sum,
      mean: sum / (depth * scored),
      weightedMean: weighted / (depth * scored),
      nullGValueProbability: this.nullLaw.kind === 'binomial' ? this.nullLaw.p : 0.5,
    };
  }
}

/**
 * The context history of compute_context_repetition_mask: the last `size` context hashes, initially all 0.
 * A hash is "repeated" when it is among them; it is pushed either way.
 */
class ContextHistory {
  readonly #size: number;
  readonly #ring: string[];
  readonly #counts = new Map<string, number>();
  #at = 0;

  constructor(size: number) {
    this.#size = size;
    this.#ring = new Array(size).fill('0,0');
    this.#counts.set('0,0', size);
  }

  /** Pushes a context hash; true when it was not in the history. */
  push(hi: number, lo: number): boolean {
    const key = `${hi >>> 0},${lo >>> 0}`;
    const counts = this.#counts;
    const fresh = (counts.get(key) ?? 0) === 0;
    const evicted = this.#ring[this.#at];
    const left = (counts.get(evicted) ?? 0) - 1;
    if (left > 0) counts.set(evicted, left);
    else counts.delete(evicted);
    this.#ring[this.#at] = key;
    this.#at = (this.#at + 1) % this.#size;
    counts.set(key, (counts.get(key) ?? 0) + 1);
    return fresh;
  }
}
