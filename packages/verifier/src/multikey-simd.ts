/**
 * The green words of multikey.ts's grouped KGW h = 1 path in WebAssembly SIMD, four keys per pass (one per i32
 * lane; `seededHash32`'s Math.imul is i32x4.mul): per group one word per key, summed per key. Written out as
 * bytes (the shared assembler of @tracemark/watermark) because the project has no WebAssembly toolchain.
 *
 * The seeds too: `ContextPrf.seedTokens`' SipHash-2-4 of each context token (one 4-byte little-endian block) with
 * native i64 operations, written straight into the lanes.
 *
 * Memory: the four sums (i32) at 0; the SipHash key at 16; the context tokens; the single-token groups as (seed
 * address, token) pairs; the multi-token groups as (seed address, block base, token mask) triples; per context the
 * four keys' seed lows, then highs.
 */
import { wasm } from '@tracemark/watermark';

const { get, i32, i64, load, loadI32, MODULE_HEADER, name, section, set, simd, splat, store, tee } = wasm;

/** The grouped tape, key-independent (multikey.ts's ContextGroups). */
export interface GroupTables {
  /** Context index and token of each group of one token. */
  singleContext: Int32Array;
  singleToken: Int32Array;
  /** Context index, block base and token mask of each group of several tokens. */
  multiContext: Int32Array;
  multiBase: Int32Array;
  multiMask: Int32Array;
  /** The distinct context tokens. */
  contexts: Uint32Array;
}

/** One key's seeds: context c's are lo[offset + stride · c] and hi[offset + stride · c]. */
export interface SeedTable {
  lo: Int32Array;
  hi: Int32Array;
  offset: number;
  stride: number;
}

/** Keys per pass: the i32 lanes of a v128. */
export const SIMD_KEYS = 4;

const KEY = 16;
const CONTEXTS = 32;
const SEED_BYTES = 8 * SIMD_KEYS;

// Locals of `sums(singles, singleCount, multis, multiCount)`: i32 j, p, t, base, seed address; v128 lo, hi, lt,
// tmp, acc.
const J = 4;
const P = 5;
const T = 6;
const BASE = 7;
const SEED = 8;
const LO = 9;
const HI = 10;
const LT = 11;
const TMP = 12;
const ACC = 13;

const I32_ADD = 0x6a;
const I32_MUL = 0x6c;
const I32_AND = 0x71;
const I32_OR = 0x72;
const I32_GE_U = 0x4f;
const POPCOUNT_SUM = [0xfd, 0x62, 0xfd, 0x7d, 0xfd, 0x7f]; // i8x16.popcnt, then pairwise sums up to i32 lanes

/** lowbias32 (mix.ts) of the four lanes on the stack. */
const lowbias32 = [
  ...[...tee(TMP), ...get(TMP), ...i32(16), ...simd.shrU, ...simd.xor, ...splat(0x7feb352d), ...simd.mul],
  ...[...tee(TMP), ...get(TMP), ...i32(15), ...simd.shrU, ...simd.xor, ...splat(0x846ca68b), ...simd.mul],
  ...[...tee(TMP), ...get(TMP), ...i32(16), ...simd.shrU, ...simd.xor],
];

/** seededHash32 (mix.ts) of the i32 token on the stack under each lane's seed. */
const seededHash32 = [
  ...simd.splat,
  ...get(LO),
  ...simd.xor,
  ...lowbias32,
  ...get(HI),
  ...simd.add,
  ...lowbias32,
];

/** KgwScheme's bit-sliced [U < G] of the block at `base` into LT, the comparison steps unrolled. */
function greenWord(steps: Int32Array): number[] {
  const code = [...get(BASE), ...seededHash32, ...set(LT)];
  for (let i = 1; i < steps.length; i++) {
    // Step −1 (G's bit set): r | lt; step 0: r & lt.
    code.push(...get(BASE), ...i32(i), I32_OR, ...seededHash32, ...get(LT));
    code.push(...(steps[i] === -1 ? simd.or : simd.and), ...set(LT));
  }
  return code;
}

/** Loads a group's seeds: the seed address is at p + 0. */
const seedsAt = [
  ...get(P),
  ...loadI32(0),
  ...tee(SEED),
  ...load(0),
  ...set(LO),
  ...get(SEED),
  ...load(16),
  ...set(HI),
];

// `seed(tokens, count, key, out)`: locals i32 i; i64 v0, v1, v2, v3, m.
const I = 4;
const [V0, V1, V2, V3, M] = [5, 6, 7, 8, 9];
const I64_ADD = 0x7c;
const I64_XOR = 0x85;
const I64_OR = 0x84;
const I64_ROTL = 0x89;
const I64_SHR_U = 0x88;
const i64Load = (offset: number): number[] => [0x29, 0x03, ...wasm.leb(offset)];
const i32Store = (offset: number): number[] => [0x36, 0x02, ...wasm.leb(offset)];

/** a += b; b = rotl(b, r); b ^= a. */
const addRotateXor = (a: number, b: number, r: number): number[] => [
  ...[...get(a), ...get(b), I64_ADD, ...set(a)],
  ...[...get(b), ...i64(BigInt(r)), I64_ROTL, ...get(a), I64_XOR, ...set(b)],
];
const rotate32 = (x: number): number[] => [...get(x), ...i64(32n), I64_ROTL, ...set(x)];
const sipRound = [
  ...addRotateXor(V0, V1, 13),
  ...rotate32(V0),
  ...addRotateXor(V2, V3, 16),
  ...addRotateXor(V0, V3, 21),
  ...addRotateXor(V2, V1, 17),
  ...rotate32(V2),
];

/** SipHash-2-4 (siphash.ts) of each token as one 4-byte message: lows to out + 32 i, highs 16 bytes further. */
const seedBody = [
  ...[0x02, 0x01, 0x7f, 0x05, 0x7e], // locals: 1 i32, 5 i64
  ...[0x02, 0x40, 0x03, 0x40], // block, loop
  ...[...get(I), ...get(1), I32_GE_U, 0x0d, 0x01], // exit when i ≥ count
  // m = token | (4 << 56): the 4-byte message and its length.
  ...[
    ...get(0),
    ...get(I),
    ...i32(2),
    0x74,
    I32_ADD,
    ...loadI32(0),
    0xad,
    ...i64(4n << 56n),
    I64_OR,
    ...set(M),
  ],
  ...[...get(2), ...i64Load(0), ...i64(0x736f6d6570736575n), I64_XOR, ...set(V0)],
  ...[...get(2), ...i64Load(8), ...i64(0x646f72616e646f6dn), I64_XOR, ...set(V1)],
  ...[...get(2), ...i64Load(0), ...i64(0x6c7967656e657261n), I64_XOR, ...set(V2)],
  ...[...get(2), ...i64Load(8), ...i64(0x7465646279746573n), I64_XOR, ...get(M), I64_XOR, ...set(V3)],
  ...sipRound,
  ...sipRound,
  ...[...get(V0), ...get(M), I64_XOR, ...set(V0)],
  ...[...get(V2), ...i64(0xffn), I64_XOR, ...set(V2)],
  ...sipRound,
  ...sipRound,
  ...sipRound,
  ...sipRound,
  // h = v0 ^ v1 ^ v2 ^ v3, kept in M.
  ...[...get(V0), ...get(V1), I64_XOR, ...get(V2), I64_XOR, ...get(V3), I64_XOR, ...set(M)],
  ...[...get(3), ...get(I), ...i32(5), 0x74, I32_ADD, ...get(M), 0xa7, ...i32Store(0)],
  ...[
    ...get(3),
    ...get(I),
    ...i32(5),
    0x74,
    I32_ADD,
    ...get(M),
    ...i64(32n),
    I64_SHR_U,
    0xa7,
    ...i32Store(16),
  ],
  ...[...get(I), ...i32(1), I32_ADD, ...set(I), 0x0c, 0x00], // i += 1; loop
  ...[0x0b, 0x0b, 0x0b],
];

function moduleBytes(steps: Int32Array): Uint8Array {
  const word = greenWord(steps);
  const loopOver = (count: number, groupBytes: number, perGroup: number[]): number[] => [
    ...i32(0),
    ...set(J),
    ...[0x02, 0x40, 0x03, 0x40], // block, loop
    ...[...get(J), ...get(count), I32_GE_U, 0x0d, 0x01], // exit when j ≥ count
    ...[...get(count - 1), ...get(J), ...i32(groupBytes), I32_MUL, I32_ADD, ...set(P)],
    ...seedsAt,
    ...perGroup,
    ...[...get(J), ...i32(1), I32_ADD, ...set(J), 0x0c, 0x00], // j += 1; loop
    ...[0x0b, 0x0b],
  ];
  const singles = [
    ...[...get(P), ...loadI32(4), ...tee(T), ...i32(-32), I32_AND, ...set(BASE)],
    ...word,
    // The token's lane in its block: a v128 shift counts mod 32.
    ...[...get(LT), ...get(T), ...simd.shrU, ...splat(1), ...simd.and, ...get(ACC), ...simd.add, ...set(ACC)],
  ];
  const multis = [
    ...[...get(P), ...loadI32(4), ...set(BASE)],
    ...word,
    ...[...get(LT), ...get(P), ...loadI32(8), ...simd.splat, ...simd.and, ...POPCOUNT_SUM],
    ...[...get(ACC), ...simd.add, ...set(ACC)],
  ];
  const body = [
    ...[0x02, 0x05, 0x7f, 0x05, 0x7b], // locals: 5 i32, 5 v128
    ...loopOver(1, 8, singles),
    ...loopOver(3, 12, multis),
    ...[...i32(0), ...get(ACC), ...store(0), 0x0b],
  ];
  return new Uint8Array([
    ...MODULE_HEADER,
    ...section(1, [0x01, 0x60, 0x04, 0x7f, 0x7f, 0x7f, 0x7f, 0x00]), // (i32, i32, i32, i32) -> ()
    ...section(3, [0x02, 0x00, 0x00]), // sums, seed
    ...section(5, [0x01, 0x00, 0x01]), // one memory of one page (grown for the groups)
    ...section(7, [
      0x03,
      ...name('memory'),
      0x02,
      0x00,
      ...name('sums'),
      0x00,
      0x00,
      ...name('seed'),
      0x00,
      0x01,
    ]),
    ...section(10, [0x02, ...wasm.leb(body.length), ...body, ...wasm.leb(seedBody.length), ...seedBody]),
  ]);
}

type Entry = (tables: number, count: number, more: number, moreCount: number) => void;

interface SimdModule {
  memory: wasm.WasmMemory;
  sums: Entry;
  seed: Entry;
  /** The scorer whose tables and seeds are in memory. */
  loaded: SimdGroupScorer | undefined;
}

/** One module per comparison-step pattern (one per γ), compiled on first use; null where SIMD is missing. */
const modules = new Map<string, SimdModule | null>();

function moduleFor(steps: Int32Array): SimdModule | null {
  const key = steps.join(',');
  let found = modules.get(key);
  if (found === undefined) {
    const exports = wasm.wasmExports(moduleBytes(steps));
    found =
      exports === undefined
        ? null
        : {
            memory: exports.memory as wasm.WasmMemory,
            sums: exports.sums as Entry,
            seed: exports.seed as Entry,
            loaded: undefined,
          };
    modules.set(key, found);
  }
  return found;
}

/**
 * The SIMD scorer of one grouped tape: `seed` puts a key in a lane, `sums` scores the lanes. Scorers of one γ
 * share a module (one thread, one call at a time); a scorer's tables are copied in again after another's use.
 */
export class SimdGroupScorer {
  readonly #module: SimdModule;
  readonly #groups: GroupTables;
  readonly #singles: number;
  readonly #multis: number;
  readonly #seeds: number;
  readonly #singleTable: Int32Array;
  readonly #multiTable: Int32Array;

  /** The scorer of `groups`, or undefined where the runtime has no WebAssembly SIMD (JavaScript serves). */
  static create(groups: GroupTables, steps: Int32Array): SimdGroupScorer | undefined {
    const module = moduleFor(steps);
    return module === null ? undefined : new SimdGroupScorer(module, groups);
  }

  private constructor(module: SimdModule, groups: GroupTables) {
    this.#module = module;
    this.#groups = groups;
    const singleCount = groups.singleToken.length;
    const multiCount = groups.multiBase.length;
    this.#singles = CONTEXTS + 4 * groups.contexts.length;
    this.#multis = this.#singles + 8 * singleCount;
    this.#seeds = Math.ceil((this.#multis + 12 * multiCount) / 16) * 16;
    const seedAddress = (c: number) => this.#seeds + SEED_BYTES * c;
    this.#singleTable = new Int32Array(2 * singleCount);
    for (let g = 0; g < singleCount; g++) {
      this.#singleTable[2 * g] = seedAddress(groups.singleContext[g]);
      this.#singleTable[2 * g + 1] = groups.singleToken[g];
    }
    this.#multiTable = new Int32Array(3 * multiCount);
    for (let g = 0; g < multiCount; g++) {
      this.#multiTable[3 * g] = seedAddress(groups.multiContext[g]);
      this.#multiTable[3 * g + 1] = groups.multiBase[g];
      this.#multiTable[3 * g + 2] = groups.multiMask[g];
    }
  }

  #heap(): Int32Array {
    const module = this.#module;
    if (module.loaded !== this) {
      const missing =
        this.#seeds + SEED_BYTES * this.#groups.contexts.length - module.memory.buffer.byteLength;
      if (missing > 0) module.memory.grow(Math.ceil(missing / 65_536));
      const heap = new Int32Array(module.memory.buffer);
      heap.set(this.#groups.contexts, CONTEXTS / 4);
      heap.set(this.#singleTable, this.#singles / 4);
      heap.set(this.#multiTable, this.#multis / 4);
      module.loaded = this;
    }
    return new Int32Array(module.memory.buffer);
  }

  /**
   * Seeds lane `lane` (0 to 3) with `ContextPrf.seedTokens` of every context under the 16-byte SipHash key
   * `prfKey`; returns them in place (valid until this module's next scorer switch).
   */
  seed(lane: number, prfKey: Uint8Array): SeedTable {
    const heap = this.#heap();
    new Uint8Array(heap.buffer, KEY, 16).set(prfKey);
    this.#module.seed(CONTEXTS, this.#groups.contexts.length, KEY, this.#seeds + 4 * lane);
    return { lo: heap, hi: heap.subarray(SIMD_KEYS), offset: this.#seeds / 4 + lane, stride: SEED_BYTES / 4 };
  }

  /** The green positions under the keys of lanes 0 .. keys − 1 into out[0 .. keys − 1]. */
  sums(keys: number, out: Float64Array): void {
    if (this.#module.loaded !== this)
      throw new Error('SimdGroupScorer.sums: the lanes were seeded for another tape');
    const heap = this.#heap();
    this.#module.sums(this.#singles, this.#singleTable.length / 2, this.#multis, this.#multiTable.length / 3);
    for (let k = 0; k < keys; k++) out[k] = heap[k];
  }
}
