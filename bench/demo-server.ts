import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type LabFacts, loadTeacher, type ModelSet } from '@tracemark/lab';
import { createScheme, MasterKey, SupportBiasScheme } from '@tracemark/watermark';
import { createApp, readConfig, type ServedModel } from '../apps/demo-server/src/index';
import { fmt, type Section } from './harness';

const TOKENS = 192;
const ROUNDS = 12;

interface Variant {
  label: string;
  model: string;
}

interface Setting {
  label: string;
  body: Record<string, unknown>;
  variants: Variant[];
}

/**
 * Tokens per second through the demo server's /v1/completions, over HTTP on loopback, with the watermark on and
 * off: the teacher of the full profile (order 4, 15 books), one request at a time, the variants interleaved
 * round by round so that machine noise hits them alike.
 */
export async function demoServerSections(): Promise<Section[]> {
  const dataDir = mkdtempSync(join(tmpdir(), 'tracemark-bench-'));
  // The teacher is cached where `pnpm start` keeps it (trained in seconds if it is not there yet).
  const config = readConfig({
    TRACEMARK_DATA_DIR: dataDir,
    TRACEMARK_LOG_REQUESTS: '0',
    TRACEMARK_MAX_TOKENS: '1024',
  });
  const defaults = readConfig({});
  const teacher = loadTeacher(defaults.profile, defaults.modelDir);
  const key = MasterKey.generate();
  const lab = { profile: defaults.profile, share: 0, teacherBooks: [] } as unknown as LabFacts;
  const models: ModelSet = { teacher, distilled: teacher, clean: teacher, lab, created: 0 };
  const { app, ctx, stop, warmed } = await createApp({
    config,
    key,
    apiToken: 'bench-token-0123456789',
    models,
  });
  // Measure the server as it runs after its start-up warm-up of the green-list cache.
  const warmedContexts = await warmed;
  const served = ctx.models.get('tracemark-teacher')!;
  // Reference: the same watermark through the scheme's own full-vocabulary biasLogits, without the support cache.
  const fullBias: ServedModel = {
    ...served,
    id: 'bench-full-vocabulary-bias',
    scheme: createScheme(config.spec, key),
  };
  ctx.models.set(fullBias.id, fullBias);
  const base = await app.listen({ host: '127.0.0.1', port: 0 });

  const request = async (model: string, body: Record<string, unknown>, round: number) => {
    const cpu = process.cpuUsage();
    const started = performance.now();
    const response = await fetch(`${base}/v1/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        model,
        prompt: PROMPTS[round % PROMPTS.length],
        max_tokens: TOKENS,
        seed: round,
        ...body,
      }),
    });
    type Usage = { usage?: { completion_tokens: number } | null };
    let tokens: number;
    if (body.stream === true) {
      const chunks = (await response.text())
        .split('\n\n')
        .filter((e) => e.startsWith('data: {'))
        .map((e) => JSON.parse(e.slice(6)) as Usage);
      tokens = chunks.find((c) => c.usage)?.usage?.completion_tokens ?? 0;
    } else {
      tokens = ((await response.json()) as Usage).usage?.completion_tokens ?? 0;
    }
    const used = process.cpuUsage(cpu);
    return {
      tokens,
      seconds: (performance.now() - started) / 1000,
      cpuSeconds: (used.user + used.system) / 1e6,
    };
  };

  const plain = { label: 'watermark off (tracemark-teacher-plain)', model: 'tracemark-teacher-plain' };
  const marked = { label: 'watermark on (tracemark-teacher)', model: 'tracemark-teacher' };
  const settings: Setting[] = [
    {
      label: 'defaults (temperature 1, no truncation)',
      body: {},
      variants: [
        plain,
        marked,
        { label: 'watermark on, full-vocabulary bias (reference)', model: fullBias.id },
      ],
    },
    {
      label: 'defaults, streamed',
      body: { stream: true, stream_options: { include_usage: true } },
      variants: [plain, marked],
    },
    { label: 'greedy (temperature 0)', body: { temperature: 0 }, variants: [plain, marked] },
  ];
  const rows: (string | number)[][] = [];
  const median = (xs: number[]) => {
    const sorted = xs.slice().sort((a, b) => a - b);
    const mid = sorted.length >> 1;
    return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  };
  try {
    for (const setting of settings) {
      for (const variant of setting.variants) await request(variant.model, setting.body, 999); // warm-up
      const rates: number[][] = setting.variants.map(() => []);
      const cpuRates: number[][] = setting.variants.map(() => []);
      for (let round = 0; round < ROUNDS; round++) {
        // Every variant once per round, back to back, in an order that rotates: each round is one paired sample.
        for (let k = 0; k < setting.variants.length; k++) {
          const i = (k + round) % setting.variants.length;
          const { tokens, seconds, cpuSeconds } = await request(
            setting.variants[i].model,
            setting.body,
            round,
          );
          rates[i].push(tokens / seconds);
          cpuRates[i].push(tokens / cpuSeconds);
        }
      }
      setting.variants.forEach((variant, i) => {
        // The ratio is the median over rounds of this round's rate over the same round's rate with the watermark
        // off: on a shared machine, load that comes and goes hits both requests of a round alike.
        const paired = (r: number[][]) =>
          i === 0 ? 1 : median(r[i].map((rate, round) => rate / r[0][round]));
        rows.push([
          setting.label,
          variant.label,
          median(rates[i]).toFixed(0),
          fmt.ratio(paired(rates)),
          fmt.ratio(paired(cpuRates)),
        ]);
      });
    }
  } finally {
    await stop(0);
    rmSync(dataDir, { recursive: true, force: true });
  }
  const cache = served.scheme instanceof SupportBiasScheme ? served.scheme : null;
  const hitRate = cache ? cache.hits / Math.max(1, cache.hits + cache.misses) : 0;
  return [
    {
      title: 'Demo server: watermarked serving throughput',
      notes: [
        `Tokens per second through \`POST /v1/completions\` on loopback (one client, ${TOKENS} tokens per request;`,
        `median of ${ROUNDS} rounds, each running every variant once back to back; the ratio is the median of the`,
        "rounds' ratios), serving the full-profile teacher (order-4 n-gram over o200k_base,",
        'V = 200,019) with KGW γ = 0.25, δ = 2, h = 1. Goal: watermark on / off ≥ 0.97. The server biases only the',
        "model's support (the tokens it saw in training; every other logit is −∞, so the result is bit-for-bit the",
        "scheme's own full-vocabulary call) and caches each context's green tokens of that support; at start it",
        `fills the cache for the ${warmedContexts} most frequent one-token contexts in the background.`,
        `Cache hit rate during the runs: ${(hitRate * 100).toFixed(0)}%. The reference row runs the scheme's own`,
        'full-vocabulary `biasLogits` every step, as a stack without the cache would. The last column counts tokens per',
        "second of this process's CPU time (server and client share it; the client's work is the same for both), which",
        'other processes on a shared machine disturb far less than wall-clock time.',
      ],
      columns: ['sampling', 'model', 'tokens/s', 'ratio to off', 'ratio, per CPU second'],
      rows,
    },
  ];
}

const PROMPTS = [
  'It was a bright cold day in April, and the',
  'The Queen turned angrily away from him, and said to the',
  'Call me Ishmael. Some years ago, never mind how long precisely,',
  'In the beginning God created the heaven and the earth. And the',
  'Emma Woodhouse, handsome, clever, and rich, with a comfortable home',
  'Father Brown laid down his cigar and said carefully:',
];

// `tsx bench/demo-server.ts` prints the table on its own.
if (import.meta.url === `file://${process.argv[1]}`) {
  const { renderTable } = await import('./harness');
  for (const section of await demoServerSections()) console.log(renderTable(section));
}
