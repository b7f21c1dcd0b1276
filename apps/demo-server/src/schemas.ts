/**
 * Every route's schemas, written once in TypeBox. Each is a plain JSON schema that validates requests (Ajv, no
 * type coercion, unknown fields refused), serialises responses (fast-json-stringify: only the listed fields
 * ever leave the server) and makes the OpenAPI document at /docs; the bodies' TypeScript types are derived from
 * the same schemas (`Static`), and the routes get them through the TypeBox type provider.
 */
import {
  type Static,
  type TObject,
  type TProperties,
  type TSchema,
  type TSchemaOptions,
  type TUnsafe,
  Type,
} from 'typebox';
import type { Limits } from './config';

function describeStatus(code: number): string {
  return (
    {
      400: 'Invalid request',
      401: 'Missing or wrong bearer token',
      403: 'Forbidden',
      404: 'Not found',
      413: 'Request body too large',
      415: 'Unsupported content type',
      429: 'Rate limit exceeded',
      503: 'Shutting down, or busy',
    }[code] ?? 'Error'
  );
}

const Nullable = <T extends TSchema>(schema: T) => Type.Union([schema, Type.Null()]);

/** `{ "type": "string", "enum": [...] }`, typed as the union of its values. */
const StringEnum = <const T extends string[]>(values: readonly [...T], options: TSchemaOptions = {}) =>
  Type.Enum(values, { type: 'string', ...options });

// Response fields that may be null keep the compact `type: [t, "null"]` form they have always had in the
// document and the serialiser; TypeBox's own union would write an anyOf.
const numberOrNull = Type.Unsafe<number | null>({ type: ['number', 'null'] });
const stringOrNull = Type.Unsafe<string | null>({ type: ['string', 'null'] });
// A map of numbers, written without the empty `properties` that TypeBox's Object would add to it.
const numberMap = Type.Unsafe<Record<string, number>>({
  type: 'object',
  additionalProperties: Type.Number(),
});

const tokenIds = (maxItems: number, options: TSchemaOptions = {}) =>
  Type.Array(Type.Integer({ minimum: 0 }), { maxItems, ...options });

/** The OpenAI-style error body of every failure (registered under `$id` "Error" and referenced as `Error#`). */
export const ErrorBody = Type.Object(
  {
    error: Type.Object({
      message: Type.String(),
      type: Type.String(),
      param: stringOrNull,
      code: stringOrNull,
    }),
  },
  { $id: 'Error', description: 'OpenAI-style error body.' },
);
export type ErrorBody = Static<typeof ErrorBody>;

/** The error responses a route documents; their bodies are `Error#`, typed as such for the route's reply. */
function errorResponses(...codes: number[]): Record<number, TUnsafe<ErrorBody>> {
  return Object.fromEntries(
    codes.map((code) => [
      code,
      Type.Unsafe<ErrorBody>({ $ref: 'Error#', description: describeStatus(code) }),
    ]),
  );
}

function samplingProperties(limits: Limits) {
  const stop = Type.String({ minLength: 1, maxLength: 200 });
  return {
    model: Type.String({ minLength: 1, maxLength: 200, description: 'One of the ids from GET /v1/models.' }),
    temperature: Type.Optional(Nullable(Type.Number({ minimum: 0, maximum: 2 }))),
    top_p: Type.Optional(Nullable(Type.Number({ minimum: 0, maximum: 1 }))),
    n: Type.Optional(Nullable(Type.Integer({ minimum: 1, maximum: limits.maxChoices }))),
    stop: Type.Optional(Nullable(Type.Union([stop, Type.Array(stop, { maxItems: 4 })]))),
    seed: Type.Optional(Nullable(Type.Integer())),
    max_tokens: Type.Optional(Nullable(Type.Integer({ minimum: 0 }))),
    stream: Type.Optional(Nullable(Type.Boolean())),
    stream_options: Type.Optional(
      Nullable(
        Type.Object({ include_usage: Type.Optional(Type.Boolean()) }, { additionalProperties: false }),
      ),
    ),
    user: Type.Optional(
      Type.String({
        maxLength: 256,
        description:
          "The account tracemark-teacher's output carries (account layer; 1 to 256 characters, no NUL or line " +
          "breaks). A bearer token's configured account wins over it. See /api/info's accountLayer.",
      }),
    ),
    presence_penalty: Type.Optional(Nullable(Type.Number({ minimum: -2, maximum: 2 }))),
    frequency_penalty: Type.Optional(Nullable(Type.Number({ minimum: -2, maximum: 2 }))),
    logit_bias: Type.Optional(Nullable(numberMap)),
  };
}

/** What both completion endpoints read; the rest of each body is theirs alone. */
export type SamplingBody = Static<TObject<ReturnType<typeof samplingProperties>>>;

const usage = Type.Object({
  prompt_tokens: Type.Integer(),
  completion_tokens: Type.Integer(),
  total_tokens: Type.Integer(),
});

const topLogprob = Type.Object({
  token: Type.String(),
  logprob: Type.Number(),
  bytes: Type.Array(Type.Integer()),
});

const chatLogprobs = Nullable(
  Type.Object({
    content: Type.Optional(
      Type.Array(
        Type.Object({ ...topLogprob.properties, top_logprobs: Type.Optional(Type.Array(topLogprob)) }),
      ),
    ),
    refusal: Type.Optional(Type.Null()),
  }),
);

// With `echo`, the first entry of `token_logprobs`, `top_logprobs` and `top_token_ids` is null (OpenAI's shape).
const completionLogprobs = Nullable(
  Type.Object({
    tokens: Type.Optional(Type.Array(Type.String())),
    token_logprobs: Type.Optional(Type.Array(numberOrNull)),
    top_logprobs: Type.Optional(Type.Array(Nullable(numberMap))),
    text_offset: Type.Optional(Type.Array(Type.Integer())),
    token_ids: Type.Optional(
      Type.Array(Type.Integer(), { description: 'With return_token_ids (tracemark).' }),
    ),
    top_token_ids: Type.Optional(
      Type.Array(Nullable(Type.Array(Type.Integer())), {
        description:
          'With return_token_ids (tracemark): the k most likely ids per position, most likely first.',
      }),
    ),
  }),
);

const streamResponse = (schema: TSchema, what: string) => ({
  200: {
    description: `${what}; with "stream": true, server-sent events ("data: <chunk JSON>" lines, then "data: [DONE]").`,
    content: {
      'application/json': { schema },
      'text/event-stream': { schema: Type.String() },
    },
  },
  ...errorResponses(400, 401, 404, 413, 415, 503),
});

/**
 * The response envelope both completion APIs share; `choice` is what one entry of `choices` carries
 * besides its index and finish reason (all of it required, as OpenAI always sends it, null or not).
 */
function completionResponse(object: string, choice: TProperties) {
  return Type.Object({
    id: Type.String(),
    object: StringEnum([object]),
    created: Type.Integer(),
    model: Type.String(),
    system_fingerprint: Type.Optional(Type.String()),
    choices: Type.Array(
      Type.Object({ index: Type.Integer(), ...choice, finish_reason: StringEnum(['stop', 'length']) }),
    ),
    usage,
  });
}

export function completionBody(limits: Limits) {
  return Type.Object(
    {
      ...samplingProperties(limits),
      prompt: Type.Union(
        [
          Type.String({ maxLength: limits.bodyLimit }),
          Type.Array(Type.String(), { minItems: 1, maxItems: limits.maxPrompts }),
          tokenIds(100_000, { minItems: 1 }),
          Type.Array(tokenIds(100_000, { minItems: 1 }), { minItems: 1, maxItems: limits.maxPrompts }),
        ],
        {
          description:
            'A string, an array of strings, an array of o200k_base token ids, or an array of such arrays.',
        },
      ),
      logprobs: Type.Optional(Nullable(Type.Integer({ minimum: 0, maximum: 5 }))),
      echo: Type.Optional(
        Nullable(
          Type.Boolean({
            description:
              'Reading mode: with max_tokens 0, the prompt is returned as the text with its logprobs under teacher forcing.',
          }),
        ),
      ),
      return_token_ids: Type.Optional(
        Nullable(
          Type.Boolean({
            description: 'tracemark extension: add token_ids and top_token_ids to the echoed logprobs.',
          }),
        ),
      ),
      suffix: Type.Optional(Nullable(Type.String())),
      best_of: Type.Optional(Nullable(Type.Integer({ minimum: 1 }))),
    },
    { additionalProperties: false },
  );
}
export type CompletionBody = Static<ReturnType<typeof completionBody>>;

export function completionSchema(limits: Limits) {
  const response = completionResponse('text_completion', {
    text: Type.String(),
    logprobs: completionLogprobs,
  });
  return {
    summary: 'Create a completion (OpenAI legacy completions)',
    tags: ['serving'],
    body: completionBody(limits),
    response: streamResponse(response, 'The completion'),
  };
}

const textPart = Type.Object(
  { type: StringEnum(['text']), text: Type.String() },
  { additionalProperties: false },
);

export function chatBody(limits: Limits) {
  return Type.Object(
    {
      ...samplingProperties(limits),
      messages: Type.Array(
        Type.Object(
          {
            role: StringEnum(['system', 'developer', 'user', 'assistant']),
            content: Type.Optional(
              Nullable(Type.Union([Type.String(), Type.Array(textPart, { maxItems: 64 })])),
            ),
            name: Type.Optional(Type.String({ maxLength: 256 })),
          },
          { additionalProperties: false },
        ),
        { minItems: 1, maxItems: 256 },
      ),
      max_completion_tokens: Type.Optional(Nullable(Type.Integer({ minimum: 0 }))),
      logprobs: Type.Optional(Nullable(Type.Boolean())),
      top_logprobs: Type.Optional(Nullable(Type.Integer({ minimum: 0, maximum: 20 }))),
      response_format: Type.Optional(
        Nullable(Type.Object({ type: StringEnum(['text']) }, { additionalProperties: false })),
      ),
    },
    { additionalProperties: false },
  );
}
export type ChatBody = Static<ReturnType<typeof chatBody>>;

export function chatSchema(limits: Limits) {
  const response = completionResponse('chat.completion', {
    message: Type.Object({
      role: StringEnum(['assistant']),
      content: Type.String(),
      refusal: Type.Null(),
    }),
    logprobs: chatLogprobs,
  });
  return {
    summary: 'Create a chat completion (OpenAI chat completions)',
    description:
      'The messages are joined into one prompt (their text contents, separated by blank lines) that the n-gram model continues.',
    tags: ['serving'],
    body: chatBody(limits),
    response: streamResponse(response, 'The chat completion'),
  };
}

const model = Type.Object({
  id: Type.String(),
  object: StringEnum(['model']),
  created: Type.Integer(),
  owned_by: Type.String(),
});

export const modelsSchema = {
  summary: 'List the served models',
  tags: ['serving'],
  response: {
    200: Type.Object({ object: StringEnum(['list']), data: Type.Array(model) }),
    ...errorResponses(401),
  },
};

export const modelSchema = {
  summary: 'Retrieve one served model',
  tags: ['serving'],
  params: Type.Object({ model: Type.String({ maxLength: 200 }) }),
  response: { 200: model, ...errorResponses(401, 404) },
};

const nullLaw = Type.Object({
  kind: Type.String(),
  p: Type.Optional(Type.Number()),
  trials: Type.Optional(Type.Integer()),
});

const spec = Type.Object(
  { scheme: Type.String(), vocabSize: Type.Integer() },
  {
    description: "The teacher's scheme spec: public, no secret (pass it to the verifier with your key).",
    additionalProperties: true,
  },
);

const detectionResult = Type.Object({
  scheme: Type.String(),
  spec,
  keyFingerprint: Type.String({ description: "Fingerprint of the scheme's derived key." }),
  masterFingerprint: Type.Optional(Type.String()),
  nullLaw: Type.Optional(nullLaw),
  pValue: Type.Number({
    description:
      'p-value under the null law (may underflow to 0: read log10PValue); exact for the de-duplicated tape, not valid on repeated text with dedup "none" (see pValueNote).',
  }),
  pValueNote: Type.Optional(Type.String()),
  scope: StringEnum(['aggregate', 'explain'], {
    description: 'aggregate: p-value, counts and best window only; explain: per-token scores too.',
  }),
  log10PValue: Type.Number(),
  zScore: Type.Number(),
  tokens: Type.Integer(),
  scored: Type.Integer(),
  scoreSum: Type.Optional(Type.Number()),
  dedup: Type.Optional(Type.String()),
  bestWindow: Type.Optional(
    Nullable(
      Type.Object({
        start: Type.Optional(Type.Integer()),
        end: Type.Optional(Type.Integer()),
        startChar: Type.Optional(Type.Integer()),
        endChar: Type.Optional(Type.Integer()),
        scored: Type.Optional(Type.Integer()),
        scoreSum: Type.Optional(Type.Number()),
        pValue: Type.Optional(Type.Number()),
        log10PValue: Type.Optional(Type.Number()),
        correctedPValue: Type.Optional(Type.Number()),
        correctedLog10PValue: Type.Optional(Type.Number()),
        zScore: Type.Optional(Type.Number()),
        windowsTried: Type.Optional(Type.Integer()),
      }),
    ),
  ),
  perToken: Type.Optional(
    Type.Array(
      Type.Object({
        index: Type.Integer(),
        tokenId: Type.Integer(),
        start: Type.Integer({ description: 'UTF-16 offset of the token in the text.' }),
        end: Type.Integer(),
        text: Type.String(),
        score: numberOrNull,
        counted: Type.Boolean(),
        // Every reason the verifier's type allows (the route's typed reply fails to compile when it adds one).
        reason: Type.Optional(StringEnum(['context', 'duplicate', 'prompt-window', 'eos', 'filtered'])),
      }),
    ),
  ),
});

const bearer = [{ bearerAuth: [] }];

export function detectBody(limits: Limits) {
  return Type.Object(
    {
      text: Type.Optional(Type.String({ minLength: 1, maxLength: limits.maxDetectChars })),
      tokens: Type.Optional(tokenIds(limits.maxDetectTokens, { minItems: 1 })),
      prompt: Type.Optional(
        Type.Union([Type.String({ maxLength: limits.maxDetectChars }), tokenIds(limits.maxDetectTokens)], {
          description: 'The prompt (text or token ids): context windows that occur in it are not scored.',
        }),
      ),
      dedup: Type.Optional(StringEnum(['pair', 'context', 'none'])),
    },
    { additionalProperties: false },
  );
}
export type DetectBody = Static<ReturnType<typeof detectBody>>;

export function detectSchema(limits: Limits) {
  return {
    summary: "Detect the teacher's watermark in a text or a token sequence",
    description:
      'Needs the bearer token and is rate-limited in requests and in scored tokens per minute. Per-token scores (a ' +
      'green-list oracle) only for the explain scope: the explain token or the loopback UI session; the API token ' +
      'gets the aggregates (p-value, counts, best window).',
    tags: ['detection'],
    security: bearer,
    body: detectBody(limits),
    response: { 200: detectionResult, ...errorResponses(400, 401, 413, 415, 429, 503) },
  };
}

const job = Type.Object({
  id: Type.String(),
  object: StringEnum(['tracemark.job']),
  kind: Type.String(),
  state: StringEnum(['queued', 'running', 'succeeded', 'failed']),
  createdAt: Type.Integer(),
  updatedAt: Type.Integer(),
  model: Type.Optional(stringOrNull),
  samples: Type.Optional(Type.Integer()),
  result: Nullable(
    Type.Object(
      {
        scheme: Type.Optional(Type.String()),
        spec: Type.Optional(spec),
        keyFingerprint: Type.Optional(Type.String()),
        masterFingerprint: Type.Optional(Type.String()),
        nullLaw: Type.Optional(nullLaw),
        pValue: Type.Optional(Type.Number()),
        log10PValue: Type.Optional(Type.Number()),
        zScore: Type.Optional(Type.Number()),
        seen: Type.Optional(Type.Integer()),
        scored: Type.Optional(Type.Integer()),
        scoreSum: Type.Optional(Type.Number()),
        skipped: Type.Optional(
          Type.Object({
            context: Type.Optional(Type.Integer()),
            duplicate: Type.Optional(Type.Integer()),
            promptWindow: Type.Optional(Type.Integer()),
            filtered: Type.Optional(Type.Integer()),
          }),
        ),
        samples: Type.Optional(Type.Integer()),
        trajectory: Type.Optional(
          Type.Array(Type.Object({ scored: Type.Integer(), log10PValue: Type.Number() })),
        ),
        controls: Type.Optional(
          Type.Object({
            count: Type.Integer(),
            passed: Type.Boolean(),
            ksStatistic: Type.Number(),
            ksPValue: Type.Number(),
            minPValue: Type.Number(),
            atOrBelowOwner: Type.Integer(),
          }),
        ),
        verdict: Type.Optional(
          Type.Object({
            detected: Type.Boolean(),
            controlsPassed: Type.Boolean(),
            alpha: Type.Number(),
            text: Type.String(),
          }),
        ),
      },
      { description: "The verifier's radioactivity result (Sander et al. 2024, closed-model test)." },
    ),
  ),
  error: Nullable(Type.Object({ message: Type.Optional(Type.String()), code: Type.Optional(stringOrNull) })),
});

/** A job as the API shows it. */
export type JobView = Static<typeof job>;

export function verifyBody(limits: Limits) {
  const ids = tokenIds(limits.maxVerifyTokens);
  return Type.Object(
    {
      model: Type.Optional(
        Type.String({ maxLength: 200, description: 'A label for the suspect (stored with the job).' }),
      ),
      samples: Type.Array(
        Type.Object(
          { prompt: Type.Union([Type.String(), ids]), output: Type.Union([Type.String(), ids]) },
          { additionalProperties: false },
        ),
        { minItems: 1, maxItems: limits.maxVerifySamples },
      ),
      maxScored: Type.Optional(Type.Integer({ minimum: 1 })),
      trajectoryPointsPerDecade: Type.Optional(Type.Integer({ minimum: 1, maximum: 32 })),
      controls: Type.Optional(
        Type.Boolean({
          description:
            "Also test 50 never-used control keys (the verifier's investigate()): their p-values must look uniform (Kolmogorov-Smirnov).",
        }),
      ),
    },
    { additionalProperties: false },
  );
}
export type VerifyBody = Static<ReturnType<typeof verifyBody>>;

export function verifySchema(limits: Limits) {
  return {
    summary: 'Start a radioactivity test of a suspect model from its outputs',
    description:
      "The suspect's outputs with the prompts that produced them (text or token ids) are scored as one tape with the " +
      "verifier's radioactivityTest: each (context, token) pair once, prompt windows dropped. Returns a job to poll.",
    tags: ['detection'],
    security: bearer,
    body: verifyBody(limits),
    response: { 202: job, ...errorResponses(400, 401, 413, 415, 429, 503) },
  };
}

export const jobSchema = {
  summary: 'State and result of a job',
  tags: ['detection'],
  security: bearer,
  params: Type.Object({ id: Type.String({ maxLength: 100 }) }),
  response: { 200: job, ...errorResponses(401, 404, 429) },
};

export const infoSchema = {
  summary: "The master key's fingerprint, the teacher's scheme spec and the lab profile of the served models",
  description:
    'Public: an investigator verifies with this spec and the key. The key itself is never served. `labProfile` ' +
    "names the @tracemark/lab profile whose distillation pipeline built the teacher and the students (GET /api/lab has the profile's facts).",
  tags: ['detection'],
  response: {
    200: Type.Object({
      keyFingerprint: Type.String(),
      spec,
      accountLayer: Nullable(
        Type.Object(
          {
            delta: Type.Number({ description: "The account layer's δ (the spec's accountDelta)." }),
            gamma: Type.Number({ description: "The account layer's γ: 0.5." }),
            accountField: Type.String({ description: 'The request field that names the account: user.' }),
            keyAccounts: Type.Object({ apiToken: Type.Boolean(), explainToken: Type.Boolean() }),
            precedence: StringEnum(['key'], {
              description: "A bearer token's account wins over the request's user field.",
            }),
            description: Type.String(),
          },
          {
            description:
              'The account layer (null when off): each teacher output also carries the account that asked for it.',
          },
        ),
      ),
      labProfile: Type.String(),
      plainLogprobs: Type.Object({ enabled: Type.Boolean(), reason: Type.String() }),
      detection: Type.Object({
        perToken: Type.String(),
        requestsPerMinute: Type.Integer(),
        tokensPerMinute: Type.Integer(),
      }),
    }),
  },
};

export const labSchema = {
  summary: 'How the served models were built, and probe prompts for an investigator',
  tags: ['lab'],
  response: {
    200: Type.Object({
      profile: Type.String(),
      keyFingerprint: Type.String(),
      models: Type.Array(
        Type.Object({
          id: Type.String(),
          role: Type.String(),
          watermarked: Type.Boolean(),
          description: Type.String(),
          order: Type.Integer(),
          trainedTokens: Type.Integer(),
          teacherShare: Type.Number(),
        }),
      ),
      distillation: Type.Object(
        { share: Type.Optional(Type.Number()), teacherTokens: Type.Optional(Type.Integer()) },
        { additionalProperties: true },
      ),
      probePrompts: Type.Array(Type.String()),
    }),
  },
};

export const uiSessionSchema = {
  summary: 'A short-lived token for the page this server serves (loopback only)',
  description:
    'Needs the header "X-Tracemark-UI: 1", a loopback peer, a loopback Host header and, when present, this ' +
    "server's own Origin. The token works as a bearer token for /api routes until it expires; all UI sessions " +
    'share one rate-limit budget.',
  tags: ['detection'],
  response: {
    200: Type.Object({ token: Type.String(), expiresAt: Type.Integer(), expiresIn: Type.Integer() }),
    ...errorResponses(403, 429),
  },
};

export const healthSchema = {
  summary: 'Liveness',
  tags: ['lab'],
  response: { 200: Type.Object({ status: Type.String(), models: Type.Array(Type.String()) }) },
};
