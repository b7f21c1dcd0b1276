import type { LabOptions } from './config';
import type { LabHooks, LabReport } from './run';

export {
  type BiasEstimate,
  estimateBias,
  type FilterResult,
  filterSamples,
  NEUTRALISE_PSEUDOCOUNT,
  neutraliser,
  type ParaphraseResult,
  paraphraseSamples,
  sampleLogLikelihood,
  samplesFor,
} from './attacks';
export {
  type CampaignAccountBand,
  type CampaignOptions,
  type CampaignReport,
  campaignMarkdown,
  runCampaign,
} from './campaign';
export {
  attackLabel,
  DEFAULT_RHOS,
  HELD_OUT_EVERY,
  LAB_ATTACK_KINDS,
  LAB_MODES,
  LAB_PROFILE_NAMES,
  LAB_PROFILES,
  LAB_SCHEME_NAMES,
  LAB_SCHEMES,
  type LabAttack,
  type LabConfig,
  type LabMode,
  type LabOptions,
  type LabProfile,
  type LabProfileName,
  type LabSchemeName,
  labProfile,
  labSpec,
  parseAttack,
  resolveLabConfig,
  type Sampling,
  type SpecOverrides,
} from './config';
export {
  CORPUS,
  checkCorpusPath,
  cleanText,
  heldOutPrompts,
  type LabData,
  labKeys,
  loadLabData,
  teacherText,
} from './data';
export {
  distillStudent,
  type GeneratedSample,
  type GenerateOptions,
  generateSamples,
  type LogitAdjust,
  probeStudent,
  type StudentMix,
  type StudentText,
  studentText,
  supportOf,
  teacherSamples,
  trainModel,
  trainTeacher,
} from './distill';
export { LabError, type LabErrorCode } from './errors';
export {
  type BuildOptions,
  buildModels,
  cacheKeys,
  frequentTokens,
  type LabFacts,
  type Log,
  loadTeacher,
  type ModelSet,
  probePrompts,
  servingScheme,
} from './models';
export { checkOutputDirectory, resultsMarkdown } from './report';
export type { LabHooks, LabReport, TeacherSummary } from './run';
export {
  type AxisSpec,
  decadeTicks,
  escapeXml,
  type PlotSpec,
  renderPlot,
  type Series,
  type Tick,
} from './svg';
export { type CorpusInfo, controlGroup, type KsResult, type LabRow, readTexts } from './tasks';

/**
 * The radioactivity lab (`tracemark lab`): a watermarked n-gram teacher, students trained on a share ρ of
 * its output, and the closed-model radioactivity test of Sander et al. 2024 for each student with the lab
 * key and with unused keys. Runs in-process or on worker threads (the built '@tracemark/lab/worker').
 */
export async function runLab(options: LabOptions = {}, hooks: LabHooks = {}): Promise<LabReport> {
  return (await import('./run')).runLabExperiment(options, hooks);
}

/** Writes results.json, results.md and the SVG plots of a run into a directory; returns the file paths. */
export async function writeLabOutputs(report: LabReport, dir: string): Promise<string[]> {
  return (await import('./report')).writeLabOutputs(report, dir);
}
