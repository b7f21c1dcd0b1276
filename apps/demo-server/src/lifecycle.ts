import fp from 'fastify-plugin';
import type { Shutdown } from './context';
import { ApiError } from './errors';

export interface LifecycleOptions {
  shutdown: Shutdown;
}

/** Longest request target served; longer ones get 414 (Node's own header limit answers 431 past ~16 KiB). */
export const MAX_URL_LENGTH = 8_192;

/**
 * Counts the requests in flight and refuses new ones with 503 once shutdown has begun. Wrapped with
 * fastify-plugin: the hook must see every request, the UI's and the 404s included. (Request lines are logged by
 * Fastify's logger, see app.ts.)
 */
export const lifecycle = fp<LifecycleOptions>(
  async (app, { shutdown }) => {
    app.addHook('onRequest', async (request, reply) => {
      shutdown.inFlight++;
      reply.raw.once('close', () => {
        shutdown.inFlight--;
      });
      if (shutdown.closing) {
        reply.header('connection', 'close');
        throw new ApiError(503, 'The server is shutting down.', { code: 'server_shutting_down' });
      }
      if (request.url.length > MAX_URL_LENGTH) {
        throw new ApiError(414, `The request URL is longer than ${MAX_URL_LENGTH} characters.`, {
          code: 'uri_too_long',
        });
      }
    });
  },
  { name: 'tracemark-lifecycle', fastify: '5.x' },
);
