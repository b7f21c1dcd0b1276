import { closeSync, constants, existsSync, openSync } from 'node:fs';
import { hostname } from 'node:os';
import { sha256Hex } from '@tracemark/verifier';
import Database from 'better-sqlite3';
import { fail } from './errors';

/**
 * The evidence store: one SQLite file (better-sqlite3, WAL) per suspect model, holding every response a probe
 * received with the exact request that produced it, the model the endpoint reported, timestamps and the
 * SHA-256 of the response body, which is kept byte for byte. Each response is committed (synchronous = FULL)
 * before the next is counted, and (prompt id, sample) is unique, so a probe killed at any instant and run
 * again loses nothing and duplicates nothing.
 */
export const STORE_SCHEMA_VERSION = 1;

export type ProbeApi = 'chat' | 'completions';

export interface ResponseRecord {
  promptId: string;
  sample: number;
  /** The prompt text (for chat, the user message) and the optional system message. */
  prompt: string;
  system: string | null;
  api: ProbeApi;
  /** The base URL given to the probe, and the URL the request went to. */
  endpoint: string;
  requestUrl: string;
  /** The request body exactly as sent (JSON text; headers, which carry the API key, are not stored). */
  requestBody: string;
  requestedModel: string;
  /** `model` and `id` of the response, as the endpoint reported them. */
  reportedModel: string | null;
  responseId: string | null;
  httpStatus: number;
  /** The response body, byte for byte, and its SHA-256 (hex). */
  responseBody: Uint8Array;
  responseSha256: string;
  /** The completion text taken from the body, and why it ended. */
  output: string;
  finishReason: string | null;
  /** ISO 8601 times (UTC, milliseconds) at which the request was first sent and its answer received. */
  requestedAt: string;
  receivedAt: string;
  /** HTTP attempts it took (1 without retries). */
  attempts: number;
}

export interface StoredResponse extends ResponseRecord {
  /** Arrival order in the store: verification replays responses in this order. */
  seq: number;
  runId: number;
}

export interface RunRecord {
  id: number;
  startedAt: string;
  finishedAt: string | null;
  /** The probe's settings (never the API key). */
  settings: Record<string, unknown>;
  /** How it ended: completed, stopped by the sequential test, or failed (with the reason). */
  outcome: Record<string, unknown> | null;
}

interface ResponseRow {
  seq: number;
  run_id: number;
  prompt_id: string;
  sample: number;
  prompt: string;
  system: string | null;
  api: ProbeApi;
  endpoint: string;
  request_url: string;
  request_body: string;
  requested_model: string;
  reported_model: string | null;
  response_id: string | null;
  http_status: number;
  response_body: Buffer;
  response_sha256: string;
  output: string;
  finish_reason: string | null;
  requested_at: string;
  received_at: string;
  attempts: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS runs (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  started_at TEXT NOT NULL,
  finished_at TEXT,
  settings TEXT NOT NULL,
  outcome TEXT
);
CREATE TABLE IF NOT EXISTS responses (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  run_id INTEGER NOT NULL REFERENCES runs (id),
  prompt_id TEXT NOT NULL,
  sample INTEGER NOT NULL,
  prompt TEXT NOT NULL,
  system TEXT,
  api TEXT NOT NULL,
  endpoint TEXT NOT NULL,
  request_url TEXT NOT NULL,
  request_body TEXT NOT NULL,
  requested_model TEXT NOT NULL,
  reported_model TEXT,
  response_id TEXT,
  http_status INTEGER NOT NULL,
  response_body BLOB NOT NULL,
  response_sha256 TEXT NOT NULL,
  output TEXT NOT NULL,
  finish_reason TEXT,
  requested_at TEXT NOT NULL,
  received_at TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  UNIQUE (prompt_id, sample)
);
`;

/**
 * Reading mode (`tracemark read`): the owner's texts as token ids, and one row per (text, window) read from the
 * suspect: the window's token range, the source, the request as sent (endpoint) and the answer byte for byte with
 * its SHA-256 (for a local model, the predictions it gave as JSON). Added to schema 1 without a version bump:
 * a store created before them gets them when a read opens it, and readers treat their absence as no readings.
 */
const READING_SCHEMA = `
CREATE TABLE IF NOT EXISTS read_texts (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  text_id TEXT NOT NULL UNIQUE,
  name TEXT NOT NULL,
  tokens TEXT NOT NULL,
  token_count INTEGER NOT NULL,
  added_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS readings (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  run_id INTEGER NOT NULL REFERENCES runs (id),
  text_id TEXT NOT NULL REFERENCES read_texts (text_id),
  window INTEGER NOT NULL,
  start INTEGER NOT NULL,
  end INTEGER NOT NULL,
  keep_from INTEGER NOT NULL,
  source_kind TEXT NOT NULL,
  source TEXT NOT NULL,
  request_url TEXT,
  request_body TEXT NOT NULL,
  requested_model TEXT,
  reported_model TEXT,
  http_status INTEGER,
  response_body BLOB NOT NULL,
  response_sha256 TEXT NOT NULL,
  requested_at TEXT NOT NULL,
  received_at TEXT NOT NULL,
  attempts INTEGER NOT NULL,
  UNIQUE (text_id, window)
);
`;

/** Where a reading came from: an OpenAI-compatible endpoint (echo), a GGUF file, an ONNX model folder. */
export type ReadSourceKind = 'endpoint' | 'gguf' | 'onnx';

/** What a store holds: probe responses (closed mode) or readings (reading mode), never both. */
export type StoreMode = 'closed' | 'read';

/** An owner text as read: its id (SHA-256 of its token ids as a JSON array), a name, and the ids. */
export interface ReadTextRecord {
  textId: string;
  /** Where the text came from (file name, or file:line for JSON Lines). */
  name: string;
  tokens: number[];
}

export interface ReadingRecord {
  textId: string;
  window: number;
  /** The window's tokens [start, end) and the first position whose prediction it keeps. */
  start: number;
  end: number;
  keepFrom: number;
  sourceKind: ReadSourceKind;
  /** The endpoint URL (without credentials), the GGUF file or the ONNX folder. */
  source: string;
  /** The URL the request went to (endpoint only). */
  requestUrl: string | null;
  /** The request body exactly as sent (endpoint; headers, which carry the API key, are not stored), or the local read's settings. */
  requestBody: string;
  requestedModel: string | null;
  reportedModel: string | null;
  httpStatus: number | null;
  /** The response body (endpoint) or the predictions JSON (local model), byte for byte, and its SHA-256. */
  responseBody: Uint8Array;
  responseSha256: string;
  requestedAt: string;
  receivedAt: string;
  attempts: number;
}

export interface StoredReading extends ReadingRecord {
  seq: number;
  runId: number;
}

interface ReadingRow {
  seq: number;
  run_id: number;
  text_id: string;
  window: number;
  start: number;
  end: number;
  keep_from: number;
  source_kind: ReadSourceKind;
  source: string;
  request_url: string | null;
  request_body: string;
  requested_model: string | null;
  reported_model: string | null;
  http_status: number | null;
  response_body: Buffer;
  response_sha256: string;
  requested_at: string;
  received_at: string;
  attempts: number;
}

export { sha256Hex };

const now = () => new Date().toISOString();

export class EvidenceStore {
  readonly path: string;
  readonly #db: Database.Database;
  readonly #insert: Database.Statement;

  private constructor(path: string, db: Database.Database) {
    this.path = path;
    this.#db = db;
    this.#insert = db.prepare(`
      INSERT OR IGNORE INTO responses (
        run_id, prompt_id, sample, prompt, system, api, endpoint, request_url, request_body, requested_model,
        reported_model, response_id, http_status, response_body, response_sha256, output, finish_reason,
        requested_at, received_at, attempts
      ) VALUES (
        @runId, @promptId, @sample, @prompt, @system, @api, @endpoint, @requestUrl, @requestBody, @requestedModel,
        @reportedModel, @responseId, @httpStatus, @responseBody, @responseSha256, @output, @finishReason,
        @requestedAt, @receivedAt, @attempts
      )`);
  }

  /**
   * Opens (and with `create`, creates) a store. Errors are one line: a missing file when reading, a file that
   * is not a store, a store written by a newer schema.
   */
  static open(path: string, options: { create?: boolean } = {}): EvidenceStore {
    if (typeof path !== 'string' || path === '') fail('E_USAGE', 'the evidence store needs a file path');
    if (!options.create && !existsSync(path)) fail('E_INPUT', `no evidence store at ${path}`);
    if (options.create) createPrivate(path);
    let db: Database.Database;
    try {
      db = new Database(path, { fileMustExist: !options.create });
    } catch (error) {
      fail('E_INPUT', `cannot open evidence store ${path}: ${sqliteMessage(error)}`);
    }
    try {
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      db.pragma('busy_timeout = 10000');
      db.pragma('foreign_keys = ON');
      const hasMeta = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'").get();
      if (!hasMeta) {
        const tables = db.prepare("SELECT count(*) AS n FROM sqlite_master WHERE type = 'table'").get() as {
          n: number;
        };
        if (tables.n > 0) fail('E_INPUT', `${path} is an SQLite database but not a tracemark evidence store`);
        if (!options.create) fail('E_INPUT', `${path} is not a tracemark evidence store`);
        db.exec(SCHEMA);
        db.exec(READING_SCHEMA);
        db.prepare('INSERT INTO meta (key, value) VALUES (?, ?), (?, ?)').run(
          'schema_version',
          String(STORE_SCHEMA_VERSION),
          'created_at',
          now(),
        );
      }
      const version = Number(
        (
          db.prepare("SELECT value FROM meta WHERE key = 'schema_version'").get() as
            | { value: string }
            | undefined
        )?.value,
      );
      if (version !== STORE_SCHEMA_VERSION) {
        fail(
          'E_INPUT',
          `${path} has evidence store schema ${Number.isFinite(version) ? version : 'unknown'}; this tracemark reads schema ${STORE_SCHEMA_VERSION}`,
        );
      }
      // A writer brings a store made before reading mode up to date (the tables are additive).
      if (options.create) db.exec(READING_SCHEMA);
      return new EvidenceStore(path, db);
    } catch (error) {
      db.close();
      if (error instanceof Error && error.name === 'SqliteError') {
        fail('E_INPUT', `cannot open evidence store ${path}: ${sqliteMessage(error)}`);
      }
      throw error;
    }
  }

  getMeta(key: string): string | undefined {
    return (
      this.#db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as { value: string } | undefined
    )?.value;
  }

  setMeta(key: string, value: string): void {
    this.#db
      .prepare(
        'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
      )
      .run(key, value);
  }

  /** The model whose evidence this store holds: set by the first probe; a probe of another model is refused. */
  bindModel(model: string): void {
    this.bindMode('closed');
    const bound = this.getMeta('model');
    if (bound === undefined) this.setMeta('model', model);
    else if (bound !== model) {
      fail(
        'E_USAGE',
        `${this.path} holds evidence for model "${bound}", not "${model}": use another --store for another model`,
      );
    }
  }

  /**
   * Marks the store as being written by this process, so that a second probe on the same store is refused
   * instead of asking for the same responses twice. A lock left by a process that no longer runs (a probe
   * killed with SIGKILL) is taken over.
   */
  acquireProbeLock(): void {
    const take = this.#db.transaction(() => {
      const held = this.getMeta('probe_lock');
      if (held !== undefined) {
        const lock = JSON.parse(held) as { pid: number; host: string };
        if (lock.host === hostname() && lock.pid !== process.pid && processAlive(lock.pid)) {
          fail(
            'E_USAGE',
            `${this.path} is being written by another tracemark probe (pid ${lock.pid}); wait for it or stop it`,
          );
        }
      }
      this.setMeta('probe_lock', JSON.stringify({ pid: process.pid, host: hostname(), since: now() }));
    });
    take.immediate();
  }

  releaseProbeLock(): void {
    const held = this.getMeta('probe_lock');
    if (held !== undefined && (JSON.parse(held) as { pid: number }).pid === process.pid) {
      this.#db.prepare("DELETE FROM meta WHERE key = 'probe_lock'").run();
    }
  }

  /**
   * What the store holds, from its meta (`mode`), else from its rows: readings make it a reading store, probe
   * responses a closed one; undefined while it is empty.
   */
  get mode(): StoreMode | undefined {
    const mode = this.getMeta('mode');
    if (mode === 'closed' || mode === 'read') return mode;
    if (this.readingCount() > 0) return 'read';
    if (this.count() > 0) return 'closed';
    return undefined;
  }

  /**
   * Marks the store as holding probe responses or readings; a store already holding the other kind is refused
   * (one store, one kind of evidence: verify runs one test on it).
   */
  bindMode(mode: StoreMode): void {
    const held = this.mode;
    if (held !== undefined && held !== mode) {
      const what = (m: StoreMode) =>
        m === 'closed' ? 'probe responses (closed mode)' : 'readings (reading mode)';
      fail('E_USAGE', `${this.path} holds ${what(held)}, not ${what(mode)}: use another --store`);
    }
    if (this.getMeta('mode') !== mode) this.setMeta('mode', mode);
  }

  get model(): string | undefined {
    return this.getMeta('model');
  }

  startRun(settings: Record<string, unknown>): number {
    const info = this.#db
      .prepare('INSERT INTO runs (started_at, settings) VALUES (?, ?)')
      .run(now(), JSON.stringify(settings));
    return Number(info.lastInsertRowid);
  }

  finishRun(id: number, outcome: Record<string, unknown>): void {
    this.#db
      .prepare('UPDATE runs SET finished_at = ?, outcome = ? WHERE id = ?')
      .run(now(), JSON.stringify(outcome), id);
  }

  runs(): RunRecord[] {
    const rows = this.#db.prepare('SELECT * FROM runs ORDER BY id').all() as {
      id: number;
      started_at: string;
      finished_at: string | null;
      settings: string;
      outcome: string | null;
    }[];
    return rows.map((r) => ({
      id: r.id,
      startedAt: r.started_at,
      finishedAt: r.finished_at,
      settings: JSON.parse(r.settings),
      outcome: r.outcome === null ? null : JSON.parse(r.outcome),
    }));
  }

  /**
   * Stores one response in its own transaction; false when (prompt id, sample) was already stored (the
   * stored one is kept). The SHA-256 is checked against the body before anything is written.
   */
  insert(runId: number, record: ResponseRecord): boolean {
    if (sha256Hex(record.responseBody) !== record.responseSha256) {
      fail(
        'E_INPUT',
        `the SHA-256 of the response to ${record.promptId}#${record.sample} does not match its body`,
      );
    }
    const info = this.#insert.run({
      ...record,
      runId,
      responseBody: Buffer.from(
        record.responseBody.buffer,
        record.responseBody.byteOffset,
        record.responseBody.byteLength,
      ),
    });
    return info.changes === 1;
  }

  count(): number {
    return (this.#db.prepare('SELECT count(*) AS n FROM responses').get() as { n: number }).n;
  }

  /** "promptId\0sample" of every stored response. */
  storedKeys(): Set<string> {
    const rows = this.#db.prepare('SELECT prompt_id, sample FROM responses').raw().all() as [
      string,
      number,
    ][];
    return new Set(rows.map(([id, sample]) => responseKey(id, sample)));
  }

  /** The stored prompt text (and system message) of each prompt id, to catch a bank edited under one id. */
  storedPrompts(): Map<string, { prompt: string; system: string | null }> {
    const rows = this.#db
      .prepare('SELECT prompt_id, prompt, system FROM responses GROUP BY prompt_id')
      .all() as { prompt_id: string; prompt: string; system: string | null }[];
    return new Map(rows.map((r) => [r.prompt_id, { prompt: r.prompt, system: r.system }]));
  }

  /** Every stored response in arrival order. */
  *responses(): IterableIterator<StoredResponse> {
    const statement = this.#db.prepare('SELECT * FROM responses ORDER BY seq');
    for (const row of statement.iterate() as IterableIterator<ResponseRow>) yield fromRow(row);
  }

  #hasReadingTables(): boolean {
    return (
      this.#db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'readings'").get() !==
      undefined
    );
  }

  /**
   * Stores an owner text (once: its id is the SHA-256 of its ids, so the same text under another name is the
   * same text); false when it was already stored.
   */
  insertReadText(text: ReadTextRecord): boolean {
    if (readTextId(text.tokens) !== text.textId)
      fail('E_INPUT', `text ${text.name}: its id is not the SHA-256 of its token ids`);
    const info = this.#db
      .prepare(
        'INSERT OR IGNORE INTO read_texts (text_id, name, tokens, token_count, added_at) VALUES (?, ?, ?, ?, ?)',
      )
      .run(text.textId, text.name, JSON.stringify(text.tokens), text.tokens.length, now());
    return info.changes === 1;
  }

  /** Every stored owner text, in the order first stored; its ids are checked against its id. */
  readTexts(): ReadTextRecord[] {
    if (!this.#hasReadingTables()) return [];
    const rows = this.#db.prepare('SELECT text_id, name, tokens FROM read_texts ORDER BY seq').all() as {
      text_id: string;
      name: string;
      tokens: string;
    }[];
    return rows.map((row) => {
      const tokens = JSON.parse(row.tokens) as number[];
      if (readTextId(tokens) !== row.text_id)
        fail(
          'E_INPUT',
          `${this.path}: the token ids of text ${row.name} do not match its id; the store was altered`,
        );
      return { textId: row.text_id, name: row.name, tokens };
    });
  }

  /** Stores one window's reading in its own transaction; false when (text, window) was already stored. */
  insertReading(runId: number, record: ReadingRecord): boolean {
    if (sha256Hex(record.responseBody) !== record.responseSha256) {
      fail(
        'E_INPUT',
        `the SHA-256 of the reading of ${record.textId}#${record.window} does not match its body`,
      );
    }
    const info = this.#db
      .prepare(`
      INSERT OR IGNORE INTO readings (
        run_id, text_id, window, start, end, keep_from, source_kind, source, request_url, request_body,
        requested_model, reported_model, http_status, response_body, response_sha256, requested_at, received_at,
        attempts
      ) VALUES (
        @runId, @textId, @window, @start, @end, @keepFrom, @sourceKind, @source, @requestUrl, @requestBody,
        @requestedModel, @reportedModel, @httpStatus, @responseBody, @responseSha256, @requestedAt, @receivedAt,
        @attempts
      )`)
      .run({
        ...record,
        runId,
        responseBody: Buffer.from(
          record.responseBody.buffer,
          record.responseBody.byteOffset,
          record.responseBody.byteLength,
        ),
      });
    return info.changes === 1;
  }

  readingCount(): number {
    if (!this.#hasReadingTables()) return 0;
    return (this.#db.prepare('SELECT count(*) AS n FROM readings').get() as { n: number }).n;
  }

  /** "textId\0window" of every stored reading. */
  storedReadingKeys(): Set<string> {
    if (!this.#hasReadingTables()) return new Set();
    const rows = this.#db.prepare('SELECT text_id, window FROM readings').raw().all() as [string, number][];
    return new Set(rows.map(([id, window]) => readingKey(id, window)));
  }

  /** Every stored reading in arrival order. */
  *readings(): IterableIterator<StoredReading> {
    if (!this.#hasReadingTables()) return;
    const statement = this.#db.prepare('SELECT * FROM readings ORDER BY seq');
    for (const row of statement.iterate() as IterableIterator<ReadingRow>) yield fromReadingRow(row);
  }

  close(): void {
    if (this.#db.open) this.#db.close();
  }
}

/** The id of an owner text: the SHA-256 (hex) of its token ids written as a JSON array. */
export function readTextId(tokens: readonly number[]): string {
  return sha256Hex(new TextEncoder().encode(JSON.stringify(tokens)));
}

export function readingKey(textId: string, window: number): string {
  return `${textId}\0${window}`;
}

function fromReadingRow(row: ReadingRow): StoredReading {
  return {
    seq: row.seq,
    runId: row.run_id,
    textId: row.text_id,
    window: row.window,
    start: row.start,
    end: row.end,
    keepFrom: row.keep_from,
    sourceKind: row.source_kind,
    source: row.source,
    requestUrl: row.request_url,
    requestBody: row.request_body,
    requestedModel: row.requested_model,
    reportedModel: row.reported_model,
    httpStatus: row.http_status,
    responseBody: new Uint8Array(row.response_body),
    responseSha256: row.response_sha256,
    requestedAt: row.requested_at,
    receivedAt: row.received_at,
    attempts: row.attempts,
  };
}

export function responseKey(promptId: string, sample: number): string {
  return `${promptId}\0${sample}`;
}

function fromRow(row: ResponseRow): StoredResponse {
  return {
    seq: row.seq,
    runId: row.run_id,
    promptId: row.prompt_id,
    sample: row.sample,
    prompt: row.prompt,
    system: row.system,
    api: row.api,
    endpoint: row.endpoint,
    requestUrl: row.request_url,
    requestBody: row.request_body,
    requestedModel: row.requested_model,
    reportedModel: row.reported_model,
    responseId: row.response_id,
    httpStatus: row.http_status,
    responseBody: new Uint8Array(row.response_body),
    responseSha256: row.response_sha256,
    output: row.output,
    finishReason: row.finish_reason,
    requestedAt: row.requested_at,
    receivedAt: row.received_at,
    attempts: row.attempts,
  };
}

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/**
 * Creates a missing store file with mode 0600 before SQLite opens it: the store holds the requests and responses
 * of an investigation. SQLite gives its -wal and -shm files the mode of the database file.
 */
function createPrivate(path: string): void {
  try {
    closeSync(openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600));
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return;
    fail('E_INPUT', `cannot create evidence store ${path}: ${code ?? 'unknown error'}`);
  }
}

function sqliteMessage(error: unknown): string {
  return error instanceof Error ? error.message.split('\n')[0] : String(error);
}
