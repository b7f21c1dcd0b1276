import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildModels, type ModelSet } from '@tracemark/lab';
import { MasterKey } from '@tracemark/watermark';
import OpenAI from 'openai';
import { type App, createApp } from '../src/app';
import { type Config, readConfig } from '../src/config';

/** A fixed key for tests, so that the test-profile students (which depend on it) are cached across runs. */
export const TEST_KEY_HEX = '5e'.repeat(32);
export const TEST_TOKEN = 'test-token-0123456789abcdef';
/** The explain-scope token of the test servers (per-token scores). */
export const TEST_EXPLAIN_TOKEN = 'test-explain-token-0123456789';
/** Shared by every test file and run: built once by the global setup, then loaded. */
export const MODEL_DIR = join(tmpdir(), 'tracemark-demo-server-test-models');

export const testKey = () => MasterKey.parse(TEST_KEY_HEX);

let models: Promise<ModelSet> | undefined;

export function testModels(): Promise<ModelSet> {
  // The profile and spec the test servers run with (TRACEMARK_PROFILE=test).
  const { profile, spec } = readConfig({ TRACEMARK_PROFILE: 'test' });
  models ??= buildModels({ profile, key: testKey(), spec, modelDir: MODEL_DIR });
  return models;
}

export function tempDir(): string {
  return mkdtempSync(join(tmpdir(), 'tracemark-demo-server-test-'));
}

export interface TestApp extends App {
  dataDir: string;
  config: Config;
  cleanup(graceMs?: number): Promise<void>;
}

/** An app over the test models, a fresh data directory and the given environment. */
export async function startApp(
  env: Record<string, string> = {},
  options: {
    dataDir?: string;
    startJobs?: boolean;
    uiSessionTtlMs?: number;
    logStream?: { write(line: string): void };
  } = {},
): Promise<TestApp> {
  const dataDir = options.dataDir ?? tempDir();
  const config = readConfig({
    TRACEMARK_PROFILE: 'test',
    TRACEMARK_DATA_DIR: dataDir,
    TRACEMARK_MODEL_DIR: MODEL_DIR,
    TRACEMARK_LOG_REQUESTS: '0',
    TRACEMARK_WARM_CONTEXTS: '0',
    TRACEMARK_EXPLAIN_TOKEN: TEST_EXPLAIN_TOKEN,
    TRACEMARK_LOG_LEVEL: options.logStream === undefined ? 'silent' : 'info',
    PORT: '3999',
    ...env,
  });
  const app = await createApp({
    config,
    key: testKey(),
    apiToken: TEST_TOKEN,
    models: await testModels(),
    startJobs: options.startJobs,
    uiSessionTtlMs: options.uiSessionTtlMs,
    logStream: options.logStream,
  });
  return {
    ...app,
    dataDir,
    config,
    cleanup: async (graceMs = 0) => {
      await app.stop(graceMs);
      if (options.dataDir === undefined) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

export const auth = { authorization: `Bearer ${TEST_TOKEN}` };
export const explainAuth = { authorization: `Bearer ${TEST_EXPLAIN_TOKEN}` };

/** The app listening on a loopback port, and the official OpenAI client (v6) pointed at its /v1. */
export async function openAiClient(t: TestApp): Promise<OpenAI> {
  const address = await t.app.listen({ host: '127.0.0.1', port: 0 });
  return new OpenAI({
    baseURL: `${address}/v1`,
    apiKey: 'unused-on-loopback',
    maxRetries: 0,
    timeout: 30_000,
  });
}
