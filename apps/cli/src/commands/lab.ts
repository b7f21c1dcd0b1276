import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import {
  type CampaignOptions,
  campaignMarkdown,
  checkOutputDirectory,
  LAB_SCHEME_NAMES,
  type LabMode,
  type LabOptions,
  type LabSchemeName,
  resultsMarkdown,
  runCampaign,
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
  gamma?: string;
  delta?: string;
  contextWidth?: string;
  teacherOrder?: string;
  studentOrder?: string;
  prune?: string;
  attack?: string;
  campaign?: boolean;
  organisations?: string;
  accounts?: string;
  accountDelta?: string;
  out: string;
  quick?: boolean;
  quiet?: boolean;
}

/** The options that shape a lab experiment but not a campaign (`--campaign` refuses them). */
const EXPERIMENT_ONLY = [
  ['corpus', '--corpus'],
  ['scheme', '--scheme'],
  ['controls', '--controls'],
  ['filterWidth', '--filter-width'],
  ['mode', '--mode'],
  ['gamma', '--gamma'],
  ['delta', '--delta'],
  ['contextWidth', '--context-width'],
  ['teacherOrder', '--teacher-order'],
  ['studentOrder', '--student-order'],
  ['prune', '--prune'],
  ['attack', '--attack'],
  ['quick', '--quick'],
] as const;

/** Reads the command line of `tracemark lab --campaign` into campaign options (values are checked by the lab). */
export function parseCampaignArgs(values: LabCommandOptions, positionals: string[]): CampaignOptions {
  if (positionals.length > 0) fail('E_USAGE', `lab takes no positional arguments; got ${positionals[0]}`);
  for (const [field, flag] of EXPERIMENT_ONLY)
    if (values[field] !== undefined && values[field] !== false)
      fail(
        'E_USAGE',
        `${flag} does not apply to --campaign (its teacher is KGW h = 1 with an account layer)`,
      );
  const rhos = listValue(values.rho, '--rho');
  if (rhos !== undefined && rhos.length !== 1) fail('E_USAGE', '--campaign takes one --rho value');
  if (values.out.trim() === '') fail('E_USAGE', '--out must name a directory');
  return {
    seed: values.seed,
    organisations: numberValue(values.organisations, '--organisations', true),
    accounts: numberValue(values.accounts, '--accounts', true),
    samples: numberValue(values.samples, '--samples', true),
    rho: rhos === undefined ? undefined : Number(rhos[0]),
    accountDelta: numberValue(values.accountDelta, '--account-delta', false),
    probes: numberValue(values.probes, '--probes', true),
    probeTokens: numberValue(values.probeTokens, '--probe-tokens', true),
    teacherTokens: numberValue(values.teacherTokens, '--teacher-tokens', true),
    workers: numberValue(values.workers, '--workers', true),
  };
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
    gamma: numberValue(values.gamma, '--gamma', false),
    delta: numberValue(values.delta, '--delta', false),
    contextWidth: numberValue(values.contextWidth, '--context-width', true),
    teacherOrder: numberValue(values.teacherOrder, '--teacher-order', true),
    studentOrder: numberValue(values.studentOrder, '--student-order', true),
    prune: numberValue(values.prune, '--prune', true),
    attacks: listValue(values.attack, '--attack'),
    quick: values.quick === true,
  };
  if (values.out.trim() === '') fail('E_USAGE', '--out must name a directory');
  return { options, out: values.out, quiet: values.quiet === true };
}

/** `tracemark lab --campaign`: campaign.json and campaign.md in --out. */
async function runCampaignCommand(values: LabCommandOptions, positionals: string[]): Promise<number> {
  const options = parseCampaignArgs(values, positionals);
  const out = values.out;
  const quiet = values.quiet === true;
  checkOutputDirectory(out);
  const report = await runCampaign(options, quiet ? undefined : (line) => process.stdout.write(`${line}\n`));
  await mkdir(out, { recursive: true });
  const md = campaignMarkdown(report);
  await writeFile(join(out, 'campaign.json'), `${JSON.stringify(report, null, 2)}\n`);
  await writeFile(join(out, 'campaign.md'), md);
  if (!quiet)
    process.stdout.write(
      `\n${md}\nwrote 2 files to ${out} in ${(report.timings.totalMs / 1000).toFixed(1)} s\n`,
    );
  return 0;
}

export async function runLabCommand(values: LabCommandOptions, positionals: string[]): Promise<number> {
  if (values.campaign === true) return runCampaignCommand(values, positionals);
  for (const [flag, value] of [
    ['--organisations', values.organisations],
    ['--accounts', values.accounts],
    ['--account-delta', values.accountDelta],
  ] as const)
    if (value !== undefined) fail('E_USAGE', `${flag} applies to --campaign only`);
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
