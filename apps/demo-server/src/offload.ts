import { createWorkerPool } from '@tracemark/verifier';
import type { MasterKey } from '@tracemark/watermark';
import type { FastifyReply } from 'fastify';
import { ApiError } from './errors';
import type { TaskReply, WorkerTask } from './scoring';
import type { WorkerSetup } from './worker';

export interface OffloadOptions {
  threads: number;
  /** Tasks that may wait for a thread; beyond that `run` refuses with 503. */
  queue: number;
  /** Default limit per task (ms); a task past it is abandoned and its thread replaced. */
  timeoutMs: number;
}

/**
 * The worker pool that keeps CPU-heavy work off the event loop (see src/worker.ts). The worker is the BUILT module
 * dist/worker.js, also when the server runs from sources (tests included): `pnpm -C apps/demo-server build`
 * first (CI builds before it tests).
 */
export class Offload {
  readonly #pool: ReturnType<typeof createWorkerPool>;
  readonly #options: OffloadOptions;
  #pending = 0;

  constructor(spec: unknown, key: MasterKey, options: OffloadOptions) {
    this.#options = options;
    const workerData: WorkerSetup = { spec, keyHex: key.exportHex() };
    this.#pool = createWorkerPool('@tracemark/demo-server/worker', import.meta.url, {
      threads: options.threads,
      workerData,
    });
  }

  /** Tasks running or waiting. */
  get pending(): number {
    return this.#pending;
  }

  /**
   * Runs a task on a worker. Refused with 503 when the queue is full (so a flood of large requests cannot grow
   * memory without bound); `bounded: false` is for the job runner, which runs one job at a time anyway.
   */
  async run<T>(
    task: WorkerTask,
    options: { signal?: AbortSignal; timeoutMs?: number | null; bounded?: boolean } = {},
  ): Promise<T> {
    if (options.bounded !== false && this.#pending >= this.#options.threads + this.#options.queue) {
      throw new ApiError(503, 'The server is busy scoring other requests; retry in a few seconds.', {
        code: 'server_busy',
        headers: { 'retry-after': '5' },
      });
    }
    const timeoutMs = options.timeoutMs === undefined ? this.#options.timeoutMs : options.timeoutMs;
    const signals = [options.signal, timeoutMs === null ? undefined : AbortSignal.timeout(timeoutMs)].filter(
      (s): s is AbortSignal => s !== undefined,
    );
    const signal = signals.length === 0 ? undefined : AbortSignal.any(signals);
    this.#pending++;
    let reply: TaskReply;
    try {
      reply = (await this.#pool.run(task, signal === undefined ? {} : { signal })) as TaskReply;
    } catch (error) {
      if (signal?.aborted) {
        throw new ApiError(
          413,
          `The input took more than ${((timeoutMs ?? 0) / 1000).toFixed(1)} s to process; send less (or less repetitive) text.`,
          { code: 'input_too_costly' },
        );
      }
      throw error;
    } finally {
      this.#pending--;
    }
    if (!reply.ok) throw new ApiError(400, reply.error.message, reply.error);
    return reply.value as T;
  }

  async close(): Promise<void> {
    await this.#pool.destroy();
  }
}

/** Aborted when the client goes away before the response is sent: its worker task is then dropped. */
export function clientSignal(reply: FastifyReply): AbortSignal {
  const controller = new AbortController();
  reply.raw.once('close', () => {
    if (!reply.raw.writableFinished) controller.abort();
  });
  return controller.signal;
}
