import type { ProbeClient, ProbeParameters } from './client';
import { fail } from './errors';
import type { SequentialMonitor } from './monitor';
import type { ProbePrompt } from './prompts';
import { type EvidenceStore, responseKey } from './store';

/**
 * The probe loop: every (prompt, sample) not yet in the store is requested, `concurrency` at a time, and each
 * answer is committed to the store the moment it arrives. Work is ordered sample by sample (every prompt once,
 * then every prompt again), so that a probe stopped early, by the sequential test or by a kill, has covered
 * the bank evenly. Run again, it asks only for what is missing.
 */
export interface ProbeRunOptions {
  client: ProbeClient;
  parameters: ProbeParameters;
  prompts: ProbePrompt[];
  samples: number;
  store: EvidenceStore;
  concurrency: number;
  /** Recorded with the run (never the API key). */
  settings: Record<string, unknown>;
  monitor?: SequentialMonitor;
  progress: (total: number) => ProbeProgress;
}

/** Where the probe loop reports each stored response (the CLI draws a progress bar). */
export interface ProbeProgress {
  tick(note?: string): void;
  finish(): void;
}

export interface ProbeRunSummary {
  runId: number;
  planned: number;
  alreadyStored: number;
  stored: number;
  total: number;
  seconds: number;
  /** Set when the sequential test reached 1/α (now or in an earlier run). */
  stopped: { responses: number; log10EValue: number; scored: number; earlier: boolean } | null;
}

export async function runProbe(options: ProbeRunOptions): Promise<ProbeRunSummary> {
  const { store } = options;
  const started = performance.now();
  store.acquireProbeLock();
  try {
    return await probeLocked(options, started);
  } finally {
    store.releaseProbeLock();
  }
}

async function probeLocked(options: ProbeRunOptions, started: number): Promise<ProbeRunSummary> {
  const { store, prompts, samples, client, parameters, monitor } = options;
  store.bindModel(parameters.model);

  const storedPrompts = store.storedPrompts();
  for (const prompt of prompts) {
    const stored = storedPrompts.get(prompt.id);
    if (stored !== undefined && (stored.prompt !== prompt.prompt || stored.system !== prompt.system)) {
      fail(
        'E_INPUT',
        `prompt bank line ${prompt.line}: id "${prompt.id}" has other text than the responses already stored under it`,
      );
    }
  }
  const storedKeys = store.storedKeys();
  const todo: { prompt: ProbePrompt; sample: number }[] = [];
  let alreadyStored = 0;
  for (let sample = 0; sample < samples; sample++) {
    for (const prompt of prompts) {
      if (storedKeys.has(responseKey(prompt.id, sample))) alreadyStored++;
      else todo.push({ prompt, sample });
    }
  }

  // The e-process continues over what earlier runs stored, in the store's order.
  let earlierStop = false;
  if (monitor !== undefined) {
    for (const response of store.responses()) monitor.add(response);
    earlierStop = monitor.rejected;
  }

  const runId = store.startRun(options.settings);
  const summary = (stored: number): ProbeRunSummary => {
    const stop = monitor?.stoppedAt ?? null;
    return {
      runId,
      planned: samples * prompts.length,
      alreadyStored,
      stored,
      total: store.count(),
      seconds: (performance.now() - started) / 1000,
      stopped:
        stop === null
          ? null
          : {
              responses: stop.responses,
              log10EValue: stop.state.log10EValue,
              scored: stop.state.scored,
              earlier: earlierStop,
            },
    };
  };
  if (earlierStop || todo.length === 0) {
    const result = summary(0);
    store.finishRun(runId, { state: earlierStop ? 'already-stopped' : 'complete', stored: 0 });
    return result;
  }

  const progress = options.progress(todo.length);
  const controller = new AbortController();
  let next = 0;
  let stored = 0;
  let failure: unknown = null;
  const worker = async () => {
    while (!controller.signal.aborted && next < todo.length) {
      const { prompt, sample } = todo[next++];
      let record: Awaited<ReturnType<ProbeClient['complete']>>;
      try {
        record = await client.complete(prompt, sample, parameters, controller.signal);
      } catch (error) {
        if (!controller.signal.aborted) {
          failure = error;
          controller.abort();
        }
        return;
      }
      if (store.insert(runId, record)) stored++;
      let note: string | undefined;
      if (monitor !== undefined) {
        const rejected = monitor.add(record);
        note = monitor.note();
        if (rejected && !controller.signal.aborted) controller.abort();
      }
      progress.tick(note);
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.concurrency, todo.length) }, worker));
  progress.finish();
  const result = summary(stored);
  if (failure !== null) {
    store.finishRun(runId, {
      state: 'failed',
      stored,
      reason: failure instanceof Error ? failure.message.split('\n')[0] : String(failure),
    });
    throw failure;
  }
  store.finishRun(runId, {
    state: result.stopped === null ? 'complete' : 'stopped-by-sequential-test',
    stored,
    ...(result.stopped === null ? {} : { sequential: { alpha: monitor?.alpha, ...result.stopped } }),
  });
  return result;
}
