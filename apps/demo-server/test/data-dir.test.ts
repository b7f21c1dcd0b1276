import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, afterEach, describe, expect, it, vi } from 'vitest';
import { ConfigError } from '../src/config';
import {
  ensureDataDir,
  FIRST_START_FREE_BYTES,
  loadApiToken,
  loadMasterKey,
  secretWarnings,
} from '../src/secrets';

// Failures of the file system (a read-only mount, a full disk) are injected: as root, chmod cannot make them.
const inject = vi.hoisted(() => ({
  openSync: undefined as string | undefined,
  writeSync: undefined as string | undefined,
  freeBytes: undefined as number | undefined,
}));
vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  const errno = (code: string) => Object.assign(new Error(`${code}: injected`), { code });
  const openSync = ((...args: Parameters<typeof fs.openSync>) => {
    if (inject.openSync !== undefined && String(args[1]) !== String(fs.constants.O_RDONLY))
      throw errno(inject.openSync);
    return fs.openSync(...args);
  }) as typeof fs.openSync;
  const writeSync = ((...args: unknown[]) => {
    if (inject.writeSync !== undefined) throw errno(inject.writeSync);
    return (fs.writeSync as (...a: unknown[]) => number)(...args);
  }) as typeof fs.writeSync;
  const statfsSync = ((...args: Parameters<typeof fs.statfsSync>) => {
    const stats = fs.statfsSync(...args);
    if (inject.freeBytes === undefined) return stats;
    return { ...stats, bsize: 4096, bavail: Math.floor(inject.freeBytes / 4096) };
  }) as typeof fs.statfsSync;
  const replaced = { openSync, writeSync, statfsSync };
  return { ...fs, ...replaced, default: { ...fs, ...replaced } };
});

const dirs: string[] = [];
const tempDir = () => {
  const dir = mkdtempSync(join(tmpdir(), 'tracemark-datadir-'));
  dirs.push(dir);
  return dir;
};

afterEach(() => {
  inject.openSync = undefined;
  inject.writeSync = undefined;
  inject.freeBytes = undefined;
  secretWarnings();
});
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe('the data directory', () => {
  it('is created with mode 0700, and checked without leaving anything behind', () => {
    const dir = join(tempDir(), 'a', 'data');
    const previous = process.umask(0o022);
    try {
      ensureDataDir(dir);
    } finally {
      process.umask(previous);
    }
    expect(statSync(dir).mode & 0o777).toBe(0o700);
    expect(readdirSync(dir)).toEqual([]);
    expect(secretWarnings()).toEqual([]);
  });

  it('reports a directory others can read, with its mode', () => {
    const dir = tempDir();
    chmodSync(dir, 0o755);
    ensureDataDir(dir);
    expect(secretWarnings()).toEqual([
      `data directory ${dir} has mode 0755: other users can see into it; chmod 700 ${dir}`,
    ]);
  });

  it('fails in one line when it is a file, or lies under one', () => {
    const file = join(tempDir(), 'file');
    writeFileSync(file, 'x');
    for (const dir of [file, join(file, 'below')]) {
      expect(() => ensureDataDir(dir)).toThrow(ConfigError);
      expect(() => ensureDataDir(dir)).toThrow(
        /^data directory .* is not a directory \(set TRACEMARK_DATA_DIR\)$/,
      );
    }
  });

  it.each(['EROFS', 'EACCES', 'ENOSPC'])(
    'fails in one line when a file cannot be created in it (%s)',
    (code) => {
      const dir = tempDir();
      inject.openSync = code;
      expect(() => ensureDataDir(dir)).toThrow(`data directory ${dir} is not writable: ${code}`);
      inject.openSync = undefined;
      expect(readdirSync(dir)).toEqual([]);
    },
  );

  it('fails in one line when a write fails (a full disk), leaving nothing behind', () => {
    const dir = tempDir();
    inject.writeSync = 'ENOSPC';
    expect(() => ensureDataDir(dir)).toThrow(`data directory ${dir} is not writable: ENOSPC`);
    inject.writeSync = undefined;
    expect(readdirSync(dir)).toEqual([]);
  });

  it('refuses a first start without room for the model cache, but not a later one', () => {
    const dir = tempDir();
    inject.freeBytes = 5 * 1024 * 1024;
    expect(() => ensureDataDir(dir)).toThrow(
      `data directory ${dir} has 5 MB free; the first start needs ${FIRST_START_FREE_BYTES / 1024 / 1024} MB for the model cache`,
    );
    mkdirSync(join(dir, 'models'));
    expect(() => ensureDataDir(dir)).not.toThrow();
  });
});

describe('the master key in the data directory', () => {
  it('is written whole or not at all: a failed write leaves no master.key for the next start', () => {
    const dir = tempDir();
    inject.writeSync = 'ENOSPC';
    expect(() => loadMasterKey({ dataDir: dir })).toThrow(`cannot write ${join(dir, 'master.key')}: ENOSPC`);
    inject.writeSync = undefined;
    expect(readdirSync(dir)).toEqual([]);
    expect(loadMasterKey({ dataDir: dir }).generated).toBe(true);
  });

  it('names an empty or a truncated master.key in one line', () => {
    const dir = tempDir();
    const path = join(dir, 'master.key');
    writeFileSync(path, '', { mode: 0o600 });
    expect(() => loadMasterKey({ dataDir: dir })).toThrow(
      new ConfigError(`key file ${path} is empty: it holds no master key`),
    );
    writeFileSync(path, 'abcdef0123', { mode: 0o600 });
    expect(() => loadMasterKey({ dataDir: dir })).toThrow(
      `key file ${path} is truncated (10 of 64 hex characters)`,
    );
  });

  it('reports a key file others can read, with its mode', () => {
    const dir = tempDir();
    loadMasterKey({ dataDir: dir });
    const path = join(dir, 'master.key');
    chmodSync(path, 0o644);
    expect(loadMasterKey({ dataDir: dir }).generated).toBe(false);
    expect(secretWarnings()).toEqual([`${path} has mode 0644: readable by other users; chmod 600 it`]);
  });
});

describe('pnpm start with a bad data directory', () => {
  const main = fileURLToPath(new URL('../dist/main.js', import.meta.url));

  it('fails at once, in one line, before any model is built', () => {
    const file = join(tempDir(), 'not-a-dir');
    writeFileSync(file, '');
    const started = performance.now();
    const run = spawnSync(process.execPath, [main], {
      encoding: 'utf8',
      env: {
        ...process.env,
        TRACEMARK_DATA_DIR: file,
        TRACEMARK_PROFILE: 'test',
        PORT: '0',
        TRACEMARK_KEY: '',
      },
      timeout: 60_000,
    });
    expect(run.status).toBe(2);
    expect(run.stderr.trim().split('\n')).toEqual([
      `[tracemark] configuration error: data directory ${file} is not a directory (set TRACEMARK_DATA_DIR)`,
    ]);
    expect(run.stdout).not.toMatch(/training|building/);
    expect(performance.now() - started).toBeLessThan(30_000);
  });
});

describe('the API token in the data directory', () => {
  it('is written whole or not at all, with mode 0600', () => {
    const dir = tempDir();
    inject.writeSync = 'ENOSPC';
    expect(() => loadApiToken({ dataDir: dir })).toThrow(`cannot create ${join(dir, 'api-token')}: ENOSPC`);
    inject.writeSync = undefined;
    expect(readdirSync(dir)).toEqual([]);
    const made = loadApiToken({ dataDir: dir });
    expect(made.generated).toBe(true);
    expect(readdirSync(dir)).toEqual(['api-token']);
    expect(statSync(join(dir, 'api-token')).mode & 0o777).toBe(0o600);
    expect(loadApiToken({ dataDir: dir }).token).toBe(made.token);
  });
});
