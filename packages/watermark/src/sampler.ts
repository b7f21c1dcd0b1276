import seedrandom from 'seedrandom';
import { fail } from './errors';

/** Ordinary sampling controls, applied as Hugging Face's warpers do: temperature, then top-k, then top-p. */
export interface SamplingOptions {
  /** Divides the logits; 0 means greedy (argmax). Default 1. */
  temperature?: number;
  /** Keep the k most likely tokens; 0 keeps all. Default 0. */
  topK?: number;
  /** Keep the smallest set of most likely tokens whose mass reaches p; 1 keeps all. Default 1. */
  topP?: number;
}

export type ResolvedSampling = Required<SamplingOptions>;

export function resolveSampling(options: SamplingOptions = {}): ResolvedSampling {
  const { temperature = 1, topK = 0, topP = 1 } = options;
  if (typeof temperature !== 'number' || !Number.isFinite(temperature) || temperature < 0) {
    fail('E_INVALID_SAMPLING', `temperature must be a finite number ≥ 0; got ${String(temperature)}`);
  }
  if (typeof topK !== 'number' || !Number.isInteger(topK) || topK < 0) {
    fail('E_INVALID_SAMPLING', `topK must be an integer ≥ 0 (0 disables it); got ${String(topK)}`);
  }
  if (typeof topP !== 'number' || !(topP > 0 && topP <= 1)) {
    fail('E_INVALID_SAMPLING', `topP must be a number in (0, 1]; got ${String(topP)}`);
  }
  return { temperature, topK, topP };
}

/**
 * A reproducible uniform source in [0, 1) for ordinary sampling (seedrandom's ARC4 generator).
 * Watermark randomness never comes from here: it comes from the keyed PRF.
 */
export function createRng(seed?: string | number): () => number {
  const prng = seed === undefined ? seedrandom(undefined, { entropy: true }) : seedrandom(String(seed));
  return () => prng.double();
}

/** Checks a logits row: the declared length, no NaN or +Infinity, at least one finite entry. */
export function assertLogits(logits: Float32Array, vocabSize: number): void {
  if (!(logits instanceof Float32Array)) fail('E_LOGITS_LENGTH', 'logits must be a Float32Array');
  if (logits.length !== vocabSize) {
    fail(
      'E_LOGITS_LENGTH',
      `logits have ${logits.length} entries but the vocabulary has ${vocabSize} tokens`,
    );
  }
  // One predictable branch per entry: a new maximum is rare after the first few, and so is NaN.
  let max = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < logits.length; i++) {
    const x = logits[i];
    if (x > max) max = x;
    else if (Number.isNaN(x))
      fail('E_NONFINITE_LOGITS', `logit ${i} is NaN; logits must be finite or -Infinity`);
  }
  if (max === Number.POSITIVE_INFINITY) {
    const i = logits.indexOf(Number.POSITIVE_INFINITY);
    fail('E_NONFINITE_LOGITS', `logit ${i} is Infinity; logits must be finite or -Infinity`);
  }
  if (max === Number.NEGATIVE_INFINITY)
    fail('E_NO_CANDIDATES', 'every logit is -Infinity: there is no token to choose');
}

let weights = new Float64Array(1024);

function weightsOf(size: number): Float64Array {
  if (weights.length < size) weights = new Float64Array(Math.max(size, 2 * weights.length));
  return weights;
}

function maxLogit(logits: Float32Array, count: number): number {
  let m = Number.NEGATIVE_INFINITY;
  for (let i = 0; i < count; i++) if (logits[i] > m) m = logits[i];
  return m;
}

/** Draws candidate i with probability softmax(logits)[i] by inverting the CDF at `u` ∈ [0, 1). */
export function sampleCategorical(
  logits: Float32Array,
  ids: Int32Array | null,
  count: number,
  u: number,
): number {
  const m = maxLogit(logits, count);
  const w = weightsOf(count);
  let total = 0;
  for (let i = 0; i < count; i++) {
    total += Math.exp(logits[i] - m);
    w[i] = total;
  }
  const target = u * total;
  let lo = 0;
  let hi = count - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (w[mid] > target) hi = mid;
    else lo = mid + 1;
  }
  return ids === null ? lo : ids[lo];
}

/** The most likely candidate; ties go to the lowest position. */
export function argmax(logits: Float32Array, ids: Int32Array | null, count: number): number {
  let best = 0;
  for (let i = 1; i < count; i++) if (logits[i] > logits[best]) best = i;
  return ids === null ? best : ids[best];
}

/** The candidates left after temperature, top-k and top-p; valid until the sampler's next call. */
export interface CandidateSet {
  logits: Float32Array;
  /** Token of each candidate, or null when candidate i is token i (the whole vocabulary). */
  ids: Int32Array | null;
  count: number;
}

/**
 * Turns a logits row into a candidate set. Scratch buffers are reused between calls, so one sampler
 * serves one generation loop at a time.
 */
export class Sampler {
  readonly options: ResolvedSampling;
  readonly #vocabSize: number;
  #logits = new Float32Array(0);
  #ids = new Int32Array(0);
  #kept = new Float32Array(0);
  readonly #result: CandidateSet = { logits: this.#logits, ids: null, count: 0 };

  constructor(vocabSize: number, options: SamplingOptions = {}) {
    this.options = resolveSampling(options);
    this.#vocabSize = vocabSize;
  }

  get vocabSize(): number {
    return this.#vocabSize;
  }

  get greedy(): boolean {
    return this.options.temperature === 0;
  }

  /**
   * Applies temperature, top-k and top-p to `logits` (which it does not modify). With `ids`, `logits[i]` is the
   * logit of token `ids[i]` for the first `count` entries, `ids` increasing, and every token outside `ids` has
   * logit −Infinity: the same candidates as for the full row, in the same order (tested), over `count` entries.
   */
  select(logits: Float32Array, ids: Int32Array | null = null, count = this.#vocabSize): CandidateSet {
    const { temperature, topK, topP } = this.options;
    const result = this.#result;
    const row = ids === null || logits.length === count ? logits : logits.subarray(0, count);
    if (temperature === 0) return this.#keep(row, ids, 1);
    // Against the vocabulary, not `count`: a top-k between the two still sorts the candidates, as for the full row.
    const truncating = (topK > 0 && topK < this.#vocabSize) || topP < 1;
    if (!truncating) {
      result.ids = ids === null ? null : ids.length === count ? ids : ids.subarray(0, count);
      result.count = count;
      result.logits = temperature === 1 ? row : this.#scaled(row, temperature);
      return result;
    }
    const scaled = temperature === 1 ? row : this.#scaled(row, temperature);
    if (topP === 1) return this.#keep(scaled, ids, topK);
    const limit = topK > 0 ? Math.min(topK, count) : count;
    // −Infinity entries outside the candidates add exactly 0 to the mass: the same total over `count` entries.
    const totalMass = topK > 0 ? null : softmaxMass(scaled, count);
    // Top-p over the whole vocabulary without sorting it: grow a top-k prefix until it holds the mass.
    for (let k = Math.min(64, limit); ; k = Math.min(limit, 4 * k)) {
      this.#keep(scaled, ids, k);
      const cut = nucleusCut(result.logits, result.count, topP, totalMass);
      if (cut > 0 || k === limit) {
        result.count = cut > 0 ? cut : result.count;
        return result;
      }
    }
  }

  #scaled(logits: Float32Array, temperature: number): Float32Array {
    if (this.#logits.length < logits.length) this.#logits = new Float32Array(logits.length);
    const out =
      this.#logits.length === logits.length ? this.#logits : this.#logits.subarray(0, logits.length);
    const inv = 1 / temperature;
    for (let i = 0; i < logits.length; i++) out[i] = logits[i] * inv;
    return out;
  }

  /**
   * The k largest finite logits, sorted in decreasing order (ties: lower token id first); `ids` maps positions to
   * tokens (increasing, so position ties break as token ties do), null for the whole vocabulary.
   */
  #keep(logits: Float32Array, ids: Int32Array | null, k: number): CandidateSet {
    if (this.#ids.length < k) this.#ids = new Int32Array(Math.max(k, 64));
    const kept = this.#ids;
    const count = topKIndices(logits, k, kept);
    if (this.#kept.length < count) this.#kept = new Float32Array(Math.max(count, 64));
    const out = this.#kept;
    for (let i = 0; i < count; i++) out[i] = logits[kept[i]];
    if (ids !== null) for (let i = 0; i < count; i++) kept[i] = ids[kept[i]];
    this.#result.logits = out;
    this.#result.ids = kept.subarray(0, count);
    this.#result.count = count;
    return this.#result;
  }
}

/** Log-free softmax mass: Σ exp(x − max), with its max, for comparing prefix masses. */
function softmaxMass(logits: Float32Array, count: number): { max: number; total: number } {
  const max = maxLogit(logits, count);
  let total = 0;
  for (let i = 0; i < count; i++) total += Math.exp(logits[i] - max);
  return { max, total };
}

/**
 * Length of the shortest prefix of `sorted` (decreasing logits) whose probability reaches `topP`
 * of `mass` (or of the prefix's own total when mass is null, i.e. after top-k); 0 if none does.
 */
function nucleusCut(
  sorted: Float32Array,
  count: number,
  topP: number,
  mass: { max: number; total: number } | null,
): number {
  const { max, total } = mass ?? softmaxMass(sorted, count);
  const target = topP * total;
  let cumulative = 0;
  for (let i = 0; i < count; i++) {
    cumulative += Math.exp(sorted[i] - max);
    if (cumulative >= target * (1 - 1e-12)) return i + 1;
  }
  return 0;
}

/**
 * Writes into `out` the indices of the k largest finite entries of `logits`, largest first.
 * A binary min-heap of size k keeps this O(V log k) with one comparison per entry in the common case.
 */
export function topKIndices(logits: Float32Array, k: number, out: Int32Array): number {
  let size = 0;
  // Ordered by logit, then by lower id first; the heap's root is the weakest of the kept candidates.
  const weaker = (a: number, b: number) => logits[a] < logits[b] || (logits[a] === logits[b] && a > b);
  const siftDown = (i: number) => {
    for (;;) {
      const l = 2 * i + 1;
      if (l >= size) return;
      const r = l + 1;
      const m = r < size && weaker(out[r], out[l]) ? r : l;
      if (!weaker(out[m], out[i])) return;
      const t = out[m];
      out[m] = out[i];
      out[i] = t;
      i = m;
    }
  };
  const n = logits.length;
  let t = 0;
  for (; t < n && size < k; t++) {
    if (logits[t] === Number.NEGATIVE_INFINITY) continue;
    let i = size++;
    out[i] = t;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!weaker(out[i], out[p])) break;
      const tmp = out[p];
      out[p] = out[i];
      out[i] = tmp;
      i = p;
    }
  }
  // Once the heap is full, most entries lose to its root: compare against its value without a call.
  let floor = size > 0 ? logits[out[0]] : Number.POSITIVE_INFINITY;
  for (; t < n; t++) {
    const x = logits[t];
    if (x > floor) {
      out[0] = t;
      siftDown(0);
      floor = logits[out[0]];
    }
  }
  const found = size;
  // Heap-sort in place: repeatedly move the weakest to the end, giving decreasing order.
  while (size > 1) {
    const top = out[0];
    out[0] = out[size - 1];
    out[size - 1] = top;
    size--;
    siftDown(0);
  }
  return found;
}
