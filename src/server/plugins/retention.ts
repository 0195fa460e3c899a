/** Workspace privacy settings (retention overrides, legal hold, log access) and purge status. */
import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../context.js';

export async function retentionPlugin(app: FastifyInstance, context: ServerContext): Promise<void> {
  void app;
  void context;
}
