import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { FastifyPluginAsync, FastifyReply } from 'fastify';

/** The UI's files: plain HTML, CSS and an ES module, served as they are (no build step). */
const FILES: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/ui/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/ui/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' },
};

/** Same-origin scripts only (nothing inline), no framing, no referrer: the page handles a bearer token. */
const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

export function publicDir(): string {
  // src/ui.ts and dist/main.js both sit one folder below the package root.
  return fileURLToPath(new URL('../public/', import.meta.url));
}

/** The page and its two files, read once at start; hidden from the OpenAPI document. */
export const uiRoutes: FastifyPluginAsync = async (app) => {
  const dir = publicDir();
  const contents = new Map<string, Buffer>();
  for (const [route, { file }] of Object.entries(FILES)) contents.set(route, readFileSync(`${dir}${file}`));
  const send = (route: string, reply: FastifyReply) =>
    reply
      .type(FILES[route].type)
      .header('content-security-policy', CSP)
      .header('x-content-type-options', 'nosniff')
      .header('referrer-policy', 'no-referrer')
      .header('cache-control', 'no-cache')
      .send(contents.get(route));
  for (const route of Object.keys(FILES)) {
    app.get(route, { schema: { hide: true } }, async (_request, reply) => send(route, reply));
  }
  app.get('/favicon.ico', { schema: { hide: true } }, async (_request, reply) => reply.code(204).send());
};
