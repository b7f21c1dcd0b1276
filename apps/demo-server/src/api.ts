import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { probePrompts } from '@tracemark/lab';
import {
  type DetectionResult,
  detectText,
  detectTokens,
  type RadioactivityResult,
  radioactivityTest,
  VerifierError,
} from '@tracemark/verifier';
import { WatermarkError } from '@tracemark/watermark';
import type { FastifyRequest } from 'fastify';
import type { ServerContext } from './context';
import { ApiError, invalid } from './errors';
import type { JobRecord } from './jobs';
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

/** What the detection and verification routes need of the server. */
export type ApiContext = Pick<
  ServerContext,
  | 'models'
  | 'vocabSize'
  | 'tokenizer'
  | 'bytes'
  | 'encode'
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
>;

/** A radioactivity job's input as stored with the job: the samples as token ids. */
export interface RadioactivityInput {
  model: string | null;
  samples: { prompt: number[]; output: number[] }[];
  maxScored?: number;
  trajectoryPointsPerDecade?: number;
}

/** Verifier and watermark errors are about the input: 400 with their (secret-free) message. */
export function clientError(error: unknown): ApiError | null {
  if (error instanceof ApiError) return error;
  if (error instanceof VerifierError || error instanceof WatermarkError) {
    return invalid(error.message, null, error.code.replace(/^E_/, '').toLowerCase());
  }
  return null;
}

function jobView(job: JobRecord<RadioactivityInput, RadioactivityResult>): JobView {
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

/** The routes under `/api`: open ones here, the ones that score text in `scoringRoutes`. */
export const apiRoutes: FastifyPluginAsyncTypebox<{ ctx: ApiContext }> = async (app, { ctx }) => {
  app.get('/health', { schema: healthSchema }, async () => ({
    status: ctx.shutdown.closing ? 'closing' : 'ok',
    models: [...ctx.models.keys()],
  }));

  app.get('/info', { schema: infoSchema }, async () => ({
    keyFingerprint: ctx.keyFingerprint,
    spec: ctx.scheme.spec,
    labProfile: ctx.lab.profile,
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

  app.post(
    '/detect',
    { schema: detectSchema(ctx.limits), config: perMinute(ctx.rateLimits.detect) },
    async (request) => {
      const { text, tokens, prompt, dedup } = request.body;
      if ((text === undefined) === (tokens === undefined)) {
        throw invalid(
          'Give exactly one of "text" or "tokens".',
          text === undefined ? 'text' : 'tokens',
          'invalid_value',
        );
      }
      if (Array.isArray(prompt)) checkIds(ctx, prompt, 'prompt');
      let result: DetectionResult;
      let pieces: (entry: DetectionResult['perToken'][number]) => string;
      try {
        if (text !== undefined) {
          result = detectText(text, { scheme: ctx.scheme, tokenizer: ctx.tokenizer, prompt, dedup });
          pieces = (entry) => text.slice(entry.start, entry.end);
        } else {
          const ids = checkIds(ctx, tokens!, 'tokens');
          // Offsets into the concatenated token texts, so that a client can highlight the decoded text.
          const starts: number[] = [];
          const ends: number[] = [];
          const texts = ids.map((id) => ctx.bytes.piece(id));
          let at = 0;
          for (const piece of texts) {
            starts.push(at);
            at += piece.length;
            ends.push(at);
          }
          if (ids.length <= ctx.scheme.contextWidth) {
            throw invalid(
              `The token list needs more than ${ctx.scheme.contextWidth} token(s) to be scored.`,
              'tokens',
              'too_short',
            );
          }
          result = detectTokens(ids, {
            scheme: ctx.scheme,
            prompt: typeof prompt === 'string' ? ctx.encode(prompt) : prompt,
            dedup,
            offsets: { starts, ends },
          });
          pieces = (entry) => texts[entry.index];
        }
      } catch (error) {
        throw clientError(error) ?? error;
      }
      return { ...result, perToken: result.perToken.map((entry) => ({ ...entry, text: pieces(entry) })) };
    },
  );

  app.post(
    '/verify',
    { schema: verifySchema(ctx.limits), config: perMinute(ctx.rateLimits.verify) },
    async (request, reply) => {
      const body = request.body;
      let total = 0;
      const samples = body.samples.map((sample, i) => {
        const prompt =
          typeof sample.prompt === 'string'
            ? ctx.encode(sample.prompt)
            : checkIds(ctx, sample.prompt, `samples[${i}].prompt`);
        const output =
          typeof sample.output === 'string'
            ? ctx.encode(sample.output)
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
      };
      const job = ctx.jobs.create('radioactivity', input);
      ctx.runner.enqueue(job.id);
      reply.code(202).header('location', `/api/jobs/${job.id}`);
      return jobView(job as JobRecord<RadioactivityInput, RadioactivityResult>);
    },
  );

  app.get('/jobs/:id', { schema: jobSchema, config: perMinute(ctx.rateLimits.jobs) }, async (request) => {
    const job = ctx.jobs.get<RadioactivityInput, RadioactivityResult>(request.params.id);
    if (job === null)
      throw new ApiError(404, `No job with id ${request.params.id.slice(0, 100)}.`, {
        param: 'id',
        code: 'job_not_found',
      });
    return jobView(job);
  });
};

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

/** The job handler: the verifier's closed-model radioactivity test with the teacher's scheme. */
export function radioactivityJob(ctx: Pick<ServerContext, 'scheme'>) {
  return (raw: unknown): RadioactivityResult => {
    const input = raw as RadioactivityInput;
    return radioactivityTest(input.samples, {
      scheme: ctx.scheme,
      ...(input.maxScored === undefined ? {} : { maxScored: input.maxScored }),
      ...(input.trajectoryPointsPerDecade === undefined
        ? {}
        : { trajectoryPointsPerDecade: input.trajectoryPointsPerDecade }),
    });
  };
}
