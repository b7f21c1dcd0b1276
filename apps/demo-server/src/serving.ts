import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply } from 'fastify';
import type { ServerContext } from './context';
import { ApiError, invalid } from './errors';
import { ChoiceRun, type FinishReason, runChoices, type ServedModel, type TokenLogprob } from './generate';
import { chatSchema, completionSchema, modelSchema, modelsSchema } from './schemas';

/** Default `max_tokens`: OpenAI's 16 for completions; for chat (no model limit here) a page of text. */
export const DEFAULT_COMPLETION_TOKENS = 16;
export const DEFAULT_CHAT_TOKENS = 256;

interface SamplingBody {
  model: string;
  temperature?: number | null;
  top_p?: number | null;
  n?: number | null;
  stop?: string | string[] | null;
  seed?: number | null;
  max_tokens?: number | null;
  stream?: boolean | null;
  stream_options?: { include_usage?: boolean } | null;
  user?: string;
  presence_penalty?: number | null;
  frequency_penalty?: number | null;
  logit_bias?: Record<string, number> | null;
}

interface CompletionBody extends SamplingBody {
  prompt: string | string[] | number[] | number[][];
  logprobs?: number | null;
  echo?: boolean | null;
  suffix?: string | null;
  best_of?: number | null;
}

type ContentPart = { type: 'text'; text: string };

interface ChatBody extends SamplingBody {
  messages: { role: string; content?: string | ContentPart[] | null; name?: string }[];
  max_completion_tokens?: number | null;
  logprobs?: boolean | null;
  top_logprobs?: number | null;
}

/** What both endpoints resolve a request to. */
interface Plan {
  model: ServedModel;
  prompts: number[][];
  n: number;
  maxTokens: number;
  temperature: number;
  topP: number;
  stop: string[];
  seed: string | undefined;
  logprobs: number | null;
  stream: boolean;
  includeUsage: boolean;
}

const newId = (prefix: string) => `${prefix}-${randomBytes(15).toString('base64url')}`;

function resolveModel(ctx: ServerContext, id: string): ServedModel {
  const model = ctx.models.get(id);
  if (model === undefined) {
    throw new ApiError(
      404,
      `The model \`${id.slice(0, 100)}\` does not exist. Available models: ${[...ctx.models.keys()].join(', ')}.`,
      { param: 'model', code: 'model_not_found' },
    );
  }
  return model;
}

function commonPlan(
  ctx: ServerContext,
  body: SamplingBody,
  maxTokensParam: string,
  maxTokens: number | null | undefined,
  defaultMax: number,
) {
  const limits = ctx.limits;
  const model = resolveModel(ctx, body.model);
  const max = maxTokens ?? defaultMax;
  if (max > limits.maxTokens) {
    throw invalid(
      `${maxTokensParam} is too large: ${max}. This server generates at most ${limits.maxTokens} tokens per choice.`,
      maxTokensParam,
      'invalid_value',
    );
  }
  if (body.stream_options != null && body.stream !== true) {
    throw invalid(
      "The 'stream_options' parameter is only allowed when 'stream' is enabled.",
      'stream_options',
    );
  }
  for (const param of ['presence_penalty', 'frequency_penalty'] as const) {
    if ((body[param] ?? 0) !== 0)
      throw invalid(
        `${param} is not supported by this server; leave it at 0.`,
        param,
        'unsupported_parameter',
      );
  }
  if (body.logit_bias != null && Object.keys(body.logit_bias).length > 0) {
    throw invalid('logit_bias is not supported by this server.', 'logit_bias', 'unsupported_parameter');
  }
  const stop = body.stop == null ? [] : typeof body.stop === 'string' ? [body.stop] : body.stop;
  let temperature = body.temperature ?? 1;
  const topP = body.top_p ?? 1;
  // top_p = 0 keeps only the most likely token: greedy decoding.
  if (topP === 0) temperature = 0;
  return {
    model,
    n: body.n ?? 1,
    maxTokens: max,
    temperature,
    topP: topP === 0 ? 1 : topP,
    stop,
    seed: body.seed == null ? undefined : String(body.seed),
    stream: body.stream === true,
    includeUsage: body.stream === true && body.stream_options?.include_usage === true,
  };
}

function checkBudget(ctx: ServerContext, plan: Plan): void {
  const requested = plan.prompts.length * plan.n * plan.maxTokens;
  if (requested > ctx.limits.maxRequestTokens) {
    throw invalid(
      `This request asks for ${requested} tokens (prompts × n × max_tokens); the limit is ${ctx.limits.maxRequestTokens}.`,
      'n',
      'request_too_large',
    );
  }
}

function validIds(ctx: ServerContext, ids: number[], param: string): number[] {
  const vocab = ctx.vocabSize;
  for (const id of ids) {
    if (id >= vocab)
      throw invalid(
        `Token id ${id} in ${param} is outside the vocabulary (o200k_base, ${vocab} ids).`,
        param,
        'invalid_value',
      );
  }
  return ids;
}

function completionPlan(ctx: ServerContext, body: CompletionBody): Plan {
  if (body.echo === true)
    throw invalid('echo is not supported by this server.', 'echo', 'unsupported_parameter');
  if (body.suffix != null && body.suffix !== '')
    throw invalid('suffix is not supported by this server.', 'suffix', 'unsupported_parameter');
  const common = commonPlan(ctx, body, 'max_tokens', body.max_tokens, DEFAULT_COMPLETION_TOKENS);
  if (body.best_of != null && body.best_of !== common.n) {
    throw invalid(
      'best_of is not supported by this server (leave it unset or equal to n).',
      'best_of',
      'unsupported_parameter',
    );
  }
  const prompt = body.prompt;
  let prompts: number[][];
  if (typeof prompt === 'string') prompts = [ctx.encode(prompt)];
  else if (prompt.length > 0 && typeof prompt[0] === 'string')
    prompts = (prompt as string[]).map((p) => ctx.encode(p));
  else if (prompt.length > 0 && typeof prompt[0] === 'number')
    prompts = [validIds(ctx, prompt as number[], 'prompt')];
  else prompts = (prompt as number[][]).map((ids, i) => validIds(ctx, ids, `prompt[${i}]`));
  const plan: Plan = { ...common, prompts, logprobs: body.logprobs ?? null };
  checkBudget(ctx, plan);
  return plan;
}

/** The chat prompt: the messages' text, in order, separated by blank lines, for the n-gram model to continue. */
export function chatPromptText(messages: ChatBody['messages']): string {
  return messages
    .map((m) => (typeof m.content === 'string' ? m.content : (m.content ?? []).map((p) => p.text).join('')))
    .filter((text) => text.length > 0)
    .join('\n\n');
}

function chatPlan(ctx: ServerContext, body: ChatBody): Plan {
  const param = body.max_completion_tokens != null ? 'max_completion_tokens' : 'max_tokens';
  const common = commonPlan(
    ctx,
    body,
    param,
    body.max_completion_tokens ?? body.max_tokens,
    DEFAULT_CHAT_TOKENS,
  );
  if (body.top_logprobs != null && body.logprobs !== true) {
    throw invalid('top_logprobs needs logprobs set to true.', 'top_logprobs');
  }
  const plan: Plan = {
    ...common,
    prompts: [ctx.encode(chatPromptText(body.messages))],
    logprobs: body.logprobs === true ? (body.top_logprobs ?? 0) : null,
  };
  checkBudget(ctx, plan);
  return plan;
}

function makeChoices(ctx: ServerContext, plan: Plan): ChoiceRun[] {
  const logits = new Float32Array(ctx.vocabSize);
  const runs: ChoiceRun[] = [];
  plan.prompts.forEach((prompt, p) => {
    for (let j = 0; j < plan.n; j++) {
      const index = p * plan.n + j;
      runs.push(
        new ChoiceRun(
          {
            model: plan.model,
            prompt,
            maxTokens: plan.maxTokens,
            temperature: plan.temperature,
            topP: plan.topP,
            stop: plan.stop,
            // Without a seed, each choice draws fresh randomness; with one, the same request gives the same text.
            seed: plan.seed === undefined ? undefined : `${plan.seed}/${index}`,
            logprobs: plan.logprobs,
            bytes: ctx.bytes,
          },
          logits,
        ),
      );
    }
  });
  return runs;
}

function usageOf(plan: Plan, runs: ChoiceRun[]) {
  const prompt = plan.prompts.reduce((n, p) => n + p.length, 0);
  const completion = runs.reduce((n, r) => n + r.completionTokens, 0);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

function chatLogprobs(ctx: ServerContext, entries: TokenLogprob[]) {
  const item = (id: number, logprob: number) => ({
    token: ctx.bytes.piece(id),
    logprob,
    bytes: Array.from(ctx.bytes.of(id)),
  });
  return {
    content: entries.map((e) => ({
      ...item(e.id, e.logprob),
      top_logprobs: e.top.map((t) => item(t.id, t.logprob)),
    })),
    refusal: null,
  };
}

function completionLogprobs(ctx: ServerContext, entries: TokenLogprob[]) {
  return {
    tokens: entries.map((e) => ctx.bytes.piece(e.id)),
    token_logprobs: entries.map((e) => e.logprob),
    top_logprobs: entries.map((e) =>
      Object.fromEntries(e.top.map((t) => [ctx.bytes.piece(t.id), t.logprob])),
    ),
    text_offset: entries.map((e) => e.textStart),
  };
}

/** Whether the response is gone (client closed the connection) before it was finished. */
function clientGone(reply: FastifyReply): boolean {
  return reply.raw.destroyed || (reply.raw.writableEnded === false && reply.raw.socket?.destroyed === true);
}

type Kind = 'chat' | 'completion';

async function respond(ctx: ServerContext, reply: FastifyReply, kind: Kind, plan: Plan) {
  const runs = makeChoices(ctx, plan);
  const id = newId(kind === 'chat' ? 'chatcmpl' : 'cmpl');
  const created = Math.floor(Date.now() / 1000);
  const head = {
    id,
    object: kind === 'chat' ? 'chat.completion' : 'text_completion',
    created,
    model: plan.model.id,
    system_fingerprint: ctx.systemFingerprint,
  };
  if (!plan.stream) {
    const finished = await runChoices(runs, {
      aborted: () => clientGone(reply) || ctx.shutdown.pastDeadline(),
    });
    if (!finished) {
      if (clientGone(reply)) return reply;
      throw new ApiError(503, 'The server is shutting down; the request was not finished.', {
        code: 'server_shutting_down',
      });
    }
    const choices = runs.map((run, index) => {
      const { text, logprobs } = run.take();
      const finish = run.finishReason as FinishReason;
      if (kind === 'chat') {
        return {
          index,
          message: { role: 'assistant', content: text, refusal: null },
          logprobs: plan.logprobs === null ? null : chatLogprobs(ctx, logprobs),
          finish_reason: finish,
        };
      }
      return {
        index,
        text,
        logprobs: plan.logprobs === null ? null : completionLogprobs(ctx, logprobs),
        finish_reason: finish,
      };
    });
    return reply.send({ ...head, choices, usage: usageOf(plan, runs) });
  }

  const chunkObject = kind === 'chat' ? 'chat.completion.chunk' : 'text_completion';
  const chunk = (choices: unknown[]) =>
    `data: ${JSON.stringify({ ...head, object: chunkObject, choices, ...(plan.includeUsage ? { usage: null } : {}) })}\n\n`;
  const sent = new Set<number>();
  const delta = (index: number, run: ChoiceRun): string | null => {
    const { text, logprobs } = run.take();
    const lp = plan.logprobs === null || logprobs.length === 0 ? null : logprobs;
    const done = run.done && !sent.has(index);
    if (text.length === 0 && lp === null && !done) return null;
    if (done) sent.add(index);
    if (kind === 'chat') {
      return chunk([
        {
          index,
          delta: text.length > 0 || !done ? { content: text } : {},
          logprobs: lp === null ? null : chatLogprobs(ctx, lp),
          finish_reason: done ? run.finishReason : null,
        },
      ]);
    }
    return chunk([
      {
        index,
        text,
        logprobs: lp === null ? null : completionLogprobs(ctx, lp),
        finish_reason: done ? run.finishReason : null,
      },
    ]);
  };

  async function* events(): AsyncGenerator<string> {
    // Counted from its first read: a stream the client dropped before reading it never starts.
    const release = ctx.shutdown.track();
    let completed = false;
    try {
      if (kind === 'chat') {
        for (let index = 0; index < runs.length; index++) {
          yield chunk([
            {
              index,
              delta: { role: 'assistant', content: '', refusal: null },
              logprobs: null,
              finish_reason: null,
            },
          ]);
        }
      }
      let lastYield = performance.now();
      while (runs.some((run) => !run.done)) {
        if (clientGone(reply)) return;
        if (ctx.shutdown.pastDeadline()) {
          const error = {
            message: 'The server is shutting down; the stream was ended early.',
            type: 'server_error',
            param: null,
            code: 'server_shutting_down',
          };
          yield `data: ${JSON.stringify({ error })}\n\n`;
          yield 'data: [DONE]\n\n';
          completed = true;
          return;
        }
        for (const run of runs) run.step();
        for (let index = 0; index < runs.length; index++) {
          const event = delta(index, runs[index]);
          if (event !== null) yield event;
        }
        // Let the socket write and other requests run: each round is a few milliseconds of CPU.
        if (performance.now() - lastYield > 4) {
          await new Promise((resolve) => setImmediate(resolve));
          lastYield = performance.now();
        }
      }
      // Choices that were done before any step (max_tokens 0) still owe their finishing chunk.
      for (let index = 0; index < runs.length; index++) {
        const event = delta(index, runs[index]);
        if (event !== null) yield event;
      }
      if (plan.includeUsage) {
        yield `data: ${JSON.stringify({ ...head, object: chunkObject, choices: [], usage: usageOf(plan, runs) })}\n\n`;
      }
      yield 'data: [DONE]\n\n';
      completed = true;
    } finally {
      release();
      // A stream left early (client gone): close the connection rather than leave a response that never ends.
      if (!completed) setImmediate(() => reply.raw.destroy());
    }
  }

  reply
    .code(200)
    .header('content-type', 'text/event-stream; charset=utf-8')
    .header('cache-control', 'no-cache')
    .header('x-accel-buffering', 'no');
  return reply.send(Readable.from(events(), { objectMode: false }));
}

export function registerServing(app: FastifyInstance, ctx: ServerContext): void {
  const guard = ctx.servingGuard;
  app.get('/v1/models', { schema: modelsSchema, preParsing: guard }, async () => ({
    object: 'list',
    data: [...ctx.models.values()].map((m) => ({
      id: m.id,
      object: 'model',
      created: m.created,
      owned_by: 'tracemark',
    })),
  }));
  app.get<{ Params: { model: string } }>(
    '/v1/models/:model',
    { schema: modelSchema, preParsing: guard },
    async (request) => {
      const m = resolveModel(ctx, request.params.model);
      return { id: m.id, object: 'model', created: m.created, owned_by: 'tracemark' };
    },
  );
  app.post<{ Body: CompletionBody }>(
    '/v1/completions',
    { schema: completionSchema(ctx.limits), preParsing: guard },
    async (request, reply) => respond(ctx, reply, 'completion', completionPlan(ctx, request.body)),
  );
  app.post<{ Body: ChatBody }>(
    '/v1/chat/completions',
    { schema: chatSchema(ctx.limits), preParsing: guard },
    async (request, reply) => respond(ctx, reply, 'chat', chatPlan(ctx, request.body)),
  );
}
