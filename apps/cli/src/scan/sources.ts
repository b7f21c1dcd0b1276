import { createReadStream, type Dirent, readdirSync, readFileSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { join, relative, sep } from 'node:path';
import { fail } from '../errors';
import { READ_BYTES, textPieces } from './pieces';

/** One document of a corpus: its id (relative path, or JSONL id / file:line) and its text. */
export interface ScanDocument {
  id: string;
  text: string;
  /** 1-based line of a JSONL record. */
  line?: number;
}

/**
 * A document too large to hold whole: its text as pieces whose ids, one after the other, are the ids of the whole
 * text (see pieces.ts). Its record is the same as if it were read whole.
 */
export interface StreamedDocument {
  id: string;
  pieces: AsyncIterable<string>;
}

export type ScanItem = ScanDocument | StreamedDocument;

export function isStreamed(item: ScanItem): item is StreamedDocument {
  return 'pieces' in item;
}

export interface SourceOptions {
  /** Read JSON Lines (one record per line) instead of one document per file. */
  jsonl?: boolean;
  /** JSONL: the field holding the text (default "text") and the one holding the id (default "id"). */
  textField?: string;
  idField?: string;
  /**
   * Stream plain text in pieces of at least this many characters: a file larger than this many bytes, and standard
   * input. Only for a tokenizer that allows it (pieces.ts); unset, every document is read whole.
   */
  pieceCharacters?: number;
}

function errnoOf(error: unknown): string {
  return (error as NodeJS.ErrnoException).code ?? 'unknown error';
}

/**
 * The files of a corpus path: the path itself when it is a file, else every regular file below the directory
 * (hidden files and directories skipped), sorted by relative path so that every run visits them in one order.
 */
export function corpusFiles(path: string): { file: string; id: string }[] {
  let stats: ReturnType<typeof statSync>;
  try {
    stats = statSync(path);
  } catch (error) {
    fail('E_INPUT', `cannot read corpus ${path}: ${errnoOf(error)}`);
  }
  if (stats.isFile()) return [{ file: path, id: path }];
  if (!stats.isDirectory()) fail('E_INPUT', `corpus ${path} is neither a file nor a directory`);
  const out: { file: string; id: string }[] = [];
  const walk = (dir: string): void => {
    let entries: Dirent[];
    try {
      entries = readdirSync(dir, { withFileTypes: true });
    } catch (error) {
      fail('E_INPUT', `cannot read corpus directory ${dir}: ${errnoOf(error)}`);
    }
    for (const entry of entries) {
      if (entry.name.startsWith('.')) continue;
      const full = join(dir, entry.name);
      if (entry.isDirectory()) walk(full);
      else if (entry.isFile()) out.push({ file: full, id: relative(path, full).split(sep).join('/') });
    }
  };
  walk(path);
  return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

function fileSize(file: string): number {
  try {
    return statSync(file).size;
  } catch (error) {
    fail('E_INPUT', `cannot read ${file}: ${errnoOf(error)}`);
  }
}

function decodeFile(file: string, id: string): string {
  let bytes: Buffer;
  try {
    bytes = readFileSync(file);
  } catch (error) {
    fail('E_INPUT', `cannot read ${file}: ${errnoOf(error)}`);
  }
  return decodeBytes(bytes, id);
}

function decodeBytes(bytes: Uint8Array, what: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    fail('E_INPUT', `${what} is not valid UTF-8`);
  }
}

/**
 * One JSON Lines record as a document; null for a blank line. `source` names the file in errors, which give
 * the 1-based line number.
 */
export function parseJsonlLine(
  line: string,
  lineNumber: number,
  source: string,
  textField = 'text',
  idField = 'id',
): ScanDocument | null {
  if (line.trim().length === 0) return null;
  let record: unknown;
  try {
    record = JSON.parse(line);
  } catch {
    fail('E_INPUT', `${source}:${lineNumber}: not valid JSON`);
  }
  if (record === null || typeof record !== 'object' || Array.isArray(record))
    fail('E_INPUT', `${source}:${lineNumber}: expected a JSON object`);
  const text = (record as Record<string, unknown>)[textField];
  if (typeof text !== 'string')
    fail('E_INPUT', `${source}:${lineNumber}: no string field ${JSON.stringify(textField)}`);
  const id = (record as Record<string, unknown>)[idField];
  return {
    id: typeof id === 'string' || typeof id === 'number' ? String(id) : `${source}:${lineNumber}`,
    text,
    line: lineNumber,
  };
}

/** Lines of a byte stream, decoded as strict UTF-8 (invalid bytes are an error naming the line). */
async function* lines(stream: AsyncIterable<Buffer | string>, source: string): AsyncGenerator<string> {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let pending = '';
  let lineNumber = 1;
  for await (const chunk of stream) {
    try {
      pending += typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true });
    } catch {
      fail('E_INPUT', `${source}: not valid UTF-8 (at or after line ${lineNumber})`);
    }
    let at = pending.indexOf('\n');
    while (at !== -1) {
      yield pending.slice(0, at).replace(/\r$/, '');
      lineNumber++;
      pending = pending.slice(at + 1);
      at = pending.indexOf('\n');
    }
  }
  try {
    pending += decoder.decode();
  } catch {
    fail('E_INPUT', `${source}: not valid UTF-8 (at line ${lineNumber})`);
  }
  if (pending.length > 0) yield pending.replace(/\r$/, '');
}

function openStream(file: string): AsyncIterable<Buffer> {
  const stream = createReadStream(file);
  return (async function* () {
    try {
      for await (const chunk of stream) yield chunk as Buffer;
    } catch (error) {
      fail('E_INPUT', `cannot read ${file}: ${errnoOf(error)}`);
    }
  })();
}

/**
 * The bytes of a file through one reused buffer: each chunk is valid until the next is asked for. The text of a
 * streamed document is decoded as soon as it is read, and a fresh buffer per read would leave as much garbage
 * outside the heap as the file is large (V8 collects it late).
 */
async function* fileChunks(file: string): AsyncGenerator<Uint8Array> {
  const buffer = new Uint8Array(READ_BYTES);
  let handle: Awaited<ReturnType<typeof open>> | undefined;
  try {
    handle = await open(file, 'r');
    for (;;) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, null);
      if (bytesRead === 0) return;
      yield buffer.subarray(0, bytesRead);
    }
  } catch (error) {
    fail('E_INPUT', `cannot read ${file}: ${errnoOf(error)}`);
  } finally {
    await handle?.close();
  }
}

async function* jsonlDocuments(
  stream: AsyncIterable<Buffer | string>,
  source: string,
  options: SourceOptions,
): AsyncGenerator<ScanDocument> {
  let lineNumber = 0;
  for await (const line of lines(stream, source)) {
    lineNumber++;
    const document = parseJsonlLine(line, lineNumber, source, options.textField, options.idField);
    if (document !== null) yield document;
  }
}

/**
 * The documents of a corpus, read lazily: a directory (one document per file, or JSONL files with --jsonl),
 * one file, or standard input ("-"). Errors are VerifierError E_INPUT with the file, and line for JSONL.
 */
export function corpusDocuments(
  path: string,
  options?: SourceOptions & { pieceCharacters?: undefined },
): AsyncGenerator<ScanDocument>;
export function corpusDocuments(path: string, options: SourceOptions): AsyncGenerator<ScanItem>;
export function corpusDocuments(path: string, options: SourceOptions = {}): AsyncGenerator<ScanItem> {
  // The listing is made now, so that a missing corpus fails before any work starts.
  const files = path === '-' ? [] : corpusFiles(path);
  return readDocuments(path, files, options);
}

async function* readDocuments(
  path: string,
  files: { file: string; id: string }[],
  options: SourceOptions,
): AsyncGenerator<ScanItem> {
  const pieceCharacters = options.pieceCharacters;
  if (path === '-') {
    if (options.jsonl) {
      yield* jsonlDocuments(process.stdin, 'standard input', options);
    } else if (pieceCharacters !== undefined) {
      yield { id: '-', pieces: textPieces(process.stdin, 'standard input', pieceCharacters) };
    } else {
      const chunks: Buffer[] = [];
      for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
      yield { id: '-', text: decodeBytes(Buffer.concat(chunks), 'standard input') };
    }
    return;
  }
  for (const { file, id } of files) {
    if (options.jsonl) yield* jsonlDocuments(openStream(file), id, options);
    else if (pieceCharacters !== undefined && fileSize(file) > pieceCharacters)
      yield { id, pieces: textPieces(fileChunks(file), id, pieceCharacters) };
    else yield { id, text: decodeFile(file, id) };
  }
}
