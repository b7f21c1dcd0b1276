import type { LabOptions } from './config';
import type { LabHooks, LabReport } from './run';

export {
  DEFAULT_RHOS,
  HELD_OUT_EVERY,
  LAB_SCHEME_NAMES,
  LAB_SCHEMES,
  type LabConfig,
  type LabOptions,
  type LabSchemeName,
} from './config';
export type { LabHooks, LabReport, TeacherSummary } from './run';
export type { KsResult, LabRow } from './tasks';

/**
 * The radioactivity lab (`tracemark lab`): a watermarked n-gram teacher, students trained on a share ρ of
 * its output, and the closed-model radioactivity test of each student with the lab key and with unused
 * keys. The heavy modules (corpus, n-gram models) load on first use.
 */
export async function runLab(options: LabOptions = {}, hooks: LabHooks = {}): Promise<LabReport> {
  return (await import('./run')).runLabExperiment(options, hooks);
}

/** Writes results.json, results.md and the SVG plots of a run into a directory; returns the file paths. */
export async function writeLabOutputs(report: LabReport, dir: string): Promise<string[]> {
  return (await import('./report')).writeLabOutputs(report, dir);
}
