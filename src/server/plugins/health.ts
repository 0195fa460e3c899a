/** `/healthz` (the process answers), `/readyz` (the store answers and intake is open), `/metrics`. */
import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../context.js';

export async function healthPlugin(app: FastifyInstance, context: ServerContext): Promise<void> {
  app.get('/healthz', { schema: { hide: true } }, async () => ({ status: 'ok' }));

  app.get('/readyz', { schema: { hide: true } }, async (_request, reply) => {
    const store = await context.store.ping();
    const accepting = context.isAccepting();
    const ready = store && accepting;
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready', store, accepting });
  });

  app.get('/metrics', { schema: { hide: true } }, async (_request, reply) => {
    reply.header('content-type', context.metrics.registry.contentType);
    return context.metrics.registry.metrics();
  });
}
