import { NgramError } from '@tracemark/ngram';
import { WatermarkError } from '@tracemark/watermark';
import { VerifierError } from '../errors';

/** An error crossing a thread boundary: its message, and whether it is the user's (input) or ours. */
export interface LabErrorMessage {
  message: string;
  input: boolean;
}

export function errorMessage(error: unknown): LabErrorMessage {
  const input =
    error instanceof VerifierError || error instanceof NgramError || error instanceof WatermarkError;
  const message = error instanceof Error ? error.message.split('\n')[0] : String(error);
  return { message, input };
}

/** Back to an error the CLI prints as one line: input errors as VerifierError, others as internal. */
export function errorFrom(message: LabErrorMessage): Error {
  return message.input ? new VerifierError('E_INPUT', message.message) : new Error(message.message);
}
