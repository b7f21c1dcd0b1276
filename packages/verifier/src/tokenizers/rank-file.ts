/**
 * An OpenAI encoding's ranks in one binary file, so that loading is a file read: no 2.4 MB module to compile,
 * no Map of 200k strings to build. The build writes dist/<name>.ranks.bin (see tsup.config.ts); where the file
 * is missing (tests, a fresh clone) openai.ts builds the same bytes in memory with buildRankFile.
 *
 * Layout (host byte order; each typed section aligned to its element size): a header of HEADER_WORDS u32s, then
 *   offsets  u32[vocabSize + 1]  token id -> start of its bytes; an empty range is an id with no token
 *   table    i32[2 ** tableBits] open addressing (linear probing, FNV-1a over the bytes) -> token id, or -1
 *   lengths  u16[vocabSize]      packLength(UTF-8 length, ASCII) of each token, for spansFromByteLengths
 *   kinds    u8[vocabSize]       1 where gpt-tokenizer holds the token as bytes rather than text (for decode)
 *   bytes    u8[bytesLength]     every token's bytes, concatenated in id order
 *   regex    the pre-tokenizer's source, then its flags (UTF-8)
 */
import { isAscii, packLength, utf8Length } from './offsets';

const MAGIC = 0x4b524d54; // 'TMRK'
const FORMAT_VERSION = 1;
// Read back as 0x01020304 only where the file was written in the reader's byte order.
const BYTE_ORDER = 0x01020304;
const HEADER_WORDS = 12;
/** No token: the answer of the rank look-ups, and an empty table slot. */
export const NONE = -1;
const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/** gpt-tokenizer's rank table: index = rank, value = the token's text, or its bytes where not whole UTF-8. */
export type Ranks = readonly (string | readonly number[])[];

export interface RankFileSource {
  ranks: Ranks;
  /** tiktoken's n_vocab: ids from ranks.length up are special tokens (or unused). */
  vocabSize: number;
  /** The special tokens' text by id, as gpt-tokenizer decodes them. */
  specials: ReadonlyMap<number, string>;
  tokenSplitRegex: RegExp;
}

export interface RankFile {
  vocabSize: number;
  offsets: Uint32Array;
  table: Int32Array;
  mask: number;
  lengths: Uint16Array;
  /** 1 where the token is a byte piece of gpt-tokenizer's ranks, 0 for text (and specials). */
  kinds: Uint8Array;
  bytes: Uint8Array;
  tokenSplitRegex: RegExp;
}

const UTF8_ENCODER = new TextEncoder();
const UTF8 = new TextDecoder();

/** FNV-1a of bytes[from, to); rankOfAscii computes the same over an ASCII string's char codes. */
function hashBytes(bytes: Uint8Array, from: number, to: number): number {
  let h = FNV_OFFSET;
  for (let i = from; i < to; i++) h = Math.imul(h ^ bytes[i], FNV_PRIME);
  return h;
}

/** Strict UTF-8 validity, as gpt-tokenizer's isValidUTF8 decides it (no overlongs, surrogates, > U+10FFFF). */
function isValidUtf8(b: Uint8Array, from: number, to: number): boolean {
  let i = from;
  while (i < to) {
    const b1 = b[i];
    let n: number;
    let cp: number;
    if (b1 <= 0x7f) {
      i++;
      continue;
    } else if ((b1 & 0xe0) === 0xc0) {
      if (b1 <= 0xc1) return false;
      n = 2;
      cp = b1 & 0x1f;
    } else if ((b1 & 0xf0) === 0xe0) {
      n = 3;
      cp = b1 & 0x0f;
    } else if ((b1 & 0xf8) === 0xf0) {
      if (b1 > 0xf4) return false;
      n = 4;
      cp = b1 & 0x07;
    } else return false;
    if (i + n > to) return false;
    for (let j = 1; j < n; j++) {
      if ((b[i + j] & 0xc0) !== 0x80) return false;
      cp = (cp << 6) | (b[i + j] & 0x3f);
    }
    if ((n === 3 && cp < 0x800) || (n === 4 && cp < 0x10000)) return false;
    if ((cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff) return false;
    i += n;
  }
  return true;
}

// In a u-mode pattern a surrogate pair is one code point, so this matches lone surrogates only.
const LONE_SURROGATE = /\p{Cs}/u;

const align4 = (n: number): number => (n + 3) & ~3;

/** Byte offsets of the file's sections (the layout above), for the writer and the reader alike. */
function sections(vocabSize: number, tableBits: number, bytesLength: number) {
  const offsetsAt = HEADER_WORDS * 4;
  const tableAt = offsetsAt + 4 * (vocabSize + 1);
  const lengthsAt = tableAt + 4 * 2 ** tableBits;
  const kindsAt = lengthsAt + 2 * vocabSize;
  const bytesAt = align4(kindsAt + vocabSize);
  const regexAt = align4(bytesAt + bytesLength);
  return { offsetsAt, tableAt, lengthsAt, kindsAt, bytesAt, regexAt };
}

/**
 * The file's bytes. The table holds what gpt-tokenizer finds by bytes (getBpeRankFromBytes): every text
 * piece by its UTF-8, and the byte pieces that are not valid UTF-8 (a valid one is looked up as text there,
 * so it can never be found; o200k_base has nine, all starting with a byte-order mark).
 */
export function buildRankFile({ ranks, vocabSize, specials, tokenSplitRegex }: RankFileSource): Uint8Array {
  const pieces: (Uint8Array | undefined)[] = new Array(vocabSize);
  const lengths = new Uint16Array(vocabSize);
  const kinds = new Uint8Array(vocabSize);
  const findable: boolean[] = new Array(vocabSize).fill(false);
  let bytesLength = 0;
  let entries = 0;
  for (let id = 0; id < vocabSize; id++) {
    const piece = id < ranks.length ? ranks[id] : specials.get(id);
    if (piece === undefined) continue;
    let bytes: Uint8Array;
    if (typeof piece === 'string') {
      if (LONE_SURROGATE.test(piece))
        throw new Error(`token ${id} has a lone surrogate: cannot be stored as UTF-8`);
      bytes = UTF8_ENCODER.encode(piece);
      lengths[id] = packLength(utf8Length(piece), isAscii(piece));
      findable[id] = id < ranks.length;
    } else {
      bytes = Uint8Array.from(piece);
      // Byte pieces are exactly the ones that are not whole UTF-8, so never ASCII.
      lengths[id] = packLength(bytes.length, false);
      kinds[id] = 1;
      findable[id] = !isValidUtf8(bytes, 0, bytes.length);
    }
    if (bytes.length === 0) throw new Error(`token ${id} is empty`);
    pieces[id] = bytes;
    bytesLength += bytes.length;
    if (findable[id]) entries++;
  }
  // Load factor at most 1/2, so probes stay short.
  let tableBits = 1;
  while (2 ** tableBits < 2 * entries) tableBits++;
  const regexSource = UTF8_ENCODER.encode(tokenSplitRegex.source);
  const regexFlags = UTF8_ENCODER.encode(tokenSplitRegex.flags);

  const { offsetsAt, tableAt, lengthsAt, kindsAt, bytesAt, regexAt } = sections(
    vocabSize,
    tableBits,
    bytesLength,
  );
  const size = regexAt + regexSource.length + regexFlags.length;
  const file = new Uint8Array(size);
  const buffer = file.buffer;
  new Uint32Array(buffer, 0, HEADER_WORDS).set([
    MAGIC,
    FORMAT_VERSION,
    BYTE_ORDER,
    vocabSize,
    tableBits,
    bytesLength,
    regexSource.length,
    regexFlags.length,
  ]);
  const offsets = new Uint32Array(buffer, offsetsAt, vocabSize + 1);
  const bytes = new Uint8Array(buffer, bytesAt, bytesLength);
  let at = 0;
  for (let id = 0; id < vocabSize; id++) {
    offsets[id] = at;
    const piece = pieces[id];
    if (piece !== undefined) {
      bytes.set(piece, at);
      at += piece.length;
    }
  }
  offsets[vocabSize] = at;
  const table = new Int32Array(buffer, tableAt, 2 ** tableBits).fill(NONE);
  const mask = 2 ** tableBits - 1;
  for (let id = 0; id < vocabSize; id++) {
    if (!findable[id]) continue;
    const from = offsets[id];
    const to = offsets[id + 1];
    let slot = hashBytes(bytes, from, to) & mask;
    while (table[slot] !== NONE) {
      if (sameBytes(bytes, offsets[table[slot]], offsets[table[slot] + 1], bytes, from, to)) {
        throw new Error(`tokens ${table[slot]} and ${id} have the same bytes`);
      }
      slot = (slot + 1) & mask;
    }
    table[slot] = id;
  }
  new Uint16Array(buffer, lengthsAt, vocabSize).set(lengths);
  file.set(kinds, kindsAt);
  file.set(regexSource, regexAt);
  file.set(regexFlags, regexAt + regexSource.length);
  return file;
}

function sameBytes(
  a: Uint8Array,
  aFrom: number,
  aTo: number,
  b: Uint8Array,
  bFrom: number,
  bTo: number,
): boolean {
  if (aTo - aFrom !== bTo - bFrom) return false;
  for (let i = 0; i < aTo - aFrom; i++) if (a[aFrom + i] !== b[bFrom + i]) return false;
  return true;
}

/**
 * Views over a file written by buildRankFile (no copying), or undefined when it is not one: another format
 * version, or the other byte order.
 */
export function readRankFile(file: Uint8Array): RankFile | undefined {
  if (file.byteLength < HEADER_WORDS * 4) return undefined;
  // Typed-array views need 4-byte alignment.
  const data = file.byteOffset % 4 === 0 ? file : file.slice();
  const buffer = data.buffer;
  const base = data.byteOffset;
  const header = new Uint32Array(buffer, base, HEADER_WORDS);
  if (header[0] !== MAGIC || header[1] !== FORMAT_VERSION || header[2] !== BYTE_ORDER) return undefined;
  const [, , , vocabSize, tableBits, bytesLength, sourceLength, flagsLength] = header;
  const { offsetsAt, tableAt, lengthsAt, kindsAt, bytesAt, regexAt } = sections(
    vocabSize,
    tableBits,
    bytesLength,
  );
  if (regexAt + sourceLength + flagsLength !== data.byteLength) return undefined;
  const source = UTF8.decode(data.subarray(regexAt, regexAt + sourceLength));
  const flags = UTF8.decode(data.subarray(regexAt + sourceLength, regexAt + sourceLength + flagsLength));
  return {
    vocabSize,
    offsets: new Uint32Array(buffer, base + offsetsAt, vocabSize + 1),
    table: new Int32Array(buffer, base + tableAt, 2 ** tableBits),
    mask: 2 ** tableBits - 1,
    lengths: new Uint16Array(buffer, base + lengthsAt, vocabSize),
    kinds: new Uint8Array(buffer, base + kindsAt, vocabSize),
    bytes: new Uint8Array(buffer, base + bytesAt, bytesLength),
    tokenSplitRegex: new RegExp(source, flags),
  };
}

/** The token whose bytes are key[from, to), or -1. */
export function rankOfBytes(file: RankFile, key: Uint8Array, from: number, to: number): number {
  const { table, offsets, bytes, mask } = file;
  let slot = hashBytes(key, from, to) & mask;
  for (;;) {
    const id = table[slot];
    if (id === NONE) return NONE;
    if (sameBytes(bytes, offsets[id], offsets[id + 1], key, from, to)) return id;
    slot = (slot + 1) & mask;
  }
}

/** rankOfAscii's answer for a string that is not all ASCII. */
export const NOT_ASCII = -2;

/**
 * The token whose bytes are the string `s` if `s` is all ASCII (-1 if none), else NOT_ASCII. Hashes the char
 * codes as they are checked: ASCII text needs no UTF-8 copy.
 */
export function rankOfAscii(file: RankFile, s: string): number {
  const n = s.length;
  let h = FNV_OFFSET;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c >= 0x80) return NOT_ASCII;
    h = Math.imul(h ^ c, FNV_PRIME);
  }
  const { table, offsets, bytes, mask } = file;
  for (let slot = h & mask; ; slot = (slot + 1) & mask) {
    const id = table[slot];
    if (id === NONE) return NONE;
    const from = offsets[id];
    if (offsets[id + 1] - from === n) {
      let k = 0;
      while (k < n && bytes[from + k] === s.charCodeAt(k)) k++;
      if (k === n) return id;
    }
  }
}

/**
 * The rank gpt-tokenizer's merge gives key[from, to) (its getBpeRankFromBytes): valid UTF-8 is looked up by
 * its text as a TextDecoder decodes it, which drops a leading byte-order mark.
 */
export function mergeRank(file: RankFile, key: Uint8Array, from: number, to: number): number {
  if (to - from >= 3 && key[from] === 0xef && key[from + 1] === 0xbb && key[from + 2] === 0xbf) {
    if (isValidUtf8(key, from + 3, to)) return to - from > 3 ? rankOfBytes(file, key, from + 3, to) : NONE;
  }
  return rankOfBytes(file, key, from, to);
}
