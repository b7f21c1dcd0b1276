import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { readTextFile } from '@tracemark/verifier';
import { fail } from './errors';

/**
 * A prompt bank is JSON Lines: one object per line with
 *   "prompt" (required): the text sent as the user message (chat) or as the prompt (completions);
 *   "id" (optional): a stable name, unique in the bank; without it the id is "p-" and 16 hex digits of the
 *     SHA-256 of the system message and prompt, so that editing or reordering the bank never renames a prompt;
 *   "system" (optional): a system message (chat only).
 * Other fields (topic, source, …) are kept out of the request and ignored. Blank lines are skipped.
 */
export interface ProbePrompt {
  id: string;
  prompt: string;
  system: string | null;
  /** 1-based line of the bank file. */
  line: number;
}

const MAX_ID_LENGTH = 200;

export function promptId(prompt: string, system: string | null): string {
  return `p-${createHash('sha256')
    .update(`${system ?? ''}\0${prompt}`)
    .digest('hex')
    .slice(0, 16)}`;
}

export function parsePromptBank(text: string, source: string): ProbePrompt[] {
  const prompts: ProbePrompt[] = [];
  const seen = new Map<string, number>();
  const lines = text.split('\n');
  for (let index = 0; index < lines.length; index++) {
    const raw = lines[index].replace(/\r$/, '');
    const line = index + 1;
    if (raw.trim() === '') continue;
    let value: unknown;
    try {
      value = JSON.parse(raw);
    } catch {
      fail('E_INPUT', `${source} line ${line}: not valid JSON`);
    }
    if (value === null || typeof value !== 'object' || Array.isArray(value)) {
      fail('E_INPUT', `${source} line ${line}: expected an object like {"prompt": "…"}`);
    }
    const record = value as Record<string, unknown>;
    if (typeof record.prompt !== 'string' || record.prompt.trim() === '') {
      fail('E_INPUT', `${source} line ${line}: "prompt" must be a non-empty string`);
    }
    if (record.system !== undefined && record.system !== null && typeof record.system !== 'string') {
      fail('E_INPUT', `${source} line ${line}: "system" must be a string`);
    }
    const system = typeof record.system === 'string' && record.system !== '' ? record.system : null;
    if (
      record.id !== undefined &&
      (typeof record.id !== 'string' || record.id === '' || record.id.length > MAX_ID_LENGTH)
    ) {
      fail(
        'E_INPUT',
        `${source} line ${line}: "id" must be a non-empty string of at most ${MAX_ID_LENGTH} characters`,
      );
    }
    const id = typeof record.id === 'string' ? record.id : promptId(record.prompt, system);
    const first = seen.get(id);
    if (first !== undefined) {
      fail(
        'E_INPUT',
        record.id === undefined
          ? `${source} line ${line}: the same prompt as line ${first}`
          : `${source} line ${line}: id "${id}" is already used on line ${first}`,
      );
    }
    seen.set(id, line);
    prompts.push({ id, prompt: record.prompt, system, line });
  }
  if (prompts.length === 0) fail('E_INPUT', `${source} holds no prompts`);
  return prompts;
}

export function readPromptBank(path: string): ProbePrompt[] {
  return parsePromptBank(readTextFile(path, 'prompt bank'), path);
}

/**
 * The bank of neutral prompts that ships with the package (prompts/neutral.jsonl): open-ended requests for
 * prose on everyday subjects, with nothing that a provider's watermarked text would quote.
 */
export function defaultPromptBankPath(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 4; i++) {
    const candidate = join(dir, 'prompts', 'neutral.jsonl');
    if (existsSync(candidate)) return candidate;
    dir = dirname(dir);
  }
  return fail('E_INPUT', 'the default prompt bank (prompts/neutral.jsonl) is missing from this installation');
}
