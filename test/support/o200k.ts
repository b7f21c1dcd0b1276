import { loadTokenizer } from '@tracemark/verifier';

/** tiktoken's n_vocab of o200k_base (GPT-4o): ordinary and special token ids are all below it. */
export const O200K_VOCAB_SIZE = 200_019;

export type Encode = (text: string) => ArrayLike<number>;

/** The verifier's o200k_base tokenizer as a plain `text → ids` function. */
export async function loadO200k(): Promise<{ encode: Encode; vocabSize: number }> {
  const tokenizer = await loadTokenizer('o200k_base');
  return {
    encode: (text) => tokenizer.encodeIds?.(text) ?? tokenizer.encode(text).ids,
    vocabSize: tokenizer.vocabSize,
  };
}
