import { decode, encode } from 'gpt-tokenizer/encoding/o200k_base';

/** Token ids of o200k_base (GPT-4o) as tracemark counts them: 0..200018, special tokens included. */
export const O200K_VOCAB_SIZE = 200_019;

/** A tokenizer the model can use to read text: ids must lie in [0, vocabSize). */
export interface Tokenizer {
  /** Stored in model files; a model made with another tokenizer needs it passed back at load. */
  readonly name: string;
  readonly vocabSize: number;
  encode(text: string): number[];
  decode(tokens: ArrayLike<number>): string;
}

const noSpecial = new Set<string>();

/** o200k_base from gpt-tokenizer; special-token text is encoded as ordinary text. */
export const o200kBase: Tokenizer = {
  name: 'o200k_base',
  vocabSize: O200K_VOCAB_SIZE,
  encode: (text) => encode(text, { disallowedSpecial: noSpecial }),
  decode: (tokens) => decode(Array.from(tokens)),
};

/** The built-in tokenizer of that name, if any. */
export function builtinTokenizer(name: string): Tokenizer | null {
  return name === o200kBase.name ? o200kBase : null;
}
