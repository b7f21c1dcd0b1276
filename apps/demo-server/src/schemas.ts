/**
 * JSON schemas of every route: they validate requests (Ajv, no type coercion, unknown fields refused),
 * serialise responses (fast-json-stringify: only the listed fields ever leave the server) and make the
 * OpenAPI document at /docs.
 */
import type { Limits } from './config';

const errorResponses = (...codes: number[]) =>
  Object.fromEntries(codes.map((code) => [code, { description: describeStatus(code), $ref: 'Error#' }]));

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
      503: 'Shutting down',
    }[code] ?? 'Error'
  );
}

const nullable = (schema: Record<string, unknown>) => ({ anyOf: [schema, { type: 'null' }] });

const tokenIds = (maxItems: number) => ({
  type: 'array',
  items: { type: 'integer', minimum: 0 },
  maxItems,
});

function samplingProperties(limits: Limits) {
  return {
    model: {
      type: 'string',
      minLength: 1,
      maxLength: 200,
      description: 'One of the ids from GET /v1/models.',
    },
    temperature: nullable({ type: 'number', minimum: 0, maximum: 2 }),
    top_p: nullable({ type: 'number', minimum: 0, maximum: 1 }),
    n: nullable({ type: 'integer', minimum: 1, maximum: limits.maxChoices }),
    stop: nullable({
      anyOf: [
        { type: 'string', minLength: 1, maxLength: 200 },
        { type: 'array', items: { type: 'string', minLength: 1, maxLength: 200 }, maxItems: 4 },
      ],
    }),
    seed: nullable({ type: 'integer' }),
    max_tokens: nullable({ type: 'integer', minimum: 0 }),
    stream: nullable({ type: 'boolean' }),
    stream_options: nullable({
      type: 'object',
      properties: { include_usage: { type: 'boolean' } },
      additionalProperties: false,
    }),
    user: { type: 'string', maxLength: 256 },
    presence_penalty: nullable({ type: 'number', minimum: -2, maximum: 2 }),
    frequency_penalty: nullable({ type: 'number', minimum: -2, maximum: 2 }),
    logit_bias: nullable({ type: 'object', additionalProperties: { type: 'number' } }),
  };
}

const usage = {
  type: 'object',
  properties: {
    prompt_tokens: { type: 'integer' },
    completion_tokens: { type: 'integer' },
    total_tokens: { type: 'integer' },
  },
  required: ['prompt_tokens', 'completion_tokens', 'total_tokens'],
};

const topLogprob = {
  type: 'object',
  properties: {
    token: { type: 'string' },
    logprob: { type: 'number' },
    bytes: { type: 'array', items: { type: 'integer' } },
  },
  required: ['token', 'logprob', 'bytes'],
};

const chatLogprobs = nullable({
  type: 'object',
  properties: {
    content: {
      type: 'array',
      items: {
        ...topLogprob,
        properties: { ...topLogprob.properties, top_logprobs: { type: 'array', items: topLogprob } },
      },
    },
    refusal: { type: 'null' },
  },
});

const completionLogprobs = nullable({
  type: 'object',
  properties: {
    tokens: { type: 'array', items: { type: 'string' } },
    token_logprobs: { type: 'array', items: { type: 'number' } },
    top_logprobs: { type: 'array', items: { type: 'object', additionalProperties: { type: 'number' } } },
    text_offset: { type: 'array', items: { type: 'integer' } },
  },
});

const streamResponse = (schema: Record<string, unknown>, what: string) => ({
  200: {
    description: `${what}; with "stream": true, server-sent events ("data: <chunk JSON>" lines, then "data: [DONE]").`,
    content: {
      'application/json': { schema },
      'text/event-stream': { schema: { type: 'string' } },
    },
  },
  ...errorResponses(400, 401, 404, 413, 415, 503),
});

/**
 * The response envelope both completion APIs share; `choice` is what one entry of `choices` carries
 * besides its index and finish reason (all of it required, as OpenAI always sends it, null or not).
 */
function completionResponse(object: string, choice: Record<string, unknown>) {
  return {
    type: 'object',
    properties: {
      id: { type: 'string' },
      object: { type: 'string', enum: [object] },
      created: { type: 'integer' },
      model: { type: 'string' },
      system_fingerprint: { type: 'string' },
      choices: {
        type: 'array',
        items: {
          type: 'object',
          properties: {
            index: { type: 'integer' },
            ...choice,
            finish_reason: { type: 'string', enum: ['stop', 'length'] },
          },
          required: ['index', ...Object.keys(choice), 'finish_reason'],
        },
      },
      usage,
    },
    required: ['id', 'object', 'created', 'model', 'choices', 'usage'],
  };
}

export function completionSchema(limits: Limits) {
  const response = completionResponse('text_completion', {
    text: { type: 'string' },
    logprobs: completionLogprobs,
  });
  return {
    summary: 'Create a completion (OpenAI legacy completions)',
    tags: ['serving'],
    body: {
      type: 'object',
      required: ['model', 'prompt'],
      additionalProperties: false,
      properties: {
        ...samplingProperties(limits),
        prompt: {
          description:
            'A string, an array of strings, an array of o200k_base token ids, or an array of such arrays.',
          anyOf: [
            { type: 'string', maxLength: limits.bodyLimit },
            { type: 'array', items: { type: 'string' }, minItems: 1, maxItems: limits.maxPrompts },
            { ...tokenIds(100_000), minItems: 1 },
            {
              type: 'array',
              items: { ...tokenIds(100_000), minItems: 1 },
              minItems: 1,
              maxItems: limits.maxPrompts,
            },
          ],
        },
        logprobs: nullable({ type: 'integer', minimum: 0, maximum: 5 }),
        echo: nullable({ type: 'boolean' }),
        suffix: nullable({ type: 'string' }),
        best_of: nullable({ type: 'integer', minimum: 1 }),
      },
    },
    response: streamResponse(response, 'The completion'),
  };
}

export function chatSchema(limits: Limits) {
  const textPart = {
    type: 'object',
    required: ['type', 'text'],
    properties: { type: { type: 'string', enum: ['text'] }, text: { type: 'string' } },
    additionalProperties: false,
  };
  const response = completionResponse('chat.completion', {
    message: {
      type: 'object',
      properties: {
        role: { type: 'string', enum: ['assistant'] },
        content: { type: 'string' },
        refusal: { type: 'null' },
      },
      required: ['role', 'content', 'refusal'],
    },
    logprobs: chatLogprobs,
  });
  return {
    summary: 'Create a chat completion (OpenAI chat completions)',
    description:
      'The messages are joined into one prompt (their text contents, separated by blank lines) that the n-gram model continues.',
    tags: ['serving'],
    body: {
      type: 'object',
      required: ['model', 'messages'],
      additionalProperties: false,
      properties: {
        ...samplingProperties(limits),
        messages: {
          type: 'array',
          minItems: 1,
          maxItems: 256,
          items: {
            type: 'object',
            required: ['role'],
            properties: {
              role: { type: 'string', enum: ['system', 'developer', 'user', 'assistant'] },
              content: nullable({
                anyOf: [{ type: 'string' }, { type: 'array', items: textPart, maxItems: 64 }],
              }),
              name: { type: 'string', maxLength: 256 },
            },
            additionalProperties: false,
          },
        },
        max_completion_tokens: nullable({ type: 'integer', minimum: 0 }),
        logprobs: nullable({ type: 'boolean' }),
        top_logprobs: nullable({ type: 'integer', minimum: 0, maximum: 20 }),
        response_format: nullable({
          type: 'object',
          required: ['type'],
          properties: { type: { type: 'string', enum: ['text'] } },
          additionalProperties: false,
        }),
      },
    },
    response: streamResponse(response, 'The chat completion'),
  };
}

const model = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    object: { type: 'string', enum: ['model'] },
    created: { type: 'integer' },
    owned_by: { type: 'string' },
  },
  required: ['id', 'object', 'created', 'owned_by'],
};

export const modelsSchema = {
  summary: 'List the served models',
  tags: ['serving'],
  response: {
    200: {
      type: 'object',
      properties: { object: { type: 'string', enum: ['list'] }, data: { type: 'array', items: model } },
      required: ['object', 'data'],
    },
    ...errorResponses(401),
  },
};

export const modelSchema = {
  summary: 'Retrieve one served model',
  tags: ['serving'],
  params: {
    type: 'object',
    properties: { model: { type: 'string', maxLength: 200 } },
    required: ['model'],
  },
  response: { 200: model, ...errorResponses(401, 404) },
};

const nullLaw = {
  type: 'object',
  properties: { kind: { type: 'string' }, p: { type: 'number' }, trials: { type: 'integer' } },
  required: ['kind'],
};

const spec = {
  type: 'object',
  description: "The teacher's scheme spec: public, no secret (pass it to the verifier with your key).",
  additionalProperties: true,
  properties: { scheme: { type: 'string' }, vocabSize: { type: 'integer' } },
  required: ['scheme', 'vocabSize'],
};

const detectionResult = {
  type: 'object',
  properties: {
    scheme: { type: 'string' },
    spec,
    keyFingerprint: { type: 'string', description: "Fingerprint of the scheme's derived key." },
    masterFingerprint: { type: 'string' },
    nullLaw,
    pValue: { type: 'number', description: 'Exact p-value (may underflow to 0: read log10PValue).' },
    log10PValue: { type: 'number' },
    zScore: { type: 'number' },
    tokens: { type: 'integer' },
    scored: { type: 'integer' },
    scoreSum: { type: 'number' },
    dedup: { type: 'string' },
    bestWindow: nullable({
      type: 'object',
      properties: {
        start: { type: 'integer' },
        end: { type: 'integer' },
        startChar: { type: 'integer' },
        endChar: { type: 'integer' },
        scored: { type: 'integer' },
        scoreSum: { type: 'number' },
        pValue: { type: 'number' },
        log10PValue: { type: 'number' },
        correctedPValue: { type: 'number' },
        correctedLog10PValue: { type: 'number' },
        zScore: { type: 'number' },
        windowsTried: { type: 'integer' },
      },
    }),
    perToken: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          index: { type: 'integer' },
          tokenId: { type: 'integer' },
          start: { type: 'integer', description: 'UTF-16 offset of the token in the text.' },
          end: { type: 'integer' },
          text: { type: 'string' },
          score: { type: ['number', 'null'] },
          counted: { type: 'boolean' },
          reason: { type: 'string', enum: ['context', 'duplicate', 'prompt-window', 'eos'] },
        },
        required: ['index', 'tokenId', 'start', 'end', 'text', 'score', 'counted'],
      },
    },
  },
  required: [
    'scheme',
    'spec',
    'keyFingerprint',
    'pValue',
    'log10PValue',
    'zScore',
    'tokens',
    'scored',
    'perToken',
  ],
};

const bearer = [{ bearerAuth: [] }];

export function detectSchema(limits: Limits) {
  return {
    summary: "Detect the teacher's watermark in a text or a token sequence",
    description:
      'Needs the bearer token and is rate-limited: an open detector that reports per-token scores lets anyone learn the green lists.',
    tags: ['detection'],
    security: bearer,
    body: {
      type: 'object',
      additionalProperties: false,
      properties: {
        text: { type: 'string', minLength: 1, maxLength: limits.maxDetectChars },
        tokens: { ...tokenIds(limits.maxDetectTokens), minItems: 1 },
        prompt: {
          description: 'The prompt (text or token ids): context windows that occur in it are not scored.',
          anyOf: [{ type: 'string', maxLength: limits.maxDetectChars }, tokenIds(limits.maxDetectTokens)],
        },
        dedup: { type: 'string', enum: ['pair', 'context', 'none'] },
      },
    },
    response: { 200: detectionResult, ...errorResponses(400, 401, 413, 415, 429) },
  };
}

const job = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    object: { type: 'string', enum: ['tracemark.job'] },
    kind: { type: 'string' },
    state: { type: 'string', enum: ['queued', 'running', 'succeeded', 'failed'] },
    createdAt: { type: 'integer' },
    updatedAt: { type: 'integer' },
    model: { type: ['string', 'null'] },
    samples: { type: 'integer' },
    result: nullable({
      type: 'object',
      description: "The verifier's radioactivity result (Sander et al. 2024, closed-model test).",
      properties: {
        scheme: { type: 'string' },
        spec,
        keyFingerprint: { type: 'string' },
        masterFingerprint: { type: 'string' },
        nullLaw,
        pValue: { type: 'number' },
        log10PValue: { type: 'number' },
        zScore: { type: 'number' },
        seen: { type: 'integer' },
        scored: { type: 'integer' },
        scoreSum: { type: 'number' },
        skipped: {
          type: 'object',
          properties: {
            context: { type: 'integer' },
            duplicate: { type: 'integer' },
            promptWindow: { type: 'integer' },
            filtered: { type: 'integer' },
          },
        },
        samples: { type: 'integer' },
        trajectory: {
          type: 'array',
          items: {
            type: 'object',
            properties: { scored: { type: 'integer' }, log10PValue: { type: 'number' } },
            required: ['scored', 'log10PValue'],
          },
        },
      },
    }),
    error: nullable({
      type: 'object',
      properties: { message: { type: 'string' }, code: { type: ['string', 'null'] } },
    }),
  },
  required: ['id', 'object', 'kind', 'state', 'createdAt', 'updatedAt', 'result', 'error'],
};

export function verifySchema(limits: Limits) {
  const ids = tokenIds(limits.maxVerifyTokens);
  return {
    summary: 'Start a radioactivity test of a suspect model from its outputs',
    description:
      "The suspect's outputs with the prompts that produced them (text or token ids) are scored as one tape with the " +
      "verifier's radioactivityTest: each (context, token) pair once, prompt windows dropped. Returns a job to poll.",
    tags: ['detection'],
    security: bearer,
    body: {
      type: 'object',
      required: ['samples'],
      additionalProperties: false,
      properties: {
        model: {
          type: 'string',
          maxLength: 200,
          description: 'A label for the suspect (stored with the job).',
        },
        samples: {
          type: 'array',
          minItems: 1,
          maxItems: limits.maxVerifySamples,
          items: {
            type: 'object',
            required: ['prompt', 'output'],
            additionalProperties: false,
            properties: {
              prompt: { anyOf: [{ type: 'string' }, ids] },
              output: { anyOf: [{ type: 'string' }, ids] },
            },
          },
        },
        maxScored: { type: 'integer', minimum: 1 },
        trajectoryPointsPerDecade: { type: 'integer', minimum: 1, maximum: 32 },
      },
    },
    response: { 202: job, ...errorResponses(400, 401, 413, 415, 429) },
  };
}

export const jobSchema = {
  summary: 'State and result of a job',
  tags: ['detection'],
  security: bearer,
  params: {
    type: 'object',
    properties: { id: { type: 'string', maxLength: 100 } },
    required: ['id'],
  },
  response: { 200: job, ...errorResponses(401, 404, 429) },
};

export const infoSchema = {
  summary: "The master key's fingerprint and the teacher's scheme spec",
  description: 'Public: an investigator verifies with this spec and the key. The key itself is never served.',
  tags: ['detection'],
  response: {
    200: {
      type: 'object',
      properties: { keyFingerprint: { type: 'string' }, spec },
      required: ['keyFingerprint', 'spec'],
    },
  },
};

export const labSchema = {
  summary: 'How the served models were built, and probe prompts for an investigator',
  tags: ['lab'],
  response: {
    200: {
      type: 'object',
      properties: {
        profile: { type: 'string' },
        keyFingerprint: { type: 'string' },
        models: {
          type: 'array',
          items: {
            type: 'object',
            properties: {
              id: { type: 'string' },
              role: { type: 'string' },
              watermarked: { type: 'boolean' },
              description: { type: 'string' },
              order: { type: 'integer' },
              trainedTokens: { type: 'integer' },
              teacherShare: { type: 'number' },
            },
            required: ['id', 'role', 'watermarked', 'description', 'order', 'trainedTokens', 'teacherShare'],
          },
        },
        distillation: {
          type: 'object',
          additionalProperties: true,
          properties: { share: { type: 'number' }, teacherTokens: { type: 'integer' } },
        },
        probePrompts: { type: 'array', items: { type: 'string' } },
      },
      required: ['profile', 'keyFingerprint', 'models', 'distillation', 'probePrompts'],
    },
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
    200: {
      type: 'object',
      properties: {
        token: { type: 'string' },
        expiresAt: { type: 'integer' },
        expiresIn: { type: 'integer' },
      },
      required: ['token', 'expiresAt', 'expiresIn'],
    },
    ...errorResponses(403, 429),
  },
};

export const healthSchema = {
  summary: 'Liveness',
  tags: ['lab'],
  response: {
    200: {
      type: 'object',
      properties: { status: { type: 'string' }, models: { type: 'array', items: { type: 'string' } } },
      required: ['status', 'models'],
    },
  },
};
