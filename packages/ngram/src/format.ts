import { sha256 } from '@noble/hashes/sha2.js';
import { fail } from './errors';
import type { LevelArrays, ModelParts } from './model';

/**
 * Model file, format version 1 (all integers little-endian):
 *
 *   offset 0   8 bytes  magic "TMNGRAM\0"
 *          8   u32      format version (1)
 *         12   u32      header length H (bytes of UTF-8 JSON)
 *         16   u32      payload length P (low 32 bits)
 *         20   u32      payload length P (high bits)
 *         24   H bytes  header JSON: format, order, vocabSize, tokenizer, trainedTokens, documents, levels, meta
 *     24 + H   P bytes  payload: unsigned LEB128 varints (below)
 * 24 + H + P   32 bytes SHA-256 of every byte before it
 *
 * Payload: the unigram continuation counts of tokens 0..vocabSize − 1; then for each level d = 2..order:
 * the number of children of every node of level d − 1 (level 1 has vocabSize + 1 nodes, the last being
 * `<bos>`), the children's words (the first of each sibling group as is, the next ones as the gap to the
 * previous word minus 1: words ascend), and their adjusted counts minus 1.
 */
export const MODEL_MAGIC = new Uint8Array([0x54, 0x4d, 0x4e, 0x47, 0x52, 0x41, 0x4d, 0x00]);
export const MODEL_FORMAT_VERSION = 1;
const FIXED = 24;
const CHECKSUM = 32;

class VarintWriter {
  bytes = new Uint8Array(1 << 16);
  length = 0;

  write(value: number): void {
    if (this.length + 5 > this.bytes.length) {
      const grown = new Uint8Array(this.bytes.length * 2);
      grown.set(this.bytes);
      this.bytes = grown;
    }
    const bytes = this.bytes;
    let at = this.length;
    while (value >= 0x80) {
      bytes[at++] = (value & 0x7f) | 0x80;
      value = Math.floor(value / 128);
    }
    bytes[at++] = value;
    this.length = at;
  }
}

class VarintReader {
  readonly #bytes: Uint8Array;
  #at: number;
  readonly #end: number;

  constructor(bytes: Uint8Array, start: number, end: number) {
    this.#bytes = bytes;
    this.#at = start;
    this.#end = end;
  }

  get done(): boolean {
    return this.#at === this.#end;
  }

  read(): number {
    const bytes = this.#bytes;
    let value = 0;
    let scale = 1;
    for (let i = 0; i < 5; i++) {
      if (this.#at >= this.#end) malformed('the payload ends inside a number');
      const b = bytes[this.#at++];
      value += (b & 0x7f) * scale;
      if (b < 0x80) {
        if (value > 0xffffffff) malformed('a number exceeds 32 bits');
        return value;
      }
      scale *= 128;
    }
    return malformed('a number is longer than 5 bytes');
  }
}

function malformed(why: string): never {
  return fail('E_MODEL_FILE', `malformed model file: ${why}`);
}

interface Header {
  format: 'tracemark-ngram';
  order: number;
  vocabSize: number;
  tokenizer: string | null;
  trainedTokens: number;
  documents: number;
  /** Entries of levels 2..order. */
  levels: number[];
  meta: Record<string, unknown>;
}

export function encodeModel(parts: ModelParts): Uint8Array {
  const { order, vocabSize, unigram, levels } = parts;
  const header: Header = {
    format: 'tracemark-ngram',
    order,
    vocabSize,
    tokenizer: parts.tokenizerName,
    trainedTokens: parts.trainedTokens,
    documents: parts.documents,
    levels: levels.map((level) => level.words.length),
    meta: parts.meta,
  };
  const headerBytes = new TextEncoder().encode(JSON.stringify(header));
  const payload = new VarintWriter();
  for (let w = 0; w < vocabSize; w++) payload.write(unigram[w]);
  for (const { childStart, words, counts } of levels) {
    const parents = childStart.length - 1;
    for (let p = 0; p < parents; p++) payload.write(childStart[p + 1] - childStart[p]);
    for (let p = 0; p < parents; p++) {
      let previous = -1;
      for (let e = childStart[p]; e < childStart[p + 1]; e++) {
        payload.write(words[e] - previous - 1);
        previous = words[e];
      }
    }
    for (let e = 0; e < counts.length; e++) payload.write(counts[e] - 1);
  }
  const total = FIXED + headerBytes.length + payload.length + CHECKSUM;
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  out.set(MODEL_MAGIC, 0);
  view.setUint32(8, MODEL_FORMAT_VERSION, true);
  view.setUint32(12, headerBytes.length, true);
  view.setUint32(16, payload.length % 2 ** 32, true);
  view.setUint32(20, Math.floor(payload.length / 2 ** 32), true);
  out.set(headerBytes, FIXED);
  out.set(payload.bytes.subarray(0, payload.length), FIXED + headerBytes.length);
  out.set(sha256(out.subarray(0, total - CHECKSUM)), total - CHECKSUM);
  return out;
}

/**
 * Reads a model file, checking in turn: the magic bytes (E_MODEL_FILE), the version (E_MODEL_VERSION),
 * the declared length (E_MODEL_TRUNCATED), the SHA-256 (E_MODEL_CHECKSUM), then the header and payload
 * structure (E_MODEL_FILE).
 */
export function decodeModel(input: Uint8Array): Omit<ModelParts, 'tokenizer'> {
  if (!(input instanceof Uint8Array))
    fail('E_MODEL_FILE', 'a model file must be given as bytes (Uint8Array)');
  const bytes = input;
  const prefix = Math.min(bytes.length, MODEL_MAGIC.length);
  for (let i = 0; i < prefix; i++) {
    if (bytes[i] !== MODEL_MAGIC[i]) {
      fail('E_MODEL_FILE', 'not a tracemark n-gram model file (wrong magic bytes)');
    }
  }
  if (bytes.length < FIXED + CHECKSUM) {
    fail('E_MODEL_TRUNCATED', `model file truncated: ${bytes.length} bytes, shorter than any model file`);
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const version = view.getUint32(8, true);
  if (version !== MODEL_FORMAT_VERSION) {
    fail(
      'E_MODEL_VERSION',
      `model file format version ${version} is not supported (this build reads version ${MODEL_FORMAT_VERSION})`,
    );
  }
  const headerLength = view.getUint32(12, true);
  const payloadLength = view.getUint32(16, true) + view.getUint32(20, true) * 2 ** 32;
  const total = FIXED + headerLength + payloadLength + CHECKSUM;
  if (bytes.length < total) {
    fail(
      'E_MODEL_TRUNCATED',
      `model file truncated: ${bytes.length} bytes of the ${total} its header declares`,
    );
  }
  if (bytes.length > total) {
    malformed(`${bytes.length - total} unexpected bytes after the checksum`);
  }
  const expected = sha256(bytes.subarray(0, total - CHECKSUM));
  for (let i = 0; i < CHECKSUM; i++) {
    if (expected[i] !== bytes[total - CHECKSUM + i]) {
      fail('E_MODEL_CHECKSUM', 'model file checksum mismatch (SHA-256): the file is corrupted');
    }
  }
  const header = readHeader(bytes.subarray(FIXED, FIXED + headerLength));
  const { order, vocabSize } = header;
  const reader = new VarintReader(bytes, FIXED + headerLength, total - CHECKSUM);
  const unigram = new Uint32Array(vocabSize + 1);
  for (let w = 0; w < vocabSize; w++) unigram[w] = reader.read();
  const levels: LevelArrays[] = [];
  let parents = vocabSize + 1;
  for (let d = 2; d <= order; d++) {
    const entries = header.levels[d - 2];
    const childStart = new Uint32Array(parents + 1);
    for (let p = 0; p < parents; p++) {
      const next = childStart[p] + reader.read();
      if (next > entries) malformed(`level ${d} has more entries than its header says`);
      childStart[p + 1] = next;
    }
    if (childStart[parents] !== entries) malformed(`level ${d} has fewer entries than its header says`);
    const words = new Int32Array(entries);
    for (let p = 0; p < parents; p++) {
      let previous = -1;
      for (let e = childStart[p]; e < childStart[p + 1]; e++) {
        previous += reader.read() + 1;
        if (previous >= vocabSize) malformed(`a level-${d} word is outside the vocabulary`);
        words[e] = previous;
      }
    }
    const counts = new Uint32Array(entries);
    for (let e = 0; e < entries; e++) {
      const c = reader.read() + 1;
      if (c > 0xffffffff) malformed('a count exceeds 32 bits');
      counts[e] = c;
    }
    levels.push({ childStart, words, counts });
    parents = entries;
  }
  if (!reader.done) malformed('the payload is longer than its levels');
  return {
    order,
    vocabSize,
    tokenizerName: header.tokenizer,
    trainedTokens: header.trainedTokens,
    documents: header.documents,
    meta: header.meta,
    unigram,
    levels,
  };
}

function readHeader(bytes: Uint8Array): Header {
  let header: Header;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    return malformed('the header is not JSON');
  }
  const integer = (x: unknown, lo: number, hi: number) =>
    Number.isInteger(x) && (x as number) >= lo && (x as number) <= hi;
  if (header === null || typeof header !== 'object' || header.format !== 'tracemark-ngram') {
    malformed('the header does not describe a tracemark n-gram model');
  }
  if (!integer(header.order, 2, 5)) malformed('the order is not 2..5');
  if (!integer(header.vocabSize, 2, 2 ** 24 - 1)) malformed('the vocabulary size is out of range');
  if (!(header.tokenizer === null || typeof header.tokenizer === 'string'))
    malformed('the tokenizer is not a name');
  if (!integer(header.trainedTokens, 0, Number.MAX_SAFE_INTEGER))
    malformed('the token count is not an integer');
  if (!integer(header.documents, 0, Number.MAX_SAFE_INTEGER))
    malformed('the document count is not an integer');
  if (
    !Array.isArray(header.levels) ||
    header.levels.length !== header.order - 1 ||
    !header.levels.every((n) => integer(n, 0, 2 ** 32 - 1))
  ) {
    malformed('the level sizes do not match the order');
  }
  if (header.meta === null || typeof header.meta !== 'object' || Array.isArray(header.meta)) {
    malformed('the meta field is not an object');
  }
  return header;
}
