/**
 * Flows: `PUT /workspaces/{ws}/flows/{name}` stores a flow from YAML (application/yaml) or JSON
 * and makes a new version when its text changed; reads list flows and give one with its
 * versions. The text is validated exactly as `lethe validate` does, and every problem comes
 * back at once with line and column. `POST …/enable` and `…/disable` switch a flow's trigger
 * (and manual runs) on and off without changing its text. Creating, changing, enabling,
 * disabling and deleting a flow are audited, each in the change's own transaction.
 */
import type { FastifyInstance } from 'fastify';
import Type from 'typebox';
import { parseFlow } from '../../flow/load.js';
import { pageLimit } from '../../store/ids.js';
import type { FlowRow } from '../../store/flows.js';
import { actorOf, guard, scopeOf, workspaceOf } from '../auth.js';
import type { ServerContext } from '../context.js';
import { HttpError, notFound } from '../http-errors.js';
import { auditRoute, nameRef } from './audit-events.js';
import { BODY_ERRORS, GUARDED_ERRORS, PageOf, PageQuery, WorkspaceParams } from './schemas.js';

const FLOW_TEXT_TYPES = [
  'application/yaml',
  'application/x-yaml',
  'text/yaml',
  'text/x-yaml',
  'text/plain',
  'application/json',
];

const FlowParams = Type.Object({ ws: Type.String(), name: Type.String() });

const FlowSummary = Type.Object({
  name: Type.String(),
  version: Type.Integer(),
  privacy: Type.String(),
  trigger: Type.String({ description: 'manual | schedule | webhook | poll' }),
  webhookPath: Type.Union([Type.String(), Type.Null()]),
  enabled: Type.Boolean(),
  createdAt: Type.String(),
  updatedAt: Type.String(),
});

function summary(row: FlowRow) {
  return {
    name: row.name,
    version: row.version,
    privacy: row.privacy,
    trigger: row.trigger_kind,
    webhookPath: row.webhook_path,
    enabled: row.enabled === 1,
    createdAt: new Date(row.created_at).toISOString(),
    updatedAt: new Date(row.updated_at).toISOString(),
  };
}

export async function flowsPlugin(app: FastifyInstance, context: ServerContext): Promise<void> {
  // The flow's text is stored as given, so bodies arrive as text, JSON included.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser(FLOW_TEXT_TYPES, { parseAs: 'string' }, (_request, body, done) =>
    done(null, body),
  );

  app.put(
    '/workspaces/:ws/flows/:name',
    {
      onRequest: guard(context, 'flow.write'),
      schema: {
        summary: 'Create or update a flow (a new version when its text changed)',
        tags: ['flows'],
        params: FlowParams,
        consumes: ['application/yaml', 'application/json'],
        response: {
          200: Type.Object({ flow: FlowSummary, changed: Type.Boolean() }),
          201: Type.Object({ flow: FlowSummary, changed: Type.Boolean() }),
          ...GUARDED_ERRORS,
          ...BODY_ERRORS,
        },
      },
    },
    async (request, reply) => {
      const { name } = request.params as { name: string };
      const workspace = workspaceOf(request);
      const source = typeof request.body === 'string' ? request.body : '';
      if (source.trim() === '')
        throw new HttpError(400, 'EMPTY_BODY', 'send the flow as YAML (application/yaml) or JSON');
      const format = (request.headers['content-type'] ?? '').includes('json') ? 'json' : 'yaml';
      const loaded = parseFlow(source, `${name}.${format}`, scopeOf(request).runner.filesDir(workspace.name));
      if (loaded.flow.name !== name) {
        throw new HttpError(
          400,
          'NAME_MISMATCH',
          `the flow is named "${loaded.flow.name}" but was sent to "${name}"`,
          'make the URL and the flow’s name field agree',
        );
      }
      const { flow, created, changed } = await scopeOf(request).audit.transaction(async (trx) => {
        const put = await scopeOf(request).store.flows.put(
          { workspaceId: workspace.id, flow: loaded.flow, source, format, author: actorOf(request) },
          trx,
        );
        // An unchanged text is no flow change: nothing to audit.
        if (put.changed) {
          await auditRoute(
            request,
            put.created ? 'flow.created' : 'flow.changed',
            { flow: nameRef(workspace.id, 'flow', name), version: put.flow.version },
            { trx },
          );
        }
        return put;
      });
      if (changed) {
        context.hookTargets?.forget();
        void scopeOf(request).triggers?.refresh();
      }
      return reply.code(created ? 201 : 200).send({ flow: summary(flow), changed });
    },
  );

  app.get(
    '/workspaces/:ws/flows',
    {
      onRequest: guard(context, 'flow.read'),
      schema: {
        summary: 'List flows',
        tags: ['flows'],
        params: WorkspaceParams,
        querystring: PageQuery,
        response: { 200: PageOf(FlowSummary), ...GUARDED_ERRORS },
      },
    },
    async (request) => {
      const { limit, cursor } = request.query as { limit?: number; cursor?: string };
      const page = await scopeOf(request).store.flows.list(workspaceOf(request).id, pageLimit(limit), cursor);
      return { items: page.items.map(summary), next: page.next };
    },
  );

  app.get(
    '/workspaces/:ws/flows/:name',
    {
      onRequest: guard(context, 'flow.read'),
      schema: {
        summary: 'Read a flow: its current text and its versions',
        tags: ['flows'],
        params: FlowParams,
        response: {
          200: Type.Object({
            flow: FlowSummary,
            source: Type.String(),
            format: Type.String(),
            versions: Type.Array(
              Type.Object({ version: Type.Integer(), author: Type.String(), createdAt: Type.String() }),
            ),
          }),
          ...GUARDED_ERRORS,
        },
      },
    },
    async (request) => {
      const { name } = request.params as { name: string };
      const workspace = workspaceOf(request);
      const flow = await scopeOf(request).store.flows.get(workspace.id, name);
      if (!flow) throw notFound(`flow "${name}"`);
      const current = await scopeOf(request).store.flows.version(workspace.id, name, flow.version);
      const versions = await scopeOf(request).store.flows.versions(workspace.id, name);
      return {
        flow: summary(flow),
        source: current?.source ?? '',
        format: current?.format ?? 'yaml',
        versions: versions.map((v) => ({
          version: v.version,
          author: v.author,
          createdAt: new Date(v.created_at).toISOString(),
        })),
      };
    },
  );

  app.get(
    '/workspaces/:ws/flows/:name/versions/:version',
    {
      onRequest: guard(context, 'flow.read'),
      schema: {
        summary: 'Read one version of a flow',
        tags: ['flows'],
        params: Type.Object({
          ws: Type.String(),
          name: Type.String(),
          version: Type.Integer({ minimum: 1 }),
        }),
        response: {
          200: Type.Object({
            version: Type.Integer(),
            source: Type.String(),
            format: Type.String(),
            author: Type.String(),
            createdAt: Type.String(),
          }),
          ...GUARDED_ERRORS,
        },
      },
    },
    async (request) => {
      const { name, version } = request.params as { name: string; version: number };
      const row = await scopeOf(request).store.flows.version(workspaceOf(request).id, name, Number(version));
      if (!row) throw notFound(`version ${version} of flow "${name}"`);
      return {
        version: row.version,
        source: row.source,
        format: row.format,
        author: row.author,
        createdAt: new Date(row.created_at).toISOString(),
      };
    },
  );

  for (const [action, enabled] of [
    ['enable', true],
    ['disable', false],
  ] as const) {
    app.post(
      `/workspaces/:ws/flows/:name/${action}`,
      {
        onRequest: guard(context, 'flow.write'),
        schema: {
          summary: enabled
            ? 'Enable a flow: its webhook, schedule or poll fires again and manual runs are accepted'
            : 'Disable a flow: its webhook answers 404, its schedule and poll stop, manual runs are refused (409); runs already queued still run',
          tags: ['flows'],
          params: FlowParams,
          response: {
            200: Type.Object({
              flow: FlowSummary,
              changed: Type.Boolean({ description: 'false when the flow already was so' }),
            }),
            ...GUARDED_ERRORS,
          },
        },
      },
      async (request) => {
        const { name } = request.params as { name: string };
        const workspaceId = workspaceOf(request).id;
        const result = await scopeOf(request).audit.transaction(async (trx) => {
          const set = await scopeOf(request).store.flows.setEnabled(workspaceId, name, enabled, trx);
          if (!set) throw notFound(`flow "${name}"`);
          if (set.changed) {
            await auditRoute(
              request,
              enabled ? 'flow.enabled' : 'flow.disabled',
              { flow: nameRef(workspaceId, 'flow', name) },
              { trx },
            );
          }
          return set;
        });
        if (result.changed) {
          context.hookTargets?.forget();
          void scopeOf(request).triggers?.refresh();
        }
        return { flow: summary(result.flow), changed: result.changed };
      },
    );
  }

  app.delete(
    '/workspaces/:ws/flows/:name',
    {
      onRequest: guard(context, 'flow.write'),
      schema: {
        summary: 'Delete a flow and its versions',
        tags: ['flows'],
        params: FlowParams,
        response: { 204: Type.Null(), ...GUARDED_ERRORS },
      },
    },
    async (request, reply) => {
      const { name } = request.params as { name: string };
      const workspaceId = workspaceOf(request).id;
      const deleted = await scopeOf(request).audit.transaction(async (trx) => {
        const gone = await scopeOf(request).store.flows.delete(workspaceId, name, trx);
        if (!gone) throw notFound(`flow "${name}"`);
        // The receipt says how much of each kind went with it (counts only).
        const removed = Object.entries(gone.removed).filter(([, n]) => n > 0);
        await auditRoute(
          request,
          'flow.deleted',
          {
            flow: nameRef(workspaceId, 'flow', name),
            ...Object.fromEntries(removed.map(([table, n]) => [`removed.${table}`, n])),
            ...(gone.queuedFailed.length > 0 ? { queuedRunsFailed: gone.queuedFailed.length } : {}),
          },
          { trx },
        );
        return gone;
      });
      // The queued runs it failed will not run: what they held in memory goes too.
      for (const id of deleted.queuedFailed) scopeOf(request).runner.dropInput(id);
      context.hookTargets?.forget();
      void scopeOf(request).triggers?.refresh();
      return reply.code(204).send();
    },
  );
}
