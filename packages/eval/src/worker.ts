import { workerData } from 'node:worker_threads';
import { type ExpEditJob, type ExpEditSettings, ExpEditTester } from './exp-edit-test';

/**
 * The harness's worker module ('@tracemark/eval/worker', run by the verifier's `createWorkerPool`): EXP-edit
 * permutation tests, the one costly test of a run (K + 1 alignments each), on every core.
 */
let tester: ExpEditTester | null = null;

export default function expEditTask(job: ExpEditJob): number {
  tester ??= new ExpEditTester((workerData as { settings: ExpEditSettings }).settings);
  return tester.test(job);
}
