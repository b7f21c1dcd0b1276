import { randomBytes } from 'node:crypto';
import { Readable } from 'node:stream';
import type { FastifyPluginAsyncTypebox } from '@fastify/type-provider-typebox';
import { checkAccountId } from '@tracemark/watermark';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ServerContext } from './context';
import { ApiError, invalid } from './errors';
import {
  ChoiceRun,
  type FinishReason,
  runChoices,
  type ServedModel,
  schemeForAccount,
  type TokenLogprob,
} from './generate';
import { clientSignal } from './offload';
import { type PromptReading, readPrompts } from './reading';
import {
  type ChatBody,
  type CompletionBody,
  chatSchema,
  completionSchema,
  modelSchema,
  modelsSchema,
  type SamplingBody,
} from './schemas';

/** Default `max_tokens`: OpenAI's 16 for completions; for chat (no model limit here) a page of text. */
export const DEFAULT_COMPLETION_TOKENS = 16;
export const DEFAULT_CHAT_TOKENS = 256;

/** What the serving routes need of the server. */
export type ServingContext = Pick<
  ServerContext,
  | 'models'
  | 'vocabSize'
  | 'encodeTexts'
  | 'bytes'
  | 'limits'
  | 'systemFingerprint'
  | 'shutdown'
  | 'servesLoopback'
  | 'plainLogprobs'
  | 'accountLayer'
>;

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
  /** Reading mode (/v1/completions `echo`): the prompts are scored, nothing is generated. */
  echo: boolean;
  /** With `echo`: add `token_ids` and `top_token_ids` (the `return_token_ids` extension). */
  returnTokenIds: boolean;
  /** The account the teacher's output embeds (account layer): the key's, else `user`; undefined: none. */
  account: string | undefined;
}

/**
 * The account a request's watermark carries beside the organisation layer: the account configured for the bearer
 * token it authenticated with, else its `user` field, else none. `user` is checked as an account id (1 to 256
 * characters, no NUL or line breaks) whenever the account layer is on, even when the key's account wins; with
 * the layer off it is ignored, as before.
 */
export function requestAccount(
  ctx: Pick<ServingContext, 'accountLayer'>,
  user: string | undefined,
  keyAccount: string | undefined,
): string | undefined {
  if (!ctx.accountLayer) return undefined;
  if (user !== undefined) {
    try {
      checkAccountId(user);
    } catch {
      throw invalid(
        "Invalid 'user': the account id must be 1 to 256 characters without NUL or line breaks.",
        'user',
        'invalid_value',
      );
    }
  }
  return keyAccount ?? user;
}

const newId = (prefix: string) => `${prefix}-${randomBytes(15).toString('base64url')}`;

function resolveModel(ctx: ServingContext, id: string): ServedModel {
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
  ctx: ServingContext,
  body: SamplingBody,
  maxTokensParam: string,
  maxTokens: number | null | undefined,
  defaultMax: number,
  keyAccount: string | undefined,
) {
  const limits = ctx.limits;
  const account = requestAccount(ctx, body.user, keyAccount);
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
    account,
  };
}

function checkBudget(ctx: ServingContext, plan: Plan): void {
  const requested = plan.prompts.length * plan.n * plan.maxTokens;
  if (requested > ctx.limits.maxRequestTokens) {
    throw invalid(
      `This request asks for ${requested} tokens (prompts × n × max_tokens); the limit is ${ctx.limits.maxRequestTokens}.`,
      'n',
      'request_too_large',
    );
  }
}

function validIds(ctx: ServingContext, ids: number[], param: string): number[] {
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

type PromptList = Exclude<CompletionBody['prompt'], string>;

// The schema has checked every element: the first one tells which of the array forms a prompt is.
const isTexts = (prompt: PromptList): prompt is string[] =>
  prompt.length > 0 && typeof prompt[0] === 'string';
const isIds = (prompt: PromptList): prompt is number[] => prompt.length > 0 && typeof prompt[0] === 'number';

/**
 * Logprobs of the plain twin beside the watermarked teacher's show the bias δ on every green token, so they are
 * off unless the operator turns them on (TRACEMARK_PLAIN_LOGPROBS=1).
 */
function checkLogprobs(ctx: ServingContext, plan: Plan, param: string): void {
  if (plan.logprobs !== null && plan.model.role === 'teacher-plain' && !ctx.plainLogprobs) {
    throw invalid(
      `${plan.model.id} returns no logprobs on this server: beside the watermarked teacher's they would reveal its green lists (see /api/info).`,
      param,
      'logprobs_disabled',
    );
  }
  // Echoed logprobs are the model's own distribution: the teacher's, without its bias, are the plain twin's.
  if (plan.echo && plan.logprobs !== null && plan.model.role === 'teacher' && !ctx.plainLogprobs) {
    throw invalid(
      `${plan.model.id} returns no echoed logprobs on this server: its unwatermarked distribution beside its watermarked logprobs would reveal its green lists (see /api/info).`,
      param,
      'logprobs_disabled',
    );
  }
}

/** The reading mode's limit: prompt tokens scored with `echo`, over all the request's prompts. */
function checkEchoLength(ctx: ServingContext, prompts: number[][]): void {
  const total = prompts.reduce((n, p) => n + p.length, 0);
  if (total > ctx.limits.maxEchoTokens) {
    throw invalid(
      `This request echoes ${total} prompt tokens; this server reads at most ${ctx.limits.maxEchoTokens} per request.`,
      'prompt',
      'context_length_exceeded',
    );
  }
}

async function completionPlan(
  ctx: ServingContext,
  body: CompletionBody,
  signal: AbortSignal,
  keyAccount: string | undefined,
): Promise<Plan> {
  const echo = body.echo === true;
  if (body.suffix != null && body.suffix !== '')
    throw invalid('suffix is not supported by this server.', 'suffix', 'unsupported_parameter');
  // Reading mode generates nothing: an echo request without max_tokens reads the prompt.
  const maxTokens = echo ? (body.max_tokens ?? 0) : body.max_tokens;
  const common = commonPlan(ctx, body, 'max_tokens', maxTokens, DEFAULT_COMPLETION_TOKENS, keyAccount);
  if (echo && common.maxTokens > 0) {
    throw invalid(
      'echo is supported with max_tokens 0 only (reading the prompt); this server does not generate after an echoed prompt.',
      'max_tokens',
      'unsupported_parameter',
    );
  }
  if (echo && common.stream) {
    throw invalid('echo is not supported with stream on this server.', 'stream', 'unsupported_parameter');
  }
  if (body.return_token_ids === true && !echo) {
    throw invalid('return_token_ids needs echo set to true.', 'return_token_ids', 'unsupported_parameter');
  }
  if (body.best_of != null && body.best_of !== common.n) {
    throw invalid(
      'best_of is not supported by this server (leave it unset or equal to n).',
      'best_of',
      'unsupported_parameter',
    );
  }
  const prompt = body.prompt;
  let prompts: number[][];
  if (typeof prompt === 'string') prompts = await ctx.encodeTexts([prompt], signal);
  else if (isTexts(prompt)) prompts = await ctx.encodeTexts(prompt, signal);
  else if (isIds(prompt)) prompts = [validIds(ctx, prompt, 'prompt')];
  else prompts = prompt.map((ids, i) => validIds(ctx, ids, `prompt[${i}]`));
  if (echo) checkEchoLength(ctx, prompts);
  const plan: Plan = {
    ...common,
    prompts,
    logprobs: body.logprobs ?? null,
    echo,
    returnTokenIds: body.return_token_ids === true,
  };
  checkLogprobs(ctx, plan, 'logprobs');
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

async function chatPlan(
  ctx: ServingContext,
  body: ChatBody,
  signal: AbortSignal,
  keyAccount: string | undefined,
): Promise<Plan> {
  const param = body.max_completion_tokens != null ? 'max_completion_tokens' : 'max_tokens';
  const common = commonPlan(
    ctx,
    body,
    param,
    body.max_completion_tokens ?? body.max_tokens,
    DEFAULT_CHAT_TOKENS,
    keyAccount,
  );
  if (body.top_logprobs != null && body.logprobs !== true) {
    throw invalid('top_logprobs needs logprobs set to true.', 'top_logprobs');
  }
  const plan: Plan = {
    ...common,
    prompts: await ctx.encodeTexts([chatPromptText(body.messages)], signal),
    logprobs: body.logprobs === true ? (body.top_logprobs ?? 0) : null,
    echo: false,
    returnTokenIds: false,
  };
  checkLogprobs(ctx, plan, 'logprobs');
  checkBudget(ctx, plan);
  return plan;
}

function makeChoices(ctx: ServingContext, plan: Plan): ChoiceRun[] {
  const logits = new Float32Array(
    plan.model.fullRows === true ? ctx.vocabSize : plan.model.ngram.support.length,
  );
  const runs: ChoiceRun[] = [];
  // One view per request: every choice embeds the request's account.
  const scheme = schemeForAccount(plan.model, plan.account);
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
            scheme,
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

function chatLogprobs(ctx: ServingContext, entries: TokenLogprob[]) {
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

function completionLogprobs(ctx: ServingContext, entries: TokenLogprob[]) {
  return {
    tokens: entries.map((e) => ctx.bytes.piece(e.id)),
    token_logprobs: entries.map((e) => e.logprob),
    top_logprobs: entries.map((e) =>
      Object.fromEntries(e.top.map((t) => [ctx.bytes.piece(t.id), t.logprob])),
    ),
    text_offset: entries.map((e) => e.textStart),
  };
}

/** An echoed prompt's logprobs in the legacy shape; of two top ids with the same string, the likelier stays. */
function echoLogprobs(ctx: ServingContext, reading: PromptReading, withIds: boolean) {
  const topLogprobs = reading.top.map((entries) => {
    if (entries === null) return null;
    const seen = new Set<string>();
    const kept: [string, number][] = [];
    for (const t of entries) {
      const piece = ctx.bytes.piece(t.id);
      if (seen.has(piece)) continue;
      seen.add(piece);
      kept.push([piece, t.logprob]);
    }
    return Object.fromEntries(kept);
  });
  return {
    tokens: reading.ids.map((id) => ctx.bytes.piece(id)),
    token_logprobs: reading.logprobs,
    top_logprobs: topLogprobs,
    text_offset: reading.textOffset,
    ...(withIds
      ? {
          token_ids: reading.ids,
          top_token_ids: reading.top.map((entries) => (entries === null ? null : entries.map((t) => t.id))),
        }
      : {}),
  };
}

/** Reading mode: the prompts scored under teacher forcing, returned as the choices' text and logprobs. */
async function respondEcho(ctx: ServingContext, reply: FastifyReply, plan: Plan) {
  const readings = await readPrompts(plan.model.ngram, plan.prompts, plan.logprobs, ctx.bytes, {
    aborted: () => clientGone(reply) || ctx.shutdown.pastDeadline(),
  });
  if (readings === null) {
    if (clientGone(reply)) return reply;
    throw new ApiError(503, 'The server is shutting down; the request was not finished.', {
      code: 'server_shutting_down',
    });
  }
  const choices = readings.flatMap((reading, p) => {
    const logprobs = plan.logprobs === null ? null : echoLogprobs(ctx, reading, plan.returnTokenIds);
    return Array.from({ length: plan.n }, (_, j) => ({
      index: p * plan.n + j,
      text: reading.text,
      logprobs,
      finish_reason: 'length' as const,
    }));
  });
  const promptTokens = plan.prompts.reduce((n, p) => n + p.length, 0);
  return reply.send({
    id: newId('cmpl'),
    object: 'text_completion',
    created: Math.floor(Date.now() / 1000),
    model: plan.model.id,
    system_fingerprint: ctx.systemFingerprint,
    choices,
    usage: { prompt_tokens: promptTokens, completion_tokens: 0, total_tokens: promptTokens },
  });
}

/** Whether the response is gone (client closed the connection) before it was finished. */
function clientGone(reply: FastifyReply): boolean {
  return reply.raw.destroyed || (reply.raw.writableEnded === false && reply.raw.socket?.destroyed === true);
}

type Kind = 'chat' | 'completion';

async function respond(ctx: ServingContext, reply: FastifyReply, kind: Kind, plan: Plan) {
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

/**
 * The OpenAI-compatible routes, registered under `/v1`. Open on loopback, as a local inference server's are;
 * anywhere else they need the bearer token.
 */
export const servingRoutes: FastifyPluginAsyncTypebox<{ ctx: ServingContext }> = async (app, { ctx }) => {
  if (!ctx.servesLoopback) app.addHook('preParsing', app.requireBearer);
  app.get('/models', { schema: modelsSchema }, async () => ({
    object: 'list' as const,
    data: [...ctx.models.values()].map((m) => ({
      id: m.id,
      object: 'model' as const,
      created: m.created,
      owned_by: 'tracemark',
    })),
  }));
  app.get('/models/:model', { schema: modelSchema }, async (request) => {
    const m = resolveModel(ctx, request.params.model);
    return { id: m.id, object: 'model' as const, created: m.created, owned_by: 'tracemark' };
  });
  // The account of the bearer token the request carries: the one it authenticated with off loopback; on loopback,
  // where these routes are open, a valid token that comes along still counts (an invalid one is ignored).
  const keyAccount = (request: FastifyRequest) =>
    app.auth.accountOf(request.identity ?? app.auth.identifyRequest(request));
  app.post('/completions', { schema: completionSchema(ctx.limits) }, async (request, reply) => {
    const plan = await completionPlan(ctx, request.body, clientSignal(reply), keyAccount(request));
    return plan.echo ? respondEcho(ctx, reply, plan) : respond(ctx, reply, 'completion', plan);
  });
  app.post('/chat/completions', { schema: chatSchema(ctx.limits) }, async (request, reply) =>
    respond(ctx, reply, 'chat', await chatPlan(ctx, request.body, clientSignal(reply), keyAccount(request))),
  );
};
