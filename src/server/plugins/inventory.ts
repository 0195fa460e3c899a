/** The inventory report and closing workspaces. */
import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../context.js';

export async function inventoryPlugin(app: FastifyInstance, context: ServerContext): Promise<void> {
  void app;
  void context;
}
