/**
 * The inventory report and closing a workspace.
 *
 * - `GET /workspaces/{ws}/inventory?format=json|md|html` (admin): what the workspace stores and
 *   what it does not, generated from the live system (privacy/inventory.ts). HTML is served
 *   with a policy that allows no script at all.
 * - `POST /workspaces/{ws}/close` (owner) `{ "mode": "passive" | "now" }`: passive storage for
 *   6 months (unreadable, key sealed), or deletion at once with the key destroyed
 *   (privacy/workspace-lifecycle.ts). Reopening is an operator's decision: the CLI only.
 */
import type { FastifyInstance } from 'fastify';
import Type from 'typebox';
import { buildInventory } from '../../privacy/inventory.js';
import {
  CONTENT_TYPES,
  INVENTORY_HTML_CSP,
  renderInventory,
  type InventoryFormat,
} from '../../privacy/inventory-render.js';
import { closeWorkspace, type CloseMode } from '../../privacy/workspace-lifecycle.js';
import { actorOf, guard, scopeOf, workspaceOf } from '../auth.js';
import type { ServerContext } from '../context.js';
import {
  BODY_ERRORS,
  CONFLICT_ERRORS,
  GUARDED_ERRORS,
  isoTime,
  MaybeTime,
  Time,
  WorkspaceParams,
} from './schemas.js';

const CloseReply = Type.Object({
  workspace: Type.String(),
  mode: Type.String({ description: 'passive | now' }),
  status: Type.String({ description: 'sealed (passive storage) | purged' }),
  closedAt: Time,
  purgeAfter: MaybeTime,
  flowsParked: Type.Integer(),
  runsDeadLettered: Type.Integer(),
  runsCancelled: Type.Integer(),
  deleted: Type.Optional(
    Type.Record(Type.String(), Type.Integer(), { description: 'Rows deleted, by data class' }),
  ),
});

export async function inventoryPlugin(app: FastifyInstance, context: ServerContext): Promise<void> {
  app.get(
    '/workspaces/:ws/inventory',
    {
      onRequest: guard(context, 'inventory.read'),
      schema: {
        summary: 'The inventory report: what is stored, for how long, and what is not',
        tags: ['privacy'],
        params: WorkspaceParams,
        querystring: Type.Object({
          format: Type.Optional(
            Type.Enum(['json', 'md', 'html'], { description: 'json (default), md (Markdown) or html' }),
          ),
        }),
        produces: ['application/json', 'text/markdown', 'text/html'],
        response: GUARDED_ERRORS,
      },
    },
    async (request, reply) => {
      const format = ((request.query as { format?: string }).format ?? 'json') as InventoryFormat;
      const inventory = await buildInventory(scopeOf(request), {
        workspace: workspaceOf(request).name,
        retention: context.config.retention,
      });
      reply.header('cache-control', 'no-store').header('x-content-type-options', 'nosniff');
      if (format === 'json') return reply.send(inventory);
      if (format === 'html') reply.header('content-security-policy', INVENTORY_HTML_CSP);
      return reply.type(CONTENT_TYPES[format]).send(renderInventory(inventory, format));
    },
  );

  app.post(
    '/workspaces/:ws/close',
    {
      onRequest: guard(context, 'workspace.close'),
      schema: {
        summary:
          'Close the workspace: passive storage for 6 months (unreadable, key sealed), or deletion at once (key destroyed)',
        tags: ['privacy'],
        params: WorkspaceParams,
        body: Type.Union(
          [
            Type.Object(
              {
                mode: Type.Optional(
                  Type.Enum(['passive', 'now'], {
                    description:
                      'passive (default): sealed for 6 months, then purged; now: every record deleted and the key destroyed at once',
                  }),
                ),
              },
              { additionalProperties: false },
            ),
            Type.Null(),
          ],
          { description: '{ "mode": "passive" | "now" }, or no body (passive)' },
        ),
        response: { 200: CloseReply, ...GUARDED_ERRORS, ...BODY_ERRORS, ...CONFLICT_ERRORS },
      },
    },
    async (request) => {
      const mode: CloseMode = (request.body as { mode?: CloseMode } | undefined)?.mode ?? 'passive';
      const workspace = workspaceOf(request);
      const result = await closeWorkspace(scopeOf(request), workspace.name, {
        mode,
        actor: actorOf(request),
      });
      return {
        workspace: result.workspace,
        mode: result.mode,
        status: result.status,
        closedAt: isoTime(result.closedAt),
        purgeAfter: result.status === 'purged' ? null : isoTime(result.purgeAfter),
        flowsParked: result.flowsParked,
        runsDeadLettered: result.runsDeadLettered,
        runsCancelled: result.runsCancelled,
        ...(result.purge ? { deleted: result.purge.byClass } : {}),
      };
    },
  );
}
