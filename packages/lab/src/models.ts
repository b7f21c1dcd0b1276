import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  GUTENBERG_HELD_OUT_BOOKS,
  GUTENBERG_TRAIN_BOOKS,
  MODEL_FORMAT_VERSION,
  NgramModel,
  o200kBase,
} from '@tracemark/ngram';
import {
  canonicalSpec,
  createScheme,
  type MasterKey,
  type Scheme,
  type SchemeSpec,
  SupportBiasScheme,
} from '@tracemark/watermark';
import {
  LAB_SCHEME_NAMES,
  type LabConfig,
  type LabProfile,
  type LabProfileName,
  labProfile,
  labSpec,
  resolveLabConfig,
  type Sampling,
} from './config';
import { CORPUS, cleanText, heldOutPrompts, teacherText } from './data';
import { distillStudent, supportOf, teacherSamples, trainTeacher } from './distill';
import { fail } from './errors';

/**
 * The demo server's models, built by the lab's pipeline (`distill.ts`) from a lab profile ('demo', or
 * 'demo-test' for tests): the teacher, the clean student (ρ = 0) and the distilled student (the profile's one
 * positive ρ), cached in a directory under a hash of everything that shapes them. A lab run of the same
 * profile (`runLab({ profile: 'demo' })`) measures students built exactly this way, with the lab's key.
 */

/** A lab profile by name; the demo serves 'demo' and tests 'demo-test'. */
export { CORPUS };

/** Bumped when the way models are built changes, so that old caches are not read. */
const BUILD_VERSION = 3;

/**
 * The label of the teacher's samples, which seeds their sampling: the lab's name of the served spec where it
 * is a lab scheme (so that a build with the lab's key gives the lab run's very students), else 'served'.
 */
function sampleLabel(spec: SchemeSpec): string {
  const canonical = canonicalSpec(spec);
  const name = LAB_SCHEME_NAMES.find((s) => canonicalSpec(labSpec(s, spec.vocabSize)) === canonical);
  return name ?? 'served';
}

export interface LabFacts {
  /** The lab profile the models were built from. */
  profile: string;
  /** Share ρ of the distilled student's training tokens that are the teacher's output. */
  share: number;
  teacherSamples: number;
  teacherTokens: number;
  /** Prompt tokens kept with the teacher's outputs in the distilled student's text. */
  promptTokensDistilled: number;
  cleanTokensClean: number;
  cleanTokensDistilled: number;
  sampleTokens: number;
  promptTokens: number;
  teacherOrder: number;
  studentOrder: number;
  sampling: Sampling;
  promptsInTraining: boolean;
  teacherBooks: readonly string[];
  studentBooks: readonly string[];
  heldOutBooks: readonly string[];
  buildVersion: number;
  /** Seconds spent building, when built in this run. */
  buildSeconds?: number;
}

export interface ModelSet {
  teacher: NgramModel;
  distilled: NgramModel;
  clean: NgramModel;
  /** How they were built; `lab.profile` names the lab profile. */
  lab: LabFacts;
  /** Unix seconds at which the models were built (file times of the cache). */
  created: number;
}

export type Log = (message: string) => void;

export interface BuildOptions {
  profile: LabProfileName | LabProfile;
  key: MasterKey;
  spec: SchemeSpec;
  /** Cache directory; built models are written there and read back on later starts. */
  modelDir: string;
  log?: Log;
}

function hashOf(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('hex').slice(0, 16);
}

/** The run settings of a profile as the demo builds it (one thread; the profile's own seed). */
function demoConfig(profile: LabProfileName | LabProfile): LabConfig {
  return resolveLabConfig({}, 1, labProfile(profile));
}

/** The distilled student's share: the profile's one positive ρ (its clean student is ρ = 0). */
function servedShare(config: LabConfig): number {
  const positive = config.rhos.filter((rho) => rho > 0);
  if (positive.length !== 1)
    fail(
      'E_USAGE',
      `profile ${config.profile} cannot build the demo's students: it needs one positive rho; got ` +
        `${config.rhos.join(', ')}`,
    );
  return positive[0];
}

export { supportOf };

/**
 * Support tokens ranked by the model's unigram (continuation) probability, most likely first: the contexts worth
 * caching first. A context made of one unseen token reaches no n-gram, so its logits are the unigram row.
 */
export function frequentTokens(model: NgramModel, count: number): Int32Array {
  let unseen = 0;
  while (unseen < model.vocabSize && model.isKnown(unseen)) unseen++;
  if (unseen === model.vocabSize) return supportOf(model).subarray(0, count);
  const logits = model.logits([unseen]);
  const support = Array.from(supportOf(model));
  support.sort((a, b) => logits[b] - logits[a] || a - b);
  return Int32Array.from(support.slice(0, count));
}

/**
 * The teacher's keyed scheme as the server runs it over full logits rows: with the support-restricted bias
 * where that is exact for the scheme (KGW without self-hashing).
 */
export function servingScheme(spec: SchemeSpec, key: MasterKey, model: NgramModel): Scheme {
  const scheme = createScheme(spec, key);
  return SupportBiasScheme.applies(scheme) ? new SupportBiasScheme(scheme, supportOf(model)) : scheme;
}

/**
 * Probe prompts for an investigator: the lab's probe prompts of the profile (held-out chunks the teacher was
 * never asked), as text, in order; chunks that do not decode to clean text of 20 characters are skipped.
 */
export function probePrompts(profile: LabProfileName | LabProfile, count: number): string[] {
  const out: string[] = [];
  for (const ids of heldOutPrompts(demoConfig(profile)).probes) {
    if (out.length >= count) break;
    const text = o200kBase.decode(ids).trim();
    if (text.length >= 20 && !text.includes('\uFFFD')) out.push(text);
  }
  return out;
}

function writeAtomic(path: string, bytes: Uint8Array | string): void {
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, bytes);
  renameSync(temporary, path);
}

const teacherBooks = (config: LabConfig) => config.books?.teacher ?? GUTENBERG_TRAIN_BOOKS;
const studentBooks = (config: LabConfig) => config.books?.students ?? teacherBooks(config);
const heldOutBooks = (config: LabConfig) => config.books?.heldOut ?? GUTENBERG_HELD_OUT_BOOKS;

function teacherKey(config: LabConfig) {
  return {
    build: BUILD_VERSION,
    format: MODEL_FORMAT_VERSION,
    corpus: CORPUS,
    teacher: { books: teacherBooks(config), order: config.teacherOrder },
  };
}

/** The settings that shape the students (not the probes, the controls or the tests). */
function studentSettings(config: LabConfig) {
  const {
    probes,
    probeTokens,
    controls,
    filterWidth,
    schemes,
    workers,
    gamma,
    delta,
    contextWidth,
    prune,
    attacks,
    ...settings
  } = config;
  // The lab's attack and spec options are left out at their defaults (as the demo's profiles always have
  // them), so that the cache keys of models built before they existed still hold.
  const overrides = { gamma, delta, contextWidth };
  return {
    ...settings,
    ...Object.fromEntries(Object.entries(overrides).filter(([, v]) => v !== null)),
    ...(prune === 1 ? {} : { prune }),
    ...(attacks.length === 1 && attacks[0].kind === 'none' ? {} : { attacks }),
    studentBooks: studentBooks(config),
    heldOutBooks: heldOutBooks(config),
  };
}

/** The cache key of the teacher, and of the students (which depend on the key and spec through the samples). */
export function cacheKeys(
  profile: LabProfileName | LabProfile,
  spec: SchemeSpec,
  key: MasterKey,
): { teacher: string; students: string } {
  const config = demoConfig(profile);
  const teacher = hashOf(teacherKey(config));
  const students = hashOf({
    build: BUILD_VERSION,
    format: MODEL_FORMAT_VERSION,
    corpus: CORPUS,
    teacher,
    settings: studentSettings(config),
    spec: canonicalSpec(spec),
    // Public: the fingerprint names the key the teacher's samples were watermarked with.
    key: key.fingerprint,
  });
  return { teacher, students };
}

/** The teacher of a profile: read from `modelDir` when cached there, else trained (seconds) and cached. */
export function loadTeacher(
  profile: LabProfileName | LabProfile,
  modelDir: string,
  log: Log = () => {},
): NgramModel {
  const config = demoConfig(profile);
  mkdirSync(modelDir, { recursive: true, mode: 0o700 });
  const path = join(modelDir, `teacher-${config.profile}-${hashOf(teacherKey(config))}.tmng`);
  if (existsSync(path)) {
    log(`loading the teacher from ${path}`);
    return NgramModel.load(path);
  }
  const books = teacherBooks(config);
  log(
    `training the teacher: order ${config.teacherOrder}, ${books.length} Gutenberg book(s) (${CORPUS}); ` +
      `cached in ${modelDir} for later starts`,
  );
  const t0 = performance.now();
  const teacher = trainTeacher(config, teacherText(config).documents, { corpus: CORPUS, books: [...books] });
  log(
    `  teacher: ${teacher.info.trainedTokens} tokens, n-grams ${teacher.info.ngrams.join(' / ')} ` +
      `(${((performance.now() - t0) / 1000).toFixed(1)} s)`,
  );
  writeAtomic(path, teacher.toBytes());
  return teacher;
}

/**
 * Builds the teacher and the two students of a profile with the server's key and spec, or loads them from
 * `modelDir` when a build with the same settings, spec and key is cached there. Progress goes to `log`.
 */
export async function buildModels(options: BuildOptions): Promise<ModelSet> {
  const config = demoConfig(options.profile);
  const share = servedShare(config);
  const log = options.log ?? (() => {});
  mkdirSync(options.modelDir, { recursive: true, mode: 0o700 });
  const keys = cacheKeys(options.profile, options.spec, options.key);
  const studentDir = join(options.modelDir, `students-${config.profile}-${keys.students}`);
  const distilledPath = join(studentDir, 'student-distilled.tmng');
  const cleanPath = join(studentDir, 'student-clean.tmng');
  const labPath = join(studentDir, 'lab.json');

  const started = performance.now();
  const teacher = loadTeacher(options.profile, options.modelDir, log);

  if (existsSync(distilledPath) && existsSync(cleanPath) && existsSync(labPath)) {
    log(`loading the students from ${studentDir}`);
    const lab = JSON.parse(readFileSync(labPath, 'utf8')) as LabFacts;
    return {
      teacher,
      distilled: NgramModel.load(distilledPath),
      clean: NgramModel.load(cleanPath),
      lab,
      created: Math.floor(statSync(labPath).mtimeMs / 1000),
    };
  }

  const budget = config.studentTokens;
  log(
    `building the students (profile ${config.profile}: order ${config.studentOrder}, ${budget} training tokens ` +
      `each): ${config.samples} watermarked teacher samples of ${config.teacherTokens} tokens ` +
      `(${(share * 100).toFixed(0)}% of the distilled student's data)`,
  );
  const scheme = servingScheme(options.spec, options.key, teacher);
  let lastLog = performance.now();
  const sampling = performance.now();
  const samples = await teacherSamples(
    config,
    teacher,
    scheme,
    heldOutPrompts(config).teacher,
    sampleLabel(options.spec),
    (done, total) => {
      const now = performance.now();
      if (now - lastLog <= 5000 && done < total) return;
      const rate = (done * config.teacherTokens) / ((now - sampling) / 1000);
      const left = ((total - done) * config.teacherTokens) / rate;
      log(
        `  teacher samples: ${done}/${total} (${rate.toFixed(0)} tokens/s` +
          `${left > 0 ? `, about ${Math.ceil(left)} s left` : ''})`,
      );
      lastLog = now;
    },
  );
  const clean = cleanText(config);
  const meta = { corpus: CORPUS, books: [...studentBooks(config)] };
  const cleanStudent = distillStudent(config, clean, samples, 0, { ...meta, role: 'student-clean' });
  const distilled = distillStudent(config, clean, samples, share, {
    ...meta,
    role: 'student-distilled',
    teacherShare: share,
    teacherTokens: Math.round(share * budget),
  });
  const facts: LabFacts = {
    profile: config.profile,
    share,
    teacherSamples: distilled.text.samples,
    teacherTokens: distilled.text.watermarkedTokens,
    promptTokensDistilled: distilled.text.promptTokens,
    cleanTokensClean: cleanStudent.text.cleanTokens,
    cleanTokensDistilled: distilled.text.cleanTokens,
    sampleTokens: config.teacherTokens,
    promptTokens: config.promptTokens,
    teacherOrder: config.teacherOrder,
    studentOrder: config.studentOrder,
    sampling: config.sampling,
    promptsInTraining: config.promptsInTraining,
    teacherBooks: teacherBooks(config),
    studentBooks: studentBooks(config),
    heldOutBooks: heldOutBooks(config),
    buildVersion: BUILD_VERSION,
  };
  facts.buildSeconds = Math.round((performance.now() - started) / 100) / 10;
  mkdirSync(studentDir, { recursive: true, mode: 0o700 });
  writeAtomic(distilledPath, distilled.model.toBytes());
  writeAtomic(cleanPath, cleanStudent.model.toBytes());
  writeAtomic(labPath, JSON.stringify(facts, null, 2));
  log(`  students built (${facts.buildSeconds} s in all)`);
  return {
    teacher,
    distilled: distilled.model,
    clean: cleanStudent.model,
    lab: facts,
    created: Math.floor(Date.now() / 1000),
  };
}
