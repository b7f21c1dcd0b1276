import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type LabFacts, loadTeacher, type ModelSet } from '@tracemark/lab';
import { loadTokenizer } from '@tracemark/verifier';
import { createScheme, MasterKey, type Scheme, SupportBiasScheme } from '@tracemark/watermark';
import { ChoiceRun, schemeForAccount } from '../apps/demo-server/src/generate';
import { createApp, readConfig, type ServedModel } from '../apps/demo-server/src/index';
import { TokenBytes } from '../apps/demo-server/src/text';
import { fmt, interleavedSecondsPerOp, type Section } from './harness';

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
  // Reference: the same watermark through the scheme's own full-vocabulary biasLogits over full V-entry rows, as a
  // stack without the support cache or the support rows would run it.
  const fullBias: ServedModel = {
    ...served,
    id: 'bench-full-vocabulary-bias',
    scheme: createScheme(config.spec, key),
    fullRows: true,
  };
  ctx.models.set(fullBias.id, fullBias);
  // Before: the served teacher (same scheme and cache) stepping over full V-entry rows, as the server did.
  const fullRows: ServedModel = { ...served, id: 'bench-full-rows', fullRows: true };
  ctx.models.set(fullRows.id, fullRows);
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
  const before = { label: 'before: full rows (O(V) per step)', model: fullRows.id };
  const after = { label: 'after: support rows (tracemark-teacher)', model: 'tracemark-teacher' };
  const rowSettings: Setting[] = [
    { label: 'defaults (temperature 1, no truncation)', body: {}, variants: [before, after] },
    {
      label: 'temperature 0.7, top_p 0.9',
      body: { temperature: 0.7, top_p: 0.9 },
      variants: [before, after],
    },
    { label: 'defaults, logprobs 5', body: { logprobs: 5 }, variants: [before, after] },
  ];
  const settings: Setting[] = [
    {
      label: 'defaults (temperature 1, no truncation)',
      body: {},
      variants: [
        plain,
        marked,
        { label: 'watermark on, full rows and full-vocabulary bias (reference)', model: fullBias.id },
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
  const rowRows: (string | number)[][] = [];
  const median = (xs: number[]) => {
    const sorted = xs.slice().sort((a, b) => a - b);
    const mid = sorted.length >> 1;
    return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
  };
  let strength: Strength | null = null;
  let stepRows: (string | number)[][] = [];
  try {
    for (const setting of [...settings, ...rowSettings]) {
      const table = settings.includes(setting) ? rows : rowRows;
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
        const row = [
          setting.label,
          variant.label,
          median(rates[i]).toFixed(0),
          fmt.ratio(paired(rates)),
          fmt.ratio(paired(cpuRates)),
        ];
        table.push(table === rowRows ? [...row, i === 0 ? 'peer' : '≥ 2'] : row);
      });
    }
    strength = await watermarkStrength(served, config.spec, key);
    stepRows = stepCosts(
      served,
      ctx.models.get('tracemark-teacher-plain')!,
      await loadTokenizer('o200k_base'),
    );
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
        `Cache hit rate during the runs: ${(hitRate * 100).toFixed(0)}%. Every step runs over the support's entries only`,
        "(next table); the reference row runs full V-entry rows and the scheme's own full-vocabulary `biasLogits`, as a",
        'stack without the support rows or the cache would. The last column counts tokens per',
        "second of this process's CPU time (server and client share it; the client's work is the same for both), which",
        'other processes on a shared machine disturb far less than wall-clock time.',
      ],
      columns: ['sampling', 'model', 'tokens/s', 'ratio to off', 'ratio, per CPU second'],
      rows,
    },
    {
      title: 'Demo server: support rows against full rows',
      notes: [
        "The teacher's steps over its support only (|support| = " +
          `${served.ngram.support.length.toLocaleString('en-US')} of V = 200,019 tokens; every other logit is −∞)`,
        'against the same server stepping over full V-entry rows (the path before: full softmax and draw, and a',
        `validation pass over all V logits, per token). Same method as above (${TOKENS} tokens per request, median of`,
        `${ROUNDS} interleaved rounds; the ratio is the median of the rounds' after / before). Goal: ≥ 2× tokens/s.`,
        `Watermark ratio (goal ≥ 0.97): ${strength === null ? 'not measured' : strength.line}`,
      ],
      columns: ['sampling', 'path', 'tokens/s', 'ratio to before', 'ratio, per CPU second', 'goal'],
      rows: rowRows,
    },
    {
      title: 'Demo server: one served step in-process',
      notes: [
        '`ChoiceRun.step` of tracemark-teacher against tracemark-teacher-plain in this process, without HTTP: the',
        `same ${PROMPTS.length} prompts and seeds for both, ${TOKENS} tokens each, interleaved (one batch of each per`,
        `round, median of ${STEP_ROUNDS} rounds), on contexts already in the green-list cache: the watermark's own cost`,
        'per step (its bias over the cached green positions of the support). Goal: plain / watermarked ≥ 0.97.',
      ],
      columns: ['sampling', 'plain µs/step', 'watermarked µs/step', 'plain / watermarked', 'goal'],
      rows: stepRows,
    },
  ];
}

const STEP_ROUNDS = 15;

/** Per-step time of the watermarked teacher and the plain one, interleaved, once the cache holds their contexts. */
function stepCosts(
  marked: ServedModel,
  plain: ServedModel,
  tokenizer: Awaited<ReturnType<typeof loadTokenizer>>,
): (string | number)[][] {
  const bytes = new TokenBytes(tokenizer);
  const ngram = marked.ngram;
  const scratch = new Float32Array(ngram.support.length);
  const prompts = PROMPTS.map((text) => ngram.encode(text));
  const generate = (model: ServedModel, temperature: number) => () => {
    for (const [p, prompt] of prompts.entries()) {
      const choice = new ChoiceRun(
        {
          model,
          prompt,
          maxTokens: TOKENS,
          temperature,
          topP: 1,
          stop: [],
          seed: `step/${p}`,
          logprobs: null,
          bytes,
        },
        scratch,
      );
      while (!choice.done) choice.step();
    }
  };
  const steps = prompts.length * TOKENS;
  return [
    ['defaults (temperature 1)', 1],
    ['greedy (temperature 0)', 0],
  ].map(([label, temperature]) => {
    const runs = {
      plain: generate(plain, temperature as number),
      marked: generate(marked, temperature as number),
    };
    runs.marked(); // fills the cache for these contexts
    const t = interleavedSecondsPerOp(runs, steps, STEP_ROUNDS);
    return [label, fmt.micro(t.plain), fmt.micro(t.marked), fmt.ratio(t.plain / t.marked), '≥ 0.97'];
  });
}

interface Strength {
  line: string;
}

/**
 * Mean per-token detection strength (green fraction above γ, scored by the organisation layer as /api/detect
 * does) of the teacher's outputs over support rows divided by the same over full rows: fixed prompts and seeds,
 * default sampling, without and with an account.
 */
async function watermarkStrength(
  served: ServedModel,
  spec: Scheme['spec'],
  key: MasterKey,
): Promise<Strength> {
  const bytes = new TokenBytes(await loadTokenizer('o200k_base'));
  const detector = createScheme(spec, key);
  const gamma = (spec as { gamma?: number }).gamma ?? 0.25;
  const ngram = served.ngram;
  const excess = { full: 0, support: 0 };
  const scored = { full: 0, support: 0 };
  let identical = 0;
  let runs = 0;
  for (const account of [undefined, 'bench-account']) {
    for (const [p, text] of PROMPTS.entries()) {
      for (let seed = 0; seed < 4; seed++) {
        const [full, support] = [true, false].map((full) => {
          const model = { ...served, fullRows: full };
          const choice = new ChoiceRun(
            {
              model,
              prompt: ngram.encode(text),
              maxTokens: TOKENS,
              temperature: 1,
              topP: 1,
              stop: [],
              seed: `${p}/${seed}`,
              logprobs: null,
              bytes,
              scheme: schemeForAccount(model, account),
            },
            new Float32Array(full ? ngram.vocabSize : ngram.support.length),
          );
          while (!choice.done) choice.step();
          return choice.session;
        });
        for (const [path, session] of [
          ['full', full],
          ['support', support],
        ] as const) {
          for (
            let i = Math.max(session.promptLength, detector.contextWidth);
            i < session.tokens.length;
            i++
          ) {
            excess[path] += detector.score(session.tokens, i);
            scored[path]++;
          }
        }
        runs++;
        if (full.tokens.join() === support.tokens.join()) identical++;
      }
    }
  }
  const fullStrength = excess.full / scored.full - gamma;
  const supportStrength = excess.support / scored.support - gamma;
  const ratio = supportStrength / fullStrength;
  return {
    line:
      `${fmt.ratio(ratio)} (green fraction above γ per token: ${supportStrength.toFixed(4)} over support rows, ` +
      `${fullStrength.toFixed(4)} over full rows; ${PROMPTS.length} prompts × 4 seeds × ${TOKENS} tokens, with and ` +
      `without an account; ${identical} of ${runs} outputs token-for-token identical).`,
  };
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
