import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { createRng, createScheme, MasterKey, type Scheme, sampleCategorical } from '@tracemark/watermark';
import { fmt, type Section, secondsPerOp } from './harness';

const VOCAB_SIZES = [32_000, 128_256, 200_019];
const SCHEMES: { label: string; spec: Record<string, unknown> }[] = [
  { label: 'KGW h=1 left', spec: { scheme: 'kgw', contextWidth: 1 } },
  { label: 'KGW h=4 min', spec: { scheme: 'kgw', contextWidth: 4, hashing: 'min' } },
  { label: 'KGW h=4 self', spec: { scheme: 'kgw', contextWidth: 4, hashing: 'self' } },
  { label: 'Unigram (KGW h=0)', spec: { scheme: 'unigram' } },
  // The Gumbel default samples with GumbelSoft (softness 0.4); argmax (softness 0) is the distortion-free draw.
  { label: 'Gumbel h=4 (GumbelSoft τ=0.4, default)', spec: { scheme: 'gumbel', contextWidth: 4 } },
  { label: 'Gumbel-max h=4 argmax (τ=0)', spec: { scheme: 'gumbel', contextWidth: 4, softness: 0 } },
  { label: 'SynthID m=30 h=4', spec: { scheme: 'synthid', depth: 30, contextWidth: 4 } },
];

const key = MasterKey.generate();

/** Logits with a realistic spread (Gaussian, σ = 3) and random contexts, fresh every step. */
function workload(vocab: number, steps: number) {
  const rng = createRng(`bench:${vocab}`);
  const logits = new Float32Array(vocab);
  for (let i = 0; i < vocab; i++)
    logits[i] = 3 * Math.sqrt(-2 * Math.log(1 - rng())) * Math.cos(2 * Math.PI * rng());
  const contexts = Array.from({ length: steps }, () =>
    Array.from({ length: 8 }, () => Math.floor(rng() * vocab)),
  );
  return { logits, contexts, rng };
}

/**
 * The scheme's own call on the whole vocabulary, on a fresh context: `biasLogits` for logit-bias schemes
 * (sampling is the stack's), `choose` for distortion-free schemes (it replaces sampling). With no scheme,
 * the plain categorical draw that a stack would do instead, for comparison.
 */
async function fullVocabularyCall(scheme: Scheme | null, vocab: number): Promise<number> {
  const steps = 8;
  const { logits, contexts, rng } = workload(vocab, steps);
  const row = new Float32Array(vocab);
  return secondsPerOp(
    `full ${vocab}`,
    () => {
      for (let s = 0; s < steps; s++) {
        row.set(logits);
        if (scheme === null) sampleCategorical(row, null, vocab, rng());
        else if (scheme.biasLogits) scheme.biasLogits(contexts[s], row);
        else scheme.choose(contexts[s], row, null, vocab, rng);
      }
    },
    steps,
  );
}

/** The scheme's own work on a top-40 candidate set (what a stack calls after its own top-k). */
async function candidateStep(scheme: Scheme, vocab: number): Promise<number> {
  const steps = 2000;
  const { logits, contexts, rng } = workload(vocab, steps);
  const ids = new Int32Array(40);
  const candidates = new Float32Array(40);
  const base = new Float32Array(40);
  for (let i = 0; i < 40; i++) {
    ids[i] = Math.floor(rng() * vocab);
    base[i] = logits[i];
  }
  return secondsPerOp(
    `top40 ${vocab}`,
    () => {
      for (let s = 0; s < steps; s++) {
        candidates.set(base);
        scheme.biasLogits?.(contexts[s], candidates, ids, 40);
        scheme.choose(contexts[s], candidates, ids, 40, rng);
      }
    },
    steps,
  );
}

/** Tokens scored per second over a long random stream (token seeds cached after first sight). */
async function scoringRate(scheme: Scheme, vocab: number): Promise<number> {
  const n = 1 << 20;
  const rng = createRng('score');
  const stream = new Uint32Array(n);
  for (let i = 0; i < n; i++) stream[i] = Math.floor(rng() * vocab);
  let sink = 0;
  const h = scheme.contextWidth;
  const seconds = await secondsPerOp(
    `score ${vocab}`,
    () => {
      for (let i = h; i < n; i++) sink += scheme.score(stream, i);
    },
    n - h,
    1500,
  );
  if (sink < 0) throw new Error('unreachable');
  return 1 / seconds;
}

/** One scheme's rows: its step at every vocabulary size, and its scoring rate at V = 128,256. */
async function schemeRows(
  index: number,
): Promise<{ steps: (string | number)[][]; score: (string | number)[] }> {
  const { label, spec } = SCHEMES[index];
  const steps: (string | number)[][] = [];
  for (const vocab of VOCAB_SIZES) {
    const scheme = createScheme({ ...spec, vocabSize: vocab }, key);
    const full = await fullVocabularyCall(scheme, vocab);
    const top40 = await candidateStep(scheme, vocab);
    steps.push([label, vocab.toLocaleString('en'), fmt.milli(full), fmt.micro(top40)]);
  }
  const vocab = 128_256;
  const scheme = createScheme({ ...spec, vocabSize: vocab }, key);
  return { steps, score: [label, vocab.toLocaleString('en'), fmt.rate(await scoringRate(scheme, vocab))] };
}

const SCHEME_ROW_FLAG = '--scheme-rows';

/**
 * Each scheme is measured in a process of its own, as a serving process runs one scheme: in a shared
 * process the JIT's type feedback from the other schemes' calls slows the shared code (the PRF, the
 * sampler) for whichever scheme runs later, by up to a third on the SynthID step.
 */
function schemeRowsInChild(index: number): Awaited<ReturnType<typeof schemeRows>> {
  const child = spawnSync(
    process.execPath,
    ['--import', 'tsx', fileURLToPath(import.meta.url), SCHEME_ROW_FLAG, String(index)],
    { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 20 },
  );
  if (child.status !== 0) throw new Error(`benchmark of ${SCHEMES[index].label} failed (${child.status})`);
  return JSON.parse(child.stdout);
}

if (process.argv[2] === SCHEME_ROW_FLAG) {
  process.stdout.write(JSON.stringify(await schemeRows(Number(process.argv[3]))));
}

export async function watermarkSections(): Promise<Section[]> {
  const stepRows: (string | number)[][] = [];
  const scoreRows: (string | number)[][] = [];
  for (let index = 0; index < SCHEMES.length; index++) {
    const { steps, score } = schemeRowsInChild(index);
    stepRows.push(...steps);
    scoreRows.push(score);
  }
  for (const vocab of VOCAB_SIZES) {
    stepRows.push([
      'plain categorical draw (reference)',
      vocab.toLocaleString('en'),
      fmt.milli(await fullVocabularyCall(null, vocab)),
      '–',
    ]);
  }
  return [
    {
      title: 'Watermark: one generation step',
      notes: [
        "Full vocabulary: the scheme's own call on all V logits with a fresh random context and Gaussian logits",
        '(σ = 3): `biasLogits` for KGW/Unigram (the stack then samples as usual), `choose` for Gumbel-max and SynthID',
        '(which replace the sampling draw; the last rows give that plain draw for comparison). Top-40: `biasLogits`',
        '+ `choose` on 40 candidates, the work a stack adds after its own top-k. Goals: KGW at V = 128,256',
        '≤ 0.3 ms per step; any scheme on 40 candidates ≤ 5 µs per step. Each scheme is measured in a fresh process',
        '(as a server runs one scheme), so that no row pays for JIT feedback left by the others.',
      ],
      columns: ['scheme', 'V', 'full-vocabulary call (ms)', 'top-40 step (µs)'],
      rows: stepRows,
    },
    {
      title: 'Watermark: scoring rate',
      notes: [
        '`scheme.score` over a 1,048,576-token random stream, one core, every token scored (no de-duplication), each',
        'scheme in a fresh process.',
        'Goal: KGW h = 1 ≥ 20 M tokens/s.',
      ],
      columns: ['scheme', 'V', 'M tokens/s'],
      rows: scoreRows,
    },
  ];
}
