import type { Log } from '@tracemark/lab';
import fp from 'fastify-plugin';
import type { Shutdown } from './context';
import { ApiError } from './errors';

declare module 'fastify' {
  interface FastifyRequest {
    /** When the request arrived (performance.now()), for the request log. */
    startedAt: number | null;
  }
}

export interface LifecycleOptions {
  shutdown: Shutdown;
  /** Log one line per request through `log`. */
  logRequests: boolean;
  log: Log;
}

/**
 * Counts the requests in flight, refuses new ones with 503 once shutdown has begun, and logs one line per
 * request. Wrapped with fastify-plugin: the hooks must see every request, the UI's and the 404s included.
 */
export const lifecycle = fp<LifecycleOptions>(
  async (app, { shutdown, logRequests, log }) => {
    app.decorateRequest('startedAt', null);
    app.addHook('onRequest', async (request, reply) => {
      shutdown.inFlight++;
      reply.raw.once('close', () => {
        shutdown.inFlight--;
      });
      if (shutdown.closing) {
        reply.header('connection', 'close');
        throw new ApiError(503, 'The server is shutting down.', { code: 'server_shutting_down' });
      }
      if (logRequests) request.startedAt = performance.now();
    });
    if (logRequests) {
      app.addHook('onResponse', async (request, reply) => {
        const started = request.startedAt ?? performance.now();
        log(
          `${request.method} ${request.url.split('?')[0].slice(0, 120)} ${reply.statusCode} ${(performance.now() - started).toFixed(0)} ms`,
        );
      });
    }
  },
  { name: 'tracemark-lifecycle', fastify: '5.x' },
);
