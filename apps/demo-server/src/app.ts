import { createHash } from 'node:crypto';
import { join } from 'node:path';
import type { TypeBoxTypeProvider } from '@fastify/type-provider-typebox';
import {
  cacheKeys,
  frequentTokens,
  LAB_PROFILES,
  type Log,
  type ModelSet,
  servingScheme,
} from '@tracemark/lab';
import { loadTokenizer, type Tokenizer } from '@tracemark/verifier';
import { createScheme, type MasterKey, SupportBiasScheme } from '@tracemark/watermark';
import Fastify, {
  type FastifyBaseLogger,
  type FastifyInstance,
  type FastifyReply,
  LogController,
  type RawReplyDefaultExpression,
  type RawRequestDefaultExpression,
  type RawServerDefault,
} from 'fastify';
import { apiRoutes, clientError, radioactivityJob } from './api';
import { Auth, authentication } from './auth';
import { type Config, isLoopback } from './config';
import { type ServerContext, Shutdown } from './context';
import { docs } from './docs';
import { clientErrorHandler, errorHandling, LOG_REDACT, logSerializers, toApiError } from './errors';
import type { ServedModel } from './generate';
import { JobRunner, JobStore } from './jobs';
import { lifecycle } from './lifecycle';
import { Offload } from './offload';
import { encodeWith } from './scoring';
import { servingRoutes } from './serving';
import { TokenBytes } from './text';
import { uiRoutes } from './ui';

export const VERSION = '0.1.0';

export interface AppOptions {
  config: Config;
  key: MasterKey;
  apiToken: string;
  models: ModelSet;
  /** Run queued jobs (default true); tests turn it off to leave a job queued across a restart. */
  startJobs?: boolean;
  /** UI session lifetime (default 15 minutes). */
  uiSessionTtlMs?: number;
  /** Messages outside requests; default: the server's logger (pino, JSON lines). */
  log?: Log;
  /** Where the JSON log lines go (default stdout); tests capture them. */
  logStream?: { write(line: string): void };
}

/** The server's Fastify instance, typed by its TypeBox schemas. */
export type DemoServer = FastifyInstance<
  RawServerDefault,
  RawRequestDefaultExpression,
  RawReplyDefaultExpression,
  FastifyBaseLogger,
  TypeBoxTypeProvider
>;

export interface App {
  app: DemoServer;
  ctx: ServerContext;
  /** Graceful stop: refuse new requests, let open streams finish (up to the grace period), close the database. */
  stop(graceMs?: number): Promise<void>;
  /** Resolves with the number of contexts whose green lists were cached in the background at start. */
  warmed: Promise<number>;
}

/** The four served models over the three built ones (the teacher twice: with and without its watermark). */
export function servedModels(models: ModelSet, config: Config, key: MasterKey): Map<string, ServedModel> {
  const plainScheme = createScheme(config.spec, key);
  const share = `${Math.round(models.lab.share * 100)}%`;
  const list: ServedModel[] = [
    {
      id: 'tracemark-teacher',
      role: 'teacher',
      description: `The teacher, an order-${models.teacher.order} n-gram model of ${models.lab.teacherBooks.length} Gutenberg book(s), with the watermark on.`,
      ngram: models.teacher,
      // The full spec: with the account layer on, each request's account view of it embeds that account too.
      scheme: servingScheme(config.servedSpec, key, models.teacher),
      watermarked: true,
      created: models.created,
    },
    {
      id: 'tracemark-teacher-plain',
      role: 'teacher-plain',
      description: 'The same teacher with the watermark off.',
      ngram: models.teacher,
      scheme: plainScheme,
      watermarked: false,
      created: models.created,
    },
    {
      id: 'tracemark-student-distilled',
      role: 'student-distilled',
      description: `A student trained on ${share} watermarked tracemark-teacher output and ${100 - Math.round(models.lab.share * 100)}% clean text.`,
      ngram: models.distilled,
      scheme: plainScheme,
      watermarked: false,
      created: models.created,
    },
    {
      id: 'tracemark-student-clean',
      role: 'student-clean',
      description: 'A student of the same size trained on clean text only (it never saw the teacher).',
      ngram: models.clean,
      scheme: plainScheme,
      watermarked: false,
      created: models.created,
    },
  ];
  return new Map(list.map((m) => [m.id, m]));
}

export async function createApp(options: AppOptions): Promise<App> {
  const { config, key } = options;
  const tokenizer: Tokenizer = await loadTokenizer('o200k_base');
  const profile = LAB_PROFILES[config.profile];
  const keys = cacheKeys(profile, config.spec, key);
  const jobs = new JobStore(join(config.dataDir, 'jobs.sqlite'));
  const shutdown = new Shutdown();
  const scheme = createScheme(config.spec, key);
  const offload = new Offload(config.spec, key, {
    threads: config.limits.workerThreads,
    queue: config.limits.workerQueue,
    timeoutMs: config.limits.workerTimeoutMs,
  });
  const encode = (text: string) => encodeWith(tokenizer, text);

  // Validation stays with Fastify's Ajv (TypeBox schemas are JSON schemas): its errors are what the OpenAI-style
  // messages are made from.
  // pino through Fastify: JSON lines with the request id; secrets redacted, errors without their stacks.
  const app = Fastify({
    logger: {
      level: config.logLevel,
      redact: { paths: LOG_REDACT, censor: '[redacted]' },
      // pino's types want a stack in every serialized error; leaving it out is the point.
      serializers: logSerializers as never,
      ...(options.logStream === undefined ? {} : { stream: options.logStream }),
    },
    logController: new LogController({ disableRequestLogging: !config.logRequests }),
    clientErrorHandler,
    // A malformed URL (bad percent-encoding) never reaches the error handler: answered here, same shape.
    frameworkErrors: (error, _request, reply: FastifyReply) => {
      const api = toApiError(error);
      reply.code(api.statusCode).type('application/json; charset=utf-8').send(api.body());
    },
    bodyLimit: config.limits.bodyLimit,
    return503OnClosing: false,
    forceCloseConnections: 'idle',
    ajv: {
      customOptions: { removeAdditional: false, coerceTypes: false, useDefaults: false, allErrors: false },
    },
  }).withTypeProvider<TypeBoxTypeProvider>();

  const ctx: ServerContext = {
    models: servedModels(options.models, config, key),
    vocabSize: config.spec.vocabSize,
    tokenizer,
    bytes: new TokenBytes(tokenizer),
    encode,
    encodeTexts: async (texts, signal) => {
      // Short texts cost less than a round trip to a worker (≈ 5 ms at worst for 1,000 characters).
      const chars = texts.reduce((n, text) => n + text.length, 0);
      if (chars <= config.limits.inlineTokenizeChars) return texts.map(encode);
      return offload.run<number[][]>({ kind: 'encode', texts }, { signal });
    },
    offload,
    plainLogprobs: config.plainLogprobs,
    accountLayer: config.accountDelta > 0,
    servedSpec: config.servedSpec,
    tokenAccounts: config.tokenAccounts,
    scheme,
    keyFingerprint: key.fingerprint,
    limits: config.limits,
    rateLimits: config.rateLimits,
    systemFingerprint: `fp_${createHash('sha256').update(`${keys.teacher}/${keys.students}`).digest('hex').slice(0, 12)}`,
    shutdown,
    servesLoopback: isLoopback(config.host),
    port: () => {
      const address = app.server.address();
      return typeof address === 'object' && address !== null ? address.port : config.port;
    },
    jobs,
    runner: new JobRunner(jobs, { radioactivity: radioactivityJob({ offload }) }, (error) => {
      const api = clientError(error);
      return api
        ? { message: api.message, code: api.code }
        : { message: 'The job failed with an internal error.', code: 'internal_error' };
    }),
    lab: options.models.lab,
    profile,
  };

  // Shared by every route (fastify-plugin): error shapes, the shutdown and log hooks, the OpenAPI document,
  // bearer tokens and rate limits. Then the route groups, each encapsulated.
  await app.register(errorHandling);
  const log: Log = options.log ?? ((message) => app.log.info(message));
  await app.register(lifecycle, { shutdown });
  await app.register(docs, { version: VERSION });
  await app.register(authentication, {
    auth: new Auth(options.apiToken, {
      sessionTtlMs: options.uiSessionTtlMs,
      ...(config.explainToken === undefined ? {} : { explainToken: config.explainToken }),
      accounts: {
        'api-token': config.tokenAccounts.apiToken,
        'explain-token': config.tokenAccounts.explainToken,
      },
    }),
  });
  await app.register(servingRoutes, { prefix: '/v1', ctx });
  await app.register(apiRoutes, { prefix: '/api', ctx });
  await app.register(uiRoutes);
  await app.ready();

  if (options.startJobs !== false) {
    const resumed = ctx.runner.resume();
    if (resumed > 0) log(`resuming ${resumed} unfinished job(s)`);
  }

  // The teacher's green lists for the most frequent contexts, computed between requests after start: the first
  // requests then pay no more for the watermark than later ones (see BENCHMARKS.md).
  const teacherScheme = ctx.models.get('tracemark-teacher')?.scheme;
  let warmStopped = false;
  const warmed =
    teacherScheme instanceof SupportBiasScheme && config.warmContexts > 0
      ? new Promise<void>((resolve) => setImmediate(resolve))
          .then(() => {
            const started = performance.now();
            return teacherScheme
              .warm(frequentTokens(options.models.teacher, config.warmContexts), {
                stopped: () => warmStopped,
              })
              .then((added) => {
                log(
                  `green lists cached for ${added} contexts (${((performance.now() - started) / 1000).toFixed(1)} s)`,
                );
                return added;
              });
          })
          .catch(() => 0)
      : Promise.resolve(0);

  let stopping: Promise<void> | null = null;
  const stop = (graceMs = config.shutdownGraceMs) => {
    stopping ??= (async () => {
      shutdown.begin(graceMs);
      warmStopped = true;
      const closed = app.close();
      // Keep-alive connections hold the server open once their requests are done: close them as they go idle,
      // and any left a few seconds after the deadline.
      const sweep = setInterval(() => app.server.closeIdleConnections(), 100);
      const force = setTimeout(() => app.server.closeAllConnections(), graceMs + 5_000);
      try {
        await shutdown.drained();
        // Every response is done: what is left are idle keep-alive connections, some never used.
        while (shutdown.inFlight > 0) await new Promise((resolve) => setTimeout(resolve, 20));
        app.server.closeAllConnections();
        await closed;
      } finally {
        clearInterval(sweep);
        clearTimeout(force);
      }
      await ctx.runner.stop();
      await offload.close();
      jobs.close();
    })();
    return stopping;
  };
  return { app, ctx, stop, warmed };
}
