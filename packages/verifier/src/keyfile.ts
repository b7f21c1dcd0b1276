import { closeSync, constants, openSync, readFileSync, writeSync } from 'node:fs';
import { MasterKey, WatermarkError } from '@tracemark/watermark';
import { fail } from './errors';

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

/** Writes a new key file with mode 0600; refuses to overwrite an existing file. */
export function writeKeyFile(path: string, key: MasterKey): void {
  let fd: number;
  try {
    fd = openSync(path, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o600);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') fail('E_KEY_FILE', `${path} already exists; refusing to overwrite a key file`);
    fail('E_KEY_FILE', `cannot create ${path}: ${code ?? 'unknown error'}`);
  }
  try {
    writeSync(fd, formatKeyFile(key));
  } finally {
    closeSync(fd);
  }
}

export function parseKeyText(text: string, source: string): MasterKey {
  const body = text
    .split(/\r?\n/)
    .filter((line) => !line.trimStart().startsWith('#'))
    .join('')
    .trim();
  try {
    return MasterKey.parse(body);
  } catch (error) {
    if (error instanceof WatermarkError) {
      fail(
        'E_KEY_FILE',
        `${source} does not hold a master key (expected 64 hex characters or base64 of 32 bytes)`,
      );
    }
    throw error;
  }
}

export function readKeyFile(path: string): MasterKey {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    fail(
      'E_KEY_FILE',
      `cannot read key file ${path}: ${(error as NodeJS.ErrnoException).code ?? 'unknown error'}`,
    );
  }
  return parseKeyText(text, `key file ${path}`);
}
