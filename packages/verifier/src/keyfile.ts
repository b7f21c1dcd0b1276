import { randomBytes } from 'node:crypto';
import {
  closeSync,
  constants,
  fstatSync,
  fsyncSync,
  linkSync,
  openSync,
  readFileSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { MasterKey, WatermarkError } from '@tracemark/watermark';
import { fail, VerifierError } from './errors';

/**
 * A key file holds the master key as 64 hex characters on its own line; lines starting with '#' are
 * comments (the fingerprint is written there, so a person can tell key files apart without opening the key).
 */
export function formatKeyFile(key: MasterKey): string {
  return [
    '# tracemark master key: keep this file secret (mode 0600).',
    `# fingerprint ${key.fingerprint}`,
    key.exportHex(),
    '',
  ].join('\n');
}

function codeOf(error: unknown): string {
  return (error as NodeJS.ErrnoException).code ?? 'unknown error';
}

/**
 * Writes a new key file with mode 0600; refuses to overwrite an existing file. The key is written to a temporary
 * file in the same directory, synced, then linked into place, so that a failed write (a full disk) leaves no
 * empty or partial key file behind for the next start to trip over.
 */
export function writeKeyFile(path: string, key: MasterKey): void {
  const temporary = join(dirname(path), `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  let fd: number;
  try {
    fd = openSync(temporary, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  } catch (error) {
    fail('E_KEY_FILE', `cannot create ${path}: ${codeOf(error)}`);
  }
  try {
    try {
      const bytes = Buffer.from(formatKeyFile(key));
      let written = 0;
      while (written < bytes.length) written += writeSync(fd, bytes, written);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    publish(temporary, path);
  } catch (error) {
    removeQuietly(temporary);
    if (error instanceof VerifierError) throw error;
    fail('E_KEY_FILE', `cannot write ${path}: ${codeOf(error)}`);
  }
  removeQuietly(temporary);
  syncDirectory(dirname(path));
}

/** Moves the written file into place without replacing an existing one (a link fails if the name exists). */
function publish(temporary: string, path: string): void {
  try {
    linkSync(temporary, path);
  } catch (error) {
    const code = codeOf(error);
    if (code === 'EEXIST') fail('E_KEY_FILE', `${path} already exists; refusing to overwrite a key file`);
    // File systems without hard links: a rename, after checking the name is free.
    if (code !== 'EPERM' && code !== 'ENOTSUP' && code !== 'EOPNOTSUPP' && code !== 'ENOSYS') throw error;
    let exists = true;
    try {
      closeSync(openSync(path, constants.O_RDONLY));
    } catch {
      exists = false;
    }
    if (exists) fail('E_KEY_FILE', `${path} already exists; refusing to overwrite a key file`);
    renameSync(temporary, path);
  }
}

function removeQuietly(path: string): void {
  try {
    unlinkSync(path);
  } catch {
    // already renamed, or never created
  }
}

/** Makes the new name durable; some platforms cannot open a directory for syncing, which is not an error. */
function syncDirectory(dir: string): void {
  try {
    const fd = openSync(dir, constants.O_RDONLY);
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // best effort
  }
}

export function parseKeyText(text: string, source: string): MasterKey {
  const body = text
    .split(/\r?\n/)
    .filter((line) => !line.trimStart().startsWith('#'))
    .join('')
    .trim();
  if (body === '') fail('E_KEY_FILE', `${source} is empty: it holds no master key`);
  try {
    return MasterKey.parse(body);
  } catch (error) {
    if (error instanceof WatermarkError) {
      // A prefix of a hex key is a write that stopped short, not a different format.
      const truncated = /^[0-9a-fA-F]+$/.test(body) && body.length < 64;
      fail(
        'E_KEY_FILE',
        truncated
          ? `${source} is truncated (${body.length} of 64 hex characters)`
          : `${source} does not hold a master key (expected 64 hex characters or base64 of 32 bytes)`,
      );
    }
    throw error;
  }
}

export interface ReadKeyFileOptions {
  /**
   * Read a key file that other users can read (the demo server warns about it instead). By default such a file
   * is refused, as ssh refuses a private key others can read: the key is already exposed and should be replaced.
   */
  allowReadableByOthers?: boolean;
}

export function readKeyFile(path: string, options: ReadKeyFileOptions = {}): MasterKey {
  let text: string;
  try {
    const fd = openSync(path, constants.O_RDONLY);
    try {
      const stat = fstatSync(fd);
      if (stat.isDirectory()) fail('E_KEY_FILE', `key file ${path} is a directory`);
      if (!options.allowReadableByOthers && process.platform !== 'win32' && (stat.mode & 0o077) !== 0) {
        const mode = (stat.mode & 0o777).toString(8).padStart(4, '0');
        fail(
          'E_KEY_FILE',
          `key file ${path} has mode ${mode}: other users can read it; chmod 600 ${path} (or use a new key)`,
        );
      }
      text = readFileSync(fd, 'utf8');
    } finally {
      closeSync(fd);
    }
  } catch (error) {
    if (error instanceof VerifierError) throw error;
    fail('E_KEY_FILE', `cannot read key file ${path}: ${codeOf(error)}`);
  }
  return parseKeyText(text, `key file ${path}`);
}
