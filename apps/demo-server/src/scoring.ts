/**
 * The CPU-heavy work of the API (tokenizing, detection, the radioactivity test and the investigation with control
 * keys) as plain functions over plain data. The worker threads run them (src/worker.ts); nothing here may import
 * Fastify, so that the built worker stays small.
 */
import {
  type DetectionResult,
  detectText,
  detectTokens,
  formatPValue,
  investigate,
  type RadioactivityResult,
  radioactivityTest,
  type TokenEntry,
  type Tokenizer,
  VerifierError,
} from '@tracemark/verifier';
import { type MasterKey, type Scheme, WatermarkError } from '@tracemark/watermark';
import type { TokenBytes } from './text';

export type Dedup = 'pair' | 'context' | 'none';

/** A radioactivity job's input as stored with the job: the samples as token ids. */
export interface RadioactivityInput {
  model: string | null;
  samples: { prompt: number[]; output: number[] }[];
  maxScored?: number;
  trajectoryPointsPerDecade?: number;
  /** Also test control keys (the verifier's investigate()): the UI's verification does. */
  controls?: boolean;
}

export interface DetectTask {
  kind: 'detect';
  text?: string;
  tokens?: number[];
  prompt?: string | number[];
  dedup?: Dedup;
  /** Whether per-token scores go back (the explain scope). */
  explain: boolean;
}

export type WorkerTask =
  | { kind: 'encode'; texts: string[] }
  | DetectTask
  | { kind: 'radioactivity'; input: RadioactivityInput };

/** A client error found in a worker: errors lose their class between threads, so they travel as data. */
export interface TaskError {
  message: string;
  param: string | null;
  code: string | null;
}

export type TaskReply<T = unknown> = { ok: true; value: T } | { ok: false; error: TaskError };

export class InputError extends Error {
  readonly param: string | null;
  readonly code: string | null;
  constructor(message: string, param: string | null, code: string | null) {
    super(message);
    this.param = param;
    this.code = code;
  }
}

export interface ScoringEnv {
  scheme: Scheme;
  spec: unknown;
  key: MasterKey;
  tokenizer: Tokenizer;
  bytes: TokenBytes;
}

export const encodeWith = (tokenizer: Tokenizer, text: string): number[] =>
  Array.from(tokenizer.encodeIds ? tokenizer.encodeIds(text) : tokenizer.encode(text).ids);

export type PerTokenEntry = TokenEntry & { text: string };
/** A detection as the API returns it: the aggregates, and the per-token scores only for the explain scope. */
export type DetectOutcome = Omit<DetectionResult, 'perToken'> & { perToken?: PerTokenEntry[] };

export function detect(env: ScoringEnv, task: DetectTask): DetectOutcome {
  const { text, tokens, prompt, dedup } = task;
  let result: DetectionResult;
  let pieces: (entry: TokenEntry) => string;
  if (text !== undefined) {
    result = detectText(text, { scheme: env.scheme, tokenizer: env.tokenizer, prompt, dedup });
    pieces = (entry) => text.slice(entry.start, entry.end);
  } else {
    const ids = tokens ?? [];
    if (ids.length <= env.scheme.contextWidth) {
      throw new InputError(
        `The token list needs more than ${env.scheme.contextWidth} token(s) to be scored.`,
        'tokens',
        'too_short',
      );
    }
    // Offsets into the concatenated token texts, so that a client can highlight the decoded text.
    const starts: number[] = [];
    const ends: number[] = [];
    const texts = ids.map((id) => env.bytes.piece(id));
    let at = 0;
    for (const piece of texts) {
      starts.push(at);
      at += piece.length;
      ends.push(at);
    }
    result = detectTokens(ids, {
      scheme: env.scheme,
      prompt: typeof prompt === 'string' ? encodeWith(env.tokenizer, prompt) : prompt,
      dedup,
      offsets: { starts, ends },
    });
    pieces = (entry) => texts[entry.index];
  }
  const { perToken, ...aggregate } = result;
  if (!task.explain) return aggregate;
  return { ...aggregate, perToken: Array.from(perToken, (entry) => ({ ...entry, text: pieces(entry) })) };
}

/** What a verification job stores: the radioactivity result, and with `controls` the control keys' report. */
export type VerificationResult = RadioactivityResult & {
  controls?: {
    count: number;
    passed: boolean;
    ksStatistic: number;
    ksPValue: number;
    minPValue: number;
    atOrBelowOwner: number;
  };
  verdict?: { detected: boolean; controlsPassed: boolean; alpha: number; text: string };
};

/**
 * The verdict states what the test showed about the outputs, never how they came to be: a low p-value is
 * evidence that the outputs carry the watermark, which training on watermarked text is one way to produce.
 */
export function evidenceVerdict(log10p: number, alpha: number, controlsPassed: boolean | null): string {
  const p = formatPValue(10 ** log10p, log10p);
  const carried = log10p <= Math.log10(alpha);
  const main = carried
    ? `its outputs carry the watermark, p = ${p} (α = ${alpha})`
    : `no evidence that its outputs carry the watermark, p = ${p} (α = ${alpha})`;
  if (controlsPassed === null) return main;
  return controlsPassed
    ? `${main}; the control keys look like chance (as they should)`
    : `${main}; but the control keys do not look like chance, so the test is not trustworthy on these outputs`;
}

export async function verification(env: ScoringEnv, input: RadioactivityInput): Promise<VerificationResult> {
  const options = {
    ...(input.maxScored === undefined ? {} : { maxScored: input.maxScored }),
    ...(input.trajectoryPointsPerDecade === undefined
      ? {}
      : { trajectoryPointsPerDecade: input.trajectoryPointsPerDecade }),
  };
  if (input.controls !== true) return radioactivityTest(input.samples, { scheme: env.scheme, ...options });
  const alpha = 1e-3;
  // One thread: this already runs in a worker, and the pool is sized for the machine. The investigation's own
  // owner test is the radioactivity result: the tape is built and scored once.
  const report = await investigate(input.samples, {
    spec: env.spec,
    key: env.key,
    alpha,
    threads: 1,
    ...options,
  });
  const { sampleCount, sequential, controls, tenants, alpha: _alpha, verdict, timings, ...test } = report;
  const result: RadioactivityResult = { ...test, samples: sampleCount };
  const controlsPassed = report.controls.passed;
  return {
    ...result,
    controls: {
      count: report.controls.count,
      passed: controlsPassed,
      ksStatistic: report.controls.ks.statistic,
      ksPValue: report.controls.ks.pValue,
      minPValue: report.controls.minPValue,
      atOrBelowOwner: report.controls.atOrBelowOwner,
    },
    verdict: {
      // The verifier's rule: evidence counts only where the control keys look like chance.
      detected: report.verdict.detected,
      controlsPassed,
      alpha,
      text: evidenceVerdict(report.verdict.log10PValueCited, alpha, controlsPassed),
    },
  };
}

/** Runs a task, turning client errors (bad input, verifier and watermark errors) into data. */
export async function runTask(env: ScoringEnv, task: WorkerTask): Promise<TaskReply> {
  try {
    switch (task.kind) {
      case 'encode':
        return { ok: true, value: task.texts.map((text) => encodeWith(env.tokenizer, text)) };
      case 'detect':
        return { ok: true, value: detect(env, task) };
      case 'radioactivity':
        return { ok: true, value: await verification(env, task.input) };
    }
  } catch (error) {
    if (error instanceof InputError) {
      return { ok: false, error: { message: error.message, param: error.param, code: error.code } };
    }
    if (error instanceof VerifierError || error instanceof WatermarkError) {
      return {
        ok: false,
        error: { message: error.message, param: null, code: error.code.replace(/^E_/, '').toLowerCase() },
      };
    }
    throw error;
  }
}
