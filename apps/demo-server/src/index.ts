export { type App, type AppOptions, createApp, servedModels, VERSION } from './app';
export { type Config, DEFAULT_LIMITS, DEFAULT_RATE_LIMITS, DEFAULT_SPEC, readConfig } from './config';
export { ChoiceRun, type ServedModel } from './generate';
export {
  buildModels,
  type LabFacts,
  loadTeacher,
  type ModelProfile,
  type ModelSet,
  PROFILES,
  type ProfileName,
  probePrompts,
  servingScheme,
  supportOf,
} from './models';
export { ensureDataDir, loadApiToken, loadMasterKey } from './secrets';
export { SupportBiasScheme } from './support-bias';
