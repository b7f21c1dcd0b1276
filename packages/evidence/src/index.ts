export {
  ProbeClient,
  type ProbeClientOptions,
  type ProbeParameters,
  parseCompletion,
  type RetryEvent,
  requestSeed,
  retryAfterMs,
} from './client';
export { EvidenceError, type EvidenceErrorCode } from './errors';
export { SequentialMonitor } from './monitor';
export { type ProbeProgress, type ProbeRunOptions, type ProbeRunSummary, runProbe } from './probe';
export {
  defaultPromptBankPath,
  type ProbePrompt,
  parsePromptBank,
  promptId,
  readPromptBank,
} from './prompts';
export { encodeIds, promptTextOf, sampleOf } from './samples';
export {
  EvidenceStore,
  type ProbeApi,
  type ResponseRecord,
  type RunRecord,
  responseKey,
  STORE_SCHEMA_VERSION,
  type StoredResponse,
  sha256Hex,
} from './store';
