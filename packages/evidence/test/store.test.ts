import { existsSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { EvidenceStore, type ResponseRecord, sha256Hex } from '../src/store';

const dir = mkdtempSync(join(tmpdir(), 'tracemark-store-'));

function record(promptId: string, sample: number, output = `text ${promptId} ${sample}`): ResponseRecord {
  const body = new TextEncoder().encode(
    JSON.stringify({
      id: `r-${promptId}-${sample}`,
      model: 'm-reported',
      choices: [{ message: { content: output } }],
    }),
  );
  return {
    promptId,
    sample,
    prompt: `prompt ${promptId}`,
    system: null,
    api: 'chat',
    endpoint: 'http://127.0.0.1:1/v1',
    requestUrl: 'http://127.0.0.1:1/v1/chat/completions',
    requestBody: JSON.stringify({ model: 'm', messages: [{ role: 'user', content: `prompt ${promptId}` }] }),
    requestedModel: 'm',
    reportedModel: 'm-reported',
    responseId: `r-${promptId}-${sample}`,
    httpStatus: 200,
    responseBody: body,
    responseSha256: sha256Hex(body),
    output,
    finishReason: 'stop',
    requestedAt: '2025-01-01T00:00:00.000Z',
    receivedAt: '2025-01-01T00:00:01.000Z',
    attempts: 1,
  };
}

describe('EvidenceStore', () => {
  it('keeps every response byte for byte, once per (prompt, sample), in arrival order', () => {
    const path = join(dir, 'a.db');
    const store = EvidenceStore.open(path, { create: true });
    store.bindModel('m');
    const run = store.startRun({ endpoint: 'x' });
    expect(store.insert(run, record('p1', 0))).toBe(true);
    expect(store.insert(run, record('p2', 0))).toBe(true);
    expect(store.insert(run, record('p1', 0, 'another text'))).toBe(false);
    store.finishRun(run, { state: 'complete' });
    store.close();

    const again = EvidenceStore.open(path);
    expect(again.count()).toBe(2);
    expect(again.model).toBe('m');
    expect([...again.storedKeys()].sort()).toEqual(['p1\u00000', 'p2\u00000']);
    const rows = [...again.responses()];
    expect(rows.map((r) => r.promptId)).toEqual(['p1', 'p2']);
    expect(rows[0].output).toBe('text p1 0');
    expect(sha256Hex(rows[0].responseBody)).toBe(rows[0].responseSha256);
    expect(rows[0]).toMatchObject({ reportedModel: 'm-reported', attempts: 1, runId: run, seq: 1 });
    expect(again.runs()).toMatchObject([
      { id: run, settings: { endpoint: 'x' }, outcome: { state: 'complete' } },
    ]);
    expect(again.getMeta('schema_version')).toBe('1');
    const journal = new Database(path, { readonly: true }).pragma('journal_mode', { simple: true });
    expect(journal).toBe('wal');
    again.close();
  });

  it('lets one probe write at a time, and takes over the lock of a process that is gone', () => {
    const path = join(dir, 'lock.db');
    const store = EvidenceStore.open(path, { create: true });
    store.setMeta('probe_lock', JSON.stringify({ pid: process.ppid, host: hostname(), since: 'x' }));
    expect(() => store.acquireProbeLock()).toThrow(/being written by another tracemark probe \(pid \d+\)/);
    store.setMeta('probe_lock', JSON.stringify({ pid: 2 ** 22 + 12345, host: hostname(), since: 'x' }));
    store.acquireProbeLock();
    expect(JSON.parse(store.getMeta('probe_lock') as string).pid).toBe(process.pid);
    store.releaseProbeLock();
    expect(store.getMeta('probe_lock')).toBeUndefined();
    store.close();
  });

  it('refuses another model, a body that does not match its hash, and files that are not stores', () => {
    const store = EvidenceStore.open(join(dir, 'b.db'), { create: true });
    store.bindModel('m');
    expect(() => store.bindModel('other')).toThrow(/holds evidence for model "m", not "other"/);
    const bad = { ...record('p', 0), responseSha256: '0'.repeat(64) };
    expect(() => store.insert(store.startRun({}), bad)).toThrow(/does not match its body/);
    store.close();

    expect(() => EvidenceStore.open(join(dir, 'missing.db'))).toThrow(/no evidence store at/);
    const text = join(dir, 'text.db');
    writeFileSync(text, 'not a database, just text that is long enough to have a header');
    expect(() => EvidenceStore.open(text)).toThrow(/cannot open evidence store .*not a database/);
    const other = join(dir, 'other.db');
    new Database(other).exec('CREATE TABLE t (x)');
    expect(() => EvidenceStore.open(other, { create: true })).toThrow(/not a tracemark evidence store/);
    const future = join(dir, 'future.db');
    EvidenceStore.open(future, { create: true }).setMeta('schema_version', '9');
    expect(() => EvidenceStore.open(future)).toThrow(/schema 9; this tracemark reads schema 1/);
  });

  it('creates the store and its WAL files with mode 0600, whatever the umask', () => {
    const path = join(dir, 'private.db');
    const previous = process.umask(0o022);
    try {
      const store = EvidenceStore.open(path, { create: true });
      store.bindModel('m');
      store.insert(store.startRun({ endpoint: 'x' }), record('p1', 0));
      for (const file of [path, `${path}-wal`, `${path}-shm`]) {
        if (existsSync(file)) expect(statSync(file).mode & 0o777, file).toBe(0o600);
      }
      store.close();
    } finally {
      process.umask(previous);
    }
    expect(statSync(path).mode & 0o777).toBe(0o600);
  });

  it('fails in one line when the store cannot be created', () => {
    expect(() => EvidenceStore.open(join(dir, 'missing', 'x.db'), { create: true })).toThrow(
      /^cannot create evidence store .*x\.db: ENOENT$/,
    );
  });
});
