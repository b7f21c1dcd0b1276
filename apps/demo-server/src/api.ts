import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { probePrompts } from '@tracemark/lab';
import { VerifierError } from '@tracemark/verifier';
import { ACCOUNT_LAYER_GAMMA, WatermarkError } from '@tracemark/watermark';
import type { FastifyRequest } from 'fastify';
import { canExplain, type Identity } from './auth';
import type { ServerContext } from './context';
import { ApiError, invalid } from './errors';
import type { JobRecord } from './jobs';
import { clientSignal } from './offload';
import {
  detectSchema,
  healthSchema,
  infoSchema,
  type JobView,
  jobSchema,
  labSchema,
  uiSessionSchema,
  verifySchema,
} from './schemas';
import type { DetectOutcome, RadioactivityInput, VerificationResult } from './scoring';

export type { RadioactivityInput } from './scoring';

/** What the detection and verification routes need of the server. */
export type ApiContext = Pick<
  ServerContext,
  | 'models'
  | 'vocabSize'
  | 'encodeTexts'
  | 'offload'
  | 'scheme'
  | 'keyFingerprint'
  | 'limits'
  | 'rateLimits'
  | 'shutdown'
  | 'servesLoopback'
  | 'port'
  | 'jobs'
  | 'runner'
  | 'lab'
  | 'profile'
  | 'plainLogprobs'
  | 'accountLayer'
  | 'servedSpec'
  | 'tokenAccounts'
>;

/** Verifier and watermark errors are about the input: 400 with their (secret-free) message. */
export function clientError(error: unknown): ApiError | null {
  if (error instanceof ApiError) return error;
  if (error instanceof VerifierError || error instanceof WatermarkError) {
    return invalid(error.message, null, error.code.replace(/^E_/, '').toLowerCase());
  }
  return null;
}

function jobView(job: JobRecord<RadioactivityInput, VerificationResult>): JobView {
  return {
    id: job.id,
    object: 'tracemark.job',
    kind: job.kind,
    state: job.state,
    createdAt: job.createdAt,
    updatedAt: job.updatedAt,
    model: job.input.model,
    samples: job.input.samples.length,
    result: job.result,
    error: job.error,
  };
}

const perMinute = (max: number) => ({ rateLimit: { max, timeWindow: 60_000 } });

/**
 * Tokens scored per identity per minute (fixed one-minute windows). A request cap alone would let one token score
 * requests × maxDetectTokens tokens a minute; this caps what detection reveals, whatever the request count.
 */
export class TokenBudget {
  readonly max: number;
  readonly #windows = new Map<string, { start: number; used: number }>();

  constructor(max: number) {
    this.max = max;
  }

  #window(identity: string) {
    const now = Date.now();
    let window = this.#windows.get(identity);
    if (window === undefined || now - window.start >= 60_000) {
      window = { start: now, used: 0 };
      this.#windows.set(identity, window);
    }
    return window;
  }

  #refuse(window: { start: number }, what: string): ApiError {
    const retry = Math.max(1, Math.ceil((window.start + 60_000 - Date.now()) / 1000));
    return new ApiError(
      429,
      `Rate limit reached: ${what}; this identity may score ${this.max} tokens per minute; retry in ${retry} s.`,
      { code: 'rate_limit_exceeded', headers: { 'retry-after': String(retry) } },
    );
  }

  /** Throws 429 unless `tokens` more fit in this minute's budget. */
  check(identity: string, tokens: number): void {
    const window = this.#window(identity);
    if (window.used + tokens > this.max) {
      throw this.#refuse(window, `${tokens} more token(s) would exceed the scoring budget`);
    }
  }

  /** Counts tokens that were scored; throws 429 (and spends the minute's budget) when they do not fit. */
  charge(identity: string, tokens: number): void {
    const window = this.#window(identity);
    if (window.used + tokens > this.max) {
      window.used = this.max;
      throw this.#refuse(window, `the text holds ${tokens} tokens, more than the budget left`);
    }
    window.used += tokens;
  }
}

/**
 * The account layer as /api/info publishes it: its δ and γ, the request field that names the account, and
 * whether the bearer tokens carry accounts of their own (never the accounts or the tokens).
 */
function accountLayerInfo(ctx: ApiContext) {
  return {
    delta: (ctx.servedSpec as { accountDelta?: number }).accountDelta ?? 0,
    gamma: ACCOUNT_LAYER_GAMMA,
    accountField: 'user',
    keyAccounts: {
      apiToken: ctx.tokenAccounts.apiToken !== undefined,
      explainToken: ctx.tokenAccounts.explainToken !== undefined,
    },
    precedence: 'key' as const,
    description:
      "tracemark-teacher's outputs carry the account named by the request's `user` field (1 to 256 characters, no " +
      'NUL or line breaks), or, when the request carries a bearer token that has an account configured, that ' +
      'account (it wins over `user`). Requests with neither carry the organisation layer only. Detection tests the ' +
      'organisation layer; the account layer is attributed with the verifier (attributeAccounts).',
  };
}

/** The routes under `/api`: open ones here, the ones that score text in `scoringRoutes`. */
export const apiRoutes: FastifyPluginAsyncTypebox<{ ctx: ApiContext }> = async (app, { ctx }) => {
  app.get('/health', { schema: healthSchema }, async () => ({
    status: ctx.shutdown.closing ? 'closing' : 'ok',
    models: [...ctx.models.keys()],
  }));

  app.get('/info', { schema: infoSchema }, async () => ({
    keyFingerprint: ctx.keyFingerprint,
    spec: ctx.servedSpec,
    accountLayer: ctx.accountLayer ? accountLayerInfo(ctx) : null,
    labProfile: ctx.lab.profile,
    plainLogprobs: {
      enabled: ctx.plainLogprobs,
      reason: PLAIN_LOGPROBS_REASON,
    },
    detection: {
      perToken: 'explain scope only (TRACEMARK_EXPLAIN_TOKEN, or the loopback UI session)',
      requestsPerMinute: ctx.rateLimits.detect,
      tokensPerMinute: ctx.rateLimits.detectTokens,
    },
  }));

  let probes: string[] | null = null;
  app.get('/lab', { schema: labSchema }, async () => {
    probes ??= probePrompts(ctx.profile, 64);
    return {
      profile: ctx.lab.profile,
      keyFingerprint: ctx.keyFingerprint,
      models: [...ctx.models.values()].map((m) => ({
        id: m.id,
        role: m.role,
        watermarked: m.watermarked,
        description: m.description,
        order: m.ngram.order,
        trainedTokens: m.ngram.info.trainedTokens,
        teacherShare: m.role === 'student-distilled' ? ctx.lab.share : 0,
      })),
      distillation: ctx.lab,
      probePrompts: probes,
    };
  });

  app.post(
    '/ui-session',
    {
      schema: uiSessionSchema,
      // Keyed by address: on loopback that is one bucket for the whole machine.
      config: {
        rateLimit: {
          max: ctx.rateLimits.uiSession,
          timeWindow: 60_000,
          keyGenerator: (r: FastifyRequest) => `ui:${r.ip}`,
        },
      },
    },
    async (request) => {
      const { token, expiresAt } = app.auth.issueUiSession(request, ctx.servesLoopback, ctx.port());
      return { token, expiresAt, expiresIn: Math.round((expiresAt - Date.now()) / 1000) };
    },
  );

  await app.register(scoringRoutes, { ctx });
};

/**
 * Detection, verification and jobs: an open detector that reports per-token scores lets anyone learn the green
 * lists, so every route here needs the bearer token and is rate-limited per identity.
 */
const scoringRoutes: FastifyPluginAsyncTypebox<{ ctx: ApiContext }> = async (app, { ctx }) => {
  app.addHook('preParsing', app.requireBearer);
  const budget = new TokenBudget(ctx.rateLimits.detectTokens);

  app.post(
    '/detect',
    { schema: detectSchema(ctx.limits), config: perMinute(ctx.rateLimits.detect) },
    async (request, reply) => {
      const { text, tokens, prompt, dedup } = request.body;
      if ((text === undefined) === (tokens === undefined)) {
        throw invalid(
          'Give exactly one of "text" or "tokens".',
          text === undefined ? 'text' : 'tokens',
          'invalid_value',
        );
      }
      if (Array.isArray(prompt)) checkIds(ctx, prompt, 'prompt');
      if (tokens !== undefined) checkIds(ctx, tokens, 'tokens');
      const identity: Identity = request.identity ?? 'api-token';
      const explain = canExplain(identity);
      // Token ids: their count is known before scoring; a text's is only known once tokenized.
      budget.check(identity, tokens?.length ?? 1);
      const result = await ctx.offload.run<DetectOutcome>(
        { kind: 'detect', text, tokens, prompt, dedup, explain },
        { signal: clientSignal(reply) },
      );
      budget.charge(identity, result.tokens);
      return {
        ...result,
        scope: explain ? ('explain' as const) : ('aggregate' as const),
        ...(dedup === 'none' ? { pValueNote: DEDUP_NONE_NOTE } : {}),
      };
    },
  );

  app.post(
    '/verify',
    { schema: verifySchema(ctx.limits), config: perMinute(ctx.rateLimits.verify) },
    async (request, reply) => {
      const body = request.body;
      // Every text of the request tokenized in one go (in a worker when it is long).
      const texts: string[] = [];
      for (const sample of body.samples) {
        if (typeof sample.prompt === 'string') texts.push(sample.prompt);
        if (typeof sample.output === 'string') texts.push(sample.output);
      }
      const encoded = await ctx.encodeTexts(texts, clientSignal(reply));
      let next = 0;
      let total = 0;
      const samples = body.samples.map((sample, i) => {
        const prompt =
          typeof sample.prompt === 'string'
            ? encoded[next++]
            : checkIds(ctx, sample.prompt, `samples[${i}].prompt`);
        const output =
          typeof sample.output === 'string'
            ? encoded[next++]
            : checkIds(ctx, sample.output, `samples[${i}].output`);
        total += prompt.length + output.length;
        return { prompt, output };
      });
      if (total > ctx.limits.maxVerifyTokens) {
        throw invalid(
          `The samples hold ${total} tokens; one job scores at most ${ctx.limits.maxVerifyTokens}.`,
          'samples',
          'request_too_large',
        );
      }
      if (samples.every((s) => s.output.length === 0))
        throw invalid('Every output is empty.', 'samples', 'invalid_value');
      const input: RadioactivityInput = {
        model: body.model ?? null,
        samples,
        ...(body.maxScored === undefined ? {} : { maxScored: body.maxScored }),
        ...(body.trajectoryPointsPerDecade === undefined
          ? {}
          : { trajectoryPointsPerDecade: body.trajectoryPointsPerDecade }),
        ...(body.controls === true ? { controls: true } : {}),
      };
      const job = ctx.jobs.create('radioactivity', input);
      ctx.runner.enqueue(job.id);
      reply.code(202).header('location', `/api/jobs/${job.id}`);
      return jobView(job as JobRecord<RadioactivityInput, VerificationResult>);
    },
  );

  app.get('/jobs/:id', { schema: jobSchema, config: perMinute(ctx.rateLimits.jobs) }, async (request) => {
    const job = ctx.jobs.get<RadioactivityInput, VerificationResult>(request.params.id);
    if (job === null)
      throw new ApiError(404, `No job with id ${request.params.id.slice(0, 100)}.`, {
        param: 'id',
        code: 'job_not_found',
      });
    return jobView(job);
  });
};

/** Why the plain twin serves no logprobs by default (also in /api/info and docs/demo-server.md). */
export const PLAIN_LOGPROBS_REASON =
  'tracemark-teacher-plain is the watermarked teacher without its bias: with logprobs from both, two requests ' +
  'show the bias δ on every green token of a context, i.e. the green list. Off unless TRACEMARK_PLAIN_LOGPROBS=1.';

/** What /api/detect says of its p-value with dedup "none". */
export const DEDUP_NONE_NOTE =
  'dedup "none" counts repeated (context, token) pairs again: on text that repeats itself the scores are not ' +
  'independent, so this p-value is not valid there (use "pair", the default).';

function checkIds(ctx: Pick<ServerContext, 'vocabSize'>, ids: number[], param: string): number[] {
  for (const id of ids) {
    if (id >= ctx.vocabSize) {
      throw invalid(
        `Token id ${id} in ${param} is outside the vocabulary (o200k_base, ${ctx.vocabSize} ids).`,
        param,
        'invalid_value',
      );
    }
  }
  return ids;
}

/** The job handler: the verifier's radioactivity test (and with `controls`, the control keys) in a worker. */
export function radioactivityJob(ctx: Pick<ServerContext, 'offload'>) {
  // No time limit: a job is accepted once and runs to its end, one at a time.
  return (raw: unknown): Promise<VerificationResult> =>
    ctx.offload.run(
      { kind: 'radioactivity', input: raw as RadioactivityInput },
      { timeoutMs: null, bounded: false },
    );
}
