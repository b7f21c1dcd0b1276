/**
 * Stable error codes of @tracemark/evidence. The CLI maps every one to exit code 2 and prints the message
 * alone; no message carries an API key or key material.
 *
 * - E_INPUT: a malformed prompt bank, store or response.
 * - E_STORE: an evidence store that cannot be opened, is locked by another probe, or is not a tracemark store.
 * - E_ENDPOINT: the endpoint refused the request for good (4xx other than 429), or never answered.
 * - E_INVALID_OPTIONS: an option out of range.
 */
export type EvidenceErrorCode = 'E_INPUT' | 'E_STORE' | 'E_ENDPOINT' | 'E_INVALID_OPTIONS' | 'E_USAGE';

export class EvidenceError extends Error {
  readonly code: EvidenceErrorCode;

  constructor(code: EvidenceErrorCode, message: string) {
    super(message);
    this.name = 'EvidenceError';
    this.code = code;
  }
}

export function fail(code: EvidenceErrorCode, message: string): never {
  throw new EvidenceError(code, message);
}
