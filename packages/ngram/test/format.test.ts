import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sha256 } from '@noble/hashes/sha2.js';
import { afterAll, describe, expect, it } from 'vitest';
import {
  MODEL_FORMAT_VERSION,
  MODEL_MAGIC,
  NgramError,
  NgramModel,
  o200kBase,
  trainNgram,
} from '../src/index';
import { bookTokens } from './support';

const documents = bookTokens(['carroll-alice'], 500);
const model = trainNgram(documents, { order: 4, meta: { corpus: 'carroll-alice, first 500 paragraphs' } });
const bytes = model.toBytes();
const dir = mkdtempSync(join(tmpdir(), 'tracemark-ngram-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function codeOf(input: Uint8Array): string {
  try {
    NgramModel.fromBytes(input);
  } catch (error) {
    expect(error).toBeInstanceOf(NgramError);
    expect((error as Error).message).not.toContain('\n');
    return (error as NgramError).code;
  }
  return 'loaded';
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.compare(a, b) === 0;
}

function sameLogits(a: NgramModel, b: NgramModel, context: number[]): boolean {
  const x = a.logits(context);
  const y = b.logits(context);
  return x.every((v, i) => Object.is(v, y[i]));
}

/** `bytes` with the SHA-256 recomputed, as a tool that rewrote the file would leave it. */
function resealed(input: Uint8Array): Uint8Array {
  const out = input.slice();
  out.set(sha256(out.subarray(0, out.length - 32)), out.length - 32);
  return out;
}

describe('model file', () => {
  it('round-trips through a file with identical logits, probabilities and info', () => {
    const path = join(dir, 'alice.tmng');
    model.save(path);
    const loaded = NgramModel.load(path);
    expect(loaded.info).toEqual(model.info);
    expect(loaded.tokenizer).toBe(o200kBase);
    for (const context of [[], documents[3].slice(0, 5), documents[77].slice(0, 2), [5, 6, 7, 8, 9]]) {
      expect(sameLogits(model, loaded, context)).toBe(true);
      expect(loaded.logProb(context, 13)).toBe(model.logProb(context, 13));
    }
    expect(sameBytes(loaded.toBytes(), bytes)).toBe(true);
  });

  it('is deterministic: the same corpus gives the same bytes, whatever the document order or form', () => {
    expect(sameBytes(trainNgram(documents, { order: 4, meta: model.info.meta }).toBytes(), bytes)).toBe(true);
    const shuffled = [...documents].reverse();
    expect(sameBytes(trainNgram(shuffled, { order: 4, meta: model.info.meta }).toBytes(), bytes)).toBe(true);
    const texts = documents.slice(0, 50).map((ids) => o200kBase.decode(ids));
    const ids = texts.map((t) => o200kBase.encode(t));
    expect(
      sameBytes(trainNgram(texts, { order: 3 }).toBytes(), trainNgram(ids, { order: 3 }).toBytes()),
    ).toBe(true);
    expect(sameBytes(trainNgram(ids, { order: 3 }).toBytes(), trainNgram(ids, { order: 4 }).toBytes())).toBe(
      false,
    );
  });

  it('starts with the magic bytes and the version, and is compact', () => {
    expect(bytes.subarray(0, 8)).toEqual(MODEL_MAGIC);
    expect(new DataView(bytes.buffer).getUint32(8, true)).toBe(MODEL_FORMAT_VERSION);
    // Beyond the two dense per-token rows (unigram counts, bigram group sizes: a byte per token each),
    // an n-gram costs a few bytes: its word as a varint gap, its count and its group size.
    const entries = model.info.ngrams.slice(1).reduce((a, b) => a + b, 0);
    expect((bytes.length - 2 * model.vocabSize) / entries).toBeLessThan(5);
  });

  it('reports a truncated file as E_MODEL_TRUNCATED', () => {
    expect(codeOf(bytes.subarray(0, bytes.length - 1))).toBe('E_MODEL_TRUNCATED');
    expect(codeOf(bytes.subarray(0, bytes.length >> 1))).toBe('E_MODEL_TRUNCATED');
    expect(codeOf(bytes.subarray(0, 30))).toBe('E_MODEL_TRUNCATED');
    expect(codeOf(bytes.subarray(0, 5))).toBe('E_MODEL_TRUNCATED');
    expect(codeOf(new Uint8Array(0))).toBe('E_MODEL_TRUNCATED');
  });

  it('reports a flipped byte anywhere after the version as E_MODEL_CHECKSUM', () => {
    for (const at of [20, 40, bytes.length >> 1, bytes.length - 40, bytes.length - 1]) {
      const corrupt = bytes.slice();
      corrupt[at] ^= 0x10;
      expect(codeOf(corrupt)).toBe(at < 24 ? 'E_MODEL_TRUNCATED' : 'E_MODEL_CHECKSUM');
    }
  });

  it('reports wrong magic bytes as E_MODEL_FILE', () => {
    const corrupt = bytes.slice();
    corrupt[0] = 0x50; // 'P'
    expect(codeOf(corrupt)).toBe('E_MODEL_FILE');
    expect(codeOf(new TextEncoder().encode('{"not": "a model"}'))).toBe('E_MODEL_FILE');
    try {
      NgramModel.fromBytes(corrupt);
    } catch (error) {
      expect((error as Error).message).toBe('not a tracemark n-gram model file (wrong magic bytes)');
    }
  });

  it('reports a future version as E_MODEL_VERSION', () => {
    const future = bytes.slice();
    new DataView(future.buffer).setUint32(8, MODEL_FORMAT_VERSION + 1, true);
    expect(codeOf(future)).toBe('E_MODEL_VERSION');
    expect(codeOf(resealed(future))).toBe('E_MODEL_VERSION');
    try {
      NgramModel.fromBytes(future);
    } catch (error) {
      expect((error as Error).message).toContain(`version ${MODEL_FORMAT_VERSION + 1} is not supported`);
    }
  });

  it('validates the structure behind a good checksum (E_MODEL_FILE)', () => {
    const view = new DataView(bytes.buffer);
    const headerLength = view.getUint32(12, true);
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(24, 24 + headerLength)));
    const withHeader = (patch: Record<string, unknown>) => {
      const text = new TextEncoder().encode(JSON.stringify({ ...header, ...patch }));
      const payload = bytes.subarray(24 + headerLength, bytes.length - 32);
      const out = new Uint8Array(24 + text.length + payload.length + 32);
      out.set(bytes.subarray(0, 24));
      new DataView(out.buffer).setUint32(12, text.length, true);
      out.set(text, 24);
      out.set(payload, 24 + text.length);
      return resealed(out);
    };
    expect(codeOf(withHeader({}))).toBe('loaded');
    expect(codeOf(withHeader({ order: 7 }))).toBe('E_MODEL_FILE');
    expect(codeOf(withHeader({ levels: [1, 2, 3] }))).toBe('E_MODEL_FILE');
    expect(codeOf(withHeader({ vocabSize: 1000 }))).toBe('E_MODEL_FILE');
    expect(codeOf(withHeader({ format: 'other' }))).toBe('E_MODEL_FILE');
    const tail = bytes.slice();
    tail[bytes.length - 33] ^= 0x01; // last payload byte: a count or word changes
    expect(['E_MODEL_FILE', 'loaded']).toContain(codeOf(resealed(tail)));
    const longer = new Uint8Array(bytes.length + 3);
    longer.set(bytes);
    expect(codeOf(longer)).toBe('E_MODEL_FILE');
  });

  it('reports a missing file as E_MODEL_FILE', () => {
    expect(() => NgramModel.load(join(dir, 'missing.tmng'))).toThrowError(NgramError);
    writeFileSync(join(dir, 'empty.tmng'), '');
    try {
      NgramModel.load(join(dir, 'empty.tmng'));
    } catch (error) {
      expect((error as NgramError).code).toBe('E_MODEL_TRUNCATED');
    }
  });
});
