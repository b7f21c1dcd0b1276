import { fail } from '../errors';

/**
 * Tokenizers whose ids for a text are the ids of its pieces, one after the other, when the text is cut right after
 * a '\n' that a letter follows. o200k_base and cl100k_base pre-tokenize with a regex and encode each pre-token on
 * its own, so a cut is safe where no pre-token can span it and the pre-tokens before it do not depend on what
 * follows it. In both regexes the only alternatives that take a letter ([^\r\n\p{L}\p{N}]?\p{L}+ and the like)
 * cannot take a '\n', and every alternative that takes a '\n' (` ?[^\s\p{L}\p{N}]+[\r\n/]*`, `\s*[\r\n]+`,
 * `\s+(?!\S)`, `\s+`, and cl100k's `\s+$`) ends before a letter, at the same place whether the letter or the end
 * of the text comes next: a whitespace run ending in '\n' is taken whole by `\s*[\r\n]+` (`\s*[\r\n]` in cl100k,
 * after its `\s+$`, which takes the same run at the end of a piece). Neither regex looks behind, so the piece after
 * the cut starts where the whole text's pre-token would. apps/cli/test/scan-stream.test.ts checks this on both.
 * No such rule is known for a tokenizer.json (normalizers, other pre-tokenizers): those files are read whole.
 */
export const PIECEWISE_TOKENIZERS: readonly string[] = ['o200k_base', 'cl100k_base'];

/** A position right after '\n' and before a letter: a safe cut for PIECEWISE_TOKENIZERS. */
const SAFE_CUT = /\n(?=\p{L})/gu;
const LETTER_FIRST = /^\p{L}/u;

/**
 * Characters of a piece of a streamed document (about 16,000 tokens). Small enough that what a worker allocates for
 * a piece (its text, the id list) stays below V8's large-object size and dies young: with 1 MiB pieces each
 * worker's heap filled with such garbage up to hundreds of MB before a full collection. Tokenizing a piece still
 * takes far longer than handing it to a worker.
 */
export const PIECE_CHARACTERS = 1 << 16;

/** Bytes read at a time from a streamed file (also what a read stream reads by default). */
export const READ_BYTES = 1 << 16;

/**
 * The text of a byte stream as strict UTF-8 (invalid bytes are an E_INPUT error naming `what`), cut into pieces of
 * at least `size` UTF-16 units at safe cuts (the last piece may be shorter). Where no safe cut comes for a long
 * stretch the piece grows until one does, so such a stretch is held whole; each decoded chunk is searched once
 * (text already searched is kept as a list, not re-joined), so that stays linear.
 */
export async function* textPieces(
  bytes: AsyncIterable<Uint8Array>,
  what: string,
  size: number,
): AsyncGenerator<string> {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const decode = (chunk?: Uint8Array): string => {
    try {
      return chunk === undefined ? decoder.decode() : decoder.decode(chunk, { stream: true });
    } catch {
      fail('E_INPUT', `${what} is not valid UTF-8`);
    }
  };
  // Text read but not yet given out, its length, and its last character (a cut may fall right after it).
  let held: string[] = [];
  let length = 0;
  let last = '';
  for await (const chunk of bytes) {
    // A streaming decoder never splits a surrogate pair, so a letter at a chunk's start is whole.
    let text = decode(chunk);
    while (text.length > 0) {
      // The first safe cut at `cut` ≥ earliest in `text` (0: between the held text and `text`).
      const earliest = Math.max(0, size - length);
      let cut = -1;
      if (earliest === 0 && last === '\n' && LETTER_FIRST.test(text)) cut = 0;
      else {
        SAFE_CUT.lastIndex = Math.max(0, earliest - 1);
        const found = SAFE_CUT.exec(text);
        if (found !== null) cut = found.index + 1;
      }
      if (cut === -1) {
        held.push(text);
        length += text.length;
        last = text[text.length - 1];
        break;
      }
      held.push(text.slice(0, cut));
      yield held.join('');
      held = [];
      length = 0;
      last = '\n';
      text = text.slice(cut);
    }
  }
  held.push(decode());
  const rest = held.join('');
  if (rest.length > 0) yield rest;
}
