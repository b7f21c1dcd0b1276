import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { ErrorBody } from './schemas';

/** OpenAI's error types, plus the one this server adds for authentication. */
export type ErrorType =
  | 'invalid_request_error'
  | 'authentication_error'
  | 'permission_error'
  | 'not_found_error'
  | 'rate_limit_error'
  | 'server_error';

/** An error meant for the client: its message is shown as is, so it must never carry secrets. */
export class ApiError extends Error {
  readonly statusCode: number;
  readonly type: ErrorType;
  readonly param: string | null;
  readonly code: string | null;
  readonly headers: Record<string, string>;

  constructor(
    statusCode: number,
    message: string,
    options: {
      type?: ErrorType;
      param?: string | null;
      code?: string | null;
      headers?: Record<string, string>;
    } = {},
  ) {
    super(message);
    this.name = 'ApiError';
    this.statusCode = statusCode;
    this.type = options.type ?? typeForStatus(statusCode);
    this.param = options.param ?? null;
    this.code = options.code ?? null;
    this.headers = options.headers ?? {};
  }

  body(): ErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

function typeForStatus(status: number): ErrorType {
  if (status === 401) return 'authentication_error';
  if (status === 403) return 'permission_error';
  if (status === 404) return 'not_found_error';
  if (status === 429) return 'rate_limit_error';
  if (status >= 500) return 'server_error';
  return 'invalid_request_error';
}

export const invalid = (message: string, param: string | null = null, code: string | null = null) =>
  new ApiError(400, message, { param, code });

interface AjvError {
  keyword: string;
  instancePath: string;
  message?: string;
  params: Record<string, unknown>;
}

/** `/messages/0/content` → `messages[0].content`, OpenAI's way of naming a parameter. */
export function paramName(instancePath: string, extra?: string): string | null {
  const parts = instancePath.split('/').filter((p) => p.length > 0);
  if (extra !== undefined) parts.push(extra);
  if (parts.length === 0) return null;
  let out = '';
  for (const part of parts) {
    const decoded = part.replace(/~1/g, '/').replace(/~0/g, '~');
    out += /^\d+$/.test(decoded) ? `[${decoded}]` : out.length === 0 ? decoded : `.${decoded}`;
  }
  return out;
}

/** Turns the first schema-validation error into a sentence a client can act on. */
export function validationError(errors: AjvError[], context: string): ApiError {
  const chosen = pick(errors);
  const where = context === 'body' ? '' : `${context} `;
  if (chosen === undefined) return invalid(`Invalid ${context}.`);
  switch (chosen.keyword) {
    case 'required': {
      const missing = String(chosen.params.missingProperty);
      const param = paramName(chosen.instancePath, missing);
      return invalid(`Missing required ${where}parameter: '${param}'.`, param, 'missing_required_parameter');
    }
    case 'additionalProperties': {
      const extra = String(chosen.params.additionalProperty);
      const param = paramName(chosen.instancePath, extra);
      return invalid(`Unrecognized request argument supplied: ${param}`, param, 'unknown_parameter');
    }
    case 'type':
    case 'anyOf':
    case 'oneOf': {
      const param = paramName(chosen.instancePath);
      if (param === null)
        return invalid(`The request ${context} must be a JSON object.`, null, 'invalid_type');
      // For anyOf, the branches' type errors at this place name what would have been accepted.
      const types = errors
        .filter((e) => e.keyword === 'type' && e.instancePath === chosen.instancePath)
        .flatMap((e) => (Array.isArray(e.params.type) ? e.params.type : [e.params.type]));
      const expected = [...new Set(types)];
      const what = expected.length > 0 ? `must be ${describeType(expected)}` : 'has the wrong type';
      return invalid(`Invalid type for '${param}': ${what}.`, param, 'invalid_type');
    }
    default: {
      const param = paramName(chosen.instancePath);
      const message = chosen.message ?? 'is invalid';
      if (param === null) return invalid(`The request ${context} ${message}.`, null, 'invalid_value');
      return invalid(`Invalid value for '${param}': ${message}.`, param, 'invalid_value');
    }
  }
}

/**
 * The error worth reporting. For a value that fails every branch of an anyOf (how nullable and union fields
 * are written), a branch error that is not a plain type mismatch at the value itself says more (a range, or a
 * wrong element deeper down); when every branch failed on the type, the anyOf error stands for them all.
 */
function pick(errors: AjvError[]): AjvError | undefined {
  const union = errors.find((e) => e.keyword === 'anyOf' || e.keyword === 'oneOf');
  if (union === undefined) return errors[0];
  const inside = errors.filter(
    (e) => e.keyword !== 'anyOf' && e.keyword !== 'oneOf' && e.instancePath.startsWith(union.instancePath),
  );
  const specific = inside.find((e) => !(e.keyword === 'type' && e.instancePath === union.instancePath));
  return specific ?? union;
}

function describeType(types: unknown[]): string {
  const words = types.map((t) =>
    t === 'integer'
      ? 'an integer'
      : t === 'array'
        ? 'an array'
        : t === 'object'
          ? 'an object'
          : t === 'null'
            ? 'null'
            : `a ${t}`,
  );
  return words.length > 1 ? `${words.slice(0, -1).join(', ')} or ${words.at(-1)}` : words.join('');
}

/** Maps Fastify's own errors (parsing, limits, routing) to the OpenAI error shape. */
export function toApiError(error: FastifyError | ApiError | Error): ApiError {
  if (error instanceof ApiError) return error;
  const fe = error as FastifyError & { validation?: AjvError[]; validationContext?: string };
  if (fe.validation) return validationError(fe.validation, fe.validationContext ?? 'body');
  switch (fe.code) {
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return invalid('The request body is empty; expected a JSON object.', null, 'empty_body');
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return invalid(
        'We could not parse the JSON body of your request: it is not valid JSON.',
        null,
        'invalid_json',
      );
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return new ApiError(413, 'The request body is too large.', { code: 'request_too_large' });
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return new ApiError(415, 'Unsupported content type; send application/json.', {
        code: 'unsupported_media_type',
      });
    case 'FST_ERR_CTP_INVALID_CONTENT_LENGTH':
      return invalid('The request body does not match its Content-Length.', null, 'invalid_content_length');
    case 'FST_ERR_BAD_URL':
    case 'FST_ERR_ASYNC_CONSTRAINT':
      return invalid('The request URL is malformed.', null, 'bad_url');
  }
  if (error instanceof SyntaxError || fe.statusCode === 400) {
    // The JSON parser's own SyntaxError (with its statusCode set by Fastify).
    return invalid(`We could not parse the JSON body of your request: ${fe.message}`, null, 'invalid_json');
  }
  const status =
    typeof fe.statusCode === 'number' && fe.statusCode >= 400 && fe.statusCode < 500 ? fe.statusCode : 500;
  if (status === 500) return new ApiError(500, 'The server had an error while processing your request.');
  return new ApiError(status, fe.message);
}

/**
 * The error, not-found and JSON-parsing handlers that give every failure the OpenAI shape, and the `Error`
 * schema the routes' error responses refer to. Wrapped with fastify-plugin: they must hold for every route.
 */
export const errorHandling = fp(
  async (app) => {
    app.addSchema(ErrorBody);
    app.setErrorHandler((error: FastifyError, request: FastifyRequest, reply: FastifyReply) => {
      const api = toApiError(error);
      // Every 5xx is logged with the request id pino adds; refusals while stopping or busy are expected: warn.
      if (api.statusCode >= 500) {
        const expected = api.code === 'server_shutting_down' || api.code === 'server_busy';
        request.log[expected ? 'warn' : 'error'](
          { err: error, statusCode: api.statusCode },
          'request failed',
        );
      }
      for (const [name, value] of Object.entries(api.headers)) reply.header(name, value);
      reply.code(api.statusCode).type('application/json; charset=utf-8').send(api.body());
    });
    app.setNotFoundHandler((request, reply) => {
      const api = new ApiError(
        404,
        `Unknown route: ${request.method} ${request.url.split('?')[0].slice(0, 200)}`,
        {
          code: 'unknown_route',
        },
      );
      reply.code(404).send(api.body());
    });
    // JSON bodies must be valid UTF-8: a body that is not would otherwise reach the handlers with U+FFFD in it.
    const parseJson = app.getDefaultJsonParser('error', 'error');
    const utf8 = new TextDecoder('utf-8', { fatal: true });
    // JSON only: a text/plain body gets 415 rather than reaching a schema as a string.
    app.removeAllContentTypeParsers();
    app.addContentTypeParser('application/json', { parseAs: 'buffer' }, (request, body, done) => {
      let text: string;
      try {
        text = utf8.decode(body as Buffer);
      } catch {
        done(invalid('The request body is not valid UTF-8.', null, 'invalid_utf8'), undefined);
        return;
      }
      parseJson(request, text, done);
    });
  },
  { name: 'tracemark-errors', fastify: '5.x' },
);

/** Log paths pino replaces with "[redacted]": bearer tokens, keys and tokens wherever they appear. */
export const LOG_REDACT = [
  'req.headers.authorization',
  'req.headers.cookie',
  'req.headers["x-api-key"]',
  'headers.authorization',
  'authorization',
  'token',
  'apiToken',
  'explainToken',
  'key',
  'keyHex',
  'keyText',
  '*.authorization',
  '*.token',
  '*.apiToken',
  '*.explainToken',
  '*.key',
  '*.keyHex',
  '*.keyText',
];

/** Errors are logged by name, code and message: no stack trace reaches the log. */
export const logSerializers = {
  err: (error: Error & { code?: unknown; statusCode?: unknown }) => ({
    type: error?.name,
    message: error?.message,
    ...(error?.code === undefined ? {} : { code: error.code }),
    ...(error?.statusCode === undefined ? {} : { statusCode: error.statusCode }),
  }),
};

/**
 * Errors Node's HTTP parser finds before Fastify sees a request (headers past the size limit, a malformed
 * request line): answered in the OpenAI error shape too, then the connection is closed.
 */
export function clientErrorHandler(error: Error & { code?: string }, socket: Socket): void {
  if (error.code === 'ECONNRESET' || !socket.writable) {
    socket.destroy();
    return;
  }
  const status =
    error.code === 'HPE_HEADER_OVERFLOW'
      ? 431
      : error.code === 'HPE_URI_TOO_LONG'
        ? 414
        : error.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? 408
          : 400;
  const message =
    status === 431
      ? 'The request headers are too large.'
      : status === 414
        ? 'The request URL is too long.'
        : status === 408
          ? 'The request took too long to arrive.'
          : 'The request is malformed.';
  const code =
    status === 431
      ? 'headers_too_large'
      : status === 414
        ? 'uri_too_long'
        : status === 408
          ? 'request_timeout'
          : 'bad_request';
  const body = JSON.stringify(new ApiError(status, message, { code }).body());
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Type: application/json; charset=utf-8\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}
