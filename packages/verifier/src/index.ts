export {
  DEFAULT_WINDOW_SIZES,
  type Dedup,
  type DetectionResult,
  type DetectOptions,
  detectTokens,
  nullMoments,
  nullTail,
  type SkipReason,
  type TokenEntry,
  type WindowResult,
  zScore,
} from './detect';
export { assertScorable, type DetectTextOptions, detectText } from './detect-text';
export { VerifierError, type VerifierErrorCode } from './errors';
export { formatPValue } from './format';
export { detectInterop, type InteropDetection } from './interop';
export { formatKeyFile, parseKeyText, readKeyFile, writeKeyFile } from './keyfile';
export {
  buildWindowFilter,
  type RadioactivityOptions,
  type RadioactivityResult,
  radioactivityTest,
  type SuspectSample,
  type TrajectoryPoint,
  type WindowFilter,
} from './radioactivity';
export * from './stats/index';
export { customTokenizer, type Encoding, loadTokenizer, type Tokenizer } from './tokenizers/index';
