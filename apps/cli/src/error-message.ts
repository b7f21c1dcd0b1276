import { EvaluationError } from '@tracemark/eval';
import { EvidenceError } from '@tracemark/evidence';
import { LabError } from '@tracemark/lab';
import { NgramError } from '@tracemark/ngram';
import { VerifierError } from '@tracemark/verifier';
import { WatermarkError } from '@tracemark/watermark';

/**
 * The one line printed for an error. The toolkit's errors (every package's) carry a message meant for people and
 * free of key material; anything else is an internal error, shown by its first line only, never a stack trace.
 * Loaded only when a command fails, since @tracemark/evidence brings SQLite and the OpenAI client with it.
 */
export function messageOf(error: unknown): string {
  if (
    error instanceof VerifierError ||
    error instanceof WatermarkError ||
    error instanceof NgramError ||
    error instanceof EvidenceError ||
    error instanceof RangeError
  ) {
    return firstLine(error.message);
  }
  if ((error instanceof EvaluationError || error instanceof LabError) && error.code !== 'E_INTERNAL')
    return firstLine(error.message);
  return `internal error: ${firstLine(error instanceof Error ? error.message : String(error))}`;
}

function firstLine(text: string): string {
  return text.split('\n')[0];
}
