import { availableParallelism, cpus } from 'node:os';
import { Bench } from 'tinybench';

/** One table of BENCHMARKS.md. */
export interface Section {
  title: string;
  /** What the figures mean and which goals they answer. */
  notes: string[];
  columns: string[];
  rows: (string | number)[][];
}

/**
 * Mean seconds per operation of `fn`, where one call of `fn` performs `opsPerCall` operations.
 * Batching keeps timer overhead out of sub-microsecond figures.
 */
export async function secondsPerOp(
  name: string,
  fn: () => void,
  opsPerCall: number,
  time = 400,
): Promise<number> {
  const bench = new Bench({ time, iterations: 5, warmupTime: 100, warmupIterations: 2 });
  bench.add(name, fn);
  await bench.run();
  const result = bench.tasks[0].result;
  if (result === undefined || !('period' in result)) throw new Error(`benchmark ${name} did not run`);
  return result.period / 1000 / opsPerCall;
}

/**
 * Median seconds per operation of each function, measured in interleaved rounds (one call of each per
 * round, after `warmup` rounds), so that a ratio between them is not skewed by the machine's load
 * drifting from one measurement to the next.
 */
export function interleavedSecondsPerOp(
  fns: Record<string, () => unknown>,
  opsPerCall: number,
  rounds = 15,
  warmup = 3,
): Record<string, number> {
  const times: Record<string, number[]> = {};
  for (const name of Object.keys(fns)) times[name] = [];
  for (let round = 0; round < warmup + rounds; round++) {
    for (const [name, fn] of Object.entries(fns)) {
      const start = performance.now();
      fn();
      if (round >= warmup) times[name].push(performance.now() - start);
    }
  }
  const result: Record<string, number> = {};
  for (const [name, list] of Object.entries(times)) {
    list.sort((a, b) => a - b);
    result[name] = list[Math.floor(list.length / 2)] / 1000 / opsPerCall;
  }
  return result;
}

export function machineLine(): string {
  const cpu = cpus()[0]?.model ?? 'unknown CPU';
  return `${availableParallelism()} cores (${cpu}), Node ${process.version}, ${process.platform}/${process.arch}`;
}

export function renderTable(section: Section): string {
  const head = `| ${section.columns.join(' | ')} |`;
  const rule = `| ${section.columns.map(() => '---').join(' | ')} |`;
  const body = section.rows.map((row) => `| ${row.join(' | ')} |`);
  return [`## ${section.title}`, '', ...section.notes, '', head, rule, ...body, ''].join('\n');
}

export const fmt = {
  micro: (seconds: number) => (seconds * 1e6).toFixed(seconds < 1e-5 ? 2 : 1),
  milli: (seconds: number) => (seconds * 1e3).toFixed(3),
  rate: (perSecond: number) => (perSecond / 1e6).toFixed(1),
  ratio: (x: number) => x.toFixed(2),
};
