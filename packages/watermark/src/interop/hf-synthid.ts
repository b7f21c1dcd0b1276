/**
 * `hf-synthid`: SynthID-Text as Hugging Face transformers implements it (SynthIDTextWatermarkLogitsProcessor
 * in src/transformers/generation/logits_process.py), bit for bit on CPU.
 *
 * The hash of an n-gram starts from 1 and runs accumulate_hash over the ngram_len − 1 context tokens, the
 * token, and then one key per layer; layer l's g-value is sampling_table[key_l mod table_size], where the
 * table is `torch.randint(0, 2, (sampling_table_size,))` from a CPU generator seeded with
 * sampling_table_seed. Generation applies the tournament update to the whole vocabulary, on the model's
 * scores before temperature and top-k (the processor runs before the warpers).
 *
 * Two differences in generation, both outside what detection sees: transformers' processor starts its
 * context from zeros and only ever shifts in generated tokens, so its first ngram_len − 1 steps are seeded by
 * zero-padded contexts, while here every step is seeded by the last ngram_len − 1 tokens of the sequence so
 * far, prompt included; and it skips the watermark when the context hash is among the last
 * context_history_size ones, while GenerationSession remembers every context hash of the sequence (through
 * contextKey, the same 64-bit hash). Every other step applies the same update to the same g-values, in
 * float64 where torch uses float32 (tournamentUpdate's float32 mode reproduces torch on short rows).
 */
import { lcgStep, R64, signedMod, twoPow64Mod } from './int64';
import { SynthIdInteropBase, type SynthIdInteropSpec } from './synthid-common';
import { TorchGenerator } from './torch-random';

const LCG_LO = 0x4c957f2d;

const tables = new Map<string, Uint8Array>();

/** SynthIDTextWatermarkLogitsProcessor.sampling_table: randint(0, 2, (size,)) seeded with the table seed. */
export function hfSynthIdSamplingTable(size: number, seed: number | string | bigint): Uint8Array {
  const id = `${size}:${seed}`;
  let table = tables.get(id);
  if (table === undefined) {
    table = Uint8Array.from(new TorchGenerator(BigInt(seed)).randint(0, 2, size));
    if (tables.size >= 8) tables.delete(tables.keys().next().value as string);
    tables.set(id, table);
  }
  return table;
}

export class HfSynthIdScheme extends SynthIdInteropBase {
  /** torch.finfo(float32).min, which update_scores puts where log p = −∞. */
  protected readonly logFloor = -3.4028234663852886e38;
  readonly table: Uint8Array;
  /** Mean of the table: P[g = 1] for a uniformly random key. */
  readonly tableMean: number;
  readonly #tableSize: number;
  /** A power-of-two table reads only the low bits of a key, so the low words suffice (Math.imul). */
  readonly #lowMask: number;
  readonly #twoPow64Mod: number;

  constructor(spec: SynthIdInteropSpec) {
    const table = hfSynthIdSamplingTable(spec.samplingTableSize, spec.samplingTableSeed);
    let ones = 0;
    for (const g of table) ones += g;
    const tableMean = ones / table.length;
    // Detection p-values use the table's actual mean, not ½: a key lands on a uniform table slot under H0.
    super(spec, { kind: 'binomial', trials: spec.keys.length, p: tableMean });
    this.table = table;
    this.tableMean = tableMean;
    this.#tableSize = spec.samplingTableSize;
    const size = this.#tableSize;
    this.#lowMask = (size & (size - 1)) === 0 ? size - 1 : -1;
    this.#twoPow64Mod = twoPow64Mod(size);
  }

  gValuesOf(ctxHi: number, ctxLo: number, token: number, out: Uint8Array, at: number, stride: number): void {
    const table = this.table;
    const depth = this.depth;
    const keysLo = this.keysLo;
    if (this.#lowMask !== -1) {
      // Low 32 bits of (h + d)·M + 1 depend only on the low 32 bits of h and d.
      const h1 = (Math.imul((ctxLo + token) | 0, LCG_LO) + 1) | 0;
      const mask = this.#lowMask;
      for (let l = 0; l < depth; l++) {
        const key = (Math.imul((h1 + keysLo[l]) | 0, LCG_LO) + 1) | 0;
        out[at + l * stride] = table[key & mask];
      }
      return;
    }
    lcgStep(ctxHi, ctxLo, 0, token);
    const hi = R64[1];
    const lo = R64[0];
    for (let l = 0; l < depth; l++) {
      lcgStep(hi, lo, this.keysHi[l], keysLo[l]);
      out[at + l * stride] = table[signedMod(R64[1], R64[0], this.#tableSize, this.#twoPow64Mod)];
    }
  }

  /** The processor's __call__: tournament update of the full-vocabulary scores, in place (log-probabilities). */
  biasLogits(
    sequence: ArrayLike<number>,
    logits: Float32Array,
    ids: Int32Array | null = null,
    count = logits.length,
  ): void {
    logits.set(this.updatedScores(sequence, logits, ids, count).subarray(0, count));
  }

  choose(
    _sequence: ArrayLike<number>,
    logits: Float32Array,
    ids: Int32Array | null,
    count: number,
    uniform: () => number,
  ): number {
    return this.sample(logits, ids, count, uniform);
  }
}
