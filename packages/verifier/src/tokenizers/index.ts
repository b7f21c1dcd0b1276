import { fail } from '../errors';

export { customTokenizer } from './custom';

export interface Encoding {
  /** Token ids. */
  ids: Uint32Array;
  /**
   * UTF-16 code-unit offsets into the original string: token i covers text.slice(starts[i], ends[i]). A code
   * point belongs to the token holding its first UTF-8 byte; a token holding only the rest of a code point
   * has the empty span at that code point's end. Spans are contiguous and cover the text.
   */
  starts: Uint32Array;
  ends: Uint32Array;
}

export interface Tokenizer {
  /** 'o200k_base', 'cl100k_base', 'hf:<path>' or 'custom:<name>'. */
  readonly id: string;
  /** Every id is below this. */
  readonly vocabSize: number;
  /** Fresh arrays on every call, the caller's to keep (detectText's per-token table holds them). */
  encode(text: string): Encoding;
  decode(ids: ArrayLike<number>): string;
  /** The ids of encode(text) without computing offsets, where the tokenizer offers it. */
  encodeIds?(text: string): Uint32Array;
}

const BUILT_IN = ['o200k_base', 'cl100k_base'] as const;
const loaded = new Map<string, Promise<Tokenizer>>();

function looksLikePath(spec: string): boolean {
  return /[/\\]/.test(spec) || /\.json$/i.test(spec) || spec.startsWith('.') || spec.startsWith('~');
}

/**
 * Loads a tokenizer: 'o200k_base' or 'cl100k_base' (bundled vocabularies, loaded on first use and shared), a
 * path to a Hugging Face tokenizer.json, or 'hf:<path>'. Fails with VerifierError E_UNKNOWN_TOKENIZER or
 * E_TOKENIZER_FILE.
 */
export async function loadTokenizer(spec: string): Promise<Tokenizer> {
  if (typeof spec !== 'string' || spec.trim().length === 0) {
    fail(
      'E_UNKNOWN_TOKENIZER',
      `no tokenizer given: expected ${BUILT_IN.join(', ')}, or a tokenizer.json path`,
    );
  }
  if (spec === 'o200k_base' || spec === 'cl100k_base') {
    let pending = loaded.get(spec);
    if (pending === undefined) {
      pending = import('./openai').then((m) => m.loadOpenAiTokenizer(spec));
      pending.catch(() => loaded.delete(spec));
      loaded.set(spec, pending);
    }
    return pending;
  }
  if (spec.startsWith('hf:') || looksLikePath(spec)) {
    const path = spec.startsWith('hf:') ? spec.slice(3) : spec;
    if (path.length === 0) fail('E_TOKENIZER_FILE', 'hf: needs a path to a tokenizer.json');
    const { loadHuggingFaceTokenizer } = await import('./huggingface');
    return loadHuggingFaceTokenizer(path);
  }
  fail(
    'E_UNKNOWN_TOKENIZER',
    `unknown tokenizer ${JSON.stringify(spec)}: expected ${BUILT_IN.join(', ')}, a path to a tokenizer.json, or hf:<path>`,
  );
}
