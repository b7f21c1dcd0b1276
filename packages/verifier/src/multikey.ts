import { availableParallelism } from 'node:os';
import type { MasterKey, Scheme } from '@tracemark/watermark';
import * as watermark from '@tracemark/watermark';
import { fail } from './errors';
import type { CountedTape } from './tape';
import { createWorkerPool, stopWorkerPool } from './workers';

/**
 * Score sums of one key-independent tape under many keys (tenants of one or more master keys): the work of
 * attribution and of the negative controls.
 *
 * The tape is first put in (context, token) order, which changes no sum. With `threads` > 1 the keys are split
 * over the worker pool (`createWorkerPool`), whose workers run this module's `scoreBatch` on the shared tape.
 *
 * Every key is scored with its scheme's own `score`, except KGW with one token of context (the default spec),
 * where the sorted tape lets each context's seed be taken once and its tokens' green bits be drawn straight from
 * it, as the scheme draws them (KgwScheme's bit-sliced [U < G] over `seededHash32` words). That path checks
 * itself against `scheme.score` (at every position for the first key, at 64 for each other key) and falls back
 * to `score` on any difference.
 */
export interface KeyRequest {
  /** Index into the master keys. */
  master: number;
  tenant?: string;
}

export interface MultiKeyOptions {
  /** Worker threads (default: the machine's parallelism when the work is large enough, else none). */
  threads?: number;
}

/** Below this many scored positions × keys, starting threads costs more than it saves. */
const THREAD_THRESHOLD = 20_000_000;

export interface Job {
  ids: Uint32Array;
  stride: number;
  contextWidth: number;
  spec: unknown;
  masters: string[];
  requests: KeyRequest[];
}

export async function scoreKeys(
  tape: CountedTape,
  spec: unknown,
  masters: MasterKey[],
  requests: KeyRequest[],
  options: MultiKeyOptions = {},
): Promise<{ sums: number[]; threads: number }> {
  if (!tape.keyIndependent) throw new Error('scoreKeys needs a key-independent tape');
  const parsed = watermark.parseSpec(spec);
  const ids = localityOrder(tape.ids, tape.stride);
  for (let i = 0; i < ids.length; i++) {
    if (ids[i] >= parsed.vocabSize) {
      fail(
        'E_TOKEN_RANGE',
        `token id ${ids[i]} is outside the scheme's vocabulary (vocabSize ${parsed.vocabSize})`,
      );
    }
  }
  const work = tape.length * requests.length;
  const threads = Math.max(
    1,
    Math.min(requests.length, options.threads ?? (work >= THREAD_THRESHOLD ? availableParallelism() : 1)),
  );
  const job = (part: KeyRequest[], shared: Uint32Array): Job => ({
    ids: shared,
    stride: tape.stride,
    contextWidth: tape.contextWidth,
    spec: parsed,
    masters: masters.map((m) => m.exportHex()),
    requests: part,
  });
  if (threads > 1) {
    const shared = new Uint32Array(new SharedArrayBuffer(ids.byteLength));
    shared.set(ids);
    const share = Math.ceil(requests.length / threads);
    const parts = Array.from({ length: threads }, (_, t) => requests.slice(t * share, (t + 1) * share));
    const pool = createWorkerPool('@tracemark/verifier/multikey-worker', import.meta.url, { threads });
    try {
      const sums = await Promise.all(
        parts.filter((p) => p.length > 0).map((p) => pool.run(job(p, shared)) as Promise<number[]>),
      );
      return { sums: sums.flat(), threads };
    } finally {
      await stopWorkerPool(pool);
    }
  }
  return { sums: scoreBatch(job(requests, ids)), threads: 1 };
}

/** One key's score sum over a flat tape with the scheme's own `score`. */
export function scoreTape(ids: Uint32Array, stride: number, contextWidth: number, scheme: Scheme): number {
  let sum = 0;
  for (let index = contextWidth; index < ids.length; index += stride) sum += scheme.score(ids, index);
  return sum;
}

/** Scores every request of a job (in this thread, or in a worker of the pool). */
export function scoreBatch(job: Job): number[] {
  const api = watermark;
  const { ids, stride, contextWidth, requests } = job;
  const spec = api.parseSpec(job.spec) as watermark.SchemeSpec & { gamma?: number; hashing?: string };
  const keys = job.masters.map((hex) => api.MasterKey.parse(hex));
  const count = ids.length / stride;
  // KGW with h = 1 (LeftHash and MinHash agree there): per-context seeds over the sorted tape.
  let grouped = spec.scheme === 'kgw' && contextWidth === 1 && spec.hashing !== 'self' && count > 0;
  const starts: number[] = [];
  const bits: boolean[] = [];
  let canonical = '';
  if (grouped) {
    for (let j = 0; j < count; j++) if (j === 0 || ids[2 * j] !== ids[2 * j - 2]) starts.push(j);
    starts.push(count);
    // KgwScheme: G = round(γ · 2^16) clamped to [1, 2^16 − 1]; [U < G] from G's bits, lowest set bit first.
    const g = Math.max(1, Math.min(65_535, Math.round((spec.gamma as number) * 65_536)));
    let i = 0;
    while (((g >>> i) & 1) === 0) i++;
    for (; i < 16; i++) bits.push(((g >>> i) & 1) === 1);
    canonical = api.canonicalSpec(spec);
  }
  const greenBit = (lo: number, hi: number, token: number): number => {
    const base = (token >>> 5) << 5;
    let lt = 0;
    for (let i = 0; i < bits.length; i++) {
      const r = api.seededHash32(lo, hi, base | i);
      lt = bits[i] ? r | lt : r & lt;
    }
    return (lt >>> (token & 31)) & 1;
  };
  const sums: number[] = [];
  for (const request of requests) {
    const options = request.tenant === undefined ? {} : { tenant: request.tenant };
    const scheme = api.createScheme(spec, keys[request.master], options);
    let sum = 0;
    if (grouped) {
      const prf = new api.ContextPrf(
        new api.SchemeKey(keys[request.master], canonical, request.tenant),
        spec.vocabSize,
        1,
        spec.hashing === 'min' ? 'min' : 'left',
      );
      // The check: every position for the first key of the batch, then 64 spread over the tape per key, must
      // score as the scheme scores them.
      const checks = sums.length === 0 ? count : Math.min(64, count);
      for (let c = 0; c < checks && grouped; c++) {
        const j = checks === count ? c : Math.floor((c * count) / checks);
        prf.seed(ids, 2 * j + 1);
        if (greenBit(prf.lo, prf.hi, ids[2 * j + 1]) !== scheme.score(ids, 2 * j + 1)) grouped = false;
      }
      if (grouped) {
        for (let g = 0; g + 1 < starts.length; g++) {
          prf.seed(ids, 2 * starts[g] + 1);
          const lo = prf.lo;
          const hi = prf.hi;
          for (let j = starts[g]; j < starts[g + 1]; j++) sum += greenBit(lo, hi, ids[2 * j + 1]);
        }
        sums.push(sum);
        continue;
      }
    }
    for (let index = contextWidth; index < ids.length; index += stride) sum += scheme.score(ids, index);
    sums.push(sum);
  }
  return sums;
}

/**
 * For h = 1 the tape sorted by (context, token): a score sum does not depend on the order, and positions that
 * share a context are then next to each other (one seed per context, and no jumps through the seed cache).
 */
function localityOrder(ids: Uint32Array, stride: number): Uint32Array {
  if (stride !== 2) return ids;
  const count = ids.length / 2;
  const keys = new Float64Array(count);
  for (let j = 0; j < count; j++) keys[j] = ids[2 * j] * 16_777_216 + ids[2 * j + 1]; // ids < 2^24
  keys.sort();
  const out = new Uint32Array(ids.length);
  for (let j = 0; j < count; j++) {
    const context = Math.floor(keys[j] / 16_777_216);
    out[2 * j] = context;
    out[2 * j + 1] = keys[j] - context * 16_777_216;
  }
  return out;
}
