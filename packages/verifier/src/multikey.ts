import { availableParallelism } from 'node:os';
import {
  ContextPrf,
  canonicalSpec,
  createScheme,
  kgwComparisonBits,
  MasterKey,
  parseSpec,
  type Scheme,
  SchemeKey,
  type SchemeSpec,
  seededHash32,
} from '@tracemark/watermark';
import { popCount } from './attribution';
import { fail } from './errors';
import { type SeedTable, SIMD_KEYS, SimdGroupScorer } from './multikey-simd';
import { type CountedTape, scorePositions } from './tape';
import { createWorkerPool, stopWorkerPool } from './workers';

/**
 * Score sums of one key-independent tape under many keys (tenants of one or more master keys): the work of
 * attribution and of the negative controls.
 *
 * The tape is first put in (context, token) order, which changes no sum. With `threads` > 1 the keys are split
 * over the worker pool (`createWorkerPool`), whose workers run this module's `scoreBatch` on the shared tape.
 *
 * Every key is scored with its scheme's own `score`, except KGW with one token of context (the default spec). There
 * the sorted tape becomes key-independent groups, one per (context, 32-token block); each key then costs one
 * SipHash per distinct context (`ContextPrf.seedTokens`) and one green word per group (KgwScheme's bit-sliced
 * [U < G] over `seededHash32` words), four keys per pass in WebAssembly SIMD, SipHash included (multikey-simd.ts),
 * where the runtime has it, else two per pass in JavaScript. That path checks itself against the scheme's scores (at
 * every position and in sum for the first key, at 64 positions for each other key) and falls back to `score` from
 * the first key that differs.
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
  const parsed = parseSpec(spec);
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

/**
 * Scores every request of a job (in this thread, or in a worker of the pool). `simd: false` keeps the grouped path
 * in JavaScript (the reference of the WebAssembly SIMD one, which serves by default where the runtime has it).
 */
export function scoreBatch(job: Job, options: { simd?: boolean } = {}): number[] {
  const { ids, stride, contextWidth, requests } = job;
  const spec = parseSpec(job.spec) as SchemeSpec & { gamma?: number; hashing?: string };
  const keys = job.masters.map((hex) => MasterKey.parse(hex));
  const count = ids.length / stride;
  const schemeOf = (request: KeyRequest) =>
    createScheme(spec, keys[request.master], request.tenant === undefined ? {} : { tenant: request.tenant });
  const sums = new Array<number>(requests.length);
  // KGW with h = 1 (LeftHash and MinHash agree there): one seed per context and one green word per (context,
  // block) on the sorted tape.
  let grouped = spec.scheme === 'kgw' && contextWidth === 1 && spec.hashing !== 'self' && count > 0;
  let done = 0;
  if (grouped) {
    const groups = contextGroups(ids);
    const steps = comparisonSteps(kgwComparisonBits(spec.gamma as number));
    const canonical = canonicalSpec(spec);
    const contexts = groups.contexts.length;
    // Every context token is a valid id (the JavaScript seeding reports one that is not).
    let inRange = true;
    for (const token of groups.contexts) if (token >= spec.vocabSize) inRange = false;
    const simd = options.simd === false || !inRange ? undefined : SimdGroupScorer.create(groups, steps);
    // Four keys per pass in SIMD lanes; two in JavaScript, whose two independent hash chains keep the core busy.
    const width = simd === undefined ? 2 : SIMD_KEYS;
    // The JavaScript path's seeds (the SIMD path's stay in the module's memory).
    const seeds = Array.from({ length: simd === undefined ? width : 0 }, () => ({
      lo: new Int32Array(contexts),
      hi: new Int32Array(contexts),
    }));
    const seedTables = seeds.map((s): SeedTable => ({ ...s, offset: 0, stride: 1 }));
    const out = new Float64Array(width);
    for (; done < requests.length && grouped; done += width) {
      const batch = requests.slice(done, done + width);
      const schemes = batch.map(schemeOf);
      let firstKeySum = 0;
      for (const [k, request] of batch.entries()) {
        const key = new SchemeKey(keys[request.master], canonical, request.tenant);
        if (simd !== undefined) seedTables[k] = simd.seed(k, key.prfKeyBytes());
        else {
          const hashing = spec.hashing === 'min' ? 'min' : 'left';
          new ContextPrf(key, spec.vocabSize, 1, hashing).seedTokens(
            groups.contexts,
            seeds[k].lo,
            seeds[k].hi,
          );
        }
        // The check: every position for the first key of the job, 64 spread over the tape for each other key,
        // must score as the scheme scores them (which checks the seeds).
        const first = done === 0 && k === 0;
        const checked = checkedSum(
          ids,
          groups,
          seedTables[k],
          steps,
          schemes[k],
          first ? count : Math.min(64, count),
        );
        if (checked === null) grouped = false;
        else if (first) firstKeySum = checked;
      }
      if (!grouped) break;
      if (simd !== undefined) simd.sums(batch.length, out);
      else keyPairSums(groups, steps, seeds[0], batch.length === 2 ? seeds[1] : seeds[0], out);
      // And the first key's grouped sum must be the sum of its scores (which checks the grouping and the SIMD
      // words).
      if (done === 0 && out[0] !== firstKeySum) {
        grouped = false;
        break;
      }
      for (let k = 0; k < batch.length; k++) sums[done + k] = out[k];
    }
  }
  for (let r = done; r < requests.length; r++)
    sums[r] = scoreTape(ids, stride, contextWidth, schemeOf(requests[r]));
  return sums;
}

/**
 * The sorted h = 1 tape as groups, one per (context, 32-token block), key-independent: groups of one token
 * (nearly all, for a large vocabulary) keep the token, the others the block's base and the mask of their tokens.
 * Each group keeps the index of its context in `contexts`; both lists run in context order.
 */
interface ContextGroups {
  /** The distinct contexts (one token each), in tape order. */
  contexts: Uint32Array;
  singleContext: Int32Array;
  singleToken: Int32Array;
  multiContext: Int32Array;
  multiBase: Int32Array;
  multiMask: Int32Array;
  /** Tape position j is in context `positionContext[j]`. */
  positionContext: Int32Array;
}

/** Groups of a flat (context, token) tape sorted by context, then token. */
function contextGroups(ids: Uint32Array): ContextGroups {
  const count = ids.length / 2;
  const positionContext = new Int32Array(count);
  // Group g is tape positions [starts[g], starts[g + 1]).
  const starts = new Int32Array(count + 1);
  let groups = 0;
  let contexts = 0;
  let mask = 0;
  for (let j = 0; j < count; j++) {
    const t = ids[2 * j + 1];
    const newContext = j === 0 || ids[2 * j] !== ids[2 * j - 2];
    if (newContext) contexts++;
    positionContext[j] = contexts - 1;
    // A repeated (context, token) (a tape without pair de-duplication) starts a group of its own.
    if (newContext || t >>> 5 !== ids[2 * j - 1] >>> 5 || ((mask >>> t) & 1) === 1) {
      starts[groups++] = j;
      mask = 0;
    }
    mask |= 1 << (t & 31);
  }
  starts[groups] = count;
  let singles = 0;
  for (let g = 0; g < groups; g++) if (starts[g + 1] - starts[g] === 1) singles++;
  const contextTokens = new Uint32Array(contexts);
  for (let j = 0; j < count; j++) contextTokens[positionContext[j]] = ids[2 * j];
  const singleContext = new Int32Array(singles);
  const singleToken = new Int32Array(singles);
  const multiContext = new Int32Array(groups - singles);
  const multiBase = new Int32Array(groups - singles);
  const multiMask = new Int32Array(groups - singles);
  let single = 0;
  let multi = 0;
  for (let g = 0; g < groups; g++) {
    const first = starts[g];
    if (starts[g + 1] - first === 1) {
      singleContext[single] = positionContext[first];
      singleToken[single++] = ids[2 * first + 1];
      continue;
    }
    let blockMask = 0;
    for (let j = first; j < starts[g + 1]; j++) blockMask |= 1 << (ids[2 * j + 1] & 31);
    multiContext[multi] = positionContext[first];
    multiBase[multi] = ids[2 * first + 1] & ~31;
    multiMask[multi++] = blockMask;
  }
  return {
    contexts: contextTokens,
    singleContext,
    singleToken,
    multiContext,
    multiBase,
    multiMask,
    positionContext,
  };
}

/**
 * KgwScheme's comparison bits as branch-free steps: its [U < G] runs lt ← g_i ? (r_i | lt) : (r_i & lt) from G's
 * lowest set bit up, written lt ← (r_i & lt) | (step_i & (r_i | lt)) with step_i = −1 where g_i is set, else 0.
 */
function comparisonSteps(bits: Uint8Array): Int32Array {
  return Int32Array.from(bits, (bit) => -bit);
}

/**
 * KgwScheme's green word of the 32-token block at `base` under the seed (lo, hi), from `seededHash32` and the steps:
 * bit j is token base + j. Written apart from the scheme's own, so that the self-check compares two derivations.
 */
function greenWord(lo: number, hi: number, base: number, steps: Int32Array): number {
  // The first step is at G's lowest set bit: r_0 | 0.
  let lt = seededHash32(lo, hi, base);
  for (let i = 1; i < steps.length; i++) lt = comparisonStep(lt, seededHash32(lo, hi, base | i), steps[i]);
  return lt;
}

/** One step of the bit-sliced [U < G] on the random word r: r | lt where G's bit is set (step −1), else r & lt. */
function comparisonStep(lt: number, r: number, step: number): number {
  return (r & lt) | (step & (r | lt));
}

interface Seeds {
  lo: Int32Array;
  hi: Int32Array;
}

/** Green positions of the grouped tape for two keys (seeds per context `a`, `b`) into out[0], out[1]. */
function keyPairSums(groups: ContextGroups, steps: Int32Array, a: Seeds, b: Seeds, out: Float64Array): void {
  const { singleContext, singleToken, multiContext, multiBase, multiMask } = groups;
  const { lo: aLo, hi: aHi } = a;
  const { lo: bLo, hi: bHi } = b;
  let sumA = 0;
  let sumB = 0;
  // The two keys' words are drawn in the same step loop: two independent hash chains keep the core busy.
  for (let g = 0; g < singleToken.length; g++) {
    const c = singleContext[g];
    const t = singleToken[g];
    const base = t & ~31;
    const aSeedLo = aLo[c];
    const aSeedHi = aHi[c];
    const bSeedLo = bLo[c];
    const bSeedHi = bHi[c];
    let ltA = seededHash32(aSeedLo, aSeedHi, base);
    let ltB = seededHash32(bSeedLo, bSeedHi, base);
    for (let i = 1; i < steps.length; i++) {
      ltA = comparisonStep(ltA, seededHash32(aSeedLo, aSeedHi, base | i), steps[i]);
      ltB = comparisonStep(ltB, seededHash32(bSeedLo, bSeedHi, base | i), steps[i]);
    }
    // `>>> t` shifts by t mod 32: the token's lane in its block.
    sumA += (ltA >>> t) & 1;
    sumB += (ltB >>> t) & 1;
  }
  for (let g = 0; g < multiBase.length; g++) {
    const c = multiContext[g];
    const base = multiBase[g];
    const mask = multiMask[g];
    sumA += popCount(greenWord(aLo[c], aHi[c], base, steps) & mask);
    sumB += popCount(greenWord(bLo[c], bHi[c], base, steps) & mask);
  }
  out[0] = sumA;
  out[1] = sumB;
}

/**
 * The scheme's score sum over `checks` positions spread over the tape (all of them when `checks` is the tape's
 * length), or null where a position's green bit under these seeds is not the scheme's score.
 */
function checkedSum(
  ids: Uint32Array,
  groups: ContextGroups,
  seeds: SeedTable,
  steps: Int32Array,
  scheme: Scheme,
  checks: number,
): number | null {
  const count = groups.positionContext.length;
  const positions = new Int32Array(checks);
  for (let k = 0; k < checks; k++) positions[k] = 2 * Math.floor((k * count) / checks) + 1;
  const scores = new Float64Array(checks);
  scorePositions(scheme, ids, positions, checks, scores);
  let sum = 0;
  for (let k = 0; k < checks; k++) {
    const c = groups.positionContext[(positions[k] - 1) / 2];
    const t = ids[positions[k]];
    const at = seeds.offset + seeds.stride * c;
    if (((greenWord(seeds.lo[at], seeds.hi[at], t & ~31, steps) >>> t) & 1) !== scores[k]) return null;
    sum += scores[k];
  }
  return sum;
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
