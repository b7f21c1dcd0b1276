import { existsSync, readFileSync } from 'node:fs';
import { fail } from './errors';

/** Reads a file as UTF-8, rejecting invalid UTF-8 rather than silently replacing it. */
export function readTextFile(path: string, what: string): string {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (error) {
    fail(
      'E_INPUT',
      `cannot read ${what} ${path}: ${(error as NodeJS.ErrnoException).code ?? 'unknown error'}`,
    );
  }
  return decodeUtf8(bytes, `${what} ${path}`);
}

export function decodeUtf8(bytes: Uint8Array, what: string): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    fail('E_INPUT', `${what} is not valid UTF-8`);
  }
}

export async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return decodeUtf8(Buffer.concat(chunks), 'standard input');
}

/** A value given inline as JSON, or as the path of a file holding it. */
export function jsonArgument(value: string, what: string): unknown {
  const trimmed = value.trim();
  const text = trimmed.startsWith('{') || trimmed.startsWith('[') ? trimmed : readJsonFile(value, what);
  try {
    return JSON.parse(text);
  } catch {
    fail('E_INPUT', `${what} is not valid JSON`);
  }
}

function readJsonFile(path: string, what: string): string {
  if (!existsSync(path)) fail('E_INPUT', `${what} is neither inline JSON nor an existing file: ${path}`);
  return readTextFile(path, what);
}
