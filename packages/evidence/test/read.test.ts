import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { ProbeClient } from '../src/client';
import type { ProbeProgress } from '../src/probe';
import {
  EndpointReader,
  localReadingBody,
  parseEchoReading,
  type ReadInput,
  readBinding,
  runRead,
  storedReadTexts,
  textWindows,
  windowPredictions,
} from '../src/read';
import { EvidenceStore, readTextId, sha256Hex } from '../src/store';
import { fakeServers } from './fake-server';

const server = fakeServers();
const dir = mkdtempSync(join(tmpdir(), 'tracemark-read-'));
let stores = 0;
const storePath = () => join(dir, `read-${++stores}.db`);

/** The fake suspect: after a prefix it predicts (last id · 7 + 3) mod 1000. */
const predict = (ids: number[]) => ids.map((_, j) => (j === 0 ? null : (ids[j - 1] * 7 + 3) % 1000));
const noProgress = (): ProbeProgress => ({ tick() {}, finish() {} });

const texts: ReadInput[] = [
  { name: 'a', tokens: Array.from({ length: 25 }, (_, i) => (i * 37 + 11) % 1000) },
  { name: 'b', tokens: Array.from({ length: 9 }, (_, i) => (i * 91 + 5) % 1000) },
  { name: 'short', tokens: [4] },
];

async function read(
  path: string,
  url: string,
  options: { limit?: number; chunk?: number; overlap?: number; param?: 'return_tokens_as_token_ids' } = {},
) {
  const client = new ProbeClient({ endpoint: url, timeoutMs: 5000, retries: 0 });
  const store = EvidenceStore.open(path, { create: true });
  try {
    return await runRead({
      reader: new EndpointReader({ client, model: 'suspect', tokenIdsParam: options.param }),
      texts,
      tokenize: () => {
        throw new Error('texts are given as ids');
      },
      tokenizer: 'ids',
      store,
      chunk: options.chunk ?? 8,
      overlap: options.overlap ?? 4,
      limit: options.limit,
      settings: { test: true },
      progress: noProgress,
    });
  } finally {
    store.close();
  }
}

describe('reading windows', () => {
  it('every position 1..n−1 is kept by exactly one window, with context from its window', () => {
    for (const [n, chunk, overlap] of [
      [25, 8, 4],
      [9, 8, 1],
      [100, 16, 8],
      [5, 8, 4],
    ]) {
      const seen = new Array(n).fill(0);
      for (const w of textWindows(n, chunk, overlap)) {
        expect(w.end - w.start).toBeLessThanOrEqual(chunk);
        for (let p = Math.max(1, w.keepFrom); p < w.end; p++) {
          expect(p).toBeGreaterThan(w.start);
          seen[p]++;
        }
      }
      expect(seen.slice(1)).toEqual(new Array(n - 1).fill(1));
    }
  });
});

describe('runRead against an endpoint', () => {
  it('sends each window as token ids with echo, stores each answer byte for byte, and rebuilds the predictions', async () => {
    const s = await server({ predict });
    const path = storePath();
    const summary = await read(path, s.url);
    expect(summary).toMatchObject({ texts: 2, shortTexts: 1, alreadyStored: 0, remaining: 0 });
    const windows = textWindows(25, 8, 4).length + textWindows(9, 8, 4).length;
    expect(summary.windows).toBe(windows);
    expect(summary.stored).toBe(windows);
    expect(summary.positions).toBe(24 + 8);
    expect(s.requests).toHaveLength(windows);
    const first = s.requests[0];
    expect(first.path).toBe('/v1/completions');
    expect(first.body).toEqual({
      model: 'suspect',
      prompt: texts[0].tokens?.slice(0, 8),
      echo: true,
      max_tokens: 0,
      logprobs: 1,
      return_token_ids: true,
    });

    const store = EvidenceStore.open(path);
    try {
      expect(store.mode).toBe('read');
      expect(readBinding(store)).toMatchObject({ kind: 'endpoint', chunk: 8, overlap: 4, model: 'suspect' });
      const rows = [...store.readings()];
      expect(rows).toHaveLength(windows);
      for (const row of rows) {
        expect(sha256Hex(row.responseBody)).toBe(row.responseSha256);
        expect(JSON.parse(row.requestBody).prompt).toHaveLength(row.end - row.start);
        expect(row.reportedModel).toBe('fake-model');
        expect(row.requestUrl).toBe(`${s.url}/completions`);
      }
      const rebuilt = storedReadTexts(store, 8, 4);
      expect(rebuilt.texts).toHaveLength(2);
      expect(rebuilt.incompleteTexts).toBe(0);
      const [a] = rebuilt.texts;
      const ids = texts[0].tokens as number[];
      expect(Array.from(a.tokens)).toEqual(ids);
      expect(a.predictions[0]).toBe(-1);
      for (let p = 1; p < ids.length; p++) expect(a.predictions[p]).toBe((ids[p - 1] * 7 + 3) % 1000);
      expect(store.readTexts().map((t) => t.textId)).toEqual([
        readTextId(ids),
        readTextId(texts[1].tokens ?? []),
      ]);
    } finally {
      store.close();
    }
  });

  it('resumes: a run stopped after --limit windows, run again, reads only the rest; no duplicates', async () => {
    const s = await server({ predict });
    const path = storePath();
    const partial = await read(path, s.url, { limit: 3 });
    expect(partial.stored).toBe(3);
    expect(partial.remaining).toBe(partial.windows - 3);
    // The store so far: text a cut at its first unread window.
    const store = EvidenceStore.open(path);
    const cut = storedReadTexts(store, 8, 4);
    store.close();
    expect(cut.incompleteTexts).toBe(1);
    expect(cut.texts[0].tokens.length).toBe(textWindows(25, 8, 4)[2].end);

    const rest = await read(path, s.url);
    expect(rest.alreadyStored).toBe(3);
    expect(rest.stored).toBe(rest.windows - 3);
    expect(rest.total).toBe(rest.windows);
    const again = await read(path, s.url);
    expect(again.stored).toBe(0);
    expect(s.requests).toHaveLength(rest.windows);
    const keys = s.requests.map((r) => JSON.stringify(r.body.prompt));
    expect(new Set(keys).size).toBe(keys.length);

    const other = EvidenceStore.open(path);
    try {
      expect(other.readingCount()).toBe(rest.windows);
    } finally {
      other.close();
    }
    await expect(read(path, s.url, { chunk: 10, overlap: 5 })).rejects.toThrow(
      /was read with chunk 8, overlap 4: resume with the same settings/,
    );
  });

  it('positions an endpoint does not return are missing (−1), counted, never scored', async () => {
    const s = await server({ predict, echoPositions: 5 });
    const path = storePath();
    const summary = await read(path, s.url);
    const store = EvidenceStore.open(path);
    try {
      const rows = [...store.readings()];
      const first = windowPredictions(rows[0], texts[0].tokens as number[]);
      expect(first).toMatchObject({ from: 1, to: 8, kept: 4, missing: 3 });
      expect(Array.from(first.predictions.subarray(4))).toEqual([-1, -1, -1]);
      const rebuilt = storedReadTexts(store, 8, 4);
      const missing = rebuilt.texts.reduce(
        (n, t) => n + Array.from(t.predictions).filter((x, i) => i > 0 && x < 0).length,
        0,
      );
      expect(missing).toBe(24 + 8 - summary.positions);
      expect(missing).toBeGreaterThan(0);
    } finally {
      store.close();
    }
  });

  it("reads vLLM's token_id:N keys, and refuses tops named by text only", async () => {
    const vllm = await server({ predict, echoFormat: 'vllm' });
    const path = storePath();
    await read(path, vllm.url, { param: 'return_tokens_as_token_ids' });
    expect(vllm.requests[0].body.return_tokens_as_token_ids).toBe(true);
    expect(vllm.requests[0].body.return_token_ids).toBeUndefined();
    const store = EvidenceStore.open(path);
    const rebuilt = storedReadTexts(store, 8, 4);
    store.close();
    expect(rebuilt.texts[1].predictions[3]).toBe(((texts[1].tokens as number[])[2] * 7 + 3) % 1000);

    const text = await server({ predict, echoFormat: 'text' });
    await expect(read(storePath(), text.url)).rejects.toThrow(/names the top tokens .* by their text only/);
  });

  it('an endpoint that refuses echo or logprobs, or answers without logprobs: one line naming the parameter', async () => {
    const refusing = await server({
      failures: [
        {
          status: 400,
          body: JSON.stringify({
            error: {
              message: 'echo is not supported',
              type: 'invalid_request_error',
              param: 'echo',
              code: null,
            },
          }),
        },
      ],
    });
    const refusedPath = storePath();
    const refused = read(refusedPath, refusing.url);
    await expect(refused).rejects.toThrow(
      /^the endpoint refused the reading request \(echo\): .*HTTP 400: echo is not supported/,
    );
    await expect(refused).rejects.toMatchObject({ code: 'E_ENDPOINT' });
    const store = EvidenceStore.open(refusedPath);
    expect(store.readingCount()).toBe(0);
    expect(store.runs()[0].outcome).toMatchObject({ state: 'failed', stored: 0 });
    store.close();

    const logprobs = await server({
      failures: [
        {
          status: 400,
          body: JSON.stringify({
            error: { message: 'logprobs are disabled', param: 'logprobs', code: 'logprobs_disabled' },
          }),
        },
      ],
    });
    await expect(read(storePath(), logprobs.url)).rejects.toThrow(/refused the reading request \(logprobs\)/);

    const silent = await server({ predict, echoFormat: 'none' });
    await expect(read(storePath(), silent.url)).rejects.toThrow(
      /without logprobs \(sent echo: true, logprobs: 1\)/,
    );
  });

  it('a store holds probe responses or readings, never both', async () => {
    const s = await server({ predict });
    const path = storePath();
    const closed = EvidenceStore.open(path, { create: true });
    closed.bindModel('suspect');
    closed.close();
    await expect(read(path, s.url)).rejects.toThrow(/holds probe responses \(closed mode\), not readings/);

    const readPath = storePath();
    await read(readPath, s.url, { limit: 1 });
    const reading = EvidenceStore.open(readPath);
    try {
      expect(() => reading.bindModel('suspect')).toThrow(
        /holds readings \(reading mode\), not probe responses/,
      );
    } finally {
      reading.close();
    }
  });
});

describe('reading stores', () => {
  it('a store made before the reading tables reads as having no readings, and gets them when a read opens it', async () => {
    const path = storePath();
    const made = EvidenceStore.open(path, { create: true });
    made.close();
    const db = new Database(path);
    db.exec('DROP TABLE readings; DROP TABLE read_texts;');
    db.close();
    const old = EvidenceStore.open(path);
    try {
      expect(old.mode).toBeUndefined();
      expect(old.readingCount()).toBe(0);
      expect([...old.readings()]).toEqual([]);
      expect(old.readTexts()).toEqual([]);
    } finally {
      old.close();
    }
    const s = await server({ predict });
    const summary = await read(path, s.url);
    expect(summary.stored).toBe(summary.windows);
  });

  it('an altered body or token list is refused when the store is read back', async () => {
    const s = await server({ predict });
    const path = storePath();
    await read(path, s.url);
    const db = new Database(path);
    db.prepare("UPDATE readings SET response_body = CAST('{}' AS BLOB) WHERE seq = 2").run();
    db.close();
    const store = EvidenceStore.open(path);
    try {
      expect(() => storedReadTexts(store, 8, 4)).toThrow(
        /the body of reading 2 does not match its SHA-256; the store was altered/,
      );
    } finally {
      store.close();
    }
    const again = new Database(path);
    again.prepare('UPDATE read_texts SET tokens = ? WHERE seq = 1').run(JSON.stringify([1, 2, 3]));
    again.close();
    const altered = EvidenceStore.open(path);
    try {
      expect(() => altered.readTexts()).toThrow(
        /the token ids of text a do not match its id; the store was altered/,
      );
    } finally {
      altered.close();
    }
  });
});

describe('echo and local bodies', () => {
  it('parses top_token_ids, refuses re-tokenized echoes, and round-trips a local reading', () => {
    const body = (logprobs: unknown) =>
      new TextEncoder().encode(JSON.stringify({ choices: [{ text: '', logprobs }] }));
    expect(
      Array.from(
        parseEchoReading(body({ token_ids: [1, 2, 3], top_token_ids: [null, [9, 8], [7]] }), [1, 2, 3], 'w'),
      ),
    ).toEqual([-1, 9, 7]);
    expect(() => parseEchoReading(body({ token_ids: [1, 5, 3], top_token_ids: [] }), [1, 2, 3], 'w')).toThrow(
      /echoed other token ids than were sent for w/,
    );
    expect(() => parseEchoReading(body(null), [1, 2], 'w')).toThrow(/without logprobs/);

    const window = { index: 1, start: 4, end: 8, keepFrom: 6 };
    const local = localReadingBody('gguf', window, [-1, 10, 11, 12, 13]);
    expect(JSON.parse(new TextDecoder().decode(local))).toEqual({
      source: 'gguf',
      from: 6,
      to: 8,
      predictions: [11, 12],
    });
    const parsed = windowPredictions(
      { sourceKind: 'gguf', ...window, window: 1, textId: 'x', responseBody: local },
      [],
    );
    expect(parsed).toMatchObject({ from: 6, to: 8, kept: 2, missing: 0 });
    expect(Array.from(parsed.predictions)).toEqual([11, 12]);
    expect(() =>
      windowPredictions(
        { sourceKind: 'gguf', ...window, end: 9, window: 1, textId: 'x', responseBody: local },
        [],
      ),
    ).toThrow(/does not hold the predictions of positions 6 to 8/);
  });
});
