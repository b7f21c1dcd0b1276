import { LabError } from '@tracemark/lab';
import { NgramError } from '@tracemark/ngram';
import { VerifierError } from '@tracemark/verifier';
import { WatermarkError } from '@tracemark/watermark';

/**
 * Stable error codes of @tracemark/eval. Callers branch on `code`; the message (one line) is for people and
 * never carries key material.
 *
 * - E_USAGE: an option is unknown or out of range (a scheme, an attack or its strength, lengths, α, sizes).
 * - E_INPUT: the corpus is missing or too small for the run; also an input error raised by another
 *   tracemark package while the harness ran (their message kept).
 * - E_INTERNAL: anything else, reported in one line.
 */
export type EvaluationErrorCode = 'E_USAGE' | 'E_INPUT' | 'E_INTERNAL';

export class EvaluationError extends Error {
  readonly code: EvaluationErrorCode;

  constructor(code: EvaluationErrorCode, message: string) {
    super(message);
    this.name = 'EvaluationError';
    this.code = code;
  }
}

export function fail(code: EvaluationErrorCode, message: string): never {
  throw new EvaluationError(code, message);
}

/** Any error as an eval error: the other packages' input errors keep their message as E_INPUT. */
export function asEvaluationError(error: unknown): EvaluationError {
  if (error instanceof EvaluationError) return error;
  const message = (error instanceof Error ? error.message : String(error)).split('\n')[0];
  if (error instanceof LabError)
    return new EvaluationError(error.code === 'E_USAGE' ? 'E_USAGE' : 'E_INPUT', message);
  if (error instanceof VerifierError || error instanceof NgramError || error instanceof WatermarkError)
    return new EvaluationError('E_INPUT', message);
  return new EvaluationError('E_INTERNAL', message);
}
