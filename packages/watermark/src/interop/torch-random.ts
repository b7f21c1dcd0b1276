/**
 * PyTorch's CPU random generator, reproduced exactly: `torch.Generator().manual_seed(s)`, `random()`,
 * `random64()`, `torch.randperm(n, generator=g)` and `torch.randint(low, high, size, generator=g)` on CPU.
 *
 * The green lists of transformers' WatermarkLogitsProcessor and of lm-watermarking, and the sampling table
 * of transformers' SynthID, are all drawn from this generator, so matching them token for token needs the
 * same Mersenne Twister, the same seeding and the same Fisher-Yates variant.
 */
import { fail } from '../errors';
import {
  get,
  i32,
  lanes,
  leb,
  load,
  MODULE_HEADER,
  name,
  section,
  set,
  simd,
  splat,
  store,
  tee,
  type WasmMemory,
  wasmExports,
} from '../wasm';

const N = 624;
const M = 397;
// As int32 constants: V8 keeps the twist and the tempering in 32-bit registers when no operand exceeds int32.
const MATRIX_A = 0x9908b0df | 0;
const UPPER_MASK = 0x80000000 | 0;
const LOWER_MASK = 0x7fffffff;
const TEMPER_B = 0x9d2c5680 | 0;
const TEMPER_C = 0xefc60000 | 0;
const SIGN_BIT = 0x80000000 | 0;

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
    (simdBlock ?? scalarBlock)(this.#state, this.#out);
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
   * Whether `token` is among the first `table.k` entries of randperm(table.n), without building them: in the
   * front-to-back shuffle the token moves only when its position i is the one being fixed (to j), and it
   * becomes final at step i exactly when j equals its position, i.e. when the draw ≡ position − i mod n − i.
   * O(1) memory, and it stops at the step the token lands on (half the prefix on average for a member).
   */
  randpermPrefixHas(table: PrefixMembershipTable, token: number): boolean {
    const n = table.n;
    if (!(token >= 0 && token < n)) return false;
    if (n >= RANDPERM_SMALL_LIMIT) return this.randperm(n).subarray(0, table.k).includes(token);
    const steps = table.steps;
    const draws = this.#out;
    const stride = 4 * table.stride;
    let next = this.#next;
    let pos = token;
    let i = 0;
    while (i < steps) {
      // Only a block drawn in this call is still in the SIMD module's memory.
      let engine: SimdEngine | undefined;
      if (next === N) {
        this.#refill();
        next = 0;
        engine = simdEngine;
        engine?.load(table);
      }
      const end = Math.min(steps, i + N - next);
      while (i < end) {
        let until = end;
        if (engine !== undefined) {
          // Steps before the token's position are scanned four at a time; the one at it moves the token.
          const stop = Math.min(pos, end);
          until = i + 1;
          if (i < stop) {
            const skip = Math.min(
              engine.scan(SIMD_OUT + 4 * next, SIMD_TABLE + 4 * i, stride, stop - i, pos - i),
              stop - i,
            );
            i += skip;
            next += skip;
            if (i === stop) continue;
            // A lane of the four steps from i matched: the exact test below decides.
            until = Math.min(i + 4, stop);
          }
        }
        for (; i < until; i++) {
          const x = draws[next++];
          const offset = pos - i;
          if (landsAt(table, i, x, offset)) {
            this.#next = next;
            return true;
          }
          // The token sat at position i and was not kept there: it moves to the drawn position.
          if (offset === 0) pos = i + remainder(x >>> 0, n - i);
        }
      }
    }
    this.#next = next;
    return pos < table.k;
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

/**
 * What randpermPrefixHas needs to test "draw mod (n − i) = offset" at each step i < steps = min(k, n − 1)
 * without a division: with n − i = odd · 2^shift, m divides y exactly when rotr(y · odd⁻¹ mod 2^32, shift)
 * ≤ ⌊(2^32 − 1) / m⌋ (Granlund–Montgomery; Hacker's Delight 10-17). Depends only on (n, k).
 */
export class PrefixMembershipTable {
  readonly n: number;
  readonly k: number;
  readonly steps: number;
  /** The inverse of the odd part of n − i modulo 2^32. */
  readonly inverse: Int32Array;
  readonly shift: Uint8Array;
  /** ⌊(2^32 − 1) / (n − i)⌋ with its sign bit flipped, for a signed comparison. */
  readonly limit: Int32Array;
  /** Entries per array in simdLayout: the steps and four of padding (a scan reads whole groups of four). */
  readonly stride: number;
  /**
   * The same test without rotations, as the SIMD scan takes it: odd⁻¹, 2^(32 − shift) and (limit + 1) · 2^shift − 1,
   * one array after the other (y · odd⁻¹ = p passes when p · 2^(32 − shift) ≡ 0 and p ≤ that bound, unsigned).
   */
  readonly simdLayout: Int32Array;

  constructor(n: number, k: number) {
    if (!Number.isSafeInteger(n) || n < 1 || !Number.isSafeInteger(k) || k < 0 || k > n) {
      fail('E_INVALID_SPEC', `a randperm prefix needs integers 0 <= k <= n, n >= 1; got n = ${n}, k = ${k}`);
    }
    this.n = n;
    this.k = k;
    // The big-n branch draws differently and is answered from the whole permutation.
    this.steps = n >= RANDPERM_SMALL_LIMIT ? 0 : Math.min(k, n - 1);
    this.inverse = new Int32Array(this.steps);
    this.shift = new Uint8Array(this.steps);
    this.limit = new Int32Array(this.steps);
    this.stride = this.steps + 4;
    this.simdLayout = new Int32Array(3 * this.stride);
    for (let i = 0; i < this.steps; i++) {
      const m = n - i;
      const shift = 31 - Math.clz32(m & -m);
      const odd = m >>> shift;
      // Newton's iteration doubles the correct low bits each time: 3 (odd² ≡ 1 mod 8) → 6 → 12 → 24 → 48.
      let inverse = odd;
      for (let round = 0; round < 4; round++) inverse = Math.imul(inverse, 2 - Math.imul(odd, inverse));
      this.inverse[i] = inverse;
      this.shift[i] = shift;
      const limit = Math.floor(0xffffffff / m);
      this.limit[i] = limit ^ SIGN_BIT;
      this.simdLayout[i] = inverse;
      this.simdLayout[this.stride + i] = 2 ** (32 - shift);
      this.simdLayout[2 * this.stride + i] = (limit + 1) * 2 ** shift - 1;
    }
  }
}

/**
 * Whether draw x (signed storage) puts the walked token, `offset` places after position i, at position i:
 * x mod (n − i) = offset ⟺ x ≥ offset and n − i divides x − offset, by the table's multiply-and-rotate test.
 */
function landsAt(table: PrefixMembershipTable, i: number, x: number, offset: number): boolean {
  const product = Math.imul(x - offset, table.inverse[i]);
  const s = table.shift[i];
  // Unsigned ≤ as a signed comparison with both sign bits flipped (limit is stored flipped).
  return (((product >>> s) | (product << (32 - s))) ^ SIGN_BIT) <= table.limit[i] && x >>> 0 >= offset;
}

/**
 * Runs randpermPrefixHas through each of its branches (landing, moving, walking past) on a tiny permutation,
 * once per process: the optimised code of the first real walk then covers every path, instead of being
 * thrown away when a green token or a moving one first appears (a visible cost in a short-lived process).
 */
export function primePrefixWalk(): void {
  const table = new PrefixMembershipTable(16, 8);
  const generator = new TorchGenerator(0);
  for (let seed = 0; seed < 4; seed++) {
    for (let token = 0; token < 16; token++) generator.seedLow32(seed).randpermPrefixHas(table, token);
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

/** MT19937's output tempering of one state word (signed in, signed out). */
function temper(word: number): number {
  let x = word;
  x ^= x >>> 11;
  x ^= (x << 7) & TEMPER_B;
  x ^= (x << 15) & TEMPER_C;
  return x ^ (x >>> 18);
}

/** The twist of state word kk (reading word `from` for the M-ahead term), tempered into out[kk]. */
function twistWord(s: Int32Array, out: Int32Array, kk: number, from: number): void {
  const y = (s[kk] & UPPER_MASK) | (s[(kk + 1) % N] & LOWER_MASK);
  const word = s[from] ^ (y >>> 1) ^ (-(y & 1) & MATRIX_A);
  s[kk] = word;
  out[kk] = temper(word);
}

/** One block of MT19937 in plain JavaScript: twists `s` in place and tempers it into `out`. */
function scalarBlock(s: Int32Array, out: Int32Array): void {
  for (let kk = 0; kk < N; kk++) twistWord(s, out, kk, (kk + M) % N);
}

/** Byte offset of the tempered outputs in the SIMD module's memory (the state sits at 0). */
const SIMD_OUT = 4 * N;

/**
 * The WebAssembly SIMD module (types Twist4 and Scan below): MT19937 blocks four words at a time, about 15×
 * faster than the JavaScript loop, and the walk's landing test four steps at a time; together most of the
 * cost of a fresh context. Written out as bytes because the project has no WebAssembly toolchain.
 */
function simdModuleBytes(): Uint8Array {
  const { and, or, xor, shl, shrS, shrU } = simd;
  // Parameters 0 kk, 1 to, 2 ahead; locals 3 address (i32), 4 y and 5 word (v128).
  const xorShifted = (by: number, shift: number[], mask?: number): number[] => {
    const masked = mask === undefined ? [] : [...splat(mask), ...and];
    return [...get(5), ...get(5), ...i32(by), ...shift, ...masked, ...xor];
  };
  const body = [
    [0x02, 0x01, 0x7f, 0x02, 0x7b], // locals: 1 i32, 2 v128
    [0x03, 0x40], // loop
    [...get(0), ...i32(2), 0x74, ...set(3)], // address = kk << 2
    [...get(3), ...load(0), ...splat(UPPER_MASK), ...and], // s[kk] & UPPER_MASK
    [...get(3), ...load(4), ...splat(LOWER_MASK), ...and], // s[kk + 1] & LOWER_MASK
    [...or, ...tee(4), ...i32(1), ...shrU], // (y = … | …) >>> 1
    [...get(4), ...i32(31), ...shl, ...i32(31), ...shrS, ...splat(MATRIX_A), ...and, ...xor], // ^ (-(y & 1) & A)
    [...get(0), ...get(2), 0x6a, ...i32(2), 0x74, ...load(0), ...xor, ...set(5)], // ^ s[kk + ahead]
    [...get(3), ...get(5), ...store(0)], // s[kk] = word
    [...xorShifted(11, shrU), ...set(5)], // tempering
    [...xorShifted(7, shl, TEMPER_B), ...set(5)],
    [...xorShifted(15, shl, TEMPER_C), ...set(5)],
    [...get(3), ...xorShifted(18, shrU), ...store(SIMD_OUT)], // out[kk] = tempered
    [...get(0), ...i32(4), 0x6a, ...tee(0), ...get(1), 0x48, 0x0d, 0x00], // kk += 4; loop while kk < to
    [0x0b, 0x0b], // end loop, end function
  ].flat();
  const i32x4Sub = simd.sub;
  const i32x4Mul = simd.mul;
  // scan(draw, entry, stride, count, offset): params 0..4; locals 5 j, 6 address (i32), 7 offsets, 8 p (v128).
  const entryAt = (strides: number): number[] => {
    const more = Array.from({ length: strides }, () => [...get(2), 0x6a]).flat();
    return [...get(1), ...get(6), 0x6a, ...more, ...load(0)];
  };
  const scan = [
    [0x02, 0x02, 0x7f, 0x02, 0x7b], // locals: 2 i32, 2 v128
    [...get(4), 0xfd, 0x11, ...lanes(0, 1, 2, 3), ...i32x4Sub, ...set(7)], // offsets = offset − (0, 1, 2, 3)
    [0x02, 0x40, 0x03, 0x40], // block, loop
    [...get(5), ...get(3), 0x4e, 0x0d, 0x01], // exit when j ≥ count
    [...get(5), ...i32(2), 0x74, ...set(6)], // address = j << 2
    [...get(0), ...get(6), 0x6a, ...load(0), ...get(7), ...i32x4Sub, ...entryAt(0), ...i32x4Mul, ...tee(8)], // p
    [...entryAt(1), ...i32x4Mul, ...lanes(0, 0, 0, 0), 0xfd, 0x37], // p · 2^(32 − shift) = 0
    [...get(8), ...entryAt(2), 0xfd, 0x3e], // p ≤ bound (unsigned)
    [...and, 0xfd, 0x53, 0x04, 0x40, ...get(5), 0x0f, 0x0b], // any lane: return j
    [...get(7), ...lanes(4, 4, 4, 4), ...i32x4Sub, ...set(7)], // offsets −= 4
    [...get(5), ...i32(4), 0x6a, ...set(5), 0x0c, 0x00], // j += 4; loop
    [0x0b, 0x0b, ...get(3), 0x0b], // end loop, end block; return count
  ].flat();
  return new Uint8Array([
    ...MODULE_HEADER,
    // types: (i32, i32, i32) -> () and (i32, i32, i32, i32, i32) -> i32
    ...section(
      1,
      [0x02, 0x60, 0x03, 0x7f, 0x7f, 0x7f, 0x00, 0x60, 0x05, 0x7f, 0x7f, 0x7f, 0x7f, 0x7f, 0x01, 0x7f],
    ),
    ...section(3, [0x02, 0x00, 0x01]), // twist4, scan
    ...section(5, [0x01, 0x00, 0x01]), // one memory of one page (grown for tables)
    ...section(7, [
      0x03,
      ...name('memory'),
      0x02,
      0x00,
      ...name('twist4'),
      0x00,
      0x00,
      ...name('scan'),
      0x00,
      0x01,
    ]),
    ...section(10, [0x02, ...leb(body.length), ...body, ...leb(scan.length), ...scan]), // code
  ]);
}

/** Twists and tempers words from, from + 4, … below `to`; the M-ahead term is word kk + ahead. */
type Twist4 = (from: number, to: number, ahead: number) => void;
/**
 * Tests `count` walk steps four at a time: draws from byte `draw`, table entries from byte `entry` (three
 * arrays `stride` bytes apart), the first step's offset `offset`. Returns the first group (a multiple of 4)
 * with a lane that may land, or `count`.
 */
type Scan = (draw: number, entry: number, stride: number, count: number, offset: number) => number;

/** Where the SIMD module keeps the table of the walk it scans for (after the state and the outputs). */
const SIMD_TABLE = 8 * N;

/**
 * The WebAssembly SIMD engine: one instance, used synchronously by one generator at a time. `block` twists a
 * generator's state there (the same words as scalarBlock; the outputs stay in the module's memory until the
 * next block); `scan` tests four walk steps at a time against the table last loaded.
 */
class SimdEngine {
  readonly #memory: WasmMemory;
  readonly #twist4: Twist4;
  readonly scan: Scan;
  #state = new Int32Array(0);
  #tempered = new Int32Array(0);
  #loaded: PrefixMembershipTable | undefined;

  constructor(exports: Record<string, unknown>) {
    this.#memory = exports.memory as WasmMemory;
    this.#twist4 = exports.twist4 as Twist4;
    this.scan = exports.scan as Scan;
    this.#views();
  }

  /** (Re)creates the views, which growing the memory detaches. */
  #views(): void {
    this.#state = new Int32Array(this.#memory.buffer, 0, N);
    this.#tempered = new Int32Array(this.#memory.buffer, SIMD_OUT, N);
  }

  block(s: Int32Array, out: Int32Array): void {
    const state = this.#state;
    const tempered = this.#tempered;
    state.set(s);
    // Words 0..223 read only old words; 224..226 would read past the end four at a time; 227..622 read new
    // words at least 227 back; 623 wraps to word 0.
    this.#twist4(0, 224, M);
    for (let kk = 224; kk < N - M; kk++) twistWord(state, tempered, kk, kk + M);
    this.#twist4(N - M, N - 1, M - N);
    twistWord(state, tempered, N - 1, M - 1);
    s.set(state);
    out.set(tempered);
  }

  /** Makes `table` the one scan reads (copied in when another one was loaded). */
  load(table: PrefixMembershipTable): void {
    if (this.#loaded === table) return;
    const bytes = SIMD_TABLE + 4 * table.simdLayout.length;
    const missing = bytes - this.#memory.buffer.byteLength;
    if (missing > 0) {
      this.#memory.grow(Math.ceil(missing / 65536));
      this.#views();
    }
    new Int32Array(this.#memory.buffer, SIMD_TABLE, table.simdLayout.length).set(table.simdLayout);
    this.#loaded = table;
  }
}

function createSimdEngine(): SimdEngine | undefined {
  const exports = wasmExports(simdModuleBytes());
  // Without WebAssembly SIMD in this runtime the JavaScript block and the scalar walk serve.
  return exports === undefined ? undefined : new SimdEngine(exports);
}

const simdEngine = createSimdEngine();
const simdBlock =
  simdEngine === undefined ? undefined : (s: Int32Array, out: Int32Array) => simdEngine.block(s, out);

/** The block functions, for the test that they agree. */
export const mt19937Blocks = { scalar: scalarBlock, simd: simdBlock };

/**
 * x mod m for integers 0 ≤ x < 2^32 and 0 < m < 2^32 without a floating-point remainder (slow in V8): the
 * quotient of two such integers is never rounded across an integer, so floor(x / m) is exact.
 */
function remainder(x: number, m: number): number {
  return x - Math.floor(x / m) * m;
}
