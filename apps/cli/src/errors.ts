import { VerifierError, type VerifierErrorCode } from '@tracemark/verifier';

/** A usage or input error of the CLI: one line on standard error, exit code 2. */
export function fail(code: VerifierErrorCode, message: string): never {
  throw new VerifierError(code, message);
}
