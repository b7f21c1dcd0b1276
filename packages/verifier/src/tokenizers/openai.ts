import { binaryString, bytePairMerge, byteRankTable } from './bpe-merge';
import type { Encoding, Tokenizer } from './index';
import { isAscii, packLength, spansByDecoding, spansFromByteLengths, utf8Length } from './offsets';

/**
 * tiktoken's n_vocab. gpt-tokenizer 4.0.0 numbers o200k_base's special tokens differently (its highest id is
 * 200006, tiktoken's <|endofprompt|> is 200018), so the package's own count would be too small for specs
 * written against tiktoken; ordinary token ids agree.
 */
const VOCAB_SIZE = { o200k_base: 200_019, cl100k_base: 100_277 } as const;

export type OpenAiEncodingName = keyof typeof VOCAB_SIZE;

// Special-token text in the input is encoded as ordinary text (tiktoken's encode_ordinary): a verifier
// must not throw on, or give special meaning to, text that merely contains "<|endoftext|>".
const ORDINARY = { disallowedSpecial: new Set<string>() };

type Ranks = readonly (string | readonly number[])[];

interface GptEncoding {
  encode(text: string, options?: typeof ORDINARY): number[];
  decode(ids: Iterable<number>): string;
}

/**
 * The parts of gpt-tokenizer 4.0.0's (TypeScript-private) BytePairEncodingCore that encodeIds reuses, so the
 * pre-tokenizer regex, whole-piece lookup and short-piece merge (with its cache) stay the library's own.
 */
interface GptCore {
  tokenSplitRegex: RegExp;
  getBpeRankFromString(piece: string): number | undefined;
  bytePairEncode(piece: string): number[];
}

function coreOf(encoding: GptEncoding): GptCore {
  const core = (encoding as unknown as { bytePairEncodingCoreProcessor?: Partial<GptCore> })
    .bytePairEncodingCoreProcessor;
  if (
    core === undefined ||
    !(core.tokenSplitRegex instanceof RegExp) ||
    typeof core.getBpeRankFromString !== 'function' ||
    typeof core.bytePairEncode !== 'function'
  ) {
    throw new Error('gpt-tokenizer internals changed: expected 4.0.0 (see tokenizers/openai.ts)');
  }
  return core as GptCore;
}

/**
 * Pre-tokens longer than this (UTF-16 units) go to the heap merge: gpt-tokenizer's merge rescans every pair
 * per merge (quadratic: 'a' x 100,000 took 23 s). Shorter ones keep the library's path for its merge cache,
 * which pays off on the often repeated short pieces of ordinary text; at this length the two merges cost about
 * the same.
 */
const LIBRARY_MERGE_MAX = 16;

async function importEncoding(name: OpenAiEncodingName): Promise<[GptEncoding, Ranks]> {
  // Literal specifiers so bundlers can see them; the same ranks module backs the encoding.
  if (name === 'o200k_base') {
    const [encoding, ranks] = await Promise.all([
      import('gpt-tokenizer/encoding/o200k_base'),
      import('gpt-tokenizer/bpeRanks/o200k_base'),
    ]);
    return [encoding.default, ranks.default];
  }
  const [encoding, ranks] = await Promise.all([
    import('gpt-tokenizer/encoding/cl100k_base'),
    import('gpt-tokenizer/bpeRanks/cl100k_base'),
  ]);
  return [encoding.default, ranks.default];
}

const UTF8 = new TextDecoder();
const UTF8_ENCODER = new TextEncoder();

class OpenAiTokenizer implements Tokenizer {
  readonly id: OpenAiEncodingName;
  readonly vocabSize: number;
  readonly #ranks: Ranks;
  readonly #specials = new Map<number, string>();
  readonly #byteLengths: Uint16Array;
  readonly #core: GptCore;
  // Built on the first long pre-token: ordinary text never needs it.
  #byteRanks: Map<string, number> | undefined;

  constructor(name: OpenAiEncodingName, encoding: GptEncoding, ranks: Ranks) {
    this.id = name;
    this.vocabSize = VOCAB_SIZE[name];
    this.#ranks = ranks;
    this.#core = coreOf(encoding);
    const lengths = new Uint16Array(this.vocabSize);
    for (let id = 0; id < ranks.length; id++) {
      const piece = ranks[id];
      // Byte-array pieces are exactly the ones that are not whole UTF-8, so never ASCII.
      lengths[id] = typeof piece === 'string' ? packLength(utf8Length(piece), isAscii(piece)) : piece.length;
    }
    // Special tokens never come out of encode (see ORDINARY), but decode and the lengths know them.
    for (let id = ranks.length; id < this.vocabSize; id++) {
      try {
        const special = encoding.decode([id]);
        this.#specials.set(id, special);
        lengths[id] = packLength(utf8Length(special), isAscii(special));
      } catch {
        // an id tiktoken reserves that this package does not define
      }
    }
    this.#byteLengths = lengths;
  }

  /**
   * gpt-tokenizer's encodeNative with no special tokens allowed (what encode(text, ORDINARY) runs), except
   * that long pre-tokens are merged by bytePairMerge, which gives the same ids in O(m log m).
   */
  encodeIds(text: string): Uint32Array {
    const core = this.#core;
    const out: number[] = [];
    for (const [piece] of text.matchAll(core.tokenSplitRegex)) {
      const id = core.getBpeRankFromString(piece);
      if (id !== undefined) out.push(id);
      else if (piece.length <= LIBRARY_MERGE_MAX) {
        for (const t of core.bytePairEncode(piece)) out.push(t);
      } else {
        this.#byteRanks ??= byteRankTable(this.#ranks);
        bytePairMerge(binaryString(UTF8_ENCODER.encode(piece)), this.#byteRanks, out);
      }
    }
    return new Uint32Array(out);
  }

  encode(text: string): Encoding {
    const ids = this.encodeIds(text);
    // Byte-level BPE over the raw UTF-8, so the lengths add up; the decoding path is only a safety net.
    const spans =
      spansFromByteLengths(text, ids, this.#byteLengths) ??
      spansByDecoding(text, ids.length, (from, to) => this.#decode(ids, from, to));
    return { ids, starts: spans.starts, ends: spans.ends };
  }

  /**
   * Own decoding rather than gpt-tokenizer's: 4.0.0 decodes with one shared streaming TextDecoder, so an
   * incomplete character at the end of one call is dropped and leaks into the next call's output.
   */
  #decode(ids: ArrayLike<number>, from: number, to: number): string {
    const ranks = this.#ranks;
    let out = '';
    let pending: number[] = [];
    for (let i = from; i < to; i++) {
      const id = ids[i];
      const piece = ranks[id] ?? this.#specials.get(id);
      if (piece === undefined) throw new RangeError(`token id ${id} is not in ${this.id}`);
      if (typeof piece === 'string') {
        // A string piece is whole UTF-8, so bytes still pending here can never be completed.
        if (pending.length > 0) {
          out += UTF8.decode(Uint8Array.from(pending));
          pending = [];
        }
        out += piece;
      } else for (const byte of piece) pending.push(byte);
    }
    if (pending.length > 0) out += UTF8.decode(Uint8Array.from(pending));
    return out;
  }

  decode(ids: ArrayLike<number>): string {
    return this.#decode(ids, 0, ids.length);
  }
}

export async function loadOpenAiTokenizer(name: OpenAiEncodingName): Promise<Tokenizer> {
  const [encoding, ranks] = await importEncoding(name);
  return new OpenAiTokenizer(name, encoding, ranks);
}
