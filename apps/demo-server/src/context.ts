import type { LabFacts, LabProfile } from '@tracemark/lab';
import type { Tokenizer } from '@tracemark/verifier';
import type { Scheme, SchemeSpec } from '@tracemark/watermark';
import type { Limits, RateLimits } from './config';
import type { ServedModel } from './generate';
import type { JobRunner, JobStore } from './jobs';
import type { Offload } from './offload';
import type { TokenBytes } from './text';

/**
 * Graceful shutdown: once `begin` is called, new requests get 503 and open streams may run on until the
 * deadline, after which they are ended with an error event and `data: [DONE]`.
 */
export class Shutdown {
  closing = false;
  deadline = Number.POSITIVE_INFINITY;
  /** Requests whose response has not closed yet (streams included). */
  inFlight = 0;
  #active = 0;
  #waiters: (() => void)[] = [];

  begin(graceMs: number): void {
    this.closing = true;
    this.deadline = Date.now() + graceMs;
  }

  pastDeadline(): boolean {
    return this.closing && Date.now() >= this.deadline;
  }

  get activeStreams(): number {
    return this.#active;
  }

  /** Counts an open stream; call the returned function when it ends. */
  track(): () => void {
    this.#active++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      this.#active--;
      if (this.#active === 0) for (const resolve of this.#waiters.splice(0)) resolve();
    };
  }

  /** Resolves when no stream is open. */
  drained(): Promise<void> {
    if (this.#active === 0) return Promise.resolve();
    return new Promise((resolve) => this.#waiters.push(resolve));
  }
}

/** What the route plugins are built over; each takes the part it needs. */
export interface ServerContext {
  models: Map<string, ServedModel>;
  vocabSize: number;
  tokenizer: Tokenizer;
  bytes: TokenBytes;
  /** Tokenizes on this thread: only for short texts (see `encodeTexts`). */
  encode(text: string): number[];
  /**
   * Tokenizes texts: short ones on this thread, the rest in a worker (the BPE is quadratic in the length of a
   * run of repeated characters, so one long text could hold the event loop for minutes).
   */
  encodeTexts(texts: string[], signal?: AbortSignal): Promise<number[][]>;
  /** The worker pool for tokenizing, detection and verification. */
  offload: Offload;
  /** Whether tracemark-teacher-plain returns logprobs. */
  plainLogprobs: boolean;
  /** Whether the teacher's outputs carry an account layer (TRACEMARK_ACCOUNT_DELTA > 0). */
  accountLayer: boolean;
  /** The teacher's full spec (with `accountDelta` when the account layer is on): what /api/info publishes. */
  servedSpec: SchemeSpec;
  /** Whether a token has an account configured (which /api/info says, never the account or the token). */
  tokenAccounts: { apiToken?: string; explainToken?: string };
  /** The teacher's keyed scheme (its organisation layer), for detection and verification. */
  scheme: Scheme;
  keyFingerprint: string;
  limits: Limits;
  rateLimits: RateLimits;
  systemFingerprint: string;
  shutdown: Shutdown;
  /** Whether the server listens on loopback only: the serving routes are open and UI sessions available. */
  servesLoopback: boolean;
  /** The port the server listens on (the configured one until it listens). */
  port(): number;
  jobs: JobStore;
  runner: JobRunner;
  lab: LabFacts;
  profile: LabProfile;
}
