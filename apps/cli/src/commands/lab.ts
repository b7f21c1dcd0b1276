import {
  checkOutputDirectory,
  LAB_SCHEME_NAMES,
  type LabOptions,
  type LabSchemeName,
  resultsMarkdown,
  runLab,
  writeLabOutputs,
} from '@tracemark/lab';
import { fail } from '../errors';

/** The options of `tracemark lab`, as commander parses them (declared in main.ts). */
export interface LabCommandOptions {
  corpus?: string;
  seed?: string;
  scheme?: string;
  rho?: string;
  samples?: string;
  probes?: string;
  probeTokens?: string;
  teacherTokens?: string;
  controls?: string;
  filterWidth?: string;
  workers?: string;
  out: string;
  quick?: boolean;
  quiet?: boolean;
}

function integer(text: string | undefined, name: string): number | undefined {
  if (text === undefined) return undefined;
  const value = Number(text);
  if (!(text.trim() !== '' && Number.isInteger(value)))
    fail('E_USAGE', `${name} must be an integer; got ${text}`);
  return value;
}

function list(text: string | undefined, name: string): string[] | undefined {
  if (text === undefined) return undefined;
  const items = text.split(',').map((s) => s.trim());
  if (items.some((s) => s === '')) fail('E_USAGE', `${name} must be a comma-separated list; got "${text}"`);
  return items;
}

/** Reads the command line of `tracemark lab` into lab options (every check of values happens in the lab). */
export function parseLabArgs(
  values: LabCommandOptions,
  positionals: string[],
): { options: LabOptions; out: string; quiet: boolean } {
  if (positionals.length > 0) fail('E_USAGE', `lab takes no positional arguments; got ${positionals[0]}`);
  const schemes = list(values.scheme, '--scheme');
  for (const name of schemes ?? []) {
    if (!(LAB_SCHEME_NAMES as string[]).includes(name))
      fail('E_USAGE', `unknown scheme "${name.slice(0, 40)}"; expected ${LAB_SCHEME_NAMES.join(', ')}`);
  }
  const rhos = list(values.rho, '--rho')?.map((text) => {
    const rho = Number(text);
    if (!(rho >= 0 && rho <= 1)) fail('E_USAGE', `--rho values must be numbers in [0, 1]; got ${text}`);
    return rho;
  });
  const options: LabOptions = {
    corpus: values.corpus,
    seed: values.seed,
    schemes: schemes as LabSchemeName[] | undefined,
    rhos,
    samples: integer(values.samples, '--samples'),
    probes: integer(values.probes, '--probes'),
    probeTokens: integer(values.probeTokens, '--probe-tokens'),
    teacherTokens: integer(values.teacherTokens, '--teacher-tokens'),
    controls: integer(values.controls, '--controls'),
    filterWidth: integer(values.filterWidth, '--filter-width'),
    workers: integer(values.workers, '--workers'),
    quick: values.quick === true,
  };
  if (values.out.trim() === '') fail('E_USAGE', '--out must name a directory');
  return { options, out: values.out, quiet: values.quiet === true };
}

export async function runLabCommand(values: LabCommandOptions, positionals: string[]): Promise<number> {
  const { options, out, quiet } = parseLabArgs(values, positionals);
  checkOutputDirectory(out);
  const report = await runLab(options, {
    onProgress: quiet ? undefined : (line) => process.stdout.write(`${line}\n`),
  });
  const files = await writeLabOutputs(report, out);
  if (!quiet) {
    const md = resultsMarkdown(report);
    const table = md.slice(md.indexOf('## log10 p-value'), md.indexOf('## Negative controls'));
    process.stdout.write(
      `\n${table}wrote ${files.length} files to ${out} in ${(report.timings.totalMs / 1000).toFixed(1)} s\n`,
    );
  }
  return 0;
}
