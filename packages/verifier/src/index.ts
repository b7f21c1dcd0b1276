export {
  type AccountAttribution,
  type AccountGroups,
  type AccountJob,
  type AccountLayerTestResult,
  type AttributionOptions,
  type AttributionResult,
  accountGroups,
  accountLayerTest,
  accountSums,
  attributeAccounts,
  type PreparedAccounts,
  prepareAccounts,
} from './attribution';
export {
  CONTROL_CONTEXT,
  controlMasterKey,
  controlTenant,
  labelUniform,
  parseTenantList,
} from './controls';
export {
  DEFAULT_WINDOW_SIZES,
  type DetectionResult,
  type DetectOptions,
  detectTokens,
  type TokenEntry,
  TokenTable,
  type WindowResult,
  windowStep,
} from './detect';
export { type StreamDetection, TokenStreamDetector, type TokenStreamOptions } from './detect-stream';
export { assertScorable, type DetectTextOptions, detectText } from './detect-text';
export {
  EXP_EDIT_TEST_DEFAULTS,
  type ExpEditTestOptions,
  type ExpEditTestResult,
  expEditTest,
} from './edit-test';
export { VerifierError, type VerifierErrorCode } from './errors';
export { decodeUtf8, jsonArgument, readStdin, readTextFile } from './files';
export { formatPValue } from './format';
export { detectInterop, type InteropDetection } from './interop';
export {
  type ControlReport,
  DEFAULT_CONTROLS,
  type InvestigateOptions,
  type InvestigateResult,
  investigate,
  investigateReading,
  MIN_CONTROLS,
  type TenantReport,
} from './investigate';
export { formatKeyFile, parseKeyText, readKeyFile, writeKeyFile } from './keyfile';
export { type Job as MultiKeyJob, type KeyRequest, scoreBatch, scoreKeys } from './multikey';
export { SimdGroupScorer } from './multikey-simd';
export { nullMoments, nullTail, randomizedPValue, zScore } from './null-law';
export {
  exactBinomialPower,
  normalApproximation,
  normalQuantileUpper,
  type PowerQuery,
  type PowerResult,
  requiredTokens,
} from './power';
export {
  type RadioactivityOptions,
  type RadioactivityResult,
  radioactivityTape,
  radioactivityTest,
  type TrajectoryPoint,
} from './radioactivity';
export {
  type ReadingResult,
  type ReadingSamples,
  type ReadingSkips,
  type ReadText,
  readingSamples,
  readingTape,
  readingTest,
} from './reading';
export {
  type CheckResult,
  checkEvidence,
  EVIDENCE_FORMAT,
  type EvidenceBody,
  type EvidenceBundle,
  evidenceBody,
  type SampleEvidence,
  sha256Hex,
  signEvidence,
} from './report/bundle';
export { escapeHtml, type HighlightedSample, renderReportHtml } from './report/html';
export {
  type OwnerFilterSummary,
  parseVerifySummary,
  redactEndpoint,
  type SampleText,
  type SuspectSummary,
  type VerifySummary,
} from './report/input';
export { type SchemeIdentity, schemeIdentity, type TestResult, testResult } from './result';
export {
  DEFAULT_PRIOR_STRENGTH,
  EProcess,
  type EProcessOptions,
  type SequentialState,
  sequentialTest,
} from './sequential';
export * from './stats/index';
export {
  buildWindowFilter,
  CountedTape,
  type CountingRule,
  type Dedup,
  dedupKey,
  markPositions,
  promptWindows,
  type SkipCounts,
  type SkipReason,
  type SuspectSample,
  type TapeCounts,
  type TapeOptions,
  tapeIsKeyIndependent,
  type WindowFilter,
} from './tape';
export { customTokenizer, type Encoding, loadTokenizer, type Tokenizer } from './tokenizers/index';
export { builtWorker, createWorkerPool, stopWorkerPool, type WorkerPoolOptions } from './workers';
