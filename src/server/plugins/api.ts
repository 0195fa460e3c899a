/**
 * The API under /api/v1: one plugin per resource, all guarded by token and role (../auth.ts).
 * Every route it registers is recorded (apiRoutes), so tests can check each one is documented.
 */
import type { FastifyInstance } from 'fastify';
import type { ServerContext } from '../context.js';
import { connectionsPlugin } from './connections.js';
import { dlqPlugin } from './dlq.js';
import { egressPlugin } from './egress.js';
import { flowsPlugin } from './flows.js';
import { erasurePlugin } from './erasure.js';
import { gatewayPlugin } from './gateway.js';
import { inventoryPlugin } from './inventory.js';
import { notificationsPlugin } from './notifications.js';
import { retentionPlugin } from './retention.js';
import { runsPlugin } from './runs.js';
import { tokensPlugin } from './tokens.js';

export interface ApiRoute {
  method: string;
  /** The full path, e.g. /api/v1/workspaces/:ws/runs */
  url: string;
  hidden: boolean;
}

const registered = new WeakMap<ServerContext, ApiRoute[]>();

/** The routes the API registered for a server (HEAD routes Fastify adds are left out). */
export function apiRoutes(context: ServerContext): readonly ApiRoute[] {
  return registered.get(context) ?? [];
}

export async function apiPlugin(app: FastifyInstance, context: ServerContext): Promise<void> {
  const routes: ApiRoute[] = [];
  registered.set(context, routes);
  app.addHook('onRoute', (route) => {
    for (const method of [route.method].flat()) {
      if (method === 'HEAD') continue;
      routes.push({ method, url: route.url, hidden: route.schema?.hide === true });
    }
  });
  await app.register(flowsPlugin, context);
  await app.register(runsPlugin, context);
  await app.register(dlqPlugin, context);
  await app.register(connectionsPlugin, context);
  await app.register(notificationsPlugin, context);
  await app.register(gatewayPlugin, context);
  await app.register(tokensPlugin, context);
  await app.register(retentionPlugin, context);
  await app.register(erasurePlugin, context);
  await app.register(inventoryPlugin, context);
  await app.register(egressPlugin, context);
}
