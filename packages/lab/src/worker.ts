import { workerData } from 'node:worker_threads';
import type { LabConfig } from './config';
import { LabContext, type LabTask, type LabTaskReply, replyTo } from './tasks';

/**
 * The lab's worker module (the package export '@tracemark/lab/worker', run by the verifier's
 * `createWorkerPool`): each thread keeps the run's tokenized corpus and teacher in one context, built from
 * the pool's workerData on the first task, and runs one task at a time.
 */
let context: LabContext | null = null;

export default function labTask(task: LabTask): Promise<LabTaskReply> {
  context ??= new LabContext((workerData as { config: LabConfig }).config);
  return replyTo(context, task);
}
