export {
  type CorpusDocument,
  GUTENBERG_HELD_OUT_BOOKS,
  GUTENBERG_TRAIN_BOOKS,
  type GutenbergOptions,
  type GutenbergSplit,
  gutenbergBook,
  gutenbergCorpus,
  type LoadCorpusOptions,
  loadCorpus,
  type ParagraphOptions,
  splitParagraphs,
} from './corpus';
export {
  countOfCounts,
  type Discounts,
  FALLBACK_DISCOUNTS,
  modifiedKneserNeyDiscounts,
} from './discounts';
export { NgramError, type NgramErrorCode } from './errors';
export { MODEL_FORMAT_VERSION, MODEL_MAGIC } from './format';
export { type ModelInfo, NgramModel, type PerplexityResult } from './model';
export { builtinTokenizer, O200K_VOCAB_SIZE, o200kBase, type Tokenizer } from './tokenizer';
export {
  MAX_ORDER,
  MIN_ORDER,
  type NgramDocument,
  NgramTrainer,
  type TrainOptions,
  trainGutenberg,
  trainNgram,
  trainNgramAsync,
} from './train';
