import { parentPort, workerData } from 'node:worker_threads';
import type { LabConfig } from './config';
import { errorMessage } from './errors';
import { LabContext, type LabTask, runLabTask } from './tasks';

/** A lab worker thread: keeps the tokenized corpus and the teacher between tasks, runs one task at a time. */
const port = parentPort;
if (port === null) throw new Error('the lab worker must run in a worker thread');
const context = new LabContext((workerData as { config: LabConfig }).config);
port.on('message', (task: LabTask) => {
  try {
    port.postMessage({ result: runLabTask(context, task) });
  } catch (error) {
    port.postMessage({ error: errorMessage(error) });
  }
});
