import type { Scheme } from '@tracemark/watermark';
import { type DetectionResult, type DetectOptions, detectOwned } from './detect';
import { fail } from './errors';
import type { Tokenizer } from './tokenizers/index';

export interface DetectTextOptions extends Omit<DetectOptions, 'offsets' | 'prompt'> {
  tokenizer: Tokenizer;
  /** The prompt as text (tokenized with the same tokenizer) or as token ids. */
  prompt?: string | ArrayLike<number>;
}

/** Fails unless `count` tokens give the scheme at least one token with a full context. */
export function assertScorable(count: number, scheme: Scheme, what = 'text'): void {
  if (count <= scheme.contextWidth) {
    fail(
      'E_TOO_SHORT',
      `the ${what} has ${count} token${count === 1 ? '' : 's'}; ${scheme.spec.scheme} with context width ${scheme.contextWidth} needs at least ${scheme.contextWidth + 1}`,
    );
  }
}

function assertVocabulary(tokenizer: Tokenizer, scheme: Scheme): void {
  if (tokenizer.vocabSize > scheme.vocabSize) {
    fail(
      'E_INVALID_OPTIONS',
      `tokenizer ${tokenizer.id} has ${tokenizer.vocabSize} tokens but the spec's vocabSize is ${scheme.vocabSize}`,
    );
  }
}

/**
 * Tokenizes `text` and detects the watermark; per-token entries and windows carry UTF-16 offsets into
 * `text`, so a caller can highlight exactly the characters of each token.
 */
export function detectText(text: string, options: DetectTextOptions & { scheme: Scheme }): DetectionResult;
export function detectText(
  text: string,
  options: DetectTextOptions & { schemes: Scheme[] },
): DetectionResult[];
export function detectText(
  text: string,
  options: DetectTextOptions & { scheme?: Scheme; schemes?: Scheme[] },
): DetectionResult | DetectionResult[] {
  if (typeof text !== 'string' || text.trim().length === 0) fail('E_EMPTY_TEXT', 'the text is empty');
  const { tokenizer } = options;
  const schemes = options.schemes ?? (options.scheme ? [options.scheme] : []);
  if (schemes.length === 0) fail('E_INVALID_OPTIONS', 'detectText needs a scheme (or schemes)');
  for (const scheme of schemes) assertVocabulary(tokenizer, scheme);
  const encoding = tokenizer.encode(text);
  for (const scheme of schemes) assertScorable(encoding.ids.length, scheme);
  const prompt =
    typeof options.prompt === 'string'
      ? (tokenizer.encodeIds?.(options.prompt) ?? tokenizer.encode(options.prompt).ids)
      : options.prompt;
  const shared = { ...options, prompt, offsets: { starts: encoding.starts, ends: encoding.ends } };
  // The encoding is this call's own: the per-token table keeps its arrays without copying them.
  if (options.schemes !== undefined)
    return detectOwned(encoding.ids, { ...shared, schemes: options.schemes }, true);
  return detectOwned(encoding.ids, { ...shared, scheme: schemes[0] }, true) as DetectionResult;
}
