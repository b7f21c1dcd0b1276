export {
  ACCOUNT_LAYER_GAMMA,
  AccountLayer,
  AccountLayerKey,
  accountGreenWord,
  checkAccountId,
  MAX_ACCOUNT_ID_LENGTH,
} from './account-layer';
export { WatermarkError, type WatermarkErrorCode } from './errors';
export * from './interop/index';
export { KeySet64, shortWindowKeyHi, shortWindowKeyLo, windowKey } from './key-set';
export { KEY_DERIVATION_VERSION, MASTER_KEY_BYTES, MasterKey, SchemeKey } from './keys';
export { lowbias32, seededHash32, seededUniform } from './mix';
export { type ContextHashing, ContextPrf } from './prf';
export {
  checkReadTokens,
  MAX_READ_TOP_K,
  type ReadOptions,
  type ReadResult,
  readSettings,
  readWindows,
} from './reading';
export {
  accountLayerKey,
  type CreateSchemeOptions,
  canonicalSpec,
  createScheme,
  keyedSpec,
  parseSpec,
  SCHEME_NAMES,
  type SchemeSpec,
} from './registry';
export {
  argmax,
  assertLogits,
  type CandidateSet,
  createRng,
  type ResolvedSampling,
  resolveSampling,
  Sampler,
  type SamplingOptions,
  sampleCategorical,
  topKIndices,
} from './sampler';
export {
  type KeyIdentity,
  type NullLaw,
  type Scheme,
  SchemeBase,
  type SchemeTraits,
  type WindowGreenList,
} from './scheme';
export {
  alignedStatistic,
  alignmentCost,
  type EditStatistic,
  EXP_EDIT_DEFAULTS,
  ExpEditGenerator,
  ExpEditKey,
  type ExpEditSpec,
  editStatistic,
  expEditStep,
  type LocalAlignment,
  localAlignmentStatistic,
  localAlignmentWidth,
  MAX_EXP_EDIT_KEY_LENGTH,
  parseExpEditSpec,
  readExpEditSpec,
} from './schemes/exp-edit';
export { GUMBEL_DEFAULTS, GumbelScheme, type GumbelSpec } from './schemes/gumbel';
export { KGW_DEFAULTS, KgwScheme, type KgwSpec, kgwComparisonBits } from './schemes/kgw';
export { SYNTHID_DEFAULTS, SynthIdScheme, type SynthIdSpec } from './schemes/synthid';
export {
  candidateStep,
  chooserOf,
  GenerationBatch,
  type GenerationOptions,
  GenerationSession,
  generationStep,
  type StepResult,
  supportStep,
} from './session';
export { type SipKey, sipHash24, sipHash24Word, sipHash24Words, sipKey } from './siphash';
export { canonicalJson, MAX_CONTEXT_WIDTH, MAX_VOCAB_SIZE, SPEC_VERSION } from './spec';
export { SupportBiasScheme } from './support-bias';
export * as wasm from './wasm';
