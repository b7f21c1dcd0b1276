export { type App, type AppOptions, createApp, type DemoServer, servedModels, VERSION } from './app';
export { type Config, DEFAULT_LIMITS, DEFAULT_RATE_LIMITS, DEFAULT_SPEC, readConfig } from './config';
export { ChoiceRun, type ServedModel } from './generate';
export { ensureDataDir, loadApiToken, loadMasterKey } from './secrets';
