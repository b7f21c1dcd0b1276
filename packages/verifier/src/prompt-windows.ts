import { KeySet64, windowKey } from '@tracemark/watermark';

/**
 * The context windows of a prompt. A continuation that quotes its prompt reproduces the prompt's (window,
 * token) pairs; if the prompt was watermarked that would pass for evidence, so tokens after such windows
 * are not scored. For h = 0 every context is the empty window, so the prompt's tokens are excluded instead.
 */
export function promptWindows(prompt: ArrayLike<number> | undefined, h: number): KeySet64 | null {
  if (prompt === undefined || prompt.length === 0) return null;
  const keys = new KeySet64(prompt.length);
  const key = new Uint32Array(2);
  for (let j = h; j <= prompt.length - (h === 0 ? 1 : 0); j++) {
    windowKey(prompt, j - h, h === 0 ? j + 1 : j, key);
    keys.add(key[0], key[1]);
  }
  return keys;
}

/** Whether the token at `i` follows one of the prompt's windows (`key` is scratch). */
export function followsPromptWindow(
  windows: KeySet64,
  sequence: ArrayLike<number>,
  i: number,
  h: number,
  key: Uint32Array,
): boolean {
  windowKey(sequence, i - h, h === 0 ? i + 1 : i, key);
  return windows.has(key[0], key[1]);
}
