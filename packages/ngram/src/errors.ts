/**
 * Stable error codes of @tracemark/ngram. Callers branch on `code`; the message (one line) is for people.
 *
 * - E_MODEL_FILE: not a tracemark n-gram model (wrong magic bytes), or a malformed header or payload.
 * - E_MODEL_TRUNCATED: the file is shorter than its header declares.
 * - E_MODEL_VERSION: a format version this build cannot read (made by a newer tracemark).
 * - E_MODEL_CHECKSUM: the SHA-256 of the file does not match: the file was corrupted.
 * - E_INVALID_OPTIONS: an option (order, vocabulary size, tokenizer) is out of range.
 * - E_TOKEN_RANGE: a token id outside [0, vocabSize).
 * - E_LOGITS_LENGTH: an output buffer whose length is not the vocabulary size.
 * - E_NO_TOKENIZER: text was given to a model or trainer that has no tokenizer.
 * - E_EMPTY_CORPUS: training saw no token.
 * - E_CORPUS: a corpus path that cannot be read, or a malformed JSONL line.
 */
export type NgramErrorCode =
  | 'E_MODEL_FILE'
  | 'E_MODEL_TRUNCATED'
  | 'E_MODEL_VERSION'
  | 'E_MODEL_CHECKSUM'
  | 'E_INVALID_OPTIONS'
  | 'E_TOKEN_RANGE'
  | 'E_LOGITS_LENGTH'
  | 'E_NO_TOKENIZER'
  | 'E_EMPTY_CORPUS'
  | 'E_CORPUS';

export class NgramError extends Error {
  readonly code: NgramErrorCode;

  constructor(code: NgramErrorCode, message: string) {
    super(message);
    this.name = 'NgramError';
    this.code = code;
  }
}

export function fail(code: NgramErrorCode, message: string): never {
  throw new NgramError(code, message);
}
