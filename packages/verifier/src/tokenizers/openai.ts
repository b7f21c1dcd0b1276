import { readFileSync } from 'node:fs';
import { bytePairMerge, type RankOf } from './bpe-merge';
import type { Encoding, Tokenizer } from './index';
import { spansByDecoding, spansFromByteLengths } from './offsets';
import {
  buildRankFile,
  mergeRank,
  NONE,
  NOT_ASCII,
  type RankFile,
  type RankFileSource,
  rankOfAscii,
  rankOfBytes,
  readRankFile,
} from './rank-file';

/**
 * tiktoken's n_vocab. gpt-tokenizer 4.0.0 numbers o200k_base's special tokens differently (its highest id is
 * 200006, tiktoken's <|endofprompt|> is 200018), so the package's own count would be too small for specs
 * written against tiktoken; ordinary token ids agree.
 */
const VOCAB_SIZE = { o200k_base: 200_019, cl100k_base: 100_277 } as const;

export type OpenAiEncodingName = keyof typeof VOCAB_SIZE;

export const OPENAI_ENCODINGS = Object.keys(VOCAB_SIZE) as OpenAiEncodingName[];

interface GptEncoding {
  decode(ids: Iterable<number>): string;
}

/** The pre-tokenizer of gpt-tokenizer 4.0.0's (TypeScript-private) BytePairEncodingCore, used as it is. */
function tokenSplitRegexOf(encoding: GptEncoding): RegExp {
  const core = (encoding as unknown as { bytePairEncodingCoreProcessor?: { tokenSplitRegex?: unknown } })
    .bytePairEncodingCoreProcessor;
  if (!(core?.tokenSplitRegex instanceof RegExp)) {
    throw new Error('gpt-tokenizer internals changed: expected 4.0.0 (see tokenizers/openai.ts)');
  }
  return core.tokenSplitRegex;
}

/** What the rank file of `name` is made from: gpt-tokenizer 4.0.0's ranks, special tokens and regex. */
export async function rankFileSource(name: OpenAiEncodingName): Promise<RankFileSource> {
  // Literal specifiers so bundlers can see them; the same ranks module backs the encoding.
  const [encoding, ranks] =
    name === 'o200k_base'
      ? await Promise.all([
          import('gpt-tokenizer/encoding/o200k_base'),
          import('gpt-tokenizer/bpeRanks/o200k_base'),
        ])
      : await Promise.all([
          import('gpt-tokenizer/encoding/cl100k_base'),
          import('gpt-tokenizer/bpeRanks/cl100k_base'),
        ]);
  const vocabSize = VOCAB_SIZE[name];
  // Special tokens never come out of encode (special-token text is encoded as ordinary text, as tiktoken's
  // encode_ordinary does), but decode and the lengths know them.
  const specials = new Map<number, string>();
  for (let id = ranks.default.length; id < vocabSize; id++) {
    try {
      specials.set(id, encoding.default.decode([id]));
    } catch {
      // an id tiktoken reserves that this package does not define
    }
  }
  return {
    ranks: ranks.default,
    vocabSize,
    specials,
    tokenSplitRegex: tokenSplitRegexOf(encoding.default),
  };
}

/** The file the build writes beside the bundle (tsup.config.ts), which loadOpenAiTokenizer reads. */
export function rankFileName(name: OpenAiEncodingName): string {
  return `${name}.ranks.bin`;
}

function readBuiltRankFile(name: OpenAiEncodingName): RankFile | undefined {
  let data: Uint8Array;
  try {
    data = readFileSync(new URL(`./${rankFileName(name)}`, import.meta.url));
  } catch {
    return undefined; // not built (tests run the sources): built in memory instead
  }
  const file = readRankFile(data);
  // A file of another format or byte order is rebuilt rather than trusted.
  return file?.vocabSize === VOCAB_SIZE[name] ? file : undefined;
}

// Bounds of the merge cache: emptied when full (simpler than LRU, and as good on ordinary text); long pieces
// (runs of one character) are rarely repeated and would hold much memory.
const MERGE_CACHE_SIZE = 50_000;
const MERGE_CACHE_PIECE = 64;

// Decodes byte pieces the way the previous decoder did (a leading byte-order mark of each run is dropped) and
// text pieces as the text they are.
const UTF8 = new TextDecoder();
const UTF8_TEXT = new TextDecoder('utf-8', { ignoreBOM: true });

class OpenAiTokenizer implements Tokenizer {
  readonly id: OpenAiEncodingName;
  readonly vocabSize: number;
  readonly #file: RankFile;
  // The UTF-8 of the pre-token being merged; grows to the longest one seen.
  #bytes = new Uint8Array(256);
  // Merge results by piece, as gpt-tokenizer keeps them: ordinary text repeats its rarer words often.
  readonly #merged = new Map<string, number[]>();
  readonly #rankOf: RankOf = (from, to) => mergeRank(this.#file, this.#bytes, from, to);

  constructor(name: OpenAiEncodingName, file: RankFile) {
    this.id = name;
    this.vocabSize = VOCAB_SIZE[name];
    this.#file = file;
  }

  /**
   * gpt-tokenizer's encode(text) with no special tokens allowed: its regex pre-tokenizer, a whole-piece look-up,
   * else its byte-pair merge rule, run by bytePairMerge in O(m log m).
   */
  encodeIds(text: string): Uint32Array {
    const file = this.#file;
    const out: number[] = [];
    for (const [piece] of text.matchAll(file.tokenSplitRegex)) {
      const ascii = rankOfAscii(file, piece);
      if (ascii >= 0) {
        out.push(ascii);
        continue;
      }
      const m = this.#utf8(piece);
      if (ascii === NOT_ASCII && m >= 0) {
        const id = rankOfBytes(file, this.#bytes, 0, m);
        if (id !== NONE) {
          out.push(id);
          continue;
        }
      }
      const merged = this.#merged.get(piece);
      if (merged !== undefined) {
        for (const id of merged) out.push(id);
        continue;
      }
      const start = out.length;
      // A piece with a lone surrogate is never a whole token there (its text is in no rank): always merged.
      bytePairMerge(this.#bytes, m < 0 ? ~m : m, this.#rankOf, out);
      if (piece.length <= MERGE_CACHE_PIECE) {
        if (this.#merged.size >= MERGE_CACHE_SIZE) this.#merged.clear();
        this.#merged.set(piece, out.slice(start));
      }
    }
    return new Uint32Array(out);
  }

  /**
   * Writes the piece's UTF-8 (a lone surrogate as U+FFFD, as TextEncoder does) to #bytes and returns its
   * length, or its complement (~length) when the piece has a lone surrogate. By hand rather than
   * TextEncoder.encodeInto: on short pieces that call's overhead dominates, and it cannot report lone surrogates.
   */
  #utf8(piece: string): number {
    const n = piece.length;
    if (this.#bytes.length < 3 * n) this.#bytes = new Uint8Array(Math.max(3 * n, 2 * this.#bytes.length));
    const b = this.#bytes;
    let m = 0;
    let wellFormed = true;
    for (let i = 0; i < n; i++) {
      let c = piece.charCodeAt(i);
      if (c < 0x80) b[m++] = c;
      else if (c < 0x800) {
        b[m++] = 0xc0 | (c >> 6);
        b[m++] = 0x80 | (c & 0x3f);
      } else {
        if ((c & 0xf800) === 0xd800) {
          const d = piece.charCodeAt(i + 1);
          if (c <= 0xdbff && (d & 0xfc00) === 0xdc00) {
            c = 0x10000 + ((c - 0xd800) << 10) + (d - 0xdc00);
            i++;
            b[m++] = 0xf0 | (c >> 18);
            b[m++] = 0x80 | ((c >> 12) & 0x3f);
            b[m++] = 0x80 | ((c >> 6) & 0x3f);
            b[m++] = 0x80 | (c & 0x3f);
            continue;
          }
          wellFormed = false;
          c = 0xfffd;
        }
        b[m++] = 0xe0 | (c >> 12);
        b[m++] = 0x80 | ((c >> 6) & 0x3f);
        b[m++] = 0x80 | (c & 0x3f);
      }
    }
    return wellFormed ? m : ~m;
  }

  encode(text: string): Encoding {
    const ids = this.encodeIds(text);
    // Byte-level BPE over the raw UTF-8, so the lengths add up; the decoding path is only a safety net.
    const spans =
      spansFromByteLengths(text, ids, this.#file.lengths) ??
      spansByDecoding(text, ids.length, (from, to) => this.#decode(ids, from, to));
    return { ids, starts: spans.starts, ends: spans.ends };
  }

  /**
   * Own decoding rather than gpt-tokenizer's: 4.0.0 decodes with one shared streaming TextDecoder, so an
   * incomplete character at the end of one call is dropped and leaks into the next call's output. Runs of
   * byte pieces are decoded together, so that characters split over tokens come out whole.
   */
  #decode(ids: ArrayLike<number>, from: number, to: number): string {
    const { offsets, kinds, bytes } = this.#file;
    let size = 0;
    for (let i = from; i < to; i++) {
      const id = ids[i];
      if (!(Number.isInteger(id) && id >= 0 && id < this.vocabSize) || offsets[id] === offsets[id + 1]) {
        throw new RangeError(`token id ${id} is not in ${this.id}`);
      }
      size += offsets[id + 1] - offsets[id];
    }
    const run = new Uint8Array(size);
    let out = '';
    let runStart = 0;
    let at = 0;
    let kind = 0;
    for (let i = from; i < to; i++) {
      const id = ids[i];
      if (kinds[id] !== kind && at > runStart) {
        out += (kind === 1 ? UTF8 : UTF8_TEXT).decode(run.subarray(runStart, at));
        runStart = at;
      }
      kind = kinds[id];
      run.set(bytes.subarray(offsets[id], offsets[id + 1]), at);
      at += offsets[id + 1] - offsets[id];
    }
    if (at > runStart) out += (kind === 1 ? UTF8 : UTF8_TEXT).decode(run.subarray(runStart, at));
    return out;
  }

  decode(ids: ArrayLike<number>): string {
    return this.#decode(ids, 0, ids.length);
  }
}

export async function loadOpenAiTokenizer(name: OpenAiEncodingName): Promise<Tokenizer> {
  const file = readBuiltRankFile(name) ?? readRankFile(buildRankFile(await rankFileSource(name)));
  if (file === undefined) throw new Error(`rank file of ${name} could not be read back`);
  return new OpenAiTokenizer(name, file);
}
