import { writeFileSync } from 'node:fs';
import { machineLine, renderTable, type Section } from './harness';
import { interopSections } from './interop';
import { ngramSections } from './ngram';
import { verifierSections } from './verifier';
import { watermarkSections } from './watermark';

/** Runs every benchmark suite and writes BENCHMARKS.md at the repository root. */
async function main(): Promise<void> {
  const sections: Section[] = [];
  const only = process.argv[2];
  const suites = {
    watermark: watermarkSections,
    verifier: verifierSections,
    interop: interopSections,
    ngram: ngramSections,
  };
  for (const [name, suite] of Object.entries(suites)) {
    if (only !== undefined && only !== name) continue;
    const made = await suite();
    for (const section of made) console.log(renderTable(section));
    sections.push(...made);
  }
  const header = [
    '# Benchmarks',
    '',
    `Made by \`pnpm bench\` on ${new Date().toISOString().slice(0, 10)}: ${machineLine()}.`,
    'Machines here are shared and noisy: compare figures as ratios within one run, not across runs.',
    '',
  ];
  if (only !== undefined) return; // a partial run prints its tables but leaves BENCHMARKS.md whole
  writeFileSync(
    new URL('../BENCHMARKS.md', import.meta.url),
    [...header, ...sections.map(renderTable)].join('\n'),
  );
}

await main();
