/**
 * Connections: `PUT /workspaces/{ws}/connections/{name}` with `{ type, settings, secrets }`.
 * The type must be a known connector, and settings and secrets together must satisfy its
 * settings schema; the connector's secret settings go in `secrets` only. Each secret is
 * encrypted by the vault (bound to workspace, connection and field) before it is stored, and
 * no read ever returns one: reads give the names of the secret fields that are set. File paths
 * in settings must stay inside the workspace's files folder. Deleting a connection that flows
 * still name is refused with their names (409 CONNECTION_IN_USE) unless `?force=true`.
 * Changes and reads of one connection are audited (./audit-events.ts).
 */
import type { FastifyInstance } from 'fastify';
import Type from 'typebox';
import { leavesFolder, type Connector } from '../../connectors/connector.js';
import { CONNECTORS } from '../../connectors/registry.js';
import { schemaProblems } from '../../document/schema-problems.js';
import { formatPath } from '../../document/source.js';
import { LetheError, LetheErrors } from '../../errors/index.js';
import { didYouMean } from '../../errors/suggest.js';
import { connectionsOf } from '../../flow/connections.js';
import { pageLimit } from '../../store/ids.js';
import type { ConnectionRow } from '../../store/records.js';
import { actorOf, guard, scopeOf, workspaceOf } from '../auth.js';
import type { ServerContext } from '../context.js';
import { HttpError, notFound } from '../http-errors.js';
import { auditRoute, nameRef } from './audit-events.js';
import { BODY_ERRORS, CONFLICT_ERRORS, GUARDED_ERRORS, isoTime, PageOf, PageQuery, Time } from './schemas.js';

/** Letters, digits, `_`, `.` and `-`; never `/`, which separates the parts a secret is bound to. */
const CONNECTION_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;

/** Settings that name files, by connector type: they must stay in the workspace's folder. */
const ConnectionParams = Type.Object({
  ws: Type.String(),
  name: Type.String({ description: 'Connection name: letters, digits, "_", "." and "-"' }),
});

const ConnectionView = Type.Object({
  name: Type.String(),
  type: Type.String(),
  settings: Type.Record(Type.String(), Type.Unknown(), { description: 'The settings that are not secret' }),
  secrets: Type.Array(Type.String(), {
    description: 'Names of the secret settings that are set (their values are never returned)',
  }),
  createdAt: Time,
  updatedAt: Time,
  updatedBy: Type.String(),
});

const ConnectionBody = Type.Object(
  {
    type: Type.String({ description: `Connector type: ${[...CONNECTORS.keys()].join(', ')}` }),
    settings: Type.Optional(
      Type.Record(Type.String(), Type.Unknown(), { description: 'Settings that are not secret' }),
    ),
    secrets: Type.Optional(
      Type.Record(Type.String(), Type.String(), {
        description:
          'Secret settings (e.g. password), encrypted at rest and never returned. When given they replace ' +
          'the stored secrets; when left out the stored ones are kept (if the type is unchanged).',
      }),
    ),
  },
  { additionalProperties: false },
);

function view(row: ConnectionRow) {
  return {
    name: row.name,
    type: row.type,
    settings: JSON.parse(row.settings) as Record<string, unknown>,
    secrets: Object.keys(JSON.parse(row.secrets) as Record<string, string>).sort(),
    createdAt: isoTime(row.created_at),
    updatedAt: isoTime(row.updated_at),
    updatedBy: row.updated_by,
  };
}

function connectorOf(type: string): Connector {
  const connector = CONNECTORS.get(type);
  if (connector) return connector;
  const known = [...CONNECTORS.keys()];
  throw new HttpError(
    400,
    'CONNECTIONS_INVALID',
    `unknown connection type "${type}"${didYouMean(type, known)}`,
    `types: ${known.join(', ')}`,
  );
}

/** Every problem of a connection's settings and secrets, each at `settings.x` or `secrets.x`. */
function connectionProblems(
  connector: Connector,
  settings: Record<string, unknown>,
  secrets: Record<string, string>,
  givenSecrets: readonly string[],
  filesDir: string,
): LetheError[] {
  const secretFields = new Set(connector.secretSettings);
  const problems: LetheError[] = [];
  const problem = (path: string, message: string, hint?: string) =>
    problems.push(new LetheError('CONNECTIONS_INVALID', message, { location: { path }, hint }));
  for (const field of Object.keys(settings)) {
    if (secretFields.has(field)) {
      problem(
        formatPath(['settings', field]),
        `"${field}" is a secret: send it in "secrets", not in "settings"`,
      );
    }
  }
  const known = Object.keys((connector.settingsSchema as { properties?: object }).properties ?? {});
  for (const field of givenSecrets) {
    if (secretFields.has(field)) continue;
    const secretList = connector.secretSettings.length
      ? `its secrets are ${connector.secretSettings.join(', ')}`
      : 'it has none';
    problem(
      formatPath(['secrets', field]),
      `"${field}" is not a secret setting of a ${connector.type} connection (${secretList})`,
      known.includes(field) ? `send "${field}" in "settings"` : undefined,
    );
  }
  if (problems.length > 0) return problems;
  const merged = { ...settings, ...secrets };
  for (const found of schemaProblems(connector.settingsSchema, merged)) {
    const head = found.path[0];
    const where = typeof head === 'string' && secretFields.has(head) ? 'secrets' : 'settings';
    problem(formatPath([where, ...found.path]), found.message);
  }
  for (const field of connector.fileSettings) {
    const value = settings[field];
    if (typeof value !== 'string' || value === ':memory:') continue;
    if (leavesFolder(filesDir, value)) {
      problem(
        formatPath(['settings', field]),
        `the path "${value}" leads outside the workspace's files folder`,
        'use a path relative to the workspace folder, without ".."',
      );
    }
  }
  return problems;
}

export async function connectionsPlugin(app: FastifyInstance, context: ServerContext): Promise<void> {
  app.put(
    '/workspaces/:ws/connections/:name',
    {
      onRequest: guard(context, 'connection.write'),
      schema: {
        summary:
          'Create or replace a connection; secrets are encrypted and never returned. Leave out "secrets" to keep the stored ones (same type) while changing settings.',
        tags: ['connections'],
        params: ConnectionParams,
        body: ConnectionBody,
        response: {
          200: Type.Object({ connection: ConnectionView }),
          201: Type.Object({ connection: ConnectionView }),
          ...GUARDED_ERRORS,
          ...CONFLICT_ERRORS,
          ...BODY_ERRORS,
        },
      },
    },
    async (request, reply) => {
      const { name } = request.params as { name: string };
      const body = request.body as {
        type: string;
        settings?: Record<string, unknown>;
        secrets?: Record<string, string>;
      };
      if (!CONNECTION_NAME.test(name)) {
        throw new HttpError(
          400,
          'INVALID_NAME',
          `invalid connection name "${name.slice(0, 100)}"`,
          'use letters, digits, "_", "." and "-" (up to 100 characters), starting with a letter or digit',
        );
      }
      const workspace = workspaceOf(request);
      const connector = connectorOf(body.type);
      const settings = body.settings ?? {};
      const existing = await scopeOf(request).store.connections.get(workspace.id, name);

      // Secrets: the ones given, or the stored ones when none are given and the type is the same.
      const keep = body.secrets === undefined && existing?.type === connector.type;
      const sealed: Record<string, string> = keep ? JSON.parse(existing.secrets) : {};
      const secrets: Record<string, string> = { ...body.secrets };
      if (keep) {
        for (const [field, ciphertext] of Object.entries(sealed)) {
          try {
            secrets[field] = await scopeOf(request).vault.decrypt(workspace.id, name, field, ciphertext);
          } catch {
            throw new HttpError(
              409,
              'SECRETS_UNREADABLE',
              `the stored secrets of connection "${name}" cannot be decrypted`,
              'send the secrets again',
            );
          }
        }
      }
      const problems = connectionProblems(
        connector,
        settings,
        secrets,
        Object.keys(body.secrets ?? {}),
        scopeOf(request).runner.filesDir(workspace.name),
      );
      if (problems.length > 0) throw new LetheErrors(problems);
      if (!keep) {
        for (const [field, value] of Object.entries(secrets)) {
          sealed[field] = await scopeOf(request).vault.encrypt(workspace.id, name, field, value);
        }
      }

      const now = Date.now();
      const row: ConnectionRow = {
        workspace_id: workspace.id,
        name,
        type: connector.type,
        settings: JSON.stringify(settings),
        secrets: JSON.stringify(sealed),
        created_at: existing?.created_at ?? now,
        updated_at: now,
        updated_by: actorOf(request),
      };
      const { created } = await scopeOf(request).audit.transaction(async (trx) => {
        const put = await scopeOf(request).store.connections.put(row, trx);
        await auditRoute(
          request,
          put.created ? 'connection.created' : 'connection.changed',
          { connection: nameRef(workspace.id, 'connection', name), secretsReplaced: !keep },
          { trx },
        );
        return put;
      });
      return reply.code(created ? 201 : 200).send({ connection: view(row) });
    },
  );

  app.get(
    '/workspaces/:ws/connections',
    {
      onRequest: guard(context, 'connection.read'),
      schema: {
        summary: 'List connections (never their secrets)',
        tags: ['connections'],
        params: Type.Object({ ws: Type.String() }),
        querystring: PageQuery,
        response: { 200: PageOf(ConnectionView), ...GUARDED_ERRORS },
      },
    },
    async (request) => {
      const { limit, cursor } = request.query as { limit?: number; cursor?: string };
      const page = await scopeOf(request).store.connections.list(
        workspaceOf(request).id,
        pageLimit(limit),
        cursor,
      );
      return { items: page.items.map(view), next: page.next };
    },
  );

  app.get(
    '/workspaces/:ws/connections/:name',
    {
      onRequest: guard(context, 'connection.read'),
      schema: {
        summary: 'Read a connection: its settings and the names of its secrets (never their values)',
        tags: ['connections'],
        params: ConnectionParams,
        response: { 200: Type.Object({ connection: ConnectionView }), ...GUARDED_ERRORS },
      },
    },
    async (request) => {
      const { name } = request.params as { name: string };
      const row = await scopeOf(request).store.connections.get(workspaceOf(request).id, name);
      if (!row) throw notFound(`connection "${name}"`);
      await auditRoute(request, 'connection.read', {
        connection: nameRef(row.workspace_id, 'connection', name),
      });
      return { connection: view(row) };
    },
  );

  app.delete(
    '/workspaces/:ws/connections/:name',
    {
      onRequest: guard(context, 'connection.write'),
      schema: {
        summary: 'Delete a connection and its secrets (refused while flows name it, unless force=true)',
        tags: ['connections'],
        params: ConnectionParams,
        querystring: Type.Object({
          force: Type.Optional(
            Type.Boolean({
              description: 'Delete it even though flows name it: their runs fail until it is back',
            }),
          ),
        }),
        response: { 204: Type.Null(), ...GUARDED_ERRORS, ...CONFLICT_ERRORS },
      },
    },
    async (request, reply) => {
      const { name } = request.params as { name: string };
      const { force } = request.query as { force?: boolean };
      const workspace = workspaceOf(request);
      const workspaceId = workspace.id;
      if (!force) {
        const scope = scopeOf(request);
        const users: string[] = [];
        for (const row of await scope.store.flows.all(workspaceId)) {
          const loaded = await scope.runner.flows.get(workspaceId, workspace.name, row.name, row.version);
          if (connectionsOf(loaded.flow, { signing: true }).includes(name)) users.push(row.name);
        }
        if (users.length > 0) {
          throw new HttpError(
            409,
            'CONNECTION_IN_USE',
            `connection "${name}" is named by ${users.length === 1 ? 'flow' : 'flows'} ${users
              .map((flow) => `"${flow}"`)
              .join(', ')}`,
            'change those flows first, or delete it anyway with ?force=true (their runs fail until it is back)',
          );
        }
      }
      await scopeOf(request).audit.transaction(async (trx) => {
        if (!(await scopeOf(request).store.connections.delete(workspaceId, name, trx))) {
          throw notFound(`connection "${name}"`);
        }
        await auditRoute(
          request,
          'connection.deleted',
          { connection: nameRef(workspaceId, 'connection', name) },
          { trx },
        );
      });
      return reply.code(204).send();
    },
  );
}
