/**
 * Stable error codes of @tracemark/verifier. The CLI maps every one of them to exit code 2 and prints the
 * message alone; no message carries key material.
 */
export type VerifierErrorCode =
  | 'E_EMPTY_TEXT'
  | 'E_TOO_SHORT'
  | 'E_INVALID_OPTIONS'
  | 'E_TOKEN_RANGE'
  | 'E_UNKNOWN_TOKENIZER'
  | 'E_TOKENIZER_FILE'
  | 'E_KEY_FILE'
  | 'E_USAGE'
  | 'E_INPUT'
  | 'E_NOT_BUILT';

export class VerifierError extends Error {
  readonly code: VerifierErrorCode;

  constructor(code: VerifierErrorCode, message: string) {
    super(message);
    this.name = 'VerifierError';
    this.code = code;
  }
}

export function fail(code: VerifierErrorCode, message: string): never {
  throw new VerifierError(code, message);
}
