import { availableParallelism } from 'node:os';
import {
  ACCOUNT_LAYER_GAMMA,
  accountLayerKey,
  type ContextPrf,
  checkAccountId,
  createScheme,
  type KgwScheme,
  type MasterKey,
  parseSpec,
} from '@tracemark/watermark';
import { fail } from './errors';
import { schemeIdentity, type TestResult, testResult } from './result';
import { binomialUpperTail, holmAdjustLog10 } from './stats/index';
import { CountedTape, type SkipCounts, type SuspectSample } from './tape';
import { createWorkerPool, stopWorkerPool } from './workers';

/**
 * Attribution of a dataset (leaked prompt/response pairs) under the key hierarchy of a layered KGW spec
 * (`accountDelta` > 0; watermark's account-layer.ts, docs/design.md "Key hierarchy"):
 *  - the organisation layer's test of the whole set: the ordinary KGW test under the organisation key;
 *  - for every candidate account, the count of tape positions green for its account layer. The tape is the
 *    organisation test's counted tape (each (window, token) once, prompt windows dropped), so N distinct PRF
 *    inputs give Binomial(N, 1/2) under H0 for an account that wrote none of it, whoever wrote the rest;
 *    the p-values are exact, and Holm's step-down (Holm 1979) corrects them over every candidate.
 *
 * Cost: positions that share a window and a 32-token block share one green word, so the tape becomes groups
 * (layer seed, block, mask of the block's tokens) and each (group, account) costs one inlined `seededHash32` and
 * a popcount, in tiles that keep the accounts' codes and sums in cache; accounts are split over worker threads.
 */

/** Groups per tile: the tile's four arrays (64 KiB) and the accounts' codes and sums stay in cache together. */
const TILE = 4096;
/** Below this many (group, account) pairs, worker threads cost more than they save. */
const THREAD_THRESHOLD = 50_000_000;

/**
 * The grouped tape: each group is one (layer seed, 32-token block) with the tokens of the block it counts. Groups
 * of one token (nearly all, for a large vocabulary) come first and keep the token's bit; the rest keep a mask.
 */
export interface AccountGroups {
  /** 32 · block XOR the seed's low word: the first input of the layer's green word, less the account's code. */
  key: Int32Array;
  /** The seed's high word. */
  hi: Int32Array;
  /** Groups [0, singles): the token's bit in its block; groups [singles, n): the mask of the block's tokens. */
  bits: Int32Array;
  singles: number;
}

/**
 * Sums over the groups of the green tokens of accounts [from, to) (codes (lo, hi) at [2a, 2a + 1]) into
 * `sums[a]`. The hot loop of attribution: `accountGreenWord` (seededHash32 and its two lowbias32 rounds) written
 * out, as checked against it in the tests; tiles of groups keep the accounts' codes and sums in cache.
 */
export function accountSums(
  groups: AccountGroups,
  codes: Int32Array,
  from: number,
  to: number,
  sums: Float64Array,
): void {
  const { key, hi, bits, singles } = groups;
  const count = key.length;
  for (let start = 0; start < count; start += TILE) {
    const end = Math.min(count, start + TILE);
    const split = Math.max(start, Math.min(end, singles));
    // Two accounts per pass over the tile's single-token groups: two independent hash chains keep the core busy
    // (about a quarter faster than one). An odd last account is paired with itself and counted once.
    for (let a = from; a < to; a += 2) {
      const b = a + 1 < to ? a + 1 : a;
      const aLo = codes[2 * a];
      const aHi = codes[2 * a + 1];
      const bLo = codes[2 * b];
      const bHi = codes[2 * b + 1];
      let sumA = 0;
      let sumB = 0;
      for (let g = start; g < split; g++) {
        const k = key[g];
        const h = hi[g];
        const bit = bits[g];
        let x = k ^ aLo;
        let y = k ^ bLo;
        x ^= x >>> 16;
        y ^= y >>> 16;
        x = Math.imul(x, 0x7feb352d);
        y = Math.imul(y, 0x7feb352d);
        x ^= x >>> 15;
        y ^= y >>> 15;
        x = Math.imul(x, 0x846ca68b);
        y = Math.imul(y, 0x846ca68b);
        x ^= x >>> 16;
        y ^= y >>> 16;
        x = (x + (h ^ aHi)) | 0;
        y = (y + (h ^ bHi)) | 0;
        x ^= x >>> 16;
        y ^= y >>> 16;
        x = Math.imul(x, 0x7feb352d);
        y = Math.imul(y, 0x7feb352d);
        x ^= x >>> 15;
        y ^= y >>> 15;
        x = Math.imul(x, 0x846ca68b);
        y = Math.imul(y, 0x846ca68b);
        x ^= x >>> 16;
        y ^= y >>> 16;
        sumA += (x >>> bit) & 1;
        sumB += (y >>> bit) & 1;
      }
      sums[a] += sumA + multiSum(groups, split, end, aLo, aHi);
      if (b !== a) sums[b] += sumB + multiSum(groups, split, end, bLo, bHi);
    }
  }
}

/** The green tokens of groups [from, to), each with a mask of several tokens, for one account's code. */
function multiSum(groups: AccountGroups, from: number, to: number, codeLo: number, codeHi: number): number {
  const { key, hi, bits } = groups;
  let sum = 0;
  for (let g = from; g < to; g++) {
    let x = key[g] ^ codeLo;
    x ^= x >>> 16;
    x = Math.imul(x, 0x7feb352d);
    x ^= x >>> 15;
    x = Math.imul(x, 0x846ca68b);
    x ^= x >>> 16;
    x = (x + (hi[g] ^ codeHi)) | 0;
    x ^= x >>> 16;
    x = Math.imul(x, 0x7feb352d);
    x ^= x >>> 15;
    x = Math.imul(x, 0x846ca68b);
    x ^= x >>> 16;
    sum += popCount(x & bits[g]); // the green tokens present in the block
  }
  return sum;
}

/** The number of set bits of a 32-bit word (SWAR: JavaScript has no popcount instruction). */
export function popCount(v: number): number {
  v -= (v >>> 1) & 0x55555555;
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24;
}

export interface AttributionOptions {
  /** The layered KGW spec (`accountDelta` > 0) the outputs were written with. */
  spec: unknown;
  master: MasterKey;
  /** The tenant whose organisation key signed the outputs, if the provider uses tenants. */
  tenant?: string;
  /** Candidate account ids (distinct), or the same prepared once by `prepareAccounts` for many datasets. */
  accounts: readonly string[] | PreparedAccounts;
  /** Adjusted p-value at or below which an account is reported as attributed. Default 1e-3. */
  alpha?: number;
  /** Worker threads for the account scores (default: the machine's parallelism for large jobs). */
  threads?: number;
  /** A sample's own p-value for an attributed account at or below which the sample counts as the account's. Default 0.01. */
  sampleAlpha?: number;
}

export interface AccountAttribution {
  id: string;
  /** Green positions for the account's layer, out of the tape's `scored`. */
  green: number;
  pValue: number;
  log10PValue: number;
  /** Holm-adjusted over every candidate. */
  adjustedPValue: number;
  log10AdjustedPValue: number;
  attributed: boolean;
  /**
   * Attributed accounts: the samples whose own test for the account gives p ≤ `sampleAlpha` (a description of
   * where the evidence sits, not a test of its own); null for the others.
   */
  samples: number | null;
}

export interface AttributionResult {
  /** The organisation layer's test of the whole set. */
  organisation: TestResult;
  /** Every candidate, by adjusted p-value (then raw p-value, then id). */
  accounts: AccountAttribution[];
  /** The ids at adjusted p ≤ alpha. */
  attributed: string[];
  correction: 'holm';
  alpha: number;
  /** A sample counts towards an attributed account when its own test gives p ≤ this. */
  sampleAlpha: number;
  candidates: number;
  samples: number;
  /** Distinct (window, token) inputs scored: the N of every account's Binomial(N, 1/2). */
  scored: number;
  skipped: SkipCounts;
  /** Groups of (window, block) scored per account. */
  groups: number;
  threads: number;
  timings: { tapeMs: number; scoreMs: number };
}

/** Candidate accounts checked once and their layer codes, for a spec, key and tenant. */
export interface PreparedAccounts {
  ids: readonly string[];
  /** Account a's 64-bit code at [2a, 2a + 1]. */
  codes: Int32Array;
  /** The layer key's fingerprint (no secret), so that codes are never used with another key. */
  layerFingerprint: string;
}

/** Checks the candidate ids (valid, distinct, at least one) and derives their codes. */
export function prepareAccounts(
  spec: unknown,
  master: MasterKey,
  accounts: readonly string[],
  tenant?: string,
): PreparedAccounts {
  if (!Array.isArray(accounts) || accounts.length === 0)
    fail('E_INVALID_OPTIONS', 'attribution needs at least one candidate account');
  const key = accountLayerKey(spec, master, tenant);
  const seen = new Set<string>();
  const codes = new Int32Array(2 * accounts.length);
  const code = new Uint32Array(2);
  for (let a = 0; a < accounts.length; a++) {
    const id = accounts[a];
    checkAccountId(id);
    if (seen.has(id)) fail('E_INVALID_OPTIONS', `account ${JSON.stringify(id.slice(0, 80))} is listed twice`);
    seen.add(id);
    key.code(id, code);
    codes[2 * a] = code[0] | 0;
    codes[2 * a + 1] = code[1] | 0;
  }
  return { ids: accounts, codes, layerFingerprint: key.prfKey.fingerprint };
}

/** The organisation test and the account attribution of `samples` (each a prompt, possibly empty, and an output). */
export async function attributeAccounts(
  samples: readonly SuspectSample[],
  options: AttributionOptions,
): Promise<AttributionResult> {
  const { master, tenant } = options;
  const alpha = options.alpha ?? 1e-3;
  if (!(alpha > 0 && alpha < 1)) fail('E_INVALID_OPTIONS', `alpha must be in (0, 1); got ${alpha}`);
  const sampleAlpha = options.sampleAlpha ?? 0.01;
  if (!(sampleAlpha > 0 && sampleAlpha < 1))
    fail('E_INVALID_OPTIONS', `sampleAlpha must be in (0, 1); got ${sampleAlpha}`);
  const spec = parseSpec(options.spec);
  const prepared = Array.isArray(options.accounts)
    ? prepareAccounts(spec, master, options.accounts as readonly string[], tenant)
    : (options.accounts as PreparedAccounts);
  const layerKey = accountLayerKey(spec, master, tenant);
  if (prepared.layerFingerprint !== layerKey.prfKey.fingerprint)
    fail('E_INVALID_OPTIONS', 'the prepared accounts were made for another key, tenant or spec');
  const { ids: accounts, codes } = prepared;
  if (spec.scheme !== 'kgw') throw new Error('unreachable: accountLayerKey checks the scheme');

  const started = performance.now();
  const organisation = createScheme(spec, master, tenant === undefined ? {} : { tenant });
  const tape = new CountedTape({ scheme: organisation });
  const bounds = new Int32Array(samples.length + 1);
  for (let s = 0; s < samples.length; s++) bounds[s + 1] = bounds[s] + tape.add(samples[s]);
  const scored = tape.length;
  if (scored === 0)
    fail('E_INPUT', 'the dataset has no scorable token (every position was context, prompt or a repeat)');
  const orgResult = testResult(schemeIdentity(organisation), tape.scoreSum(organisation), scored);

  const grouped = accountGroups(tape, layerKey.contextPrf(spec.vocabSize, tape.contextWidth, spec.hashing));
  const tapeMs = performance.now() - started;

  const scoreStart = performance.now();
  const work = grouped.key.length * accounts.length;
  const threads = Math.max(
    1,
    Math.min(accounts.length, options.threads ?? (work >= THREAD_THRESHOLD ? availableParallelism() : 1)),
  );
  const sums = await scoreAccounts(grouped, codes, accounts.length, threads);
  const scoreMs = performance.now() - scoreStart;

  const tails = Array.from(sums, (green) => binomialUpperTail(green, scored, ACCOUNT_LAYER_GAMMA));
  const adjusted = holmAdjustLog10(tails.map((t) => t.log10p));
  const rows: AccountAttribution[] = accounts.map((id, a) => ({
    id,
    green: sums[a],
    pValue: tails[a].p,
    log10PValue: tails[a].log10p,
    adjustedPValue: 10 ** adjusted[a],
    log10AdjustedPValue: adjusted[a],
    attributed: adjusted[a] <= Math.log10(alpha),
    samples: null,
  }));
  const { ids, stride, contextWidth: h } = tape;
  const token = (j: number) => ids[j * stride + h];
  for (const row of rows) {
    if (!row.attributed) continue;
    const layer = (
      createScheme(spec, master, {
        ...(tenant === undefined ? {} : { tenant }),
        account: row.id,
      }) as KgwScheme
    ).accountLayer;
    if (layer === undefined)
      throw new Error('unreachable: a layered spec with an account has an account layer');
    const green = (j: number) => Number(layer.isGreen(ids, j * stride + h, token(j)));
    let count = 0;
    for (let s = 0; s < samples.length; s++) {
      const n = bounds[s + 1] - bounds[s];
      if (n === 0) continue;
      let k = 0;
      for (let j = bounds[s]; j < bounds[s + 1]; j++) k += green(j);
      if (binomialUpperTail(k, n, ACCOUNT_LAYER_GAMMA).p <= sampleAlpha) count++;
    }
    row.samples = count;
  }
  rows.sort(
    (x, y) =>
      x.log10AdjustedPValue - y.log10AdjustedPValue ||
      x.log10PValue - y.log10PValue ||
      (x.id < y.id ? -1 : 1),
  );
  return {
    organisation: orgResult,
    accounts: rows,
    attributed: rows.filter((r) => r.attributed).map((r) => r.id),
    correction: 'holm',
    alpha,
    sampleAlpha,
    candidates: accounts.length,
    samples: samples.length,
    scored,
    skipped: { ...tape.counts.skipped },
    groups: grouped.key.length,
    threads,
    timings: { tapeMs, scoreMs },
  };
}

/**
 * The tape's positions as groups for `accountSums`: each position's layer seed (one SipHash per window, cached per
 * token for h = 1), sorted by (seed, block), one group per (seed, block), single tokens first.
 */
export function accountGroups(tape: CountedTape, prf: ContextPrf): AccountGroups {
  const { ids, stride, contextWidth: h } = tape;
  const n = tape.length;
  const seedLo = new Int32Array(n);
  const seedHi = new Int32Array(n);
  for (let j = 0; j < n; j++) {
    prf.seed(ids, j * stride + h);
    seedLo[j] = prf.lo;
    seedHi[j] = prf.hi;
  }
  const token = (j: number) => ids[j * stride + h];
  const order = Int32Array.from({ length: n }, (_, j) => j).sort(
    (a, b) => seedHi[a] - seedHi[b] || seedLo[a] - seedLo[b] || (token(a) >>> 5) - (token(b) >>> 5),
  );
  const lo = new Int32Array(n);
  const hi = new Int32Array(n);
  const base = new Int32Array(n);
  const mask = new Int32Array(n);
  const members = new Int32Array(n);
  let g = -1;
  for (let r = 0; r < n; r++) {
    const j = order[r];
    const t = token(j);
    const block = t >>> 5;
    if (g < 0 || seedLo[j] !== lo[g] || seedHi[j] !== hi[g] || block << 5 !== base[g]) {
      g++;
      lo[g] = seedLo[j];
      hi[g] = seedHi[j];
      base[g] = block << 5;
    }
    mask[g] |= 1 << (t & 31);
    members[g]++;
  }
  const count = g + 1;
  let singles = 0;
  for (let i = 0; i < count; i++) if (members[i] === 1) singles++;
  const out: AccountGroups = {
    key: new Int32Array(count),
    hi: new Int32Array(count),
    bits: new Int32Array(count),
    singles,
  };
  let single = 0;
  let multi = singles;
  for (let i = 0; i < count; i++) {
    const at = members[i] === 1 ? single++ : multi++;
    out.key[at] = base[i] ^ lo[i];
    out.hi[at] = hi[i];
    out.bits[at] = members[i] === 1 ? 31 - Math.clz32(mask[i]) : mask[i];
  }
  return out;
}

/** The test of one account's layer on a set of samples: `TestResult` under the layer's Bernoulli(1/2) null law. */
export interface AccountLayerTestResult extends TestResult {
  account: string;
}

/**
 * Whether `samples` carry `account`'s layer: its green count on the organisation test's counted tape (each
 * (window, token) once, prompt windows dropped), against Binomial(N, 1/2). One account, no correction: for
 * a candidate list use `attributeAccounts`.
 */
export function accountLayerTest(
  samples: readonly SuspectSample[],
  options: { spec: unknown; master: MasterKey; tenant?: string; account: string },
): AccountLayerTestResult {
  const { master, tenant, account } = options;
  checkAccountId(account);
  accountLayerKey(options.spec, master, tenant);
  const tenantOption = tenant === undefined ? {} : { tenant };
  const scheme = createScheme(options.spec, master, { ...tenantOption, account }) as KgwScheme;
  const layer = scheme.accountLayer;
  if (layer === undefined)
    throw new Error('unreachable: a layered spec with an account has an account layer');
  const tape = new CountedTape({ scheme: createScheme(options.spec, master, tenantOption) });
  for (const sample of samples) tape.add(sample);
  const { ids, stride, contextWidth: h } = tape;
  let green = 0;
  for (let j = 0; j < tape.length; j++)
    green += Number(layer.isGreen(ids, j * stride + h, ids[j * stride + h]));
  const identity = {
    ...schemeIdentity(scheme),
    nullLaw: { kind: 'bernoulli' as const, p: ACCOUNT_LAYER_GAMMA },
  };
  return { ...testResult(identity, green, tape.length), account };
}

/** The job of one attribution worker: its share [from, to) of the accounts over the shared groups. */
export interface AccountJob {
  groups: AccountGroups;
  codes: Int32Array;
  from: number;
  to: number;
}

/** One worker's share: the sums of accounts [from, to). */
export function scoreAccountJob(job: AccountJob): Float64Array {
  const sums = new Float64Array(job.codes.length / 2);
  accountSums(job.groups, job.codes, job.from, job.to, sums);
  return sums.slice(job.from, job.to);
}

async function scoreAccounts(
  groups: AccountGroups,
  codes: Int32Array,
  accounts: number,
  threads: number,
): Promise<Float64Array> {
  const sums = new Float64Array(accounts);
  if (threads <= 1) {
    accountSums(groups, codes, 0, accounts, sums);
    return sums;
  }
  const shared = (array: Int32Array): Int32Array => {
    const out = new Int32Array(new SharedArrayBuffer(array.byteLength));
    out.set(array);
    return out;
  };
  const sharedGroups: AccountGroups = {
    key: shared(groups.key),
    hi: shared(groups.hi),
    bits: shared(groups.bits),
    singles: groups.singles,
  };
  const sharedCodes = shared(codes);
  const share = Math.ceil(accounts / threads);
  const pool = createWorkerPool('@tracemark/verifier/attribution-worker', import.meta.url, { threads });
  try {
    const parts = await Promise.all(
      Array.from({ length: threads }, (_, t) => {
        const from = t * share;
        const to = Math.min(accounts, from + share);
        return from >= to
          ? Promise.resolve({ from, part: new Float64Array(0) })
          : (pool.run({ groups: sharedGroups, codes: sharedCodes, from, to }) as Promise<Float64Array>).then(
              (part) => ({ from, part }),
            );
      }),
    );
    for (const { from, part } of parts) sums.set(part, from);
    return sums;
  } finally {
    await stopWorkerPool(pool);
  }
}
