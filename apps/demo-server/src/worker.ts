/**
 * The worker threads' module (built to dist/worker.js, package export "@tracemark/demo-server/worker"): tokenizing
 * large inputs, detection and verification run here, off the event loop. The key comes as hex in workerData and
 * stays in this process; results go back as plain data.
 */
import { workerData } from 'node:worker_threads';
import { loadTokenizer } from '@tracemark/verifier';
import { createScheme, MasterKey } from '@tracemark/watermark';
import { runTask, type ScoringEnv, type TaskReply, type WorkerTask } from './scoring';
import { TokenBytes } from './text';

export interface WorkerSetup {
  spec: unknown;
  keyHex: string;
}

let env: Promise<ScoringEnv> | undefined;

function setup(): Promise<ScoringEnv> {
  env ??= (async () => {
    const { spec, keyHex } = workerData as WorkerSetup;
    const key = MasterKey.parse(keyHex);
    const tokenizer = await loadTokenizer('o200k_base');
    return { scheme: createScheme(spec, key), spec, key, tokenizer, bytes: new TokenBytes(tokenizer) };
  })();
  return env;
}

// Loaded as the thread starts, so that the first task does not pay for it.
void setup().catch(() => {});

export default async function run(task: WorkerTask): Promise<TaskReply> {
  return runTask(await setup(), task);
}
