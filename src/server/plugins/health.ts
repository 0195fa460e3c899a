/**
 * `/healthz` (the process answers) and `/readyz` (every region's store answers and intake is
 * open) need no token; `/metrics` needs one.
 */
import type { FastifyInstance } from 'fastify';
import { authenticate } from '../auth.js';
import type { ServerContext } from '../context.js';

export async function healthPlugin(app: FastifyInstance, context: ServerContext): Promise<void> {
  app.get('/healthz', { schema: { hide: true } }, async () => ({ status: 'ok' }));

  app.get('/readyz', { schema: { hide: true } }, async (_request, reply) => {
    const answers = await Promise.all([...context.regions.values()].map((scope) => scope.store.ping()));
    const store = answers.every(Boolean);
    const accepting = context.isAccepting();
    const ready = store && accepting;
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready', store, accepting });
  });

  // Operational figures are not for anyone who can reach the port: any valid token may read them
  // (Prometheus sends one with `authorization: { credentials: … }`).
  app.get(
    '/metrics',
    { schema: { hide: true }, onRequest: async (request) => void (await authenticate(context, request)) },
    async (_request, reply) => {
      reply.header('content-type', context.metrics.registry.contentType);
      return context.metrics.registry.metrics();
    },
  );
}
