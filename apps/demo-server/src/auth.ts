import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import rateLimit from '@fastify/rate-limit';
import type { FastifyReply, FastifyRequest, RequestPayload } from 'fastify';
import fp from 'fastify-plugin';
import { isLoopback } from './config';
import { ApiError } from './errors';

declare module 'fastify' {
  interface FastifyRequest {
    /** The identity its bearer token authenticated as (set by requireBearer), else null. */
    identity: Identity | null;
  }
  interface FastifyInstance {
    /** The bearer-token checks: the API token and UI sessions. */
    auth: Auth;
    /** preParsing hook of the routes that need a bearer token: 401 without a valid one. */
    requireBearer(
      request: FastifyRequest,
      reply: FastifyReply,
      payload: RequestPayload,
    ): Promise<RequestPayload>;
  }
}

/** The identity a request authenticated as; UI sessions share one identity, hence one rate-limit bucket. */
export type Identity = 'api-token' | 'explain-token' | 'ui-session';

/**
 * Whether an identity may see per-token scores. Per-token labels are a green-list oracle (one call with chosen
 * ids labels every pair), so the API token gets aggregates only; the explain token and the loopback UI session
 * (the demo's highlighting) get them.
 */
export const canExplain = (identity: Identity | null): boolean =>
  identity === 'explain-token' || identity === 'ui-session';

const UI_PREFIX = 'tmui_';

function digest(text: string): Buffer {
  return createHash('sha256').update(text).digest();
}

/**
 * Bearer-token checks for the detection and verification API.
 *
 * - The API token (TRACEMARK_API_TOKEN or the generated `<dataDir>/api-token`) is compared in constant time
 *   (SHA-256 of both sides, then timingSafeEqual), so its length and prefix do not leak through timing.
 * - UI sessions are short-lived random tokens the server hands to the page it serves, only over loopback; see
 *   `issueUiSession`. They live in memory (a restart ends them) and all share one rate-limit identity, so
 *   minting many of them buys no extra detections.
 */
export class Auth {
  readonly #tokenDigest: Buffer;
  readonly #explainDigest: Buffer | null;
  readonly #accounts: Partial<Record<Identity, string>>;
  readonly #sessions = new Map<string, number>();
  readonly sessionTtlMs: number;
  readonly #maxSessions = 256;

  /**
   * `accounts`: the account a token embeds in the teacher's outputs (account layer), per identity; UI sessions
   * carry none.
   */
  constructor(
    apiToken: string,
    options: {
      sessionTtlMs?: number;
      explainToken?: string;
      accounts?: { 'api-token'?: string; 'explain-token'?: string };
    } = {},
  ) {
    this.#tokenDigest = digest(apiToken);
    this.#explainDigest = options.explainToken === undefined ? null : digest(options.explainToken);
    this.#accounts = { ...options.accounts };
    this.sessionTtlMs = options.sessionTtlMs ?? 15 * 60_000;
  }

  /** The identity of a bearer token, or null. */
  identify(token: string | undefined): Identity | null {
    if (token === undefined || token.length === 0 || token.length > 512) return null;
    if (token.startsWith(UI_PREFIX)) {
      const expires = this.#sessions.get(digest(token).toString('hex'));
      if (expires === undefined) return null;
      if (expires < Date.now()) {
        this.#sessions.delete(digest(token).toString('hex'));
        return null;
      }
      return 'ui-session';
    }
    const presented = digest(token);
    if (timingSafeEqual(presented, this.#tokenDigest)) return 'api-token';
    if (this.#explainDigest !== null && timingSafeEqual(presented, this.#explainDigest))
      return 'explain-token';
    return null;
  }

  /** Throws 401 unless the request carries a valid bearer token. */
  require(request: FastifyRequest): Identity {
    const header = request.headers.authorization;
    if (header === undefined || header.trim() === '') {
      throw new ApiError(
        401,
        'This route needs a bearer token: send "Authorization: Bearer <token>" (the API token, or a UI session).',
        { code: 'missing_api_key' },
      );
    }
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    const identity = match ? this.identify(match[1]) : null;
    if (identity === null) {
      throw new ApiError(401, 'Incorrect or expired bearer token.', { code: 'invalid_api_key' });
    }
    return identity;
  }

  /** The identity of the request's bearer token when it carries a valid one, else null (never throws). */
  identifyRequest(request: FastifyRequest): Identity | null {
    const match = /^Bearer\s+(\S+)\s*$/i.exec(request.headers.authorization ?? '');
    return match ? this.identify(match[1]) : null;
  }

  /** The rate-limit key of a request: its valid identity, else its address. */
  rateKey(request: FastifyRequest): string {
    return this.identifyRequest(request) ?? `ip:${request.ip}`;
  }

  /** The account configured for an identity's token (TRACEMARK_API_TOKEN_ACCOUNT, …), if any. */
  accountOf(identity: Identity | null): string | undefined {
    return identity === null ? undefined : this.#accounts[identity];
  }

  /**
   * A UI session for the page this server serves. Handed out only when every one of these holds:
   * - the server listens on loopback (`servesLoopback`), and the request came from a loopback address;
   * - the Host header names this server on a loopback name, so that a page on another site that has rebound
   *   its DNS name to 127.0.0.1 (DNS rebinding) is refused;
   * - the Origin header, when the browser sends one, is this server's own origin (no other site's page);
   * - the request carries `X-Tracemark-UI: 1`: a custom header, so a cross-origin page can only send it after
   *   a CORS preflight, which this server never grants.
   * The token is returned in the response body to script on the page and kept in memory there only (no cookie,
   * so no request ever carries it implicitly).
   */
  issueUiSession(
    request: FastifyRequest,
    servesLoopback: boolean,
    port: number,
  ): { token: string; expiresAt: number } {
    if (!servesLoopback || !isLoopback(request.socket.remoteAddress)) {
      throw new ApiError(
        403,
        'UI sessions are only handed out on loopback; paste the API token into the page instead.',
        { code: 'ui_session_unavailable' },
      );
    }
    const host = (request.headers.host ?? '').toLowerCase();
    const allowed = [`127.0.0.1:${port}`, `localhost:${port}`, `[::1]:${port}`];
    if (!allowed.includes(host)) {
      throw new ApiError(403, 'The Host header does not name this server on a loopback address.', {
        code: 'ui_session_bad_host',
      });
    }
    const origin = request.headers.origin;
    if (origin !== undefined && origin !== `http://${host}`) {
      throw new ApiError(403, 'UI sessions are only for pages served by this server.', {
        code: 'ui_session_bad_origin',
      });
    }
    if (request.headers['x-tracemark-ui'] !== '1') {
      throw new ApiError(403, 'UI sessions need the header "X-Tracemark-UI: 1".', {
        code: 'ui_session_bad_request',
      });
    }
    this.#prune();
    const token = `${UI_PREFIX}${randomBytes(32).toString('base64url')}`;
    const expiresAt = Date.now() + this.sessionTtlMs;
    this.#sessions.set(digest(token).toString('hex'), expiresAt);
    return { token, expiresAt };
  }

  #prune(): void {
    const now = Date.now();
    for (const [key, expires] of this.#sessions) if (expires < now) this.#sessions.delete(key);
    while (this.#sessions.size >= this.#maxSessions)
      this.#sessions.delete(this.#sessions.keys().next().value!);
  }
}

/**
 * Bearer tokens and per-identity rate limits. Wrapped with fastify-plugin so that its decorators reach the
 * route plugins, and the rate limiter (which acts on every route whose config asks for a limit) sees their routes.
 */
export const authentication = fp<{ auth: Auth }>(
  async (app, { auth }) => {
    app.decorate('auth', auth);
    app.decorateRequest('identity', null);
    app.decorate(
      'requireBearer',
      async (request: FastifyRequest, _reply: FastifyReply, payload: RequestPayload) => {
        request.identity = auth.require(request);
        return payload;
      },
    );
    await app.register(rateLimit, {
      global: false,
      hook: 'onRequest',
      keyGenerator: (request) => auth.rateKey(request),
      errorResponseBuilder: (_request, context) =>
        new ApiError(
          429,
          `Rate limit reached: ${context.max} requests per minute; retry in ${context.after}.`,
          {
            code: 'rate_limit_exceeded',
            headers: { 'retry-after': String(Math.ceil(context.ttl / 1000)) },
          },
        ),
    });
  },
  { name: 'tracemark-auth', fastify: '5.x' },
);
