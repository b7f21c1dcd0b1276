/**
 * `synthid-text`: google-deepmind/synthid-text (src/synthid_text/logits_processing.py, hashing_function.py),
 * the 2025 version without a sampling table, bit for bit.
 *
 * The initial hash is SHA-256 of the keys (as little-endian int64 bytes, numpy's tobytes), read big-endian,
 * mod 2^63 − 1 (SynthIDLogitsProcessor.__init__). An n-gram's per-layer key is accumulate_hash over the
 * context, the token and the layer key, as in transformers; its g-value comes from get_gvals: 12 rounds of
 * key ← accumulate_hash(key, [1]) >> 5 (arithmetic shift of the int64), then bit 30 of the result. Under H0
 * each g-value is a fair bit, so the null law is Binomial(depth, ½).
 *
 * Generation follows watermarked_call: the tournament update runs on the candidates after temperature and
 * top-k (here, the sampler's candidate set) and the next token is drawn from the updated distribution.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { lcgStep, R64, sar64, wordsOf } from './int64';
import { SynthIdInteropBase, type SynthIdInteropSpec } from './synthid-common';

/** get_gvals: num_apply_hash = 12 and shift = 64 // 12 = 5. */
const GVAL_ROUNDS = 12;
const GVAL_SHIFT = 5;
const INT64_MAX = (1n << 63n) - 1n;

/** SynthIDLogitsProcessor.hash_iv: int.from_bytes(sha256(keys as int64 LE), "big") % (2^63 − 1). */
export function synthIdTextHashIv(keys: readonly (number | string | bigint)[]): bigint {
  const bytes = new Uint8Array(8 * keys.length);
  const view = new DataView(bytes.buffer);
  keys.forEach((key, i) => {
    view.setBigInt64(8 * i, BigInt.asIntN(64, BigInt(key)), true);
  });
  const digest = sha256(bytes);
  let value = 0n;
  for (const byte of digest) value = (value << 8n) | BigInt(byte);
  return value % INT64_MAX;
}

export class SynthIdTextScheme extends SynthIdInteropBase {
  /** update_scores puts −1e12 where log p = −∞. */
  protected readonly logFloor = -1e12;
  readonly hashIv: bigint;

  constructor(spec: SynthIdInteropSpec) {
    super(spec, { kind: 'binomial', trials: spec.keys.length, p: 0.5 });
    this.hashIv = synthIdTextHashIv(spec.keys);
    const { hi, lo } = wordsOf(this.hashIv);
    this.initHi = hi;
    this.initLo = lo;
  }

  gValuesOf(ctxHi: number, ctxLo: number, token: number, out: Uint8Array, at: number, stride: number): void {
    lcgStep(ctxHi, ctxLo, 0, token);
    const tokenHi = R64[1];
    const tokenLo = R64[0];
    for (let l = 0; l < this.depth; l++) {
      lcgStep(tokenHi, tokenLo, this.keysHi[l], this.keysLo[l]);
      for (let round = 0; round < GVAL_ROUNDS; round++) {
        lcgStep(R64[1], R64[0], 0, 1);
        sar64(R64[1], R64[0], GVAL_SHIFT);
      }
      out[at + l * stride] = (R64[0] >>> 30) & 1;
    }
  }

  /** watermarked_call on the sampler's candidates, then a draw from the updated distribution. */
  choose(
    sequence: ArrayLike<number>,
    logits: Float32Array,
    ids: Int32Array | null,
    count: number,
    uniform: () => number,
  ): number {
    return this.sample(this.updatedScores(sequence, logits, ids, count), ids, count, uniform);
  }
}
