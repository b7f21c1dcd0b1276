import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  constants,
  existsSync,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  statfsSync,
  statSync,
  writeSync,
} from 'node:fs';
import { join } from 'node:path';
import { parseKeyText, readKeyFile, VerifierError, writeKeyFile } from '@tracemark/verifier';
import { MasterKey } from '@tracemark/watermark';
import { ConfigError } from './config';

export interface KeySource {
  key: MasterKey;
  /** Where it came from, for the log: 'TRACEMARK_KEY', the key file's path, or 'generated <path>'. */
  source: string;
  generated: boolean;
}

/** Warnings gathered while loading secrets, for the log (secretWarnings). */
const warnings: string[] = [];

/**
 * Free space the first start needs in the data directory: the model cache (about 15 MB for the demo profile) with
 * room to spare, so that a full disk is reported before minutes of training rather than after.
 */
export const FIRST_START_FREE_BYTES = 64 * 1024 * 1024;

/**
 * Creates the data directory (mode 0700: it holds the key and the API token) and checks at once that it can be
 * written: a file in its place, a read-only or a full file system each fail here with one line. A directory
 * others can read is reported among the warnings.
 */
export function ensureDataDir(dir: string): void {
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (error) {
    const code = codeOf(error);
    if (code === 'EEXIST' || code === 'ENOTDIR')
      throw new ConfigError(`data directory ${dir} is not a directory (set TRACEMARK_DATA_DIR)`);
    throw new ConfigError(`cannot create the data directory ${dir}: ${code}`);
  }
  const stat = statSync(dir);
  if (!stat.isDirectory())
    throw new ConfigError(`data directory ${dir} is not a directory (set TRACEMARK_DATA_DIR)`);
  if ((stat.mode & 0o077) !== 0) {
    warnings.push(
      `data directory ${dir} has mode ${modeOf(stat.mode)}: other users can see into it; chmod 700 ${dir}`,
    );
  }
  // Creating a file is the one test of writability that holds for root and read-only mounts alike.
  const probe = join(dir, `.write-test-${randomBytes(6).toString('hex')}`);
  try {
    const fd = openSync(probe, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
    try {
      writeSync(fd, Buffer.alloc(4096));
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch (error) {
    throw new ConfigError(`data directory ${dir} is not writable: ${codeOf(error)}`);
  } finally {
    rmSync(probe, { force: true });
  }
  // The models are cached under the data directory unless they are there already.
  if (!existsSync(join(dir, 'models'))) {
    const free = freeBytes(dir);
    if (free !== undefined && free < FIRST_START_FREE_BYTES) {
      throw new ConfigError(
        `data directory ${dir} has ${megabytes(free)} MB free; the first start needs ${megabytes(FIRST_START_FREE_BYTES)} MB for the model cache`,
      );
    }
  }
}

function freeBytes(dir: string): number | undefined {
  try {
    const stats = statfsSync(dir);
    return Number(stats.bavail) * Number(stats.bsize);
  } catch {
    // No statfs here: the write test above stands alone.
    return undefined;
  }
}

function megabytes(bytes: number): number {
  return Math.floor(bytes / (1024 * 1024));
}

function modeOf(mode: number): string {
  return (mode & 0o777).toString(8).padStart(4, '0');
}

function codeOf(error: unknown): string {
  return (error as NodeJS.ErrnoException).code ?? 'unknown error';
}

/**
 * The master key: TRACEMARK_KEY (hex or base64 text), else TRACEMARK_KEY_FILE, else `<dataDir>/master.key`,
 * generated there with mode 0600 on first start. Errors name the source, never the key.
 */
export function loadMasterKey(options: { keyText?: string; keyFile?: string; dataDir: string }): KeySource {
  try {
    if (options.keyText !== undefined) {
      return {
        key: parseKeyText(options.keyText, '$TRACEMARK_KEY'),
        source: 'TRACEMARK_KEY',
        generated: false,
      };
    }
    if (options.keyFile !== undefined) {
      warnIfReadableByOthers(options.keyFile);
      return {
        key: readKeyFile(options.keyFile, { allowReadableByOthers: true }),
        source: options.keyFile,
        generated: false,
      };
    }
    const path = join(options.dataDir, 'master.key');
    if (existsSync(path)) {
      warnIfReadableByOthers(path);
      return { key: readKeyFile(path, { allowReadableByOthers: true }), source: path, generated: false };
    }
    const key = MasterKey.generate();
    writeKeyFile(path, key);
    return { key, source: path, generated: true };
  } catch (error) {
    if (error instanceof VerifierError) throw new ConfigError(error.message);
    throw error;
  }
}

function warnIfReadableByOthers(path: string): void {
  try {
    const mode = statSync(path).mode;
    if ((mode & 0o077) !== 0)
      warnings.push(`${path} has mode ${modeOf(mode)}: readable by other users; chmod 600 it`);
  } catch {
    // readKeyFile reports a missing file
  }
}

/** Warnings gathered while loading secrets (e.g. a key file readable by others). */
export function secretWarnings(): string[] {
  return warnings.splice(0);
}

export interface TokenSource {
  token: string;
  /** The file it was read from or written to; undefined when it came from TRACEMARK_API_TOKEN. */
  file: string | undefined;
  generated: boolean;
}

/** The API bearer token: TRACEMARK_API_TOKEN, else `<dataDir>/api-token`, generated (mode 0600) if missing. */
export function loadApiToken(options: { apiToken?: string; dataDir: string }): TokenSource {
  if (options.apiToken !== undefined) return { token: options.apiToken, file: undefined, generated: false };
  const file = join(options.dataDir, 'api-token');
  if (existsSync(file)) {
    const token = readFileSync(file, 'utf8').trim();
    if (token.length < 16)
      throw new ConfigError(`${file} does not hold an API token (16 characters or more)`);
    warnIfReadableByOthers(file);
    return { token, file, generated: false };
  }
  const token = `tm_${randomBytes(32).toString('base64url')}`;
  writePrivateFile(file, `${token}\n`);
  return { token, file, generated: true };
}

/**
 * Writes a new 0600 file whole or not at all (a temporary file, synced, then linked into place, which fails if
 * the name exists): a full disk must not leave an empty token file that breaks every later start.
 */
function writePrivateFile(path: string, text: string): void {
  const temporary = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  try {
    const fd = openSync(temporary, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    chmodSync(temporary, 0o600);
    linkSync(temporary, path);
  } catch (error) {
    throw new ConfigError(`cannot create ${path}: ${codeOf(error)}`);
  } finally {
    rmSync(temporary, { force: true });
  }
}
