export {
  DEFAULT_WINDOW_SIZES,
  type Dedup,
  type DetectionResult,
  type DetectOptions,
  detectTokens,
  nullMoments,
  nullTail,
  type SchemeIdentity,
  type SkipReason,
  schemeIdentity,
  type TokenEntry,
  type WindowResult,
  windowStep,
  zScore,
} from './detect';
export { assertScorable, type DetectTextOptions, detectText } from './detect-text';
export { VerifierError, type VerifierErrorCode } from './errors';
export { formatPValue } from './format';
export { detectInterop, type InteropDetection } from './interop';
export { formatKeyFile, parseKeyText, readKeyFile, writeKeyFile } from './keyfile';
export {
  LAB_SCHEMES,
  type LabOptions,
  type LabReport,
  type LabRow,
  runLab,
  writeLabOutputs,
} from './lab/index';
export {
  exactBinomialPower,
  normalApproximation,
  normalQuantileUpper,
  type PowerQuery,
  type PowerResult,
  requiredTokens,
} from './power';
export type { ProbeParameters, RetryEvent } from './probe/client';
export { type ProbePrompt, parsePromptBank, promptId } from './probe/prompts';
export {
  buildWindowFilter,
  type RadioactivityOptions,
  type RadioactivityResult,
  radioactivityTest,
  type SuspectSample,
  type TrajectoryPoint,
  type WindowFilter,
} from './radioactivity';
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
export { parseVerifySummary, type VerifySummary } from './report/input';
export { createScorer, type ScanConfig, type ScanRecord } from './scan/score';
export { corpusDocuments, type ScanDocument } from './scan/sources';
export {
  DEFAULT_PRIOR_STRENGTH,
  EProcess,
  type EProcessOptions,
  type SequentialState,
  sequentialTest,
} from './sequential';
export * from './stats/index';
// Probe and store types only: the classes load better-sqlite3 and openai, which `tracemark probe` and
// `tracemark verify` import on demand, so that importing the verifier never loads a native module.
export type { ProbeApi, ResponseRecord, RunRecord, StoredResponse } from './store/index';
export { customTokenizer, type Encoding, loadTokenizer, type Tokenizer } from './tokenizers/index';
export type { VerifyReport } from './verify/cli';
export {
  type ControlReport,
  DEFAULT_CONTROLS,
  type InvestigateOptions,
  type InvestigateResult,
  investigate,
  randomizedPValue,
  type TenantReport,
} from './verify/investigate';
export { controlMasterKey, parseTenantList } from './verify/keys';
export { scoreKeys } from './verify/multikey';
export { CountedTape, tapeIsKeyIndependent } from './verify/tape';
