import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import fp from 'fastify-plugin';

/**
 * The OpenAPI document (`/docs/json`) made from the routes' schemas, and Swagger UI at `/docs`. Wrapped with
 * fastify-plugin: the document collects routes through an onRoute hook, which must see the route plugins.
 */
export const docs = fp<{ version: string }>(
  async (app, { version }) => {
    await app.register(swagger, {
      openapi: {
        openapi: '3.0.3',
        info: {
          title: 'tracemark demo server',
          version,
          description:
            'OpenAI-compatible serving of a watermarked reference model (and its unwatermarked twin and two students), ' +
            'and the detection and verification API. Routes under /api that score text need a bearer token.',
        },
        components: { securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer' } } },
        tags: [
          { name: 'serving', description: 'OpenAI-compatible serving (open on loopback)' },
          { name: 'detection', description: 'Detection and verification (bearer token, rate-limited)' },
          { name: 'lab', description: 'How the demo models were built' },
        ],
      },
    });
    await app.register(swaggerUi, { routePrefix: '/docs' });
  },
  { name: 'tracemark-docs', fastify: '5.x' },
);
