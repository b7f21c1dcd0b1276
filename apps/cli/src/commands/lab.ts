import {
  checkOutputDirectory,
  LAB_SCHEME_NAMES,
  type LabMode,
  type LabOptions,
  type LabSchemeName,
  resultsMarkdown,
  runLab,
  writeLabOutputs,
} from '@tracemark/lab';
import { fail } from '../errors';
import { listValue, numberValue } from '../option-values';

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
  mode?: string;
  out: string;
  quick?: boolean;
  quiet?: boolean;
}

/** Reads the command line of `tracemark lab` into lab options (every check of values happens in the lab). */
export function parseLabArgs(
  values: LabCommandOptions,
  positionals: string[],
): { options: LabOptions; out: string; quiet: boolean } {
  if (positionals.length > 0) fail('E_USAGE', `lab takes no positional arguments; got ${positionals[0]}`);
  const schemes = listValue(values.scheme, '--scheme');
  for (const name of schemes ?? []) {
    if (!(LAB_SCHEME_NAMES as string[]).includes(name))
      fail('E_USAGE', `unknown scheme "${name.slice(0, 40)}"; expected ${LAB_SCHEME_NAMES.join(', ')}`);
  }
  const rhos = listValue(values.rho, '--rho')?.map((text) => {
    const rho = Number(text);
    if (!(rho >= 0 && rho <= 1)) fail('E_USAGE', `--rho values must be numbers in [0, 1]; got ${text}`);
    return rho;
  });
  const options: LabOptions = {
    corpus: values.corpus,
    seed: values.seed,
    schemes: schemes as LabSchemeName[] | undefined,
    rhos,
    samples: numberValue(values.samples, '--samples', true),
    probes: numberValue(values.probes, '--probes', true),
    probeTokens: numberValue(values.probeTokens, '--probe-tokens', true),
    teacherTokens: numberValue(values.teacherTokens, '--teacher-tokens', true),
    controls: numberValue(values.controls, '--controls', true),
    filterWidth: numberValue(values.filterWidth, '--filter-width', true),
    workers: numberValue(values.workers, '--workers', true),
    modes: listValue(values.mode, '--mode') as LabMode[] | undefined,
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
