import { randomUUID } from 'node:crypto';
import Database from 'better-sqlite3';

export type JobState = 'queued' | 'running' | 'succeeded' | 'failed';

export interface JobRecord<I = unknown, R = unknown> {
  id: string;
  kind: string;
  state: JobState;
  createdAt: number;
  updatedAt: number;
  input: I;
  result: R | null;
  error: { message: string; code: string | null } | null;
}

interface Row {
  id: string;
  kind: string;
  state: JobState;
  created_at: number;
  updated_at: number;
  input: string;
  result: string | null;
  error: string | null;
}

/**
 * Jobs in SQLite (better-sqlite3, WAL): the input is stored with the job, so a job that was queued or running
 * when the server stopped is run again on the next start, and a finished job's result outlives restarts.
 */
export class JobStore {
  readonly #db: Database.Database;
  readonly #insert: Database.Statement;
  readonly #get: Database.Statement;
  readonly #setState: Database.Statement;
  readonly #finish: Database.Statement;

  constructor(path: string) {
    this.#db = new Database(path);
    this.#db.pragma('journal_mode = WAL');
    this.#db.pragma('synchronous = NORMAL');
    this.#db.pragma('busy_timeout = 5000');
    this.#db.exec(`
      CREATE TABLE IF NOT EXISTS jobs (
        id TEXT PRIMARY KEY,
        kind TEXT NOT NULL,
        state TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        input TEXT NOT NULL,
        result TEXT,
        error TEXT
      );
      CREATE INDEX IF NOT EXISTS jobs_pending ON jobs (state, created_at);
    `);
    this.#insert = this.#db.prepare(
      'INSERT INTO jobs (id, kind, state, created_at, updated_at, input) VALUES (?, ?, ?, ?, ?, ?)',
    );
    this.#get = this.#db.prepare('SELECT * FROM jobs WHERE id = ?');
    this.#setState = this.#db.prepare('UPDATE jobs SET state = ?, updated_at = ? WHERE id = ?');
    this.#finish = this.#db.prepare(
      'UPDATE jobs SET state = ?, updated_at = ?, result = ?, error = ? WHERE id = ?',
    );
  }

  create<I>(kind: string, input: I): JobRecord<I> {
    const now = Date.now();
    const id = `job_${randomUUID().replace(/-/g, '')}`;
    this.#insert.run(id, kind, 'queued', now, now, JSON.stringify(input));
    return { id, kind, state: 'queued', createdAt: now, updatedAt: now, input, result: null, error: null };
  }

  get<I = unknown, R = unknown>(id: string): JobRecord<I, R> | null {
    const row = this.#get.get(id) as Row | undefined;
    if (row === undefined) return null;
    return {
      id: row.id,
      kind: row.kind,
      state: row.state,
      createdAt: row.created_at,
      updatedAt: row.updated_at,
      input: JSON.parse(row.input) as I,
      result: row.result === null ? null : (JSON.parse(row.result) as R),
      error: row.error === null ? null : JSON.parse(row.error),
    };
  }

  markRunning(id: string): void {
    this.#setState.run('running', Date.now(), id);
  }

  succeed(id: string, result: unknown): void {
    this.#finish.run('succeeded', Date.now(), JSON.stringify(result), null, id);
  }

  fail(id: string, message: string, code: string | null): void {
    this.#finish.run('failed', Date.now(), null, JSON.stringify({ message, code }), id);
  }

  /** Ids of jobs left queued or running (by a stopped server), oldest first; they are queued again. */
  pending(): string[] {
    this.#db.prepare("UPDATE jobs SET state = 'queued' WHERE state = 'running'").run();
    const rows = this.#db
      .prepare("SELECT id FROM jobs WHERE state = 'queued' ORDER BY created_at, id")
      .all() as { id: string }[];
    return rows.map((r) => r.id);
  }

  close(): void {
    if (this.#db.open) this.#db.close();
  }
}

export type JobHandler = (input: unknown) => unknown;

/**
 * Runs queued jobs one at a time, each on its own turn of the event loop. A handler's thrown error fails the
 * job with its message when it is a client-facing error, else with a generic one.
 */
export class JobRunner {
  readonly #store: JobStore;
  readonly #handlers: Record<string, JobHandler>;
  readonly #queue: string[] = [];
  #running = false;
  #stopped = false;
  #idle: (() => void)[] = [];
  readonly #describe: (error: unknown) => { message: string; code: string | null };

  constructor(
    store: JobStore,
    handlers: Record<string, JobHandler>,
    describe: (error: unknown) => { message: string; code: string | null },
  ) {
    this.#store = store;
    this.#handlers = handlers;
    this.#describe = describe;
  }

  /** Queues the jobs a previous run left unfinished. */
  resume(): number {
    const ids = this.#store.pending();
    for (const id of ids) this.enqueue(id);
    return ids.length;
  }

  enqueue(id: string): void {
    if (this.#stopped) return;
    this.#queue.push(id);
    if (!this.#running) {
      this.#running = true;
      setImmediate(() => this.#drain());
    }
  }

  /** Resolves when the queue is empty (used by tests and shutdown). */
  idle(): Promise<void> {
    if (!this.#running) return Promise.resolve();
    return new Promise((resolve) => this.#idle.push(resolve));
  }

  /** Stops taking jobs; the one running finishes. Unstarted jobs stay queued in the database. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#queue.length = 0;
    await this.idle();
  }

  async #drain(): Promise<void> {
    while (this.#queue.length > 0 && !this.#stopped) {
      const id = this.#queue.shift()!;
      const job = this.#store.get(id);
      if (job === null || job.state !== 'queued') continue;
      const handler = this.#handlers[job.kind];
      this.#store.markRunning(id);
      try {
        if (handler === undefined) throw new Error(`no handler for jobs of kind ${job.kind}`);
        const result = await handler(job.input);
        this.#store.succeed(id, result);
      } catch (error) {
        const { message, code } = this.#describe(error);
        this.#store.fail(id, message, code);
      }
      await new Promise((resolve) => setImmediate(resolve));
    }
    this.#running = false;
    for (const resolve of this.#idle.splice(0)) resolve();
  }
}
