/** The API under /api/v1: one plugin per resource, all guarded by token and role (../auth.ts). */
import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../context.js';
import { flowsPlugin } from './flows.js';

export async function apiPlugin(app: FastifyInstance, context: ServerContext): Promise<void> {
  await app.register(flowsPlugin, context);
}
