/** Data-subject erasure requests. */
import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../context.js';

export async function erasurePlugin(app: FastifyInstance, context: ServerContext): Promise<void> {
  void app;
  void context;
}
