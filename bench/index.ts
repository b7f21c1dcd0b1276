import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { adapterSections } from './adapters';
import { attributionSections } from './attribution';
import { demoServerSections } from './demo-server';
import { machineLine, renderTable, type Section } from './harness';
import { interopSections } from './interop';
import { investigateSections } from './investigate';
import { ngramSections } from './ngram';
import { scanSections } from './scan';
import { startupSections } from './startup';
import { verifierSections } from './verifier';
import { watermarkSections } from './watermark';

/**
 * Runs the benchmark suites (all, or those named on the command line), keeps each suite's tables in
 * bench/results/<suite>.json with the machine and date of its run, and writes BENCHMARKS.md from all of
 * them, so one suite can be re-measured without re-running the others.
 */
async function main(): Promise<void> {
  const suites: Record<string, () => Promise<Section[]>> = {
    watermark: watermarkSections,
    verifier: verifierSections,
    interop: interopSections,
    ngram: ngramSections,
    investigate: investigateSections,
    attribution: attributionSections,
    scan: scanSections,
    'demo-server': demoServerSections,
    adapters: adapterSections,
    startup: startupSections,
  };
  const requested = process.argv.slice(2);
  for (const name of requested)
    if (!(name in suites)) throw new Error(`unknown suite ${name}; known: ${Object.keys(suites).join(', ')}`);
  const resultsDir = new URL('./results/', import.meta.url);
  mkdirSync(resultsDir, { recursive: true });
  for (const [name, suite] of Object.entries(suites)) {
    if (requested.length > 0 && !requested.includes(name)) continue;
    const sections = await suite();
    for (const section of sections) console.log(renderTable(section));
    const run: SuiteRun = {
      suite: name,
      date: new Date().toISOString().slice(0, 10),
      machine: machineLine(),
      sections,
    };
    writeFileSync(new URL(`${name}.json`, resultsDir), `${JSON.stringify(run, null, 2)}\n`);
  }
  const body: string[] = [];
  for (const name of Object.keys(suites)) {
    const file = new URL(`${name}.json`, resultsDir);
    if (!existsSync(file)) continue;
    const run = JSON.parse(readFileSync(file, 'utf8')) as SuiteRun;
    body.push(`<!-- suite ${run.suite}: \`pnpm bench ${run.suite}\` on ${run.date}, ${run.machine} -->`, '');
    for (const section of run.sections) {
      body.push(
        renderTable({ ...section, notes: [...section.notes, `Measured ${run.date} on ${run.machine}.`] }),
      );
    }
  }
  const header = [
    '# Benchmarks',
    '',
    'Made by `pnpm bench` (every suite) or `pnpm bench <suite>…` (those suites; the others keep their last run).',
    'Each table says when and on which machine it was measured. Machines here are shared and noisy: compare',
    'figures as ratios within one table, not across tables or runs.',
    '',
  ];
  writeFileSync(new URL('../BENCHMARKS.md', import.meta.url), [...header, ...body].join('\n'));
}

interface SuiteRun {
  suite: string;
  date: string;
  machine: string;
  sections: Section[];
}

await main();
