import {
  type GeneratedSample,
  generateSamples,
  type NgramModel,
  studentDocuments,
  trainNgram,
  trainStudent,
} from '@tracemark/ngram';
import { createRng, createScheme, type Scheme } from '@tracemark/watermark';
import {
  buildWindowFilter,
  type RadioactivityResult,
  radioactivityTest,
  type TrajectoryPoint,
  type WindowFilter,
} from '../radioactivity';
import { kolmogorovSmirnovUniform } from '../stats/index';
import { type LabConfig, type LabSchemeName, labSpec } from './config';
import { controlTenant, type LabData, labKeys, loadLabData } from './data';
import { nullPValues, ScoredPositions } from './tape';

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
  trainDocuments: number;
  trainTokens: number;
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

/** One row of the results: a student (ρ) investigated with one scheme's key. */
export interface LabRow {
  scheme: LabSchemeName;
  rho: number;
  pValue: number;
  log10PValue: number;
  /** The lab key's randomized p-value (see `nullPValues`): the calibration view of `pValue`. */
  randomizedPValue: number;
  scored: number;
  seen: number;
  zScore: number;
  /** p-values of the same test with keys that were never used. */
  controls: number[];
  /** KS test of `controls` against Uniform(0, 1); conservative where the null law is discrete and few tokens count. */
  controlsKs: KsResult;
  /** The controls' randomized p-values (exactly uniform under H0 for every null law) and their KS test. */
  controlsRandomized: number[];
  controlsRandomizedKs: KsResult;
  /** How the controls were tested: on the lab key's scored positions (checked to match), or each in full. */
  controlsMethod: 'shared-positions' | 'full-test';
  /** The same test without the window filter. */
  unfiltered: { pValue: number; log10PValue: number; scored: number };
  filterWidth: number;
  skipped: RadioactivityResult['skipped'];
  trajectory: TrajectoryPoint[];
  /** Scored tokens at the first trajectory point with p ≤ 1e-6 (8 points per decade), or null. */
  scoredToOneInAMillion: number | null;
  student: { order: number; trainingTokens: number; watermarkedTokens: number; ngrams: number[] };
  probes: { samples: number; tokens: number };
  keyFingerprint: string;
  timings: { trainMs: number; probeMs: number; testMs: number; controlsMs: number };
}

export interface StudentResult {
  kind: 'student';
  rows: LabRow[];
}

export type LabTaskResult = TeacherResult | StudentResult;

/** What a worker (or the main thread, in-process) keeps between tasks. */
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
      this.#teacher = trainNgram(data.train, {
        order: this.config.teacherOrder,
        tokenizer: null,
        vocabSize: data.vocabSize,
      });
      this.teacherTrainMs = performance.now() - start;
    }
    return this.#teacher;
  }

  scheme(name: LabSchemeName): Scheme {
    return createScheme(labSpec(name, this.data.vocabSize), labKeys(this.config.seed).owner);
  }

  controlSchemes(name: LabSchemeName, rho: number): Scheme[] {
    const { controls } = labKeys(this.config.seed);
    const spec = labSpec(name, this.data.vocabSize);
    return Array.from({ length: this.config.controls }, (_, j) =>
      createScheme(spec, controls, { tenant: controlTenant(rho, j) }),
    );
  }
}

export function runLabTask(context: LabContext, task: LabTask): LabTaskResult {
  return task.kind === 'teacher' ? runTeacher(context, task) : runStudent(context, task);
}

function runTeacher(context: LabContext, task: TeacherTask): TeacherResult {
  const { config } = context;
  const { data, teacher } = context;
  const scheme = context.scheme(task.scheme);
  const start = performance.now();
  const samples = generateSamples(teacher, scheme, data.teacherPrompts, {
    maxTokens: config.teacherTokens,
    topK: config.topK,
    temperature: config.temperature,
    seed: `${config.seed}:teacher:${task.scheme}`,
  });
  const generateMs = performance.now() - start;
  const self = radioactivityTest(samples, { scheme, trajectoryPointsPerDecade: 1 });
  return {
    kind: 'teacher',
    scheme: task.scheme,
    samples,
    selfTest: { log10PValue: self.log10PValue, scored: self.scored },
    corpusInfo: {
      corpus: data.corpus,
      trainDocuments: data.train.length,
      trainTokens: data.trainTokens,
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

function runStudent(context: LabContext, task: StudentTask): StudentResult {
  const { config, data } = context;
  let start = performance.now();
  const watermarked =
    task.trainScheme === null ? [] : (task.teacher[task.trainScheme] ?? []).map((s) => s.output);
  const documents = studentDocuments(data.train, watermarked, {
    rho: task.rho,
    totalTokens: config.studentTokens,
  });
  const student = trainStudent(documents, config.studentOrder, data.vocabSize);
  const trainMs = performance.now() - start;
  start = performance.now();
  const probes = generateSamples(student, null, data.probePrompts, {
    maxTokens: config.probeTokens,
    topK: config.topK,
    temperature: config.temperature,
    seed: `${config.seed}:probe:${task.rho}:${task.trainScheme ?? 'clean'}`,
  });
  const probeMs = performance.now() - start;
  const watermarkedTokens = Math.round(task.rho * config.studentTokens);

  const rows = task.testSchemes.map((name): LabRow => {
    const teacherSamples = task.teacher[name] ?? [];
    const filter = teacherFilter(teacherSamples, config.filterWidth);
    const scheme = context.scheme(name);
    let at = performance.now();
    const result = radioactivityTest(probes, { scheme, filter });
    const unfiltered = filter === undefined ? result : radioactivityTest(probes, { scheme });
    const testMs = performance.now() - at;
    at = performance.now();
    // The controls are scored on the positions the lab key's test scored (the same for every key; checked).
    const positions = ScoredPositions.keyIndependent(scheme)
      ? new ScoredPositions(probes, scheme, filter)
      : null;
    const shared = positions?.matches(scheme, result) === true;
    const uniform = createRng(`${config.seed}:randomize:${name}:${task.rho}`);
    const own = nullPValues(scheme.nullLaw, result.scoreSum, result.scored, uniform());
    const controlResults = context.controlSchemes(name, task.rho).map((control) => {
      if (shared) return (positions as ScoredPositions).test(control, uniform());
      const full = radioactivityTest(probes, { scheme: control, filter, trajectoryPointsPerDecade: 1 });
      return nullPValues(control.nullLaw, full.scoreSum, full.scored, uniform());
    });
    const controls = controlResults.map((c) => c.pValue);
    const randomized = controlResults.map((c) => c.randomizedPValue);
    const controlsMs = performance.now() - at;
    return {
      scheme: name,
      rho: task.rho,
      pValue: result.pValue,
      log10PValue: result.log10PValue,
      randomizedPValue: own.randomizedPValue,
      scored: result.scored,
      seen: result.seen,
      zScore: result.zScore,
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
        watermarkedTokens,
        ngrams: student.info.ngrams,
      },
      probes: { samples: probes.length, tokens: probes.length * config.probeTokens },
      keyFingerprint: scheme.keyFingerprint,
      timings: { trainMs, probeMs, testMs, controlsMs },
    };
  });
  return { kind: 'student', rows };
}
