/**
 * The workspace's egress allow-list (src/egress/workspace.ts):
 *
 * - `GET /workspaces/{ws}/settings/egress` (viewer): `{ allow: [...] }`.
 * - `PUT /workspaces/{ws}/settings/egress` (owner) `{ allow: [...] }`: replaces it. Opening a
 *   private network to a workspace's flows is an owner's decision; each entry is checked (a bad
 *   one is a 400 naming it), sockets and metadata addresses can never be opened this way, and
 *   the change is recorded in the audit log with the entries' count (not the entries).
 */
import type { FastifyInstance } from 'fastify';
import Type from 'typebox';
import {
  checkWorkspaceEgressAllow,
  EGRESS_SETTINGS_KEY,
  workspaceEgressAllow,
} from '../../egress/workspace.js';
import { updateWorkspaceSettings } from '../../store/workspaces.js';
import { actorOf, guard, scopeOf, workspaceOf } from '../auth.js';
import type { ServerContext } from '../context.js';
import { BODY_ERRORS, GUARDED_ERRORS, WorkspaceParams } from './schemas.js';

const EgressSettings = Type.Object(
  {
    allow: Type.Array(Type.String({ minLength: 1, maxLength: 300 }), {
      maxItems: 200,
      description:
        'Destinations the workspace’s runs may reach although the deployment closes them by default: ' +
        'addresses or networks with an optional port (10.0.0.5:5432, [fd00::/8]:443), host names or *.domain',
    }),
  },
  { additionalProperties: false },
);

export async function egressPlugin(app: FastifyInstance, context: ServerContext): Promise<void> {
  app.get(
    '/workspaces/:ws/settings/egress',
    {
      onRequest: guard(context, 'settings.read'),
      schema: {
        summary: 'The workspace’s egress allow-list',
        tags: ['security'],
        params: WorkspaceParams,
        response: { 200: EgressSettings, ...GUARDED_ERRORS },
      },
    },
    async (request) => ({ allow: workspaceEgressAllow(workspaceOf(request).settings) }),
  );

  app.put(
    '/workspaces/:ws/settings/egress',
    {
      onRequest: guard(context, 'egress.write'),
      schema: {
        summary: 'Replace the workspace’s egress allow-list (owner)',
        tags: ['security'],
        params: WorkspaceParams,
        body: EgressSettings,
        response: { 200: EgressSettings, ...GUARDED_ERRORS, ...BODY_ERRORS },
      },
    },
    async (request) => {
      const workspace = workspaceOf(request);
      const allow = checkWorkspaceEgressAllow((request.body as { allow: string[] }).allow);
      await scopeOf(request).audit.transaction(async (trx) => {
        const previous = await updateWorkspaceSettings(trx, workspace.id, () => ({
          [EGRESS_SETTINGS_KEY]: allow.length > 0 ? allow : undefined,
        }));
        await scopeOf(request).audit.append(
          {
            workspaceId: workspace.id,
            actor: actorOf(request),
            action: 'settings.egress.changed',
            reason: 'settings',
            details: {
              entries: allow.length,
              before: workspaceEgressAllow(JSON.stringify(previous)).length,
            },
          },
          trx,
        );
      });
      scopeOf(request).runner.forgetWorkspace(workspace.id);
      return { allow };
    },
  );
}
