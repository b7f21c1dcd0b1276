import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createInteropScheme, createRng } from '@tracemark/watermark';
import { fmt, interleavedSecondsPerOp, type Section } from './harness';

const SPECS: [string, Record<string, unknown>][] = [
  [
    'hf-kgw lefthash, V = 50,257',
    {
      scheme: 'hf-kgw',
      vocabSize: 50_257,
      seedingScheme: 'lefthash',
      contextWidth: 1,
      hashingKey: 15_485_863,
      greenlistRatio: 0.25,
    },
  ],
  [
    'hf-kgw selfhash, V = 50,257',
    {
      scheme: 'hf-kgw',
      vocabSize: 50_257,
      seedingScheme: 'selfhash',
      contextWidth: 4,
      hashingKey: 15_485_863,
      greenlistRatio: 0.25,
    },
  ],
  [
    'lmw-kgw simple_1, V = 50,257',
    { scheme: 'lmw-kgw', vocabSize: 50_257, gamma: 0.25, seedingScheme: 'simple_1' },
  ],
  [
    'hf-kgw lefthash, V = 128,256',
    {
      scheme: 'hf-kgw',
      vocabSize: 128_256,
      seedingScheme: 'lefthash',
      contextWidth: 1,
      hashingKey: 15_485_863,
      greenlistRatio: 0.25,
    },
  ],
];

/** Scored tokens per detection in the fresh-process comparison (the "2k tokens"). */
const SCORED_TOKENS = 2000;
const GOAL_RATIO = 10;
const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TRACEMARK_PROCESS = fileURLToPath(new URL('./interop-detect-process.ts', import.meta.url));
const TORCH_REFERENCE = fileURLToPath(new URL('./reference/hf_kgw_detect.py', import.meta.url));
/** The interpreter with torch (Debian's python3-torch); override with TRACEMARK_TORCH_PYTHON. */
const TORCH_PYTHON = process.env.TRACEMARK_TORCH_PYTHON ?? '/usr/bin/python3';

interface ProcessRun {
  seconds: number;
  tokens: number;
  green: number;
}

/** Runs one side in a fresh process; undefined when it cannot run (e.g. no python or no torch). */
function runProcess(command: string, args: string[]): ProcessRun | undefined {
  const child = spawnSync(command, args, { cwd: ROOT, encoding: 'utf8', maxBuffer: 1 << 20 });
  if (child.error !== undefined || child.status !== 0) return undefined;
  const lines = child.stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]) as ProcessRun;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** SCORED_TOKENS + 1 distinct tokens, so that no context (the previous token) repeats. */
function freshStream(vocabSize: number): number[] {
  const rng = createRng(`interop-fresh-${vocabSize}`);
  const pool = new Int32Array(vocabSize);
  for (let i = 0; i < vocabSize; i++) pool[i] = i;
  const ids: number[] = [];
  for (let i = 0; i <= SCORED_TOKENS; i++) {
    const j = i + Math.floor(rng() * (vocabSize - i));
    const t = pool[j];
    pool[j] = pool[i];
    pool[i] = t;
    ids.push(t);
  }
  return ids;
}

/**
 * hf-kgw lefthash detection of SCORED_TOKENS fresh contexts, tracemark (detectInterop from the built
 * packages) against the torch reference, each side in a fresh process per round, rounds interleaved.
 * Both sides time their own scoring after imports; the green counts must agree.
 */
function freshProcessRow(vocabSize: number, rounds: number, dir: string): (string | number)[] {
  const job = join(dir, `job-${vocabSize}.json`);
  const ids = freshStream(vocabSize);
  writeFileSync(
    job,
    JSON.stringify({ vocabSize, hashingKey: 15_485_863, greenlistRatio: 0.25, contextWidth: 1, ids }),
  );
  const ours: number[] = [];
  const torch: number[] = [];
  let torchAvailable = true;
  let green: number | undefined;
  for (let round = 0; round < rounds; round++) {
    const run = runProcess(process.execPath, ['--import', 'tsx', TRACEMARK_PROCESS, job]);
    if (run === undefined || run.tokens !== SCORED_TOKENS)
      throw new Error('tracemark detection process failed');
    green ??= run.green;
    if (run.green !== green) throw new Error('tracemark green counts differ between runs');
    ours.push(run.seconds);
    if (!torchAvailable) continue;
    const reference = runProcess(TORCH_PYTHON, [TORCH_REFERENCE, job]);
    if (reference === undefined) {
      torchAvailable = false;
      continue;
    }
    if (reference.tokens !== SCORED_TOKENS || reference.green !== green) {
      throw new Error(`torch reference disagrees: ${reference.green} green vs tracemark ${green}`);
    }
    torch.push(reference.seconds);
  }
  const oursRate = SCORED_TOKENS / median(ours);
  const label = `hf-kgw lefthash, V = ${vocabSize.toLocaleString('en-US')}`;
  const goal = `≥ ${GOAL_RATIO}×`;
  if (!torchAvailable) {
    return [label, oursRate.toFixed(0), 'torch reference not available', '–', goal];
  }
  const torchRate = SCORED_TOKENS / median(torch);
  return [label, oursRate.toFixed(0), torchRate.toFixed(0), `${fmt.ratio(oursRate / torchRate)}×`, goal];
}

/**
 * In-process seconds per scored token on fresh contexts (a new scheme, so an empty green-list cache, and a
 * stream whose contexts do not repeat) and on cached ones (the same stream scored again), interleaved.
 */
function perToken(spec: Record<string, unknown>): { fresh: number; cached: number } {
  const vocab = spec.vocabSize as number;
  const rng = createRng('interop-bench');
  const n = 400;
  const stream = Array.from({ length: n }, () => Math.floor(rng() * vocab));
  let sink = 0;
  const warm = createInteropScheme(spec);
  for (let round = 0; round < 3; round++) {
    for (let i = warm.contextWidth; i < n; i++) sink += warm.score(stream, i);
  }
  const times = interleavedSecondsPerOp(
    {
      fresh: () => {
        const scheme = createInteropScheme(spec);
        for (let i = scheme.contextWidth; i < n; i++) sink += scheme.score(stream, i);
      },
      cached: () => {
        for (let i = warm.contextWidth; i < n; i++) sink += warm.score(stream, i);
      },
    },
    n,
    9,
    2,
  );
  if (sink < 0) throw new Error('unreachable');
  return { fresh: times.fresh, cached: times.cached };
}

export async function interopSections(): Promise<Section[]> {
  const rounds = Number(process.env.INTEROP_BENCH_ROUNDS ?? 7);
  const dir = mkdtempSync(join(tmpdir(), 'tracemark-interop-'));
  const versus: (string | number)[][] = [];
  try {
    for (const vocabSize of [50_257, 128_256]) versus.push(freshProcessRow(vocabSize, rounds, dir));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const rows: (string | number)[][] = [];
  for (const [label, spec] of SPECS) {
    const { fresh, cached } = perToken(spec);
    rows.push([label, fmt.micro(fresh), fmt.micro(cached)]);
  }
  return [
    {
      title: 'Interop: hf-kgw detection on fresh contexts vs the PyTorch reference',
      notes: [
        `Detection of ${SCORED_TOKENS.toLocaleString('en-US')} scored tokens (lefthash, γ = 0.25, hashing key 15485863) whose`,
        'contexts never repeat. Each side runs in a fresh process per round and times its own scoring after imports:',
        'tracemark `detectInterop` from the built packages (bench/interop-detect-process.ts) and a transformers-style',
        'torch detector (bench/reference/hf_kgw_detect.py: manual_seed(key · prev) then randperm(V)[:int(V·γ)] and',
        "membership per scored n-gram, as WatermarkDetector's _get_greenlist_ids; without its Counter bookkeeping;",
        `torch.set_num_threads(1)). Rounds interleaved (${rounds}), medians; both sides must count the same green tokens.`,
        'Goal: tracemark ≥ 10× the torch detector.',
      ],
      columns: ['detection', 'tracemark (tok/s)', 'torch reference (tok/s)', 'ratio', 'goal'],
      rows: versus,
    },
    {
      title: 'Interop: PyTorch-exact green lists per scored token (in process)',
      notes: [
        'Scoring transformers / lm-watermarking KGW watermarks reproduces torch.randperm per context. "Fresh": a new',
        'scheme (empty green-list cache) on a 400-token stream; "cached": the same stream scored again by a warm',
        'scheme. Interleaved rounds, medians. No goal of its own: the fresh-process table above carries the goal.',
      ],
      columns: ['scheme', 'fresh context (µs/token)', 'cached context (µs/token)'],
      rows,
    },
  ];
}
