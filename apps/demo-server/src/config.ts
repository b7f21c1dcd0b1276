import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LabProfileName } from '@tracemark/lab';
import { canonicalSpec, checkAccountId, parseSpec, type SchemeSpec } from '@tracemark/watermark';

/** The lab profile each TRACEMARK_PROFILE value builds the models from: the documented names stay. */
const LAB_PROFILE_OF = { full: 'demo', test: 'demo-test' } as const satisfies Record<string, LabProfileName>;

/** The teacher's watermark unless TRACEMARK_SPEC says otherwise. */
export const DEFAULT_SPEC = {
  scheme: 'kgw',
  vocabSize: 200_019,
  gamma: 0.25,
  delta: 2,
  contextWidth: 1,
} as const;

/**
 * The account layer's δ (TRACEMARK_ACCOUNT_DELTA) where the spec allows one (KGW with left hashing): every
 * teacher output also carries the account that asked for it. 0 turns the layer off.
 */
export const DEFAULT_ACCOUNT_DELTA = 2;

export interface RateLimits {
  /** Requests per minute to POST /api/detect, per identity (each token; all UI sessions share one). */
  detect: number;
  /**
   * Tokens /api/detect may score per identity per minute: a request cap alone lets one caller score
   * requests × maxDetectTokens tokens a minute.
   */
  detectTokens: number;
  /** Requests per minute to POST /api/verify. */
  verify: number;
  /** Requests per minute to GET /api/jobs/:id. */
  jobs: number;
  /** UI sessions handed out per minute. */
  uiSession: number;
}

export interface Limits {
  /** Largest request body in bytes. */
  bodyLimit: number;
  /** Largest `max_tokens` / `max_completion_tokens`. */
  maxTokens: number;
  /** Largest `n`. */
  maxChoices: number;
  /** Largest number of prompts in one /v1/completions request. */
  maxPrompts: number;
  /** Largest number of tokens one request may ask for (prompts × n × max_tokens). */
  maxRequestTokens: number;
  /** Largest number of prompt tokens one `echo` request (reading mode) scores, over all its prompts. */
  maxEchoTokens: number;
  /** Largest text (characters) or token list /api/detect scores. */
  maxDetectChars: number;
  maxDetectTokens: number;
  /** Largest number of samples, and of tokens over all samples, in one /api/verify job. */
  maxVerifySamples: number;
  maxVerifyTokens: number;
  /** Texts up to this many characters are tokenized on the main thread (measured: a few ms at worst). */
  inlineTokenizeChars: number;
  /** Worker threads for tokenizing, detection and verification. */
  workerThreads: number;
  /** Tasks that may wait for a worker; past that, requests get 503 instead of growing the queue. */
  workerQueue: number;
  /** A request's worker task is abandoned (its thread replaced) after this long. */
  workerTimeoutMs: number;
}

export interface Config {
  host: string;
  port: number;
  dataDir: string;
  /** Where built models are cached; default `<dataDir>/models`. */
  modelDir: string;
  /** The lab profile of the models ('demo', or 'demo-test' for TRACEMARK_PROFILE=test). */
  profile: LabProfileName;
  /**
   * The organisation layer's spec (no `accountDelta`): what detection tests, and what the models were built with.
   */
  spec: SchemeSpec;
  /** The account layer's δ (TRACEMARK_ACCOUNT_DELTA; 0: one layer, the teacher embeds no account). */
  accountDelta: number;
  /** The teacher's full spec: `spec` with `accountDelta` when the account layer is on, else `spec` itself. */
  servedSpec: SchemeSpec;
  /**
   * The account each bearer token embeds in the teacher's outputs (TRACEMARK_API_TOKEN_ACCOUNT,
   * TRACEMARK_EXPLAIN_TOKEN_ACCOUNT); it wins over the request's `user` field.
   */
  tokenAccounts: { apiToken?: string; explainToken?: string };
  /** The bearer token from TRACEMARK_API_TOKEN, if set. */
  apiToken: string | undefined;
  /** The explain token from TRACEMARK_EXPLAIN_TOKEN, if set: the one token (besides UI sessions) shown per-token scores. */
  explainToken: string | undefined;
  /** Whether tracemark-teacher-plain returns logprobs (TRACEMARK_PLAIN_LOGPROBS=1); off by default, see docs. */
  plainLogprobs: boolean;
  /** pino log level (TRACEMARK_LOG_LEVEL, default info). */
  logLevel: string;
  /** The master key's text from TRACEMARK_KEY, if set (never logged). */
  keyText: string | undefined;
  keyFile: string | undefined;
  rateLimits: RateLimits;
  limits: Limits;
  /** How long open streams may run on after SIGTERM before they are ended. */
  shutdownGraceMs: number;
  /** Log one line per request. */
  logRequests: boolean;
  /** One-token contexts whose green lists are computed in the background at start (0: none). */
  warmContexts: number;
}

export const DEFAULT_LIMITS: Limits = {
  bodyLimit: 1024 * 1024,
  maxTokens: 1024,
  maxChoices: 8,
  maxPrompts: 64,
  maxRequestTokens: 16_384,
  maxEchoTokens: 16_384,
  maxDetectChars: 100_000,
  maxDetectTokens: 50_000,
  maxVerifySamples: 2_000,
  maxVerifyTokens: 400_000,
  inlineTokenizeChars: 1_000,
  workerThreads: 1,
  workerQueue: 16,
  workerTimeoutMs: 30_000,
};

export const DEFAULT_RATE_LIMITS: RateLimits = {
  detect: 60,
  detectTokens: 20_000,
  verify: 12,
  jobs: 600,
  uiSession: 20,
};

const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** The repository root (the folder holding pnpm-workspace.yaml above this file), or null. */
export function repositoryRoot(from = dirname(fileURLToPath(import.meta.url))): string | null {
  let dir = from;
  for (;;) {
    if (existsSync(join(dir, 'pnpm-workspace.yaml'))) return dir;
    const up = dirname(dir);
    if (up === dir) return null;
    dir = up;
  }
}

export class ConfigError extends Error {
  override name = 'ConfigError';
}

function integer(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be an integer from ${min} to ${max}; got ${JSON.stringify(raw)}`);
  }
  return value;
}

function decimal(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < min || value > max) {
    throw new ConfigError(`${name} must be a number from ${min} to ${max}; got ${JSON.stringify(raw)}`);
  }
  return value;
}

function account(env: NodeJS.ProcessEnv, name: string): string | undefined {
  const raw = env[name];
  if (raw === undefined || raw.trim() === '') return undefined;
  try {
    checkAccountId(raw);
  } catch (error) {
    throw new ConfigError(`${name}: ${(error as Error).message}`);
  }
  return raw;
}

/**
 * The account layer's δ and the served spec: TRACEMARK_ACCOUNT_DELTA, else an `accountDelta` in TRACEMARK_SPEC,
 * else DEFAULT_ACCOUNT_DELTA where the spec allows a layer (KGW with left hashing) and 0 elsewhere.
 */
function accountLayer(
  env: NodeJS.ProcessEnv,
  full: SchemeSpec,
): { spec: SchemeSpec; accountDelta: number; servedSpec: SchemeSpec } {
  const { accountDelta: inSpec, ...rest } = full as SchemeSpec & { accountDelta?: number };
  const spec = parseSpec(rest);
  const allowed = spec.scheme === 'kgw' && (spec as { hashing?: string }).hashing === 'left';
  const accountDelta = decimal(
    env,
    'TRACEMARK_ACCOUNT_DELTA',
    inSpec ?? (allowed ? DEFAULT_ACCOUNT_DELTA : 0),
    0,
    1_000,
  );
  if (accountDelta === 0) return { spec, accountDelta, servedSpec: spec };
  if (!allowed) {
    throw new ConfigError(
      'TRACEMARK_ACCOUNT_DELTA: the account layer needs a kgw spec with left hashing; set it to 0 for this spec',
    );
  }
  return { spec, accountDelta, servedSpec: parseSpec({ ...spec, accountDelta }) };
}

/** Reads the configuration from the environment; throws ConfigError with a one-line reason. */
export function readConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const host = env.HOST?.trim() || '127.0.0.1';
  const port = integer(env, 'PORT', 3000, 0, 65_535);
  const root = repositoryRoot() ?? process.cwd();
  const dataDir = resolve(env.TRACEMARK_DATA_DIR?.trim() || join(root, '.tracemark'));
  const profileName = env.TRACEMARK_PROFILE?.trim() || 'full';
  if (profileName !== 'full' && profileName !== 'test') {
    throw new ConfigError(`TRACEMARK_PROFILE must be "full" or "test"; got ${JSON.stringify(profileName)}`);
  }
  const profile = LAB_PROFILE_OF[profileName];
  let spec: SchemeSpec;
  try {
    spec = parseSpec(env.TRACEMARK_SPEC?.trim() || DEFAULT_SPEC);
  } catch (error) {
    throw new ConfigError(`TRACEMARK_SPEC: ${(error as Error).message}`);
  }
  if (spec.vocabSize !== DEFAULT_SPEC.vocabSize) {
    throw new ConfigError(
      `TRACEMARK_SPEC: vocabSize must be ${DEFAULT_SPEC.vocabSize} (o200k_base, the model's vocabulary)`,
    );
  }
  const apiToken = env.TRACEMARK_API_TOKEN?.trim() || undefined;
  if (apiToken !== undefined && apiToken.length < 16) {
    throw new ConfigError('TRACEMARK_API_TOKEN must be at least 16 characters long');
  }
  const explainToken = env.TRACEMARK_EXPLAIN_TOKEN?.trim() || undefined;
  if (explainToken !== undefined && explainToken.length < 16) {
    throw new ConfigError('TRACEMARK_EXPLAIN_TOKEN must be at least 16 characters long');
  }
  if (explainToken !== undefined && explainToken === apiToken) {
    throw new ConfigError('TRACEMARK_EXPLAIN_TOKEN must differ from TRACEMARK_API_TOKEN');
  }
  const layers = accountLayer(env, parseSpec(JSON.parse(canonicalSpec(spec))));
  const apiTokenAccount = account(env, 'TRACEMARK_API_TOKEN_ACCOUNT');
  const explainTokenAccount = account(env, 'TRACEMARK_EXPLAIN_TOKEN_ACCOUNT');
  const logLevel = env.TRACEMARK_LOG_LEVEL?.trim() || 'info';
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new ConfigError(
      `TRACEMARK_LOG_LEVEL must be one of ${LOG_LEVELS.join(', ')}; got ${JSON.stringify(logLevel)}`,
    );
  }
  return {
    host,
    port,
    dataDir,
    modelDir: resolve(env.TRACEMARK_MODEL_DIR?.trim() || join(dataDir, 'models')),
    profile,
    spec: layers.spec,
    accountDelta: layers.accountDelta,
    servedSpec: layers.servedSpec,
    tokenAccounts: {
      ...(apiTokenAccount === undefined ? {} : { apiToken: apiTokenAccount }),
      ...(explainTokenAccount === undefined ? {} : { explainToken: explainTokenAccount }),
    },
    apiToken,
    explainToken,
    plainLogprobs: env.TRACEMARK_PLAIN_LOGPROBS === '1',
    logLevel,
    keyText: env.TRACEMARK_KEY?.trim() || undefined,
    keyFile: env.TRACEMARK_KEY_FILE?.trim() ? resolve(env.TRACEMARK_KEY_FILE.trim()) : undefined,
    rateLimits: {
      detect: integer(env, 'TRACEMARK_RATE_LIMIT_DETECT', DEFAULT_RATE_LIMITS.detect, 1, 1_000_000),
      detectTokens: integer(
        env,
        'TRACEMARK_RATE_LIMIT_DETECT_TOKENS',
        DEFAULT_RATE_LIMITS.detectTokens,
        1,
        100_000_000,
      ),
      verify: integer(env, 'TRACEMARK_RATE_LIMIT_VERIFY', DEFAULT_RATE_LIMITS.verify, 1, 1_000_000),
      jobs: integer(env, 'TRACEMARK_RATE_LIMIT_JOBS', DEFAULT_RATE_LIMITS.jobs, 1, 1_000_000),
      uiSession: DEFAULT_RATE_LIMITS.uiSession,
    },
    limits: {
      ...DEFAULT_LIMITS,
      bodyLimit: integer(env, 'TRACEMARK_BODY_LIMIT', DEFAULT_LIMITS.bodyLimit, 1024, 64 * 1024 * 1024),
      maxTokens: integer(env, 'TRACEMARK_MAX_TOKENS', DEFAULT_LIMITS.maxTokens, 1, 65_536),
      maxEchoTokens: integer(env, 'TRACEMARK_MAX_ECHO_TOKENS', DEFAULT_LIMITS.maxEchoTokens, 1, 1_000_000),
      workerThreads: integer(env, 'TRACEMARK_WORKER_THREADS', DEFAULT_LIMITS.workerThreads, 1, 64),
      workerQueue: integer(env, 'TRACEMARK_WORKER_QUEUE', DEFAULT_LIMITS.workerQueue, 0, 10_000),
      workerTimeoutMs: integer(
        env,
        'TRACEMARK_WORKER_TIMEOUT_MS',
        DEFAULT_LIMITS.workerTimeoutMs,
        100,
        3_600_000,
      ),
    },
    shutdownGraceMs: integer(env, 'TRACEMARK_SHUTDOWN_GRACE_MS', 10_000, 0, 600_000),
    logRequests: env.TRACEMARK_LOG_REQUESTS !== '0',
    warmContexts: integer(env, 'TRACEMARK_WARM_CONTEXTS', 8192, 0, 1_000_000),
  };
}

const LOOPBACK_HOSTS = new Set(['127.0.0.1', 'localhost', '::1', '[::1]', '::ffff:127.0.0.1']);

/** Whether a bind address or a socket's peer address is the loopback interface. */
export function isLoopback(address: string | undefined): boolean {
  if (address === undefined) return false;
  return LOOPBACK_HOSTS.has(address) || /^127\.\d+\.\d+\.\d+$/.test(address) || /^::ffff:127\./.test(address);
}
