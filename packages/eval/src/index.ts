/**
 * The evaluation harness (`tracemark eval`): detectability, robustness to edits and cost in quality, measured
 * the same way for every scheme, on an n-gram reference model.
 */
export {
  ATTACK_KINDS,
  type Attack,
  type AttackContext,
  type AttackKind,
  type AttackStats,
  applyAttack,
  editRate,
  parseAttack,
  parseAttacks,
} from './attacks';
export {
  DEFAULT_ATTACKS,
  EVAL_SCHEME_NAMES,
  EVAL_SCHEMES,
  type EvalConfig,
  type EvalOptions,
  type EvalSchemeName,
  resolveEvalConfig,
} from './config';
export { EvaluationError, type EvaluationErrorCode } from './errors';
export {
  crossRequestRepeat,
  distinct2,
  identicalSamples,
  type PerplexityResult,
  perplexity,
  type TokenModel,
} from './quality';
export { summaryMarkdown, writeEvalOutputs } from './report';
export {
  type CalibrationRow,
  type EvalHooks,
  type EvalProgress,
  type EvalReport,
  type EvalRow,
  FPR_LEVEL,
  NGRAM_CAVEAT,
  type QualityRow,
  type Rewriter,
  type RocCurve,
  rocCurve,
  runEvaluation,
} from './run';
