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
import {
  estimateBias,
  filterSamples,
  NEUTRALISE_PSEUDOCOUNT,
  neutraliser,
  paraphraseSamples,
  samplesFor,
} from './attacks';
import {
  attackLabel,
  type LabAttack,
  type LabConfig,
  type LabMode,
  type LabSchemeName,
  labSpec,
} from './config';
import { type LabData, labKeys, loadLabData } from './data';
import {
  distillStudent,
  type GeneratedSample,
  type LogitAdjust,
  probeStudent,
  teacherSamples,
  trainModel,
  trainTeacher,
} from './distill';
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
  /** What the distiller does against the watermark. */
  attack: LabAttack;
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
  /** The distiller's attack (`attackLabel`: 'none', 'paraphrase:0.5', 'filter:0.3', 'neutralise:1000'). */
  attack: string;
  /** What the attack did: tokens redrawn, samples dropped, (window, token) biases estimated; {} for none. */
  attackStats: Record<string, number>;
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
    /** The student's count pruning (n-grams of orders ≥ 2 seen fewer times dropped; 1: none). */
    prune: number;
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
  #reference: NgramModel | null = null;
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

  /**
   * The distiller's plain reference model (the filter and neutralise attacks): an unpruned n-gram of the
   * students' order on the clean text a ρ = 0 student trains on (the first studentTokens tokens of it).
   */
  get reference(): NgramModel {
    if (this.#reference === null) {
      const { data, config } = this;
      const documents: ArrayLike<number>[] = [];
      let left = config.studentTokens;
      for (const doc of data.clean) {
        if (left <= 0) break;
        documents.push(doc.length <= left ? doc : doc.slice(0, left));
        left -= doc.length;
      }
      this.#reference = trainModel(documents, config.studentOrder, {
        role: 'reference',
        corpus: data.corpus,
      });
    }
    return this.#reference;
  }

  scheme(name: LabSchemeName): Scheme {
    return createScheme(labSpec(name, this.data.vocabSize, this.config), labKeys(this.config.seed).owner);
  }

  /**
   * The row's never-used keys: tenants of the lab's control master key, one group per (ρ, mode, attack) so
   * that no two rows of a run share a control key: `control-rho<ρ>-<j>` (closed, no attack),
   * `control-read-rho<ρ>-<j>` (read), with `-<attack>` after ρ under an attack.
   */
  controlSchemes(name: LabSchemeName, rho: number, mode: LabMode = 'closed', attack = 'none'): Scheme[] {
    const { controls } = labKeys(this.config.seed);
    const spec = labSpec(name, this.data.vocabSize, this.config);
    const group = controlGroup(rho, mode, attack);
    return Array.from({ length: this.config.controls }, (_, j) =>
      createScheme(spec, controls, { tenant: controlTenant(j, group) }),
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

/** The control tenants' group of a row: `rho<ρ>`, `read-rho<ρ>`, with `-<attack>` under an attack. */
export function controlGroup(rho: number, mode: LabMode, attack: string): string {
  return `${mode === 'closed' ? '' : `${mode}-`}rho${rho}${attack === 'none' ? '' : `-${attack}`}`;
}

/**
 * The harvested samples as the distiller trains on them: paraphrased or filtered under those attacks (only
 * the samples the student takes are touched), with what the attack did.
 */
function attackedSamples(
  context: LabContext,
  task: StudentTask,
  samples: GeneratedSample[],
): { samples: GeneratedSample[]; stats: Record<string, number> } {
  const { config } = context;
  const { attack } = task;
  if (task.rho === 0 || samples.length === 0) return { samples, stats: {} };
  const tokens = Math.round(task.rho * config.studentTokens);
  const label = `${config.seed}:attack:${attackLabel(attack)}:${task.trainScheme}:${task.rho}`;
  if (attack.kind === 'paraphrase') {
    const result = paraphraseSamples(
      config,
      context.teacher,
      samples,
      attack.share,
      samplesFor(samples, tokens),
      label,
    );
    return {
      samples: result.samples,
      stats: { tokens: result.tokens, redrawn: result.chosen, changed: result.changed },
    };
  }
  if (attack.kind === 'filter') {
    // Harvest enough that ρ·T tokens are left after dropping the share s (the config checked it fits).
    const harvested = Math.min(samples.length, Math.ceil(samplesFor(samples, tokens) / (1 - attack.share)));
    const result = filterSamples(context.reference, samples, attack.share, harvested);
    return { samples: result.samples, stats: { harvested: result.harvested, dropped: result.dropped } };
  }
  return { samples, stats: {} };
}

async function runStudent(context: LabContext, task: StudentTask): Promise<StudentResult> {
  const { config, data } = context;
  let start = performance.now();
  const harvested = task.trainScheme === null ? [] : (task.teacher[task.trainScheme] ?? []);
  const attacked = attackedSamples(context, task, harvested);
  const attack = attackLabel(task.attack);
  const student = distillStudent(config, data.clean, attacked.samples, task.rho, { corpus: data.corpus });
  const trainMs = performance.now() - start;
  const probeLabel = `${task.rho}:${task.trainScheme ?? 'clean'}${attack === 'none' ? '' : `:${attack}`}`;
  // Reading needs no probes: a run of the reading mode alone skips them. Without neutralisation the probes
  // are the same for every scheme the student is tested with, and are drawn once.
  let shared: { probes: GeneratedSample[]; probeMs: number } | null = null;
  const probe = async (adjust?: LogitAdjust) => {
    const at = performance.now();
    const probes = config.modes.includes('closed')
      ? await probeStudent(config, student.model, data.probePrompts, probeLabel, adjust)
      : [];
    return { probes, probeMs: performance.now() - at };
  };

  const rows: LabRow[] = [];
  for (const name of task.testSchemes) {
    const owner = task.teacher[name] ?? [];
    const scheme = context.scheme(name);
    let adjust: LogitAdjust | undefined;
    let stats = attacked.stats;
    if (task.attack.kind === 'neutralise') {
      // The distiller's estimate from its first N queries of the teacher that served this scheme.
      start = performance.now();
      const estimate = estimateBias(
        context.reference,
        owner.slice(0, task.attack.samples),
        scheme.contextWidth,
      );
      adjust = neutraliser(estimate);
      stats = {
        samples: estimate.samples,
        tokens: estimate.tokens,
        width: estimate.width,
        biasedPairs: estimate.pairs,
        pseudocount: NEUTRALISE_PSEUDOCOUNT,
        estimateMs: Math.round(performance.now() - start),
      };
    }
    if (adjust === undefined && shared === null) shared = await probe();
    const { probes, probeMs } = adjust === undefined && shared !== null ? shared : await probe(adjust);
    // Reading mode needs a context window: the Unigram watermark has none (see the verifier's readingSamples).
    const modes = config.modes.filter((mode) => mode === 'closed' || scheme.contextWidth > 0);
    for (const mode of modes) {
      const evidence =
        mode === 'closed'
          ? closedEvidence(config, probes, owner)
          : readEvidence(
              student.model,
              owner,
              `${config.seed}:read:${name}:${task.rho}`,
              adjust === undefined ? undefined : { adjust, topK: config.topK },
            );
      rows.push(
        labRow(
          context,
          task.rho,
          name,
          scheme,
          evidence,
          student,
          {
            trainMs,
            probeMs: mode === 'closed' ? probeMs : 0,
          },
          { attack, stats },
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
function readEvidence(
  model: NgramModel,
  owner: GeneratedSample[],
  seed: string,
  decoding?: { adjust: LogitAdjust; topK: number },
): RowEvidence {
  const order = [...owner];
  const random = createRng(seed);
  for (let i = order.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [order[i], order[j]] = [order[j], order[i]];
  }
  const texts = readTexts(model, order, decoding);
  return {
    mode: 'read',
    test: (scheme) => readingTape(texts, { scheme }),
    testOther: (scheme) => readingTest(texts, { scheme, trajectoryPointsPerDecade: 1 }),
    unfiltered: (_scheme, result) => result,
    filterWidth: 0,
    probes: { samples: texts.length, tokens: texts.reduce((n, t) => n + t.tokens.length, 0) },
  };
}

/**
 * The model's top-1 prediction after every prefix of each output (the n-gram reads only its last tokens).
 * With `decoding`, the prediction is the best of the model's top-k candidates after `adjust` changed their
 * logits (the neutralising distiller's decoding).
 */
export function readTexts(
  model: NgramModel,
  owner: readonly GeneratedSample[],
  decoding?: { adjust: LogitAdjust; topK: number },
): ReadText[] {
  const k = decoding?.topK ?? 1;
  const ids = new Int32Array(k);
  const logits = new Float32Array(k);
  return owner.map(({ output }) => {
    const predictions = new Int32Array(output.length + 1);
    predictions[0] = -1;
    for (let i = 1; i <= output.length; i++) {
      const context = output.slice(Math.max(0, i - model.order + 1), i);
      const found = model.topCandidates(context, k, ids, logits);
      if (found === 0) {
        predictions[i] = -1;
        continue;
      }
      if (decoding === undefined) {
        predictions[i] = ids[0];
        continue;
      }
      decoding.adjust(output.slice(0, i), ids, logits, found);
      let best = 0;
      for (let j = 1; j < found; j++) if (logits[j] > logits[best]) best = j;
      predictions[i] = ids[best];
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
  attack: { attack: string; stats: Record<string, number> } = { attack: 'none', stats: {} },
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
  const attackSuffix = attack.attack === 'none' ? '' : `:${attack.attack}`;
  const uniform = createRng(`${config.seed}:randomize:${name}:${rho}${modeLabel}${attackSuffix}`);
  const own = randomizedPValue(scheme.nullLaw, result.scoreSum, result.scored, uniform());
  const controlResults = context.controlSchemes(name, rho, evidence.mode, attack.attack).map((control) => {
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
    attack: attack.attack,
    attackStats: attack.stats,
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
      prune: config.prune,
      ngrams: student.model.info.ngrams,
    },
    probes: evidence.probes,
    timings: { ...timings, testMs, controlsMs },
  };
}
