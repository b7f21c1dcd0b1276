import { chmodSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MasterKey } from '@tracemark/watermark';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { readKeyFile, writeKeyFile } from '../src/keyfile';

// A write that fails part-way (a full disk) is simulated by making the n-th fs call of a kind throw ENOSPC.
const failing = vi.hoisted(() => ({ call: undefined as undefined | 'writeSync' | 'fsyncSync' | 'linkSync' }));
vi.mock('node:fs', async (importOriginal) => {
  const fs = await importOriginal<typeof import('node:fs')>();
  const failWith =
    <A extends unknown[], R>(name: 'writeSync' | 'fsyncSync' | 'linkSync', real: (...args: A) => R) =>
    (...args: A): R => {
      if (failing.call === name) {
        throw Object.assign(new Error(`ENOSPC: no space left on device, ${name}`), { code: 'ENOSPC' });
      }
      return real(...args);
    };
  const writeSync = failWith('writeSync', fs.writeSync as (...args: unknown[]) => number);
  const fsyncSync = failWith('fsyncSync', fs.fsyncSync);
  const linkSync = failWith('linkSync', fs.linkSync);
  return { ...fs, default: { ...fs, writeSync, fsyncSync, linkSync }, writeSync, fsyncSync, linkSync };
});

afterEach(() => {
  failing.call = undefined;
});

const fresh = () => mkdtempSync(join(tmpdir(), 'tracemark-keyfile-'));

describe('writeKeyFile', () => {
  it('writes a 0600 key file that reads back, and never overwrites one', () => {
    const dir = fresh();
    const path = join(dir, 'master.key');
    const key = MasterKey.generate();
    writeKeyFile(path, key);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readKeyFile(path).exportHex()).toBe(key.exportHex());
    expect(() => writeKeyFile(path, MasterKey.generate())).toThrow(/already exists; refusing to overwrite/);
    expect(readKeyFile(path).exportHex()).toBe(key.exportHex());
    expect(readdirSync(dir)).toEqual(['master.key']);
  });

  it.each(['writeSync', 'fsyncSync', 'linkSync'] as const)(
    'leaves no key file and no temporary file when %s fails (a full disk)',
    (call) => {
      const dir = fresh();
      const path = join(dir, 'master.key');
      failing.call = call;
      expect(() => writeKeyFile(path, MasterKey.generate())).toThrow(
        new RegExp(`^cannot write ${path.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: ENOSPC$`),
      );
      expect(readdirSync(dir)).toEqual([]);
    },
  );

  it('fails in one line naming the file when the directory is missing', () => {
    const path = join(fresh(), 'missing', 'master.key');
    expect(() => writeKeyFile(path, MasterKey.generate())).toThrow(/^cannot create .*master\.key: ENOENT$/);
  });
});

describe('readKeyFile', () => {
  const privateFile = (name: string, text: string) => {
    const path = join(fresh(), name);
    writeFileSync(path, text, { mode: 0o600 });
    return path;
  };

  it('names the file of an empty key file, in one line', () => {
    const path = privateFile('empty.key', '');
    expect(() => readKeyFile(path)).toThrow(`key file ${path} is empty: it holds no master key`);
    const comments = privateFile('comments.key', '# tracemark master key\n');
    expect(() => readKeyFile(comments)).toThrow(/^key file .*comments\.key is empty/);
  });

  it('names the file of a truncated key file without printing what it holds', () => {
    const hex = MasterKey.generate().exportHex();
    const path = privateFile('short.key', `# fingerprint x\n${hex.slice(0, 40)}`);
    let message = '';
    try {
      readKeyFile(path);
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toBe(`key file ${path} is truncated (40 of 64 hex characters)`);
    expect(message).not.toContain(hex.slice(0, 8));
  });

  it('refuses a key file others can read, showing its mode, unless asked to allow it', () => {
    const key = MasterKey.generate();
    const path = privateFile('shared.key', `${key.exportHex()}\n`);
    for (const mode of [0o644, 0o640, 0o604]) {
      chmodSync(path, mode);
      expect(() => readKeyFile(path)).toThrow(
        `key file ${path} has mode 0${mode.toString(8)}: other users can read it; chmod 600 ${path} (or use a new key)`,
      );
    }
    expect(readKeyFile(path, { allowReadableByOthers: true }).exportHex()).toBe(key.exportHex());
    chmodSync(path, 0o400);
    expect(readKeyFile(path).exportHex()).toBe(key.exportHex());
    expect(readFileSync(path, 'utf8')).toContain(key.exportHex());
  });

  it('names a missing file and a directory', () => {
    const dir = fresh();
    expect(() => readKeyFile(join(dir, 'nope.key'))).toThrow(/^cannot read key file .*nope\.key: ENOENT$/);
    expect(() => readKeyFile(dir)).toThrow(`key file ${dir} is a directory`);
  });
});
