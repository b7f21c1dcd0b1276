import { fail } from '../errors';
import type { Encoding, Tokenizer } from './index';
import { spansByDecoding } from './offsets';

/**
 * Wraps a caller's encode/decode pair. Offsets come from decoding short windows of ids (see offsets.ts): exact
 * when decode(encode(text)) === text, aligned best-effort otherwise. The id is `custom:<name>`.
 */
export function customTokenizer(
  name: string,
  vocabSize: number,
  encode: (text: string) => ArrayLike<number>,
  decode: (ids: number[]) => string,
): Tokenizer {
  if (typeof name !== 'string' || name.length === 0)
    fail('E_INVALID_OPTIONS', 'a custom tokenizer needs a name');
  if (!(Number.isInteger(vocabSize) && vocabSize > 0 && vocabSize <= 0xffffffff)) {
    fail(
      'E_INVALID_OPTIONS',
      `custom tokenizer ${name}: vocabSize must be a positive integer, got ${vocabSize}`,
    );
  }
  const id = name.startsWith('custom:') ? name : `custom:${name}`;

  const encodeIds = (text: string): Uint32Array => {
    const raw = encode(text);
    const ids = new Uint32Array(raw.length);
    for (let i = 0; i < raw.length; i++) {
      const t = raw[i];
      if (!(Number.isInteger(t) && t >= 0 && t < vocabSize)) {
        fail(
          'E_TOKEN_RANGE',
          `tokenizer ${id} produced token id ${t} outside [0, ${vocabSize}) at position ${i}`,
        );
      }
      ids[i] = t;
    }
    return ids;
  };

  return {
    id,
    vocabSize,
    encodeIds,
    encode(text: string): Encoding {
      const ids = encodeIds(text);
      const all = Array.from(ids);
      const spans = spansByDecoding(text, ids.length, (from, to) => decode(all.slice(from, to)));
      return { ids, starts: spans.starts, ends: spans.ends };
    },
    decode(ids: ArrayLike<number>): string {
      return decode(Array.from(ids));
    },
  };
}
