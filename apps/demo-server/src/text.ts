import type { Tokenizer } from '@tracemark/verifier';
import ranks from 'gpt-tokenizer/bpeRanks/o200k_base';

const ENCODER = new TextEncoder();
const LOSSY = new TextDecoder('utf-8');

/**
 * The UTF-8 bytes of o200k_base tokens. gpt-tokenizer stores a token as a string when its bytes are whole
 * UTF-8 and as a byte array when they are not (part of a multi-byte character); special tokens come from
 * the tokenizer's decode.
 */
export class TokenBytes {
  readonly #tokenizer: Tokenizer;
  readonly #cache = new Map<number, Uint8Array>();

  constructor(tokenizer: Tokenizer) {
    this.#tokenizer = tokenizer;
  }

  of(id: number): Uint8Array {
    let bytes = this.#cache.get(id);
    if (bytes === undefined) {
      const piece = (ranks as readonly (string | readonly number[])[])[id];
      if (typeof piece === 'string') bytes = ENCODER.encode(piece);
      else if (piece !== undefined) bytes = Uint8Array.from(piece);
      else {
        let special = '';
        try {
          special = this.#tokenizer.decode([id]);
        } catch {
          // an id with no text
        }
        bytes = ENCODER.encode(special);
      }
      this.#cache.set(id, bytes);
    }
    return bytes;
  }

  /** The token's text as OpenAI's logprobs show it (bytes that are not whole UTF-8 decode to U+FFFD). */
  piece(id: number): string {
    return LOSSY.decode(this.of(id));
  }
}

/**
 * Decodes a token stream to text as it is generated: a character whose UTF-8 bytes are split across
 * tokens comes out only once all its bytes are there. Bytes that never form a character (the model can
 * emit any byte sequence) decode to U+FFFD once that is certain; an incomplete character at the very end
 * is dropped rather than shown as U+FFFD.
 */
export class StreamDecoder {
  readonly #decoder = new TextDecoder('utf-8');
  readonly #bytes: TokenBytes;

  constructor(bytes: TokenBytes) {
    this.#bytes = bytes;
  }

  /** The text completed by this token (possibly empty). */
  push(id: number): string {
    return this.#decoder.decode(this.#bytes.of(id), { stream: true });
  }

  /** The end of the stream: bytes left of an incomplete character, as U+FFFD (an echoed prompt shows them). */
  flush(): string {
    return this.#decoder.decode();
  }
}
