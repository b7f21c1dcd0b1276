/**
 * Stable error codes of @tracemark/watermark. Callers branch on `code`; the message is for people.
 * No message ever carries key material: errors about keys describe the expected shape, never the input.
 */
export type WatermarkErrorCode =
  | 'E_KEY_FORMAT'
  | 'E_UNKNOWN_SCHEME'
  | 'E_INVALID_SPEC'
  | 'E_LOGITS_LENGTH'
  | 'E_NONFINITE_LOGITS'
  | 'E_NO_CANDIDATES'
  | 'E_TOKEN_RANGE'
  | 'E_CONTEXT_TOO_SHORT'
  | 'E_INVALID_SAMPLING';

export class WatermarkError extends Error {
  readonly code: WatermarkErrorCode;

  constructor(code: WatermarkErrorCode, message: string) {
    super(message);
    this.name = 'WatermarkError';
    this.code = code;
  }
}

export function fail(code: WatermarkErrorCode, message: string): never {
  throw new WatermarkError(code, message);
}
