/**
 * Notifications: what the server tells a workspace (a run failed, the dead-letter queue grew),
 * newest first; each can be marked read.
 */
import type { FastifyInstance } from 'fastify';
import Type from 'typebox';
import { pageLimit } from '../../store/ids.js';
import type { NotificationRow } from '../../store/records.js';
import { guard, scopeOf, workspaceOf } from '../auth.js';
import type { ServerContext } from '../context.js';
import { notFound } from '../http-errors.js';
import { GUARDED_ERRORS, IdParams, isoTime, MaybeTime, PageOf, PageQuery, Time } from './schemas.js';

const Notification = Type.Object({
  id: Type.String(),
  kind: Type.String({ description: 'run.failed | dlq.added' }),
  runId: Type.Union([Type.String(), Type.Null()]),
  flow: Type.Union([Type.String(), Type.Null()]),
  createdAt: Time,
  readAt: MaybeTime,
});

function view(row: NotificationRow) {
  return {
    id: row.id,
    kind: row.kind,
    runId: row.run_id,
    flow: row.flow_name,
    createdAt: isoTime(row.created_at),
    readAt: isoTime(row.read_at),
  };
}

export async function notificationsPlugin(app: FastifyInstance, context: ServerContext): Promise<void> {
  app.get(
    '/workspaces/:ws/notifications',
    {
      onRequest: guard(context, 'notification.read'),
      schema: {
        summary: 'Notifications, newest first',
        tags: ['notifications'],
        params: Type.Object({ ws: Type.String() }),
        querystring: PageQuery,
        response: { 200: PageOf(Notification), ...GUARDED_ERRORS },
      },
    },
    async (request) => {
      const { limit, cursor } = request.query as { limit?: number; cursor?: string };
      const page = await scopeOf(request).store.notifications.list(
        workspaceOf(request).id,
        pageLimit(limit),
        cursor,
      );
      return { items: page.items.map(view), next: page.next };
    },
  );

  app.post(
    '/workspaces/:ws/notifications/:id/read',
    {
      onRequest: guard(context, 'notification.read'),
      schema: {
        summary: 'Mark a notification read',
        tags: ['notifications'],
        params: IdParams,
        response: { 200: Type.Object({ id: Type.String(), readAt: Time }), ...GUARDED_ERRORS },
      },
    },
    async (request) => {
      const { id } = request.params as { id: string };
      const now = Date.now();
      if (!(await scopeOf(request).store.notifications.markRead(workspaceOf(request).id, id, now))) {
        throw notFound(`notification "${id}"`);
      }
      return { id, readAt: isoTime(now) };
    },
  );
}
