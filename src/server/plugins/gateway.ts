/**
 * The gateway log: webhooks received, newest first — path, method, content type, size, the
 * status answered and the run made. The body is there only when it was stored (standard
 * flows); confidential flows never store it. A page that returns bodies is audited.
 */
import type { FastifyInstance } from 'fastify';
import Type from 'typebox';
import { pageLimit } from '../../store/ids.js';
import type { GatewayLogRow } from '../../store/records.js';
import { guard, scopeOf, workspaceOf } from '../auth.js';
import type { ServerContext } from '../context.js';
import { auditRoute } from './audit-events.js';
import { GUARDED_ERRORS, isoTime, PageOf, PageQuery, Time } from './schemas.js';

const GatewayEntry = Type.Object({
  id: Type.String(),
  path: Type.String({ description: 'The path under /hooks/{ws}/' }),
  flow: Type.Union([Type.String(), Type.Null()]),
  receivedAt: Time,
  method: Type.String(),
  contentType: Type.Union([Type.String(), Type.Null()]),
  size: Type.Integer({ description: 'Body size in bytes' }),
  status: Type.Integer({ description: 'The HTTP status answered' }),
  runId: Type.Union([Type.String(), Type.Null()]),
  body: Type.Optional(Type.String({ description: 'The body as received, when it was stored' })),
});

function view(row: GatewayLogRow) {
  return {
    id: row.id,
    path: row.path,
    flow: row.flow_name,
    receivedAt: isoTime(row.received_at),
    method: row.method,
    contentType: row.content_type,
    size: row.size,
    status: row.status,
    runId: row.run_id,
    ...(row.body === null ? {} : { body: row.body }),
  };
}

export async function gatewayPlugin(app: FastifyInstance, context: ServerContext): Promise<void> {
  app.get(
    '/workspaces/:ws/gateway-log',
    {
      onRequest: guard(context, 'gateway.read'),
      schema: {
        summary: 'The gateway log: webhooks received, newest first (the body only when it was stored)',
        tags: ['gateway'],
        params: Type.Object({ ws: Type.String() }),
        querystring: PageQuery,
        response: { 200: PageOf(GatewayEntry), ...GUARDED_ERRORS },
      },
    },
    async (request) => {
      const { limit, cursor } = request.query as { limit?: number; cursor?: string };
      const page = await scopeOf(request).store.gatewayLog.list(
        workspaceOf(request).id,
        pageLimit(limit),
        cursor,
      );
      // Stored webhook bodies are payloads: returning any is a data reveal, audited with their count.
      const bodies = page.items.filter((row) => row.body !== null).length;
      if (bodies > 0) await auditRoute(request, 'gateway.bodies.read', {}, { count: bodies });
      return { items: page.items.map(view), next: page.next };
    },
  );
}
