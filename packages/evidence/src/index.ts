export {
  type Exchange,
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
export {
  EndpointReader,
  type EndpointReaderOptions,
  firstKept,
  localReadingBody,
  parseEchoReading,
  type ReadBinding,
  type ReadInput,
  type ReadRunOptions,
  type ReadRunSummary,
  type ReadWindow,
  readBinding,
  runRead,
  type StoredReadTexts,
  storedReadTexts,
  textWindows,
  type WindowPredictions,
  type WindowReader,
  type WindowReading,
  windowPredictions,
} from './read';
export { encodeIds, promptTextOf, sampleOf } from './samples';
export {
  EvidenceStore,
  type ProbeApi,
  type ReadingRecord,
  type ReadSourceKind,
  type ReadTextRecord,
  type ResponseRecord,
  type RunRecord,
  readingKey,
  readTextId,
  responseKey,
  STORE_SCHEMA_VERSION,
  type StoredReading,
  type StoredResponse,
  type StoreMode,
  sha256Hex,
} from './store';
