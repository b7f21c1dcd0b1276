import type { NgramModel } from '@tracemark/ngram';
import {
  buildWindowFilter,
  type CountedTape,
  controlTenant,
  kolmogorovSmirnovUniform,
  nullTail,
  type RadioactivityResult,
  type ReadText,
  radioactivityTape,
  radioactivityTest,
  randomizedPValue,
  readingTape,
  readingTest,
  type TestResult,
  type TrajectoryPoint,
  type WindowFilter,
} from '@tracemark/verifier';
import { createRng, createScheme, type Scheme } from '@tracemark/watermark';
import { type LabConfig, type LabMode, type LabSchemeName, labSpec } from './config';
import { type LabData, labKeys, loadLabData } from './data';
import { distillStudent, type GeneratedSample, probeStudent, teacherSamples, trainTeacher } from './distill';
import { errorMessage, type LabErrorMessage } from './errors';

/** Generate the teacher's watermarked samples with one scheme. */
export interface TeacherTask {
  kind: 'teacher';
  scheme: LabSchemeName;
}

/**
 * Train one student and investigate it. `trainScheme` is the scheme whose teacher outputs make up the
 * share ρ of its training text (null for ρ = 0: the clean student is the same for every scheme, so it is
 * trained once and tested with each of `testSchemes`).
 */
export interface StudentTask {
  kind: 'student';
  rho: number;
  trainScheme: LabSchemeName | null;
  testSchemes: LabSchemeName[];
  /** The teacher's samples of every scheme named above. */
  teacher: Partial<Record<LabSchemeName, GeneratedSample[]>>;
}

export type LabTask = TeacherTask | StudentTask;

export interface CorpusInfo {
  corpus: string;
  /** The teacher's training text. */
  trainDocuments: number;
  trainTokens: number;
  /** The students' clean text (the teacher's own, unless the profile names student books). */
  cleanDocuments: number;
  cleanTokens: number;
  heldOutDocuments: number;
  heldOutTokens: number;
  promptChunks: number;
}

export interface TeacherResult {
  kind: 'teacher';
  scheme: LabSchemeName;
  samples: GeneratedSample[];
  /** The teacher's own text, tested with the lab key: it must carry the watermark. */
  selfTest: { log10PValue: number; scored: number };
  corpusInfo: CorpusInfo;
  timings: { loadMs: number; teacherTrainMs: number; generateMs: number };
}

export interface KsResult {
  statistic: number;
  pValue: number;
}

/**
 * One row of the results: a student (ρ) investigated with one scheme's key, by the closed-model
 * radioactivity test of Sander et al. 2024 ("Watermarking Makes Language Models Radioactive", §4). The base
 * fields are the verifier's `TestResult` of that test; `scheme` is the lab's name of the scheme (its registry
 * name is `spec.scheme`).
 */
export interface LabRow extends TestResult {
  scheme: LabSchemeName;
  rho: number;
  /**
   * 'closed': the student's answers to probe prompts are scored (Sander et al.'s closed-model test); 'read': the
   * student reads the teacher's watermarked outputs and its top-1 predictions are scored (the open-model test,
   * the verifier's `readingTest`).
   */
  mode: LabMode;
  /** The lab key's randomized p-value (see the verifier's `randomizedPValue`): the calibration view of `pValue`. */
  randomizedPValue: number;
  /** Output tokens of the probes looked at (`scored` of them counted). */
  seen: number;
  /** p-values of the same test with keys that were never used. */
  controls: number[];
  /** KS test of `controls` against Uniform(0, 1); conservative where the null law is discrete and few tokens count. */
  controlsKs: KsResult;
  /** The controls' randomized p-values (exactly uniform under H0 for every null law) and their KS test. */
  controlsRandomized: number[];
  controlsRandomizedKs: KsResult;
  /**
   * How the controls were tested: on the lab key's counted tape (its counting is the same for every key of
   * the spec), or each with a full test of its own.
   */
  controlsMethod: 'shared-positions' | 'full-test';
  /** The same test without the window filter. */
  unfiltered: { pValue: number; log10PValue: number; scored: number };
  filterWidth: number;
  skipped: RadioactivityResult['skipped'];
  trajectory: TrajectoryPoint[];
  /** Scored tokens at the first trajectory point with p ≤ 1e-6 (8 points per decade), or null. */
  scoredToOneInAMillion: number | null;
  student: {
    order: number;
    trainingTokens: number;
    watermarkedTokens: number;
    /** Prompt tokens kept with the teacher's outputs (0 unless the profile keeps prompts in training). */
    promptTokens: number;
    ngrams: number[];
  };
  probes: { samples: number; tokens: number };
  timings: { trainMs: number; probeMs: number; testMs: number; controlsMs: number };
}

export interface StudentResult {
  kind: 'student';
  rows: LabRow[];
}

export type LabTaskResult = TeacherResult | StudentResult;

/** What a worker thread (or the main thread, in-process) keeps between tasks. */
export class LabContext {
  readonly config: LabConfig;
  #data: LabData | null = null;
  #teacher: NgramModel | null = null;
  loadMs = 0;
  teacherTrainMs = 0;

  constructor(config: LabConfig) {
    this.config = config;
  }

  get data(): LabData {
    if (this.#data === null) {
      const start = performance.now();
      this.#data = loadLabData(this.config);
      this.loadMs = performance.now() - start;
    }
    return this.#data;
  }

  get teacher(): NgramModel {
    if (this.#teacher === null) {
      const { data } = this;
      const start = performance.now();
      this.#teacher = trainTeacher(this.config, data.teacherText, { corpus: data.corpus });
      this.teacherTrainMs = performance.now() - start;
    }
    return this.#teacher;
  }

  scheme(name: LabSchemeName): Scheme {
    return createScheme(labSpec(name, this.data.vocabSize), labKeys(this.config.seed).owner);
  }

  /** The row's never-used keys: tenants `control-rho<ρ>-<j>` of the lab's control master key. */
  controlSchemes(name: LabSchemeName, rho: number): Scheme[] {
    const { controls } = labKeys(this.config.seed);
    const spec = labSpec(name, this.data.vocabSize);
    return Array.from({ length: this.config.controls }, (_, j) =>
      createScheme(spec, controls, { tenant: controlTenant(j, `rho${rho}`) }),
    );
  }
}

export function runLabTask(context: LabContext, task: LabTask): Promise<LabTaskResult> {
  return task.kind === 'teacher' ? runTeacher(context, task) : runStudent(context, task);
}

/** What a lab task sends back across the thread boundary: its result, or its error as one line. */
export type LabTaskReply = { result: LabTaskResult } | { error: LabErrorMessage };

/** Runs one task and catches its error, so that the caller gets the same reply from a thread or in-process. */
export async function replyTo(context: LabContext, task: LabTask): Promise<LabTaskReply> {
  try {
    return { result: await runLabTask(context, task) };
  } catch (error) {
    return { error: errorMessage(error) };
  }
}

async function runTeacher(context: LabContext, task: TeacherTask): Promise<TeacherResult> {
  const { config, data, teacher } = context;
  const scheme = context.scheme(task.scheme);
  const start = performance.now();
  const samples = await teacherSamples(config, teacher, scheme, data.teacherPrompts, task.scheme);
  const generateMs = performance.now() - start;
  const self = radioactivityTest(samples, { scheme, trajectoryPointsPerDecade: 1 });
  return {
    kind: 'teacher',
    scheme: task.scheme,
    samples,
    selfTest: { log10PValue: self.log10PValue, scored: self.scored },
    corpusInfo: {
      corpus: data.corpus,
      trainDocuments: data.teacherText.length,
      trainTokens: data.teacherTokens,
      cleanDocuments: data.clean.length,
      cleanTokens: data.cleanTokens,
      heldOutDocuments: data.heldOutDocuments,
      heldOutTokens: data.heldOutTokens,
      promptChunks: data.promptChunks,
    },
    timings: { loadMs: context.loadMs, teacherTrainMs: context.teacherTrainMs, generateMs },
  };
}

/**
 * The owner's filter (Sander et al. 2024, §4.2): windows of `width` tokens of the owner's own watermarked
 * outputs, each output read after the last tokens of its prompt. It selects scored tokens by the tokens
 * before them only, so the kept scores keep their null law.
 */
function teacherFilter(samples: GeneratedSample[], width: number): WindowFilter | undefined {
  if (width === 0) return undefined;
  return buildWindowFilter(
    samples.map((s) => [...s.prompt.slice(Math.max(0, s.prompt.length - width)), ...s.output]),
    width,
  );
}

async function runStudent(context: LabContext, task: StudentTask): Promise<StudentResult> {
  const { config, data } = context;
  let start = performance.now();
  const samples = task.trainScheme === null ? [] : (task.teacher[task.trainScheme] ?? []);
  const student = distillStudent(config, data.clean, samples, task.rho, { corpus: data.corpus });
  const trainMs = performance.now() - start;
  start = performance.now();
  // Reading needs no probes: a run of the reading mode alone skips them.
  const probes = config.modes.includes('closed')
    ? await probeStudent(
        config,
        student.model,
        data.probePrompts,
        `${task.rho}:${task.trainScheme ?? 'clean'}`,
      )
    : [];
  const probeMs = performance.now() - start;

  const rows: LabRow[] = [];
  for (const name of task.testSchemes) {
    const owner = task.teacher[name] ?? [];
    const scheme = context.scheme(name);
    // Reading mode needs a context window: the Unigram watermark has none (see the verifier's readingSamples).
    const modes = config.modes.filter((mode) => mode === 'closed' || scheme.contextWidth > 0);
    for (const mode of modes) {
      rows.push(
        mode === 'closed'
          ? labRow(context, task.rho, name, scheme, closedEvidence(config, probes, owner), student, {
              trainMs,
              probeMs,
            })
          : labRow(
              context,
              task.rho,
              name,
              scheme,
              readEvidence(student.model, owner, `${config.seed}:read:${name}:${task.rho}`),
              student,
              { trainMs, probeMs: 0 },
            ),
      );
    }
  }
  return { kind: 'student', rows };
}

/** How a row's evidence is gathered and tested, in one mode. */
interface RowEvidence {
  mode: LabMode;
  /** The owner's test and the tape it counted. */
  test(scheme: Scheme): { tape: CountedTape; result: RadioactivityResult };
  /** A key's own test, where the tape's counting depends on the key. */
  testOther(scheme: Scheme): { scoreSum: number; scored: number };
  /** The test without the owner's window filter (the same test where there is none). */
  unfiltered(scheme: Scheme, filtered: RadioactivityResult): RadioactivityResult;
  filterWidth: number;
  /** What was read or probed: samples (texts) and tokens (positions). */
  probes: { samples: number; tokens: number };
}

/** The closed test: the student's answers to the probe prompts, with the owner's window filter. */
function closedEvidence(config: LabConfig, probes: GeneratedSample[], owner: GeneratedSample[]): RowEvidence {
  const filter = teacherFilter(owner, config.filterWidth);
  return {
    mode: 'closed',
    test: (scheme) => radioactivityTape(probes, { scheme, filter }),
    testOther: (scheme) => radioactivityTest(probes, { scheme, filter, trajectoryPointsPerDecade: 1 }),
    unfiltered: (scheme, filtered) =>
      filter === undefined ? filtered : radioactivityTest(probes, { scheme }),
    filterWidth: config.filterWidth,
    probes: { samples: probes.length, tokens: probes.reduce((n, p) => n + p.output.length, 0) },
  };
}

/**
 * The reading test: the student reads the teacher's watermarked outputs (the owner's stored texts, some of
 * which the distiller trained on) and its most likely next token after each prefix is scored. The texts are
 * read in an order shuffled by `seed`: the owner does not know which of its outputs were harvested, and the
 * distiller's share comes first in the teacher's list, which would put its evidence at the tape's start.
 */
function readEvidence(model: NgramModel, owner: GeneratedSample[], seed: string): RowEvidence {
  const order = [...owner];
  const random = createRng(seed);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  const texts = readTexts(model, order);
  return {
    mode: 'read',
    test: (scheme) => readingTape(texts, { scheme }),
    testOther: (scheme) => readingTest(texts, { scheme, trajectoryPointsPerDecade: 1 }),
    unfiltered: (_scheme, result) => result,
    filterWidth: 0,
    probes: { samples: texts.length, tokens: texts.reduce((n, t) => n + t.tokens.length, 0) },
  };
}

/** The model's top-1 prediction after every prefix of each output (the n-gram reads only its last tokens). */
export function readTexts(model: NgramModel, owner: readonly GeneratedSample[]): ReadText[] {
  const ids = new Int32Array(1);
  const logits = new Float32Array(1);
  return owner.map(({ output }) => {
    const predictions = new Int32Array(output.length + 1);
    predictions[0] = -1;
    for (let i = 1; i <= output.length; i++) {
      const found = model.topCandidates(output.slice(Math.max(0, i - model.order + 1), i), 1, ids, logits);
      predictions[i] = found > 0 ? ids[0] : -1;
    }
    return { tokens: output, predictions };
  });
}

function labRow(
  context: LabContext,
  rho: number,
  name: LabSchemeName,
  scheme: Scheme,
  evidence: RowEvidence,
  student: ReturnType<typeof distillStudent>,
  timings: { trainMs: number; probeMs: number },
): LabRow {
  const { config } = context;
  let at = performance.now();
  const { tape, result } = evidence.test(scheme);
  const unfiltered = evidence.unfiltered(scheme, result);
  const testMs = performance.now() - at;
  at = performance.now();
  // Where the tape counts the same positions under every key of the spec, a control key needs only its
  // score sum over them, about a hundred times less work than a test of its own.
  const shared = tape.keyIndependent;
  const modeLabel = evidence.mode === 'closed' ? '' : `:${evidence.mode}`;
  const uniform = createRng(`${config.seed}:randomize:${name}:${rho}${modeLabel}`);
  const own = randomizedPValue(scheme.nullLaw, result.scoreSum, result.scored, uniform());
  const controlResults = context.controlSchemes(name, rho).map((control) => {
    const { scoreSum, scored } = shared
      ? { scoreSum: tape.scoreSum(control), scored: tape.length }
      : evidence.testOther(control);
    return {
      pValue: nullTail(control.nullLaw, scoreSum, scored).p,
      randomized: randomizedPValue(control.nullLaw, scoreSum, scored, uniform()),
    };
  });
  const controls = controlResults.map((c) => c.pValue);
  const randomized = controlResults.map((c) => c.randomized);
  const controlsMs = performance.now() - at;
  return {
    scheme: name,
    mode: evidence.mode,
    spec: result.spec,
    keyFingerprint: result.keyFingerprint,
    masterFingerprint: result.masterFingerprint,
    nullLaw: result.nullLaw,
    rho,
    pValue: result.pValue,
    log10PValue: result.log10PValue,
    zScore: result.zScore,
    scored: result.scored,
    scoreSum: result.scoreSum,
    randomizedPValue: own,
    seen: result.seen,
    controls,
    controlsKs: kolmogorovSmirnovUniform(controls),
    controlsRandomized: randomized,
    controlsRandomizedKs: kolmogorovSmirnovUniform(randomized),
    controlsMethod: shared ? 'shared-positions' : 'full-test',
    unfiltered: { pValue: unfiltered.pValue, log10PValue: unfiltered.log10PValue, scored: unfiltered.scored },
    filterWidth: evidence.filterWidth,
    skipped: result.skipped,
    trajectory: result.trajectory,
    scoredToOneInAMillion: result.trajectory.find((p) => p.log10PValue <= -6)?.scored ?? null,
    student: {
      order: config.studentOrder,
      trainingTokens: config.studentTokens,
      watermarkedTokens: student.text.watermarkedTokens,
      promptTokens: student.text.promptTokens,
      ngrams: student.model.info.ngrams,
    },
    probes: evidence.probes,
    timings: { ...timings, testMs, controlsMs },
  };
}
