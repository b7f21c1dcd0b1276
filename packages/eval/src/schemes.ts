import { createHash } from 'node:crypto';
import { type GeneratedSample, generateSamples } from '@tracemark/lab';
import type { NgramModel } from '@tracemark/ngram';
import { accountLayerTest, createWorkerPool, detectTokens, stopWorkerPool } from '@tracemark/verifier';
import {
  createInteropScheme,
  createRng,
  createScheme,
  ExpEditGenerator,
  type MasterKey,
  parseExpEditSpec,
  type Scheme,
} from '@tracemark/watermark';
import type { Attack } from './attacks';
import { EVAL_SCHEMES, type EvalConfig, type EvalSchemeName } from './config';
import { EXP_EDIT_LOCAL_GAP, type ExpEditJob, type ExpEditSettings, ExpEditTester } from './exp-edit-test';

export interface TestOutcome {
  text: number;
  window: number | null;
}

export interface GenerationSettings {
  maxTokens: number;
  topK: number;
  temperature: number;
  seed: string;
}

/** A scheme as the harness drives it: generate watermarked answers, and test a text for the watermark. */
export interface EvalScheme {
  spec: Record<string, unknown>;
  /** How a text is tested, in words, for the report. */
  testDescription: string;
  generate(
    model: NgramModel,
    prompts: readonly number[][],
    settings: GenerationSettings,
  ): Promise<GeneratedSample[]>;
  /** log10 p-values of the whole-text test and of the best-window test (null: none), under the run's key. */
  test(tokens: readonly number[]): TestOutcome;
  /**
   * The test of plain text `index` under a key of its own. With one key for every plain text, texts on one
   * topic share frequent (context, token) pairs, so their p-values move together and a count of false
   * positives is overdispersed; a key per text makes the plain tests independent, and the count binomial.
   */
  plainTest(index: number): (tokens: readonly number[]) => TestOutcome;
  /** Whether the test's p-values are continuous enough for a ROC curve and calibration shares. */
  hasFullPValues: boolean;
  /** Texts per cell when fewer than the run's (EXP-edit's permutation test is costly). */
  maxTexts?: number;
  /** Cells the scheme leaves out. */
  skip?(attack: Attack, length: number): boolean;
  /**
   * Tests many texts at once on worker threads: `tenant` null is the run key, `plain-<i>` plain text i's
   * own (as plainTest). Where present, the harness uses it instead of test and plainTest.
   */
  testBatch?(jobs: ExpEditJob[]): Promise<TestOutcome[]>;
  /** Releases the scheme's worker threads. */
  close?(): Promise<void>;
}

const EXACT_TEST =
  "exact p-value of the score sum under the scheme's null law, each (context, token) pair once; best window: Bonferroni over the windows tried";

export function evalScheme(
  name: EvalSchemeName,
  master: MasterKey,
  vocabSize: number,
  config: EvalConfig,
): EvalScheme {
  const entry = EVAL_SCHEMES[name];
  if (entry.kind === 'exp-edit') return expEditScheme(vocabSize, config);
  if (entry.kind === 'layered') return layeredScheme(entry.spec, entry.layer, master, vocabSize);
  const keyed = (tenant?: string): Scheme =>
    entry.kind === 'native'
      ? createScheme({ ...entry.spec, vocabSize }, master, tenant === undefined ? {} : { tenant })
      : // transformers' key is a public integer in the spec; the harness draws one from its own key. Attacks
        // bring thousands of contexts, each a 200,019-entry permutation: the run's key caches 512 MiB of them.
        createInteropScheme(
          { ...entry.spec, vocabSize, hashingKey: hashingKeyOf(master, tenant) },
          { maxBytes: (tenant === undefined ? 512 : 16) * 1024 * 1024 },
        );
  const scheme = keyed();
  const testWith =
    (s: Scheme) =>
    (tokens: readonly number[]): TestOutcome => {
      const result = detectTokens(tokens, { scheme: s, window: true, perToken: false });
      return { text: result.log10PValue, window: result.bestWindow?.correctedLog10PValue ?? 0 };
    };
  return {
    spec: { ...scheme.spec, ...('hashingKey' in scheme.spec ? { hashingKey: '(drawn per run)' } : {}) },
    testDescription: EXACT_TEST,
    generate: (model, prompts, settings) => generateSamples(model, scheme, prompts, settings),
    test: testWith(scheme),
    plainTest: (index) => testWith(keyed(`plain-${index}`)),
    hasFullPValues: true,
    // Each plain text's own key builds its permutations anew (about 1 ms each): fewer texts keep the run short.
    ...(entry.kind === 'interop' ? { maxTexts: config.interopTexts } : {}),
  };
}

/** The account every watermarked text of a key-hierarchy run is written for. */
const EVAL_ACCOUNT = 'eval-account';

/**
 * KGW with an account layer (docs/design.md, "Key hierarchy"), written for EVAL_ACCOUNT. The organisation layer is
 * tested as one-layer KGW is (the same key); the account layer by `accountLayerTest`, each plain text under an
 * account of its own (`plain-<i>`) so that plain tests stay independent.
 */
function layeredScheme(
  spec: Record<string, unknown>,
  layer: 'organisation' | 'account',
  master: MasterKey,
  vocabSize: number,
): EvalScheme {
  const full = { ...spec, vocabSize };
  const writer = createScheme(full, master, { account: EVAL_ACCOUNT });
  const organisation = createScheme(full, master);
  const orgTest =
    (s: Scheme) =>
    (tokens: readonly number[]): TestOutcome => {
      const result = detectTokens(tokens, { scheme: s, window: true, perToken: false });
      return { text: result.log10PValue, window: result.bestWindow?.correctedLog10PValue ?? 0 };
    };
  const accountTest =
    (account: string) =>
    (tokens: readonly number[]): TestOutcome => ({
      text: accountLayerTest([{ prompt: [], output: tokens }], { spec: full, master, account }).log10PValue,
      window: null,
    });
  return {
    spec: { ...writer.spec },
    testDescription:
      layer === 'organisation'
        ? `${EXACT_TEST}; the organisation layer of a text written for one account`
        : "exact Binomial(N, 1/2) p-value of the account layer's green count for the writing account, each (context, token) pair once",
    generate: (model, prompts, settings) => generateSamples(model, writer, prompts, settings),
    test: layer === 'organisation' ? orgTest(organisation) : accountTest(EVAL_ACCOUNT),
    plainTest: (index) =>
      layer === 'organisation'
        ? orgTest(createScheme(full, master, { tenant: `plain-${index}` }))
        : accountTest(`plain-${index}`),
    hasFullPValues: true,
  };
}

/** A 31-bit hashing key for the transformers reproduction, derived from the run's master key and a label. */
function hashingKeyOf(master: MasterKey, tenant = ''): number {
  const digest = createHash('sha256')
    .update(`tracemark-eval\0hf-kgw\0${master.fingerprint}\0${tenant}`)
    .digest();
  return digest.readUInt32BE(0) >>> 1;
}

/**
 * EXP-edit (Kuditipudi et al. 2023): exponential-minimum sampling along a key sequence from a random shift,
 * tested by the permutation test over `expEditKeys` fresh key sequences with tracemark's local alignment
 * (docs/evaluation.md, "EXP-edit"). Its p-value is at least 1 / (K + 1), so K is set from α; each detected
 * text costs K + 1 alignments, hence fewer texts and lengths, and the run's worker threads.
 */
/** The attacks EXP-edit meets in the harness: none and the token edits it was designed for. */
const EXP_EDIT_ATTACKS = new Set<Attack['kind']>(['none', 'sub', 'sub-model', 'del', 'ins', 'ins-model']);

function expEditScheme(vocabSize: number, config: EvalConfig): EvalScheme {
  const spec = parseExpEditSpec({ scheme: 'exp-edit', vocabSize });
  const settings: ExpEditSettings = {
    seed: config.seed,
    spec,
    nullKeys: config.expEditKeys,
    stopAbove: config.alpha,
  };
  const tester = new ExpEditTester(settings);
  const key = tester.key(null);
  const pool =
    config.workers > 1
      ? createWorkerPool('@tracemark/eval/worker', import.meta.url, {
          threads: config.workers,
          workerData: { settings },
        })
      : null;
  const outcome = (log10p: number): TestOutcome => ({ text: log10p, window: null });
  return {
    spec: { ...spec },
    testDescription:
      `permutation test over ${config.expEditKeys} fresh key sequences, p = (1 + #{fresh ≤ observed}) / (K + 1), ` +
      `of the local alignment cost (gap ${EXP_EDIT_LOCAL_GAP}); stopped once p must exceed α`,
    generate: async (model, prompts, settings) => {
      const ids = new Int32Array(settings.topK);
      const logits = new Float32Array(settings.topK);
      const samples: GeneratedSample[] = [];
      for (let i = 0; i < prompts.length; i++) {
        const uniform = createRng(`${settings.seed}:${i}`);
        const generator = new ExpEditGenerator(key, uniform);
        const tokens = [...prompts[i]];
        for (let step = 0; step < settings.maxTokens; step++) {
          const count = model.topCandidates(tokens, settings.topK, ids, logits);
          if (settings.temperature !== 1) for (let j = 0; j < count; j++) logits[j] /= settings.temperature;
          tokens.push(generator.next(logits, ids, count));
        }
        samples.push({ prompt: [...prompts[i]], output: tokens.slice(prompts[i].length) });
      }
      return samples;
    },
    test: (tokens) => outcome(tester.test({ tokens: [...tokens], tenant: null })),
    plainTest: (index) => (tokens) => outcome(tester.test({ tokens: [...tokens], tenant: `plain-${index}` })),
    ...(pool === null
      ? {}
      : {
          testBatch: async (jobs) =>
            (await Promise.all(jobs.map((job) => pool.run(job) as Promise<number>))).map(outcome),
          close: () => stopWorkerPool(pool),
        }),
    hasFullPValues: false,
    maxTexts: config.expEditTexts,
    // The comparison EXP-edit is for: token edits. Copy-paste and paraphrase cost as much and show nothing new.
    skip: (attack, length) => length > config.expEditMaxLength || !EXP_EDIT_ATTACKS.has(attack.kind),
  };
}
