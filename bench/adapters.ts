/**
 * Per-token overhead of the serving-stack adapters over plain generation with the same tiny model, at the
 * test vocabulary and at a Llama-3-sized one. The runtimes (transformers.js, node-llama-cpp) resolve
 * through the adapter packages' test support, as the packages hold them as dev dependencies.
 *
 * Run alone with `pnpm build && tsx bench/adapters.ts`.
 */
import { pathToFileURL } from 'node:url';
import { createScheme, MasterKey, type Scheme } from '@tracemark/watermark';
import {
  type GenerateWatermarkedOptions,
  generateWatermarked,
} from '../packages/adapter-llama-cpp/src/index';
import { TINY_VOCAB as LLAMA_VOCAB, TINY_BOS } from '../packages/adapter-llama-cpp/test/support/gguf';
import { openTinyLlama } from '../packages/adapter-llama-cpp/test/support/runtime';
import {
  openTinyModel,
  WatermarkLogitsProcessor,
} from '../packages/adapter-transformers/test/support/runtime';
import { TINY_VOCAB as ONNX_VOCAB } from '../packages/adapter-transformers/test/support/tiny-model';
import { fmt, machineLine, renderTable, type Section } from './harness';

const REAL_VOCAB = 128_256; // Llama 3
const key = MasterKey.generate();

/** Generated tokens and runs per measurement: fewer at the real vocabulary size, where steps are slower. */
interface Plan {
  vocab: number;
  tokens: number;
  runs: number;
}

/**
 * Median seconds per generated token of `plain` and of `adapter`, measured in alternation (one warm-up
 * run each) so that the load of a shared machine falls on both alike.
 */
async function compare(
  plan: Plan,
  plain: () => Promise<number>,
  adapter: () => Promise<number>,
): Promise<[number, number]> {
  await plain();
  await adapter();
  const times: [number[], number[]] = [[], []];
  const fns = [plain, adapter];
  for (let r = 0; r < plan.runs; r++) {
    for (const i of r % 2 === 0 ? [0, 1] : [1, 0]) {
      const start = performance.now();
      const tokens = await fns[i]();
      times[i].push((performance.now() - start) / 1000 / tokens);
    }
  }
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[xs.length >> 1];
  return [median(times[0]), median(times[1])];
}

function schemes(vocabSize: number): Record<'kgw' | 'gumbel' | 'synthid', Scheme> {
  return {
    kgw: createScheme({ scheme: 'kgw', gamma: 0.25, delta: 2, vocabSize }, key),
    // Argmax Gumbel-max (softness 0), the draw these rows were measured with; the watermark suite has GumbelSoft.
    gumbel: createScheme({ scheme: 'gumbel', vocabSize, softness: 0 }, key),
    synthid: createScheme({ scheme: 'synthid', depth: 30, vocabSize }, key),
  };
}

type Row = [label: string, measured: [plain: number, adapter: number]];

function rows(vocab: number, measured: Row[]): (string | number)[][] {
  return measured.map(([label, [plain, adapter]]) => [
    label,
    vocab.toLocaleString('en-US'),
    fmt.micro(plain),
    fmt.micro(adapter),
    fmt.micro(adapter - plain),
    `${(((adapter - plain) / plain) * 100).toFixed(0)}%`,
  ]);
}

async function transformersRows(plan: Plan): Promise<Row[]> {
  const runtime = await openTinyModel(plan.vocab);
  try {
    const { tokenizer, model } = runtime;
    const inputs = tokenizer(['The benchmark prompt:'], { padding: true });
    const generate = (options: Record<string, unknown>) => async () => {
      await model.generate({ ...inputs, max_new_tokens: plan.tokens, ...options });
      return plan.tokens;
    };
    // A fresh processor per generation, as a server would create per request.
    const withProcessor =
      (scheme: Scheme, options: Record<string, unknown>, topK = 0) =>
      async () => {
        const processor = new WatermarkLogitsProcessor(scheme, {
          seed: 1,
          ...(topK > 0 ? { sampling: { topK } } : {}),
        });
        return generate({ ...options, logits_processor: [processor] })();
      };
    const s = schemes(plan.vocab);
    const sampled = { do_sample: true, top_k: 0 };
    const greedy = { do_sample: false };
    return [
      [
        'transformers.js: KGW processor, sampled, vs plain sampling',
        await compare(plan, generate(sampled), withProcessor(s.kgw, sampled)),
      ],
      [
        'transformers.js: Gumbel-max processor (greedy) vs plain greedy',
        await compare(plan, generate(greedy), withProcessor(s.gumbel, greedy)),
      ],
      [
        'transformers.js: Gumbel-max processor on top-40 (sampling: { topK: 40 }) vs plain greedy',
        await compare(plan, generate(greedy), withProcessor(s.gumbel, greedy, 40)),
      ],
      [
        'transformers.js: SynthID m=30 processor (greedy) vs plain greedy',
        await compare(plan, generate(greedy), withProcessor(s.synthid, greedy)),
      ],
    ];
  } finally {
    await runtime.close();
  }
}

async function llamaRows(plan: Plan): Promise<Row[]> {
  const runtime = await openTinyLlama(plan.vocab);
  try {
    const { model, sequence } = runtime;
    const prompt = [TINY_BOS, ...model.tokenize('The benchmark prompt:')] as ReturnType<
      typeof model.tokenize
    >;
    const s = schemes(plan.vocab);
    const plain =
      (options: object, metadata = false) =>
      async () => {
        let n = 0;
        const iterator = metadata
          ? sequence.evaluateWithMetadata(prompt, { probabilities: true }, options)
          : sequence.evaluate(prompt, options);
        for await (const _ of iterator) if (++n >= plan.tokens) break;
        await sequence.clearHistory();
        return n;
      };
    const marked = (scheme: Scheme, options: GenerateWatermarkedOptions) => async () => {
      const generation = generateWatermarked(sequence, scheme, prompt, {
        ...options,
        maxTokens: plan.tokens,
      });
      for await (const _ of generation);
      await sequence.clearHistory();
      return generation.generated.length;
    };
    const sampling = { temperature: 1, seed: 1 };
    const exact = { temperature: 1, topK: 0, topP: 1, minP: 0, seed: 1 };
    const top40 = { temperature: 1, topK: 40, topP: 1, minP: 0, seed: 1 };
    return [
      [
        'node-llama-cpp: KGW tokenBias vs plain evaluate (T=1, default top-k 40, top-p 0.95)',
        await compare(plan, plain(sampling), marked(s.kgw, sampling)),
      ],
      [
        'node-llama-cpp: KGW on top-40 (route: probabilities) vs plain evaluate top-40',
        await compare(
          plan,
          plain(top40),
          marked(s.kgw, { ...top40, route: 'probabilities', samplingSeed: 1 }),
        ),
      ],
      [
        'node-llama-cpp: `probabilities: true` alone vs plain evaluate (T=1, no truncation)',
        await compare(plan, plain(exact), plain(exact, true)),
      ],
      [
        'node-llama-cpp: Gumbel-max (full distribution, token passed back) vs plain evaluate',
        await compare(plan, plain(exact), marked(s.gumbel, { samplingSeed: 1 })),
      ],
      [
        'node-llama-cpp: Gumbel-max on top-40 vs plain evaluate top-40',
        await compare(plan, plain(top40), marked(s.gumbel, { ...top40, samplingSeed: 1 })),
      ],
      [
        'node-llama-cpp: SynthID m=30 (full distribution) vs plain evaluate',
        await compare(plan, plain(exact), marked(s.synthid, { samplingSeed: 1 })),
      ],
    ];
  } finally {
    await runtime.close();
  }
}

export async function adapterSections(): Promise<Section[]> {
  const plans: Plan[] = [
    { vocab: ONNX_VOCAB, tokens: 200, runs: 7 },
    { vocab: REAL_VOCAB, tokens: 40, runs: 5 },
  ];
  const tfRows: (string | number)[][] = [];
  const llamaTableRows: (string | number)[][] = [];
  for (const plan of plans) {
    tfRows.push(...rows(plan.vocab, await transformersRows(plan)));
    const llamaPlan = plan.vocab === ONNX_VOCAB ? { ...plan, vocab: LLAMA_VOCAB } : plan;
    llamaTableRows.push(...rows(llamaPlan.vocab, await llamaRows(llamaPlan)));
  }
  const columns = [
    'generation',
    'V',
    'plain µs/token',
    'with adapter µs/token',
    'overhead µs/token',
    'overhead',
  ];
  const common = [
    'Median seconds per generated token, batch 1, plain and watermarked runs alternated: 7 runs of 200 tokens',
    `at the test vocabulary, 5 runs of 40 tokens at V = ${REAL_VOCAB.toLocaleString('en-US')} (the same one-layer model`,
    'with a Llama-3-sized output layer). The models are tiny, so the percentages overstate what an adapter',
    'costs next to a real forward pass: carry over the absolute overhead per token, which grows with V.',
    'Overheads below about 0.3 ms per token (and negative ones) are within the noise of a shared machine.',
  ];
  return [
    {
      title: 'Adapters: transformers.js per-token overhead',
      notes: [
        ...common,
        'transformers.js 3.8.1 on ONNX Runtime (CPU, one thread); a one-layer ONNX transformer with a KV cache.',
      ],
      columns,
      rows: tfRows,
    },
    {
      title: 'Adapters: node-llama-cpp per-token overhead',
      notes: [
        ...common,
        'node-llama-cpp 3.22.1, prebuilt CPU binary, one thread; a one-layer GGUF llama (F32).',
      ],
      columns,
      rows: llamaTableRows,
    },
  ];
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  console.log(`${machineLine()}\n`);
  for (const section of await adapterSections()) console.log(renderTable(section));
}
