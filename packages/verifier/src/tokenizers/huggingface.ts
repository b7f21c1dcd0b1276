import { access, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { Tokenizer as HfTokenizer } from '@huggingface/tokenizers';
import { fail } from '../errors';
import type { Encoding, Tokenizer } from './index';
import {
  ASCII_FLAG,
  isAscii,
  packLength,
  spansByDecoding,
  spansFromByteLengths,
  utf8Length,
} from './offsets';

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

function message(err: unknown): string {
  return (err instanceof Error ? err.message : String(err)).split('\n')[0];
}

async function readJson(path: string, what: string): Promise<unknown> {
  let raw: string;
  try {
    raw = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'is a directory' : message(err);
    fail('E_TOKENIZER_FILE', `cannot read ${what} ${path}: ${why}`);
  }
  try {
    return JSON.parse(raw);
  } catch (err) {
    fail('E_TOKENIZER_FILE', `${what} ${path} is not valid JSON: ${message(err)}`);
  }
}

/** tokenizer_config.json beside the file, when there is one (some models need its flags to encode right). */
async function readConfig(path: string): Promise<Json> {
  const configPath = join(dirname(path), 'tokenizer_config.json');
  try {
    await access(configPath);
  } catch {
    return {};
  }
  const config = await readJson(configPath, 'tokenizer config');
  if (!isObject(config)) fail('E_TOKENIZER_FILE', `tokenizer config ${configPath} is not a JSON object`);
  return config;
}

/** The decoder types in order, Sequences flattened. */
function decoderChain(decoder: unknown, out: Json[] = []): Json[] {
  if (!isObject(decoder)) return out;
  if (decoder.type === 'Sequence' && Array.isArray(decoder.decoders)) {
    for (const d of decoder.decoders) decoderChain(d, out);
  } else out.push(decoder);
  return out;
}

// GPT-2's byte-to-unicode table, inverted: the byte each stand-in character means, or -1.
const CHAR_BYTE = (() => {
  const table = new Int16Array(0x144).fill(-1);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    table[printable ? b : 256 + extra++] = b;
  }
  return table;
})();

const BYTE_FALLBACK = /^<0x[0-9A-Fa-f]{2}>$/;

interface Layout {
  /** Each id's UTF-8 length in the decoded text (see packLength). */
  byteLengths: Uint16Array;
  /** Whether the id's bytes start with a space the decoder strips at the start of a text. */
  leadingSpace: (id: number) => boolean;
}

/** Length entry for a byte-level token (its characters stand for bytes), or null if it is not one. */
function byteLevelLength(tok: string): number | null {
  let ascii = true;
  for (let i = 0; i < tok.length; i++) {
    const c = tok.charCodeAt(i);
    const byte = c < CHAR_BYTE.length ? CHAR_BYTE[c] : -1;
    if (byte < 0) return null;
    if (byte >= 0x80) ascii = false;
  }
  return packLength(tok.length, ascii);
}

const textLength = (s: string) => packLength(utf8Length(s), isAscii(s));

/** Whether the normalizer at most adds a prefix or swaps spaces for a marker (the SentencePiece scheme). */
function keepsCharacters(normalizer: unknown): boolean {
  if (normalizer === null || normalizer === undefined) return true;
  if (!isObject(normalizer)) return false;
  switch (normalizer.type) {
    case 'Sequence':
      return Array.isArray(normalizer.normalizers) && normalizer.normalizers.every(keepsCharacters);
    case 'Prepend':
      return true;
    case 'Replace':
      return isObject(normalizer.pattern) && normalizer.pattern.String === ' ';
    default:
      return false;
  }
}

/**
 * Per-id byte lengths for the two families whose tokens map to fixed bytes: byte-level BPE (GPT-2, Llama 3,
 * Qwen) and SentencePiece-style ▁ pieces with byte fallback (Llama 2, Mistral, Gemma). Null otherwise
 * (WordPiece, suffix-marking BPE): those take the decoding path.
 */
function byteLayout(json: Json, hf: HfTokenizer, vocabSize: number): Layout | null {
  const model = isObject(json.model) ? json.model : {};
  if (model.type === 'WordPiece' || model.continuing_subword_prefix || model.end_of_word_suffix) return null;
  if (model.continuing_subword_suffix) return null;
  const chain = decoderChain(json.decoder);
  const vocab = hf.model?.vocab ?? [];
  const added = hf.get_added_tokens_decoder();
  const byteLengths = new Uint16Array(vocabSize);
  const layout = (leadingSpace: (id: number) => boolean): Layout => {
    // A normalizer that may change characters voids the walk's shortcut for ASCII tokens, which trusts that
    // the token's bytes are the text's; the character-by-character walk still never splits a code point.
    if (!keepsCharacters(json.normalizer)) {
      for (let id = 0; id < vocabSize; id++) byteLengths[id] &= ~ASCII_FLAG;
    }
    return { byteLengths, leadingSpace };
  };

  if (chain.some((d) => d.type === 'ByteLevel')) {
    for (let id = 0; id < vocab.length; id++) {
      const tok = vocab[id];
      if (tok === undefined) continue;
      byteLengths[id] = (added.has(id) ? null : byteLevelLength(tok)) ?? textLength(tok);
    }
    return layout((id) => !added.has(id) && vocab[id]?.charCodeAt(0) === 0x120);
  }

  const metaspace = chain.find((d) => d.type === 'Metaspace');
  const replace = chain.find(
    (d) =>
      d.type === 'Replace' &&
      isObject(d.pattern) &&
      d.content === ' ' &&
      typeof d.pattern.String === 'string',
  );
  const replacement = metaspace
    ? typeof metaspace.replacement === 'string'
      ? metaspace.replacement
      : '\u2581'
    : replace && isObject(replace.pattern)
      ? (replace.pattern.String as string)
      : null;
  if (replacement === null || replacement.length === 0) return null;
  const byteFallback = model.byte_fallback === true || chain.some((d) => d.type === 'ByteFallback');
  for (let id = 0; id < vocab.length; id++) {
    const tok = vocab[id];
    if (tok === undefined) continue;
    if (added.has(id)) byteLengths[id] = textLength(tok);
    else if (byteFallback && tok.length === 6 && BYTE_FALLBACK.test(tok)) {
      byteLengths[id] = packLength(1, Number.parseInt(tok.slice(3, 5), 16) < 0x80);
    } else byteLengths[id] = textLength(tok.replaceAll(replacement, ' '));
  }
  return layout((id) => !added.has(id) && (vocab[id]?.startsWith(replacement) ?? false));
}

class HuggingFaceTokenizer implements Tokenizer {
  readonly id: string;
  readonly vocabSize: number;
  readonly #hf: HfTokenizer;
  readonly #layout: Layout | null;

  constructor(id: string, json: Json, hf: HfTokenizer) {
    this.id = id;
    this.#hf = hf;
    let size = hf.model?.vocab.length ?? 0;
    for (const tokenId of hf.get_added_tokens_decoder().keys()) size = Math.max(size, tokenId + 1);
    this.vocabSize = size;
    this.#layout = byteLayout(json, hf, size);
  }

  encodeIds(text: string): Uint32Array {
    // No BOS/EOS: the text is a span of model output, not a whole model input.
    return new Uint32Array(this.#hf.encode(text, { add_special_tokens: false }).ids);
  }

  encode(text: string): Encoding {
    const ids = this.encodeIds(text);
    const spans =
      this.#byteSpans(text, ids) ?? spansByDecoding(text, ids.length, (a, b) => this.#decode(ids, a, b));
    return { ids, starts: spans.starts, ends: spans.ends };
  }

  #byteSpans(text: string, ids: Uint32Array) {
    const layout = this.#layout;
    if (layout === null || ids.length === 0) return null;
    return (
      spansFromByteLengths(text, ids, layout.byteLengths) ??
      // A prefix space added by the pre-tokenizer or normalizer and stripped again by the decoder.
      (layout.leadingSpace(ids[0]) ? spansFromByteLengths(text, ids, layout.byteLengths, 1) : null)
    );
  }

  #decode(ids: ArrayLike<number>, from: number, to: number): string {
    if (to <= from) return '';
    const list: number[] = new Array(to - from);
    for (let i = from; i < to; i++) list[i - from] = ids[i];
    return this.#hf.decode(list, { skip_special_tokens: false, clean_up_tokenization_spaces: false });
  }

  decode(ids: ArrayLike<number>): string {
    return this.#decode(ids, 0, ids.length);
  }
}

/** Loads a Hugging Face tokenizer.json (and a tokenizer_config.json beside it, if any) from disk. */
export async function loadHuggingFaceTokenizer(path: string): Promise<Tokenizer> {
  const json = await readJson(path, 'tokenizer file');
  if (!isObject(json) || !isObject(json.model)) {
    fail(
      'E_TOKENIZER_FILE',
      `tokenizer file ${path} is not a Hugging Face tokenizer.json (no "model" object)`,
    );
  }
  const config = await readConfig(path);
  const { Tokenizer: HfTokenizerClass } = await import('@huggingface/tokenizers');
  // Hand-written files often leave out the optional parts; the library wants every key present.
  const full: Json = {
    normalizer: null,
    pre_tokenizer: null,
    post_processor: null,
    decoder: null,
    ...json,
    added_tokens: Array.isArray(json.added_tokens) ? json.added_tokens : [],
  };
  let hf: HfTokenizer;
  try {
    hf = new HfTokenizerClass(full, config);
  } catch (err) {
    fail('E_TOKENIZER_FILE', `tokenizer file ${path} cannot be used: ${message(err)}`);
  }
  const tokenizer = new HuggingFaceTokenizer(`hf:${path}`, full, hf);
  if (tokenizer.vocabSize === 0) fail('E_TOKENIZER_FILE', `tokenizer file ${path} has an empty vocabulary`);
  return tokenizer;
}
