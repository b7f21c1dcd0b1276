import { randomBytes } from 'node:crypto';
import {
  chmodSync,
  closeSync,
  constants,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
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

/** Creates the data directory (mode 0700: it holds the key and the API token). */
export function ensureDataDir(dir: string): void {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
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
      return { key: readKeyFile(options.keyFile), source: options.keyFile, generated: false };
    }
    const path = join(options.dataDir, 'master.key');
    if (existsSync(path)) {
      warnIfReadableByOthers(path);
      return { key: readKeyFile(path), source: path, generated: false };
    }
    const key = MasterKey.generate();
    writeKeyFile(path, key);
    return { key, source: path, generated: true };
  } catch (error) {
    if (error instanceof VerifierError) throw new ConfigError(error.message);
    throw error;
  }
}

const warnings: string[] = [];

function warnIfReadableByOthers(path: string): void {
  try {
    if ((statSync(path).mode & 0o077) !== 0)
      warnings.push(`${path} is readable by other users; chmod 600 it`);
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
  let fd: number;
  try {
    fd = openSync(file, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  } catch (error) {
    throw new ConfigError(
      `cannot create ${file}: ${(error as NodeJS.ErrnoException).code ?? 'unknown error'}`,
    );
  }
  try {
    writeSync(fd, `${token}\n`);
  } finally {
    closeSync(fd);
  }
  chmodSync(file, 0o600);
  return { token, file, generated: true };
}
