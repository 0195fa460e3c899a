/**
 * The API under /api/v1: one plugin per resource, all guarded by token and role (../auth.ts).
 * Every route it registers is recorded (apiRoutes) with the action its guard checks, and every
 * route of the whole server too (serverRoutes, via recordRoutes in ../app.ts), so tests can
 * check each one is documented and guarded — a new route cannot slip past them.
 */
import type { FastifyInstance, RouteOptions } from 'fastify';
import type { Action } from '../../security/permissions.js';
import { guardedAction } from '../auth.js';
import type { ServerContext } from '../context.js';
import { connectionsPlugin } from './connections.js';
import { dlqPlugin } from './dlq.js';
import { egressPlugin } from './egress.js';
import { flowsPlugin } from './flows.js';
import { erasurePlugin } from './erasure.js';
import { gatewayPlugin } from './gateway.js';
import { inventoryPlugin } from './inventory.js';
import { membersPlugin } from './members.js';
import { notificationsPlugin } from './notifications.js';
import { retentionPlugin } from './retention.js';
import { runsPlugin } from './runs.js';
import { tokensPlugin } from './tokens.js';

export interface ApiRoute {
  method: string;
  /** The full path, e.g. /api/v1/workspaces/:ws/runs */
  url: string;
  hidden: boolean;
  /** The action the route's guard checks (security/permissions.ts); none for unguarded routes. */
  action?: Action;
  /** The route's body schema, if it declares one. */
  body?: unknown;
}

const registered = new WeakMap<ServerContext, ApiRoute[]>();
const everything = new WeakMap<ServerContext, ApiRoute[]>();

/** The routes the API registered for a server (HEAD routes Fastify adds are left out). */
export function apiRoutes(context: ServerContext): readonly ApiRoute[] {
  return registered.get(context) ?? [];
}

/** Every route the server registered, API or not (HEAD routes Fastify adds are left out). */
export function serverRoutes(context: ServerContext): readonly ApiRoute[] {
  return everything.get(context) ?? [];
}

/** Record the routes registered on `app` from now on, into `routes`. */
function record(app: FastifyInstance, routes: ApiRoute[]): void {
  app.addHook('onRoute', (route: RouteOptions) => {
    const action = guardedAction(route.onRequest) ?? guardedAction(route.preHandler);
    for (const method of [route.method].flat()) {
      if (method === 'HEAD') continue;
      routes.push({
        method,
        url: route.url,
        hidden: route.schema?.hide === true,
        ...(action ? { action } : {}),
        ...(route.schema?.body ? { body: route.schema.body } : {}),
      });
    }
  });
}

/** Record every route of the server (called on the root app before any plugin). */
export function recordRoutes(app: FastifyInstance, context: ServerContext): void {
  const routes: ApiRoute[] = [];
  everything.set(context, routes);
  record(app, routes);
}

export async function apiPlugin(app: FastifyInstance, context: ServerContext): Promise<void> {
  const routes: ApiRoute[] = [];
  registered.set(context, routes);
  record(app, routes);
  await app.register(flowsPlugin, context);
  await app.register(runsPlugin, context);
  await app.register(dlqPlugin, context);
  await app.register(connectionsPlugin, context);
  await app.register(notificationsPlugin, context);
  await app.register(gatewayPlugin, context);
  await app.register(tokensPlugin, context);
  await app.register(membersPlugin, context);
  await app.register(retentionPlugin, context);
  await app.register(erasurePlugin, context);
  await app.register(inventoryPlugin, context);
  await app.register(egressPlugin, context);
}
