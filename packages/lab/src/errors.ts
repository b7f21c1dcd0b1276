import { NgramError } from '@tracemark/ngram';
import { VerifierError } from '@tracemark/verifier';
import { WatermarkError } from '@tracemark/watermark';

/**
 * Stable error codes of @tracemark/lab. Callers branch on `code`; the message (one line) is for people and
 * never carries key material (the lab writes fingerprints only).
 *
 * - E_USAGE: an option is unknown or out of range (profile, scheme, ρ, sizes, seed, workers, an --out path
 *   that is a file), or a profile that cannot build what was asked of it.
 * - E_INPUT: the corpus is missing, unreadable or too small for the run; also an input error raised by
 *   @tracemark/ngram, @tracemark/watermark or @tracemark/verifier while the lab ran (their message kept).
 * - E_NOT_BUILT: worker threads were asked for, but the built worker module (dist/worker.js) is missing.
 * - E_INTERNAL: anything else that went wrong in a task, reported in one line.
 */
export type LabErrorCode = 'E_USAGE' | 'E_INPUT' | 'E_NOT_BUILT' | 'E_INTERNAL';

export class LabError extends Error {
  readonly code: LabErrorCode;

  constructor(code: LabErrorCode, message: string) {
    super(message);
    this.name = 'LabError';
    this.code = code;
  }
}

export function fail(code: LabErrorCode, message: string): never {
  throw new LabError(code, message);
}

/** An error as it crosses a thread boundary: a code and one line (a stack or a class would not survive). */
export interface LabErrorMessage {
  code: LabErrorCode;
  message: string;
}

/** Any error as a lab error message: the other packages' errors are input errors, the rest internal. */
export function errorMessage(error: unknown): LabErrorMessage {
  const message = (error instanceof Error ? error.message : String(error)).split('\n')[0];
  if (error instanceof LabError) return { code: error.code, message };
  if (error instanceof VerifierError && error.code === 'E_NOT_BUILT') return { code: 'E_NOT_BUILT', message };
  if (error instanceof VerifierError || error instanceof NgramError || error instanceof WatermarkError)
    return { code: 'E_INPUT', message };
  return { code: 'E_INTERNAL', message };
}

/** Back to an error on the calling thread. */
export function errorFrom(message: LabErrorMessage): LabError {
  return new LabError(message.code, message.message);
}
