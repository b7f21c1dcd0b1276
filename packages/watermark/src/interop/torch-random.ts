/**
 * PyTorch's CPU random generator, reproduced exactly: `torch.Generator().manual_seed(s)`, `random()`,
 * `random64()`, `torch.randperm(n, generator=g)` and `torch.randint(low, high, size, generator=g)` on CPU.
 *
 * The green lists of transformers' WatermarkLogitsProcessor and of lm-watermarking, and the sampling table
 * of transformers' SynthID, are all drawn from this generator, so matching them token for token needs the
 * same Mersenne Twister, the same seeding and the same Fisher-Yates variant.
 */
import { fail } from '../errors';

const N = 624;
const M = 397;
// As int32 constants: V8 keeps the twist and the tempering in 32-bit registers when no operand exceeds int32.
const MATRIX_A = 0x9908b0df | 0;
const UPPER_MASK = 0x80000000 | 0;
const LOWER_MASK = 0x7fffffff;
const TEMPER_B = 0x9d2c5680 | 0;
const TEMPER_C = 0xefc60000 | 0;

/** `torch.Generator()`'s seed before any manual_seed (c10::detail::default_rng_seed_val). */
export const TORCH_DEFAULT_SEED = 67280421310721n;
export const UINT64_MAX = (1n << 64n) - 1n;

/**
 * Below this n, randperm_cpu keeps its original "random() % (n − i)" Fisher-Yates; from it on it switches
 * to the inside-out variant on random64() (aten/src/ATen/native/TensorFactories.cpp randperm_cpu:
 * `n < std::numeric_limits<uint32_t>::max() / 20`).
 */
export const RANDPERM_SMALL_LIMIT = Math.floor(0xffffffff / 20);

/** A seed as manual_seed takes it: an integer in [0, 2^64 − 1], given as a bigint, a number or a decimal string. */
export type Uint64Like = bigint | number | string;

export function toUint64(value: Uint64Like, what = 'seed'): bigint {
  let big: bigint | undefined;
  if (typeof value === 'bigint') big = value;
  else if (typeof value === 'number' && Number.isSafeInteger(value)) big = BigInt(value);
  else if (typeof value === 'string' && /^\d{1,20}$/.test(value)) big = BigInt(value);
  if (big === undefined || big < 0n || big > UINT64_MAX) {
    fail(
      'E_INVALID_SPEC',
      `${what} must be an integer in [0, 2^64 - 1] (a number, or a decimal string above 2^53)`,
    );
  }
  return big;
}

/**
 * at::mt19937 as CPUGeneratorImpl uses it (aten/src/ATen/core/MT19937RNGEngine.h): the standard MT19937,
 * initialised from the low 32 bits of the 64-bit seed (init_with_uint32), so seeds that agree modulo 2^32
 * give the same stream.
 */
export class TorchGenerator {
  /** The 624 state words, stored signed (same bits). */
  readonly #state = new Int32Array(N);
  /** Tempered outputs of the current block, produced together for speed (signed storage; read with >>> 0). */
  readonly #out = new Int32Array(N);
  #next = N;
  #seed = TORCH_DEFAULT_SEED;

  constructor(seed: Uint64Like = TORCH_DEFAULT_SEED) {
    this.manualSeed(seed);
  }

  /** The seed last set, as `Generator.initial_seed()` reports it. */
  get initialSeed(): bigint {
    return this.#seed;
  }

  /** `Generator.manual_seed(seed)`: CPUGeneratorImpl::set_current_seed → mt19937(seed). */
  manualSeed(seed: Uint64Like): this {
    this.#seed = toUint64(seed);
    return this.seedLow32(Number(this.#seed & 0xffffffffn));
  }

  /** Reseeds from the low 32 bits alone (all the engine reads); the hot path of green-list generation. */
  seedLow32(low: number): this {
    const s = this.#state;
    s[0] = low;
    for (let j = 1; j < N; j++) {
      const prev = s[j - 1];
      s[j] = Math.imul(1812433253, prev ^ (prev >>> 30)) + j;
    }
    this.#next = N;
    return this;
  }

  /** Twists the state and tempers the whole next block of 624 outputs. */
  #refill(): void {
    const s = this.#state;
    let kk = 0;
    for (; kk < N - M; kk++) {
      const y = (s[kk] & UPPER_MASK) | (s[kk + 1] & LOWER_MASK);
      s[kk] = s[kk + M] ^ (y >>> 1) ^ (-(y & 1) & MATRIX_A);
    }
    for (; kk < N - 1; kk++) {
      const y = (s[kk] & UPPER_MASK) | (s[kk + 1] & LOWER_MASK);
      s[kk] = s[kk + M - N] ^ (y >>> 1) ^ (-(y & 1) & MATRIX_A);
    }
    const y = (s[N - 1] & UPPER_MASK) | (s[0] & LOWER_MASK);
    s[N - 1] = s[M - 1] ^ (y >>> 1) ^ (-(y & 1) & MATRIX_A);
    const out = this.#out;
    for (let i = 0; i < N; i++) {
      let x = s[i];
      x ^= x >>> 11;
      x ^= (x << 7) & TEMPER_B;
      x ^= (x << 15) & TEMPER_C;
      x ^= x >>> 18;
      out[i] = x;
    }
    this.#next = 0;
  }

  /** CPUGeneratorImpl::random(): one 32-bit draw, as an unsigned number. */
  random(): number {
    if (this.#next === N) this.#refill();
    return this.#out[this.#next++] >>> 0;
  }

  /** CPUGeneratorImpl::random64(): the first 32-bit draw is the high word (make64BitsFrom32Bits). */
  random64(): bigint {
    const hi = this.random();
    const lo = this.random();
    return (BigInt(hi) << 32n) | BigInt(lo);
  }

  /**
   * `torch.randperm(n, generator=g)` on CPU. Below RANDPERM_SMALL_LIMIT, Fisher-Yates from the front with
   * `z = random() % (n − i)`; above it, the inside-out shuffle with `z = random64() % (i + 1)`.
   */
  randperm(n: number): Int32Array {
    if (!Number.isSafeInteger(n) || n < 0 || n > 0x7fffffff) {
      fail('E_INVALID_SPEC', `randperm size must be an integer in [0, 2^31 - 1]; got ${n}`);
    }
    if (n >= RANDPERM_SMALL_LIMIT) return this.randpermInsideOut(n);
    const r = new Int32Array(n);
    for (let i = 0; i < n; i++) r[i] = i;
    this.#shuffleFront(r, n, n - 1);
    return r;
  }

  /**
   * The branch randperm_cpu takes from RANDPERM_SMALL_LIMIT on (exposed so that it can be tested on small
   * n): the inside-out shuffle `r[i] = i; swap(r[i], r[z])` with z = random64() % (i + 1).
   */
  randpermInsideOut(n: number): Int32Array {
    const r = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      // random64() % (i + 1) without BigInt: (hi · 2^32 + lo) mod m with every product below 2^53.
      const hi = this.random();
      const lo = this.random();
      const m = i + 1;
      const z = ((((((hi % m) * 65536) % m) * 65536) % m) + lo) % m;
      r[i] = r[z];
      r[z] = i;
    }
    return r;
  }

  /** The first `steps` swaps of the small-n shuffle on `r`, which starts as the identity. */
  #shuffleFront(r: Int32Array, n: number, steps: number): void {
    const out = this.#out;
    let next = this.#next;
    for (let i = 0; i < steps; i++) {
      if (next === N) {
        this.#refill();
        next = 0;
      }
      const j = i + remainder(out[next++] >>> 0, n - i);
      const t = r[i];
      r[i] = r[j];
      r[j] = t;
    }
    this.#next = next;
  }

  /**
   * The first k entries of randperm(n), in order, without touching the other n − k: after step i of the
   * front-to-back shuffle, position i never changes again, so a green list (the first γ|V| entries) needs
   * only k draws and k swaps. The workspace stands for the identity array lazily: a position holds its own
   * index unless it was written in this call (its cell carries this call's epoch), so the O(n) array is not
   * reset between calls. When `bits` is given, each final entry also sets its bit there.
   */
  randpermPrefix(work: RandpermWorkspace, k: number, out: Int32Array, bits?: Uint32Array): void {
    const n = work.n;
    if (n >= RANDPERM_SMALL_LIMIT) {
      out.set(this.randperm(n).subarray(0, k));
      if (bits !== undefined) for (let i = 0; i < k; i++) bits[out[i] >>> 5] |= 1 << (out[i] & 31);
      return;
    }
    const tag = work.nextEpoch() << EPOCH_SHIFT;
    const cells = work.cells;
    const draws = this.#out;
    let next = this.#next;
    for (let i = 0; i < k; i++) {
      const at = cells[i];
      const held = (at & EPOCH_MASK) === tag ? at & VALUE_MASK : i;
      let chosen = held;
      if (i < n - 1) {
        if (next === N) {
          this.#refill();
          next = 0;
        }
        const j = i + remainder(draws[next++] >>> 0, n - i);
        const cell = cells[j];
        chosen = (cell & EPOCH_MASK) === tag ? cell & VALUE_MASK : j;
        // Position j takes what position i held; position i is final and never read again.
        cells[j] = tag | held;
      }
      out[i] = chosen;
      if (bits !== undefined) bits[chosen >>> 5] |= 1 << (chosen & 31);
    }
    this.#next = next;
  }

  /**
   * `torch.randint(low, high, (size,), generator=g)` into an int64 tensor on CPU: one `random() % range`
   * per element in order (DistributionTemplates.h random_from_to → uniform_int_from_to_distribution).
   * Only ranges below 2^28 are accepted: there every torch version draws 32 bits (larger ranges switch to
   * random64() at 2^32 in torch ≤ 2.0 and at 2^28 later).
   */
  randint(low: number, high: number, size: number): Float64Array {
    const range = high - low;
    if (!Number.isSafeInteger(low) || !Number.isSafeInteger(high) || range < 1 || range >= 2 ** 28) {
      fail(
        'E_INVALID_SPEC',
        `randint needs integers low < high with high - low < 2^28; got [${low}, ${high})`,
      );
    }
    if (!Number.isSafeInteger(size) || size < 0)
      fail('E_INVALID_SPEC', `randint size must be a non-negative integer`);
    const out = new Float64Array(size);
    for (let i = 0; i < size; i++) out[i] = (this.random() % range) + low;
    return out;
  }
}

/** Cells hold (epoch << 25) | value: a cell written in an earlier call reads as its own index. */
const EPOCH_SHIFT = 25;
const VALUE_MASK = (1 << EPOCH_SHIFT) - 1;
const EPOCH_MASK = ~VALUE_MASK;
const MAX_EPOCH = 63;

/** Scratch space for randpermPrefix: a lazily-reset view of the identity permutation of size n < 2^25. */
export class RandpermWorkspace {
  readonly n: number;
  readonly cells: Int32Array;
  #epoch = 0;

  constructor(n: number) {
    if (n > VALUE_MASK) fail('E_INVALID_SPEC', `randperm workspace size must be below 2^25; got ${n}`);
    this.n = n;
    this.cells = new Int32Array(n);
  }

  /** A fresh epoch in 1..63 (every 63 calls the cells are cleared): every position reads as its own index. */
  nextEpoch(): number {
    if (this.#epoch === MAX_EPOCH) {
      this.cells.fill(0);
      this.#epoch = 0;
    }
    return ++this.#epoch;
  }
}

/**
 * x mod m for integers 0 ≤ x < 2^32 and 0 < m < 2^32 without a floating-point remainder (slow in V8): the
 * quotient of two such integers is never rounded across an integer, so floor(x / m) is exact.
 */
function remainder(x: number, m: number): number {
  return x - Math.floor(x / m) * m;
}
