import { arch, availableParallelism, cpus, platform } from 'node:os';
import { O200K_VOCAB_SIZE } from '@tracemark/ngram';
import { createWorkerPool, kolmogorovSmirnovUniform, stopWorkerPool } from '@tracemark/verifier';
import { canonicalSpec } from '@tracemark/watermark';
import {
  attackLabel,
  LAB_MODES,
  type LabConfig,
  type LabOptions,
  type LabSchemeName,
  labSpec,
  resolveLabConfig,
} from './config';
import { checkCorpusPath, labKeys } from './data';
import { errorFrom, errorMessage, fail } from './errors';
import {
  type CorpusInfo,
  type KsResult,
  LabContext,
  type LabRow,
  type LabTask,
  type LabTaskReply,
  type LabTaskResult,
  replyTo,
  type StudentResult,
  type StudentTask,
  type TeacherResult,
} from './tasks';

export interface LabHooks {
  /** Called with one line per finished step. */
  onProgress?: (line: string) => void;
}

export interface TeacherSummary {
  samples: number;
  tokens: number;
  /** The teacher's own outputs tested with the lab key (they must carry the watermark). */
  selfTest: { log10PValue: number; scored: number };
  generateMs: number;
}

/** Everything a run measured; `results.json` is this object. */
export interface LabReport {
  version: 2;
  config: LabConfig & {
    specs: Partial<Record<LabSchemeName, string>>;
    keyFingerprint: string;
    controlKeyFingerprint: string;
    controlTenants: string;
  };
  corpus: CorpusInfo;
  machine: { cpus: number; cpuModel: string; parallelism: number; node: string; platform: string };
  teacher: Partial<Record<LabSchemeName, TeacherSummary>>;
  /** One row per (scheme, ρ, mode, attack): schemes and attacks in the order given, ρ ascending. */
  rows: LabRow[];
  summary: {
    /**
     * KS tests against Uniform(0, 1) of every control p-value of the run (exact, and randomized), and of
     * each scheme's controls pooled over ρ.
     */
    controls: {
      keysPerRow: number;
      pValues: number;
      ks: KsResult;
      randomizedKs: KsResult;
      minPValue: number;
      bySchemeRandomizedKs: Partial<Record<LabSchemeName, KsResult>>;
    };
    /** The lab key's p-values at ρ = 0, and the KS tests of the ρ = 0 rows' controls. */
    rhoZero: {
      pValues: Partial<Record<LabSchemeName, number>>;
      controlsKs: KsResult | null;
      controlsRandomizedKs: KsResult | null;
    };
  };
  timings: { totalMs: number; teachersMs: number; studentsMs: number };
}

/** Runs lab tasks: in-process one after the other, or on a pool of worker threads. */
interface TaskRunner {
  readonly workers: number;
  run(task: LabTask): Promise<LabTaskResult>;
  close(): Promise<void>;
}

function unwrap(reply: LabTaskReply): LabTaskResult {
  if ('error' in reply) throw errorFrom(reply.error);
  return reply.result;
}

/**
 * One worker thread: the tasks run in this thread, one at a time (a task yields to the event loop while it
 * samples, so that progress lines go out; the queue keeps two tasks from interleaving there). More: the
 * verifier's piscina pool over the built '@tracemark/lab/worker', each thread with its own context.
 */
function createRunner(config: LabConfig): TaskRunner {
  if (config.workers <= 1) {
    const context = new LabContext(config);
    let queue: Promise<unknown> = Promise.resolve();
    let closed = false;
    return {
      workers: 1,
      run(task) {
        const next = queue.then(async () => {
          if (closed) fail('E_INTERNAL', 'the lab was stopped');
          return unwrap(await replyTo(context, task));
        });
        queue = next.catch(() => {});
        return next;
      },
      async close() {
        closed = true;
      },
    };
  }
  let pool: ReturnType<typeof createWorkerPool>;
  try {
    pool = createWorkerPool('@tracemark/lab/worker', import.meta.url, {
      threads: config.workers,
      workerData: { config },
    });
  } catch (error) {
    throw errorFrom(errorMessage(error));
  }
  return {
    workers: config.workers,
    async run(task) {
      let reply: LabTaskReply;
      try {
        reply = await pool.run(task);
      } catch (error) {
        // The thread itself failed (not the task, whose errors come back as replies).
        throw errorFrom({ code: 'E_INTERNAL', message: `lab worker failed: ${errorMessage(error).message}` });
      }
      return unwrap(reply);
    },
    close: () => stopWorkerPool(pool),
  };
}

/** Runs the experiment: teachers, students, investigation. Writes nothing; see `writeLabOutputs`. */
export async function runLabExperiment(options: LabOptions = {}, hooks: LabHooks = {}): Promise<LabReport> {
  const started = performance.now();
  const config = resolveLabConfig(options, availableParallelism());
  if (config.corpus !== null) checkCorpusPath(config.corpus);
  const progress = (line: string) =>
    hooks.onProgress?.(`[${((performance.now() - started) / 1000).toFixed(1).padStart(6)} s] ${line}`);
  const runner = createRunner(config);
  progress(
    `${config.profile} profile: ${config.schemes.length} schemes × ${config.rhos.length} rho, ` +
      `${runner.workers === 1 ? 'in-process' : `${runner.workers} workers`}`,
  );
  const teachers: Partial<Record<LabSchemeName, TeacherResult>> = {};
  const rows: LabRow[] = [];
  let teachersMs = 0;

  const runStudent = async (task: StudentTask): Promise<void> => {
    const result = (await runner.run(task)) as StudentResult;
    for (const row of result.rows) {
      rows.push(row);
      progress(
        `student ${row.scheme} rho ${row.rho}${row.attack === 'none' ? '' : ` ${row.attack}`}${row.mode === 'closed' ? '' : ` (${row.mode})`}: log10 p ${row.log10PValue.toFixed(2)} over ${row.scored} ` +
          `scored (controls KS p ${row.controlsKs.pValue.toFixed(3)})`,
      );
    }
  };
  const positiveRhos = config.rhos.filter((rho) => rho > 0);
  try {
    const teacherRuns = config.schemes.map(async (scheme) => {
      const teacher = (await runner.run({ kind: 'teacher', scheme })) as TeacherResult;
      teachers[scheme] = teacher;
      progress(
        `teacher ${scheme}: ${teacher.samples.length} samples, own text log10 p ` +
          `${teacher.selfTest.log10PValue.toFixed(1)}`,
      );
      return teacher;
    });
    const work: Promise<unknown>[] = config.schemes.map(async (scheme, i) => {
      const teacher = await teacherRuns[i];
      const tasks = positiveRhos.flatMap((rho) =>
        config.attacks.map(
          (attack): StudentTask => ({
            kind: 'student',
            rho,
            trainScheme: scheme,
            testSchemes: [scheme],
            attack,
            teacher: { [scheme]: teacher.samples },
          }),
        ),
      );
      await Promise.all(tasks.map((task) => runStudent(task)));
    });
    work.push(
      Promise.all(teacherRuns).then(async (all) => {
        teachersMs = performance.now() - started;
        if (!config.rhos.includes(0)) return;
        // The clean student is one model for every scheme: trained once, tested with each scheme's key.
        const teacher = Object.fromEntries(config.schemes.map((s, i) => [s, all[i].samples]));
        // Paraphrase and filter change the harvested text, of which the clean student has none: it is run
        // without an attack and under each neutralisation (which changes its decoding).
        const attacks = config.attacks.filter((a) => a.kind === 'none' || a.kind === 'neutralise');
        await Promise.all(
          attacks.map((attack) =>
            runStudent({
              kind: 'student',
              rho: 0,
              trainScheme: null,
              testSchemes: config.schemes,
              attack,
              teacher,
            }),
          ),
        );
      }),
    );
    await Promise.all(work);
  } finally {
    await runner.close();
  }
  return report(config, teachers, rows, { started, teachersMs });
}

function report(
  config: LabConfig,
  teachers: Partial<Record<LabSchemeName, TeacherResult>>,
  unsorted: LabRow[],
  time: { started: number; teachersMs: number },
): LabReport {
  const order = new Map(config.schemes.map((s, i) => [s, i]));
  const attackOrder = new Map(config.attacks.map((a, i) => [attackLabel(a), i]));
  const rows = [...unsorted].sort(
    (a, b) =>
      (order.get(a.scheme) ?? 0) - (order.get(b.scheme) ?? 0) ||
      (attackOrder.get(a.attack) ?? 0) - (attackOrder.get(b.attack) ?? 0) ||
      a.rho - b.rho ||
      LAB_MODES.indexOf(a.mode) - LAB_MODES.indexOf(b.mode),
  );
  const keys = labKeys(config.seed);
  const anyTeacher = teachers[config.schemes[0]] as TeacherResult;
  const allControls = rows.flatMap((row) => row.controls);
  const allRandomized = rows.flatMap((row) => row.controlsRandomized);
  const zeroRows = rows.filter((row) => row.rho === 0 && row.mode === 'closed' && row.attack === 'none');
  const zeroControls = zeroRows.flatMap((row) => row.controls);
  const zeroRandomized = zeroRows.flatMap((row) => row.controlsRandomized);
  const totalMs = performance.now() - time.started;
  const cpuList = cpus();
  return {
    version: 2,
    config: {
      ...config,
      specs: Object.fromEntries(
        config.schemes.map((s) => [s, canonicalSpec(labSpec(s, O200K_VOCAB_SIZE, config))]),
      ),
      keyFingerprint: keys.owner.fingerprint,
      controlKeyFingerprint: keys.controls.fingerprint,
      // The tenants of the lab's control master key, controlTenant(j, controlGroup(ρ, mode, attack)).
      controlTenants:
        `control-rho<ρ>-<j> (closed), control-read-rho<ρ>-<j> (read), with -<attack> after ρ under an attack; ` +
        `j = 0 … ${config.controls - 1}`,
    },
    corpus: anyTeacher.corpusInfo,
    machine: {
      cpus: cpuList.length,
      cpuModel: cpuList[0]?.model.trim() ?? 'unknown',
      parallelism: availableParallelism(),
      node: process.version,
      platform: `${platform()} ${arch()}`,
    },
    teacher: Object.fromEntries(
      config.schemes.map((s) => {
        const t = teachers[s] as TeacherResult;
        const summary: TeacherSummary = {
          samples: t.samples.length,
          tokens: t.samples.reduce((n, x) => n + x.output.length, 0),
          selfTest: t.selfTest,
          generateMs: t.timings.generateMs,
        };
        return [s, summary];
      }),
    ),
    rows,
    summary: {
      controls: {
        keysPerRow: config.controls,
        pValues: allControls.length,
        ks: kolmogorovSmirnovUniform(allControls),
        randomizedKs: kolmogorovSmirnovUniform(allRandomized),
        minPValue: Math.min(...allControls),
        bySchemeRandomizedKs: Object.fromEntries(
          config.schemes.map((s) => [
            s,
            kolmogorovSmirnovUniform(rows.filter((r) => r.scheme === s).flatMap((r) => r.controlsRandomized)),
          ]),
        ),
      },
      rhoZero: {
        pValues: Object.fromEntries(zeroRows.map((row) => [row.scheme, row.pValue])),
        controlsKs: zeroControls.length === 0 ? null : kolmogorovSmirnovUniform(zeroControls),
        controlsRandomizedKs: zeroRandomized.length === 0 ? null : kolmogorovSmirnovUniform(zeroRandomized),
      },
    },
    timings: { totalMs, teachersMs: time.teachersMs, studentsMs: totalMs - time.teachersMs },
  };
}
