import type { NgramModel } from '@tracemark/ngram';
import {
  buildWindowFilter,
  controlTenant,
  kolmogorovSmirnovUniform,
  nullTail,
  type RadioactivityResult,
  radioactivityTape,
  radioactivityTest,
  randomizedPValue,
  type TestResult,
  type TrajectoryPoint,
  type WindowFilter,
} from '@tracemark/verifier';
import { createRng, createScheme, type Scheme } from '@tracemark/watermark';
import { type LabConfig, type LabSchemeName, labSpec } from './config';
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
  const probes = await probeStudent(
    config,
    student.model,
    data.probePrompts,
    `${task.rho}:${task.trainScheme ?? 'clean'}`,
  );
  const probeMs = performance.now() - start;

  const rows = task.testSchemes.map((name): LabRow => {
    const filter = teacherFilter(task.teacher[name] ?? [], config.filterWidth);
    const scheme = context.scheme(name);
    let at = performance.now();
    const { tape, result } = radioactivityTape(probes, { scheme, filter });
    const unfiltered = filter === undefined ? result : radioactivityTest(probes, { scheme });
    const testMs = performance.now() - at;
    at = performance.now();
    // Where the tape counts the same positions under every key of the spec, a control key needs only its
    // score sum over them, about a hundred times less work than a test of its own.
    const shared = tape.keyIndependent;
    const uniform = createRng(`${config.seed}:randomize:${name}:${task.rho}`);
    const own = randomizedPValue(scheme.nullLaw, result.scoreSum, result.scored, uniform());
    const controlResults = context.controlSchemes(name, task.rho).map((control) => {
      const { scoreSum, scored } = shared
        ? { scoreSum: tape.scoreSum(control), scored: tape.length }
        : radioactivityTest(probes, { scheme: control, filter, trajectoryPointsPerDecade: 1 });
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
      spec: result.spec,
      keyFingerprint: result.keyFingerprint,
      masterFingerprint: result.masterFingerprint,
      nullLaw: result.nullLaw,
      rho: task.rho,
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
      unfiltered: {
        pValue: unfiltered.pValue,
        log10PValue: unfiltered.log10PValue,
        scored: unfiltered.scored,
      },
      filterWidth: config.filterWidth,
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
      probes: { samples: probes.length, tokens: probes.reduce((n, p) => n + p.output.length, 0) },
      timings: { trainMs, probeMs, testMs, controlsMs },
    };
  });
  return { kind: 'student', rows };
}
