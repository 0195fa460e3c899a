/**
 * Runs: `POST /workspaces/{ws}/flows/{name}/runs` starts a manual run (honouring
 * `Idempotency-Key`), optionally with credentials for this run only (held in memory, never
 * stored); `GET …/flows/{name}/connections` says which connections a run of the flow uses and
 * which are stored (what `lethe run --ask-credentials` asks for); the activity stream lists
 * runs (ids, status, times, counts — never values); one run comes with its execution details
 * (per step: rows in/out, time, and a sample of rows for runs that keep payloads) and whether
 * its input was kept (reading the details of a run that has them is audited as a data reveal);
 * a running run can be cancelled.
 */
import type { FastifyInstance } from 'fastify';
import Type from 'typebox';
import { CONNECTORS } from '../../connectors/registry.js';
import { connectionsOf } from '../../flow/connections.js';
import type { RuntimeCredentials } from '../../runs/credentials.js';
import { pageLimit } from '../../store/ids.js';
import type { RunRow } from '../../store/runs.js';
import type { RunStatus } from '../../store/schema.js';
import { guard, scopeOf, workspaceOf } from '../auth.js';
import type { ServerContext } from '../context.js';
import { HttpError, notFound } from '../http-errors.js';
import { auditRoute } from './audit-events.js';
import {
  BODY_ERRORS,
  CONFLICT_ERRORS,
  GUARDED_ERRORS,
  isoTime,
  PageOf,
  PageQuery,
  RunParams,
  RunStatusSchema,
  RunSummary,
} from './schemas.js';

/** The summary of a run, as the activity stream and the dead-letter queue show it. */
export function runSummary(row: RunRow) {
  return {
    id: row.id,
    flow: row.flow_name,
    version: row.flow_version,
    trigger: row.trigger,
    privacy: row.privacy,
    status: row.status,
    attempt: row.attempt,
    maxAttempts: row.max_attempts,
    queuedAt: isoTime(row.queued_at),
    startedAt: isoTime(row.started_at),
    finishedAt: isoTime(row.finished_at),
    durationMs: row.duration_ms,
    rowsRead: row.rows_read,
    rowsWritten: row.rows_written,
    errorCode: row.error_code,
    errorStep: row.error_step,
    inputKept: row.input_kept === 1,
  };
}

/** Whether an incomplete run can be retried without the input it did not keep. */
export function replayable(row: RunRow): boolean {
  return row.input_kept === 1 || row.trigger === 'schedule';
}

/** What a reader is told about a run whose input was not kept. */
export function inputNote(row: RunRow): string | undefined {
  if (row.input_kept === 1) return undefined;
  const why =
    row.privacy === 'confidential'
      ? 'the flow is confidential'
      : 'the workspace denies log access, so every flow is treated as confidential';
  return (
    `the input was not kept: ${why}; its input was held in memory only, never written, and forgotten ` +
    `when the run ended${
      replayable(row)
        ? ' (a scheduled run needs no input, so it can still be retried)'
        : ', so a retry cannot replay it: send the request again or start a new run'
    }`
  );
}

const ENDED: ReadonlySet<RunStatus> = new Set(['succeeded', 'failed', 'incomplete']);

const StepDetail = Type.Object({
  id: Type.String(),
  command: Type.String(),
  status: Type.String(),
  rowsIn: Type.Number(),
  rowsOut: Type.Number(),
  durationMs: Type.Number(),
  sample: Type.Optional(
    Type.Object(
      { columns: Type.Array(Type.String()), rows: Type.Array(Type.Array(Type.Unknown())) },
      { description: 'The first rows of the step’s output (standard flows only)' },
    ),
  ),
});

const RunDetail = Type.Object({
  run: RunSummary,
  input: Type.Object({
    kept: Type.Boolean({ description: 'Whether the input was written to the store at all' }),
    stored: Type.Boolean({
      description: 'Whether it is stored now (until the run succeeds, or is discarded from the DLQ)',
    }),
    note: Type.Optional(Type.String()),
  }),
  details: Type.Union(
    [
      Type.Object({
        steps: Type.Array(StepDetail),
        errorMessage: Type.Union([Type.String(), Type.Null()], {
          description: 'The full error message (it may quote values)',
        }),
      }),
      Type.Null(),
    ],
    { description: 'Execution details: kept for standard flows once the run has ended; null otherwise' },
  ),
});

const RuntimeConnectionBody = Type.Object(
  {
    type: Type.Optional(
      Type.String({
        description: `Connector type (${[...CONNECTORS.keys()].join(', ')}): needed when no connection of this name is stored`,
      }),
    ),
    settings: Type.Optional(
      Type.Record(Type.String(), Type.Unknown(), {
        description: 'Settings that are not secret (over a stored connection: they replace its own)',
      }),
    ),
    secrets: Type.Optional(
      Type.Record(Type.String(), Type.String(), {
        description: 'Secret settings such as password (over a stored connection: they replace its own)',
      }),
    ),
  },
  { additionalProperties: false },
);

const FlowConnection = Type.Object({
  name: Type.String(),
  stored: Type.Boolean({ description: 'Whether a connection of this name is stored in the workspace' }),
  type: Type.Union([Type.String(), Type.Null()], { description: 'The stored connection’s type' }),
  secrets: Type.Array(Type.String(), { description: 'Names of the stored secrets that are set' }),
});

const RunCreated = Type.Object({
  runId: Type.String(),
  status: RunStatusSchema,
  duplicate: Type.Optional(
    Type.Boolean({ description: 'True when the Idempotency-Key named an earlier run, returned instead' }),
  ),
});

export async function runsPlugin(app: FastifyInstance, context: ServerContext): Promise<void> {
  app.post(
    '/workspaces/:ws/flows/:name/runs',
    {
      onRequest: guard(context, 'run.create'),
      // No body at all means no params.
      preValidation: async (request) => {
        if (request.body === undefined || request.body === null) request.body = {};
      },
      schema: {
        summary:
          'Start a manual run; the same Idempotency-Key returns the first run instead of starting another',
        tags: ['runs'],
        params: Type.Object({ ws: Type.String(), name: Type.String({ description: 'Flow name' }) }),
        headers: Type.Object({
          'idempotency-key': Type.Optional(
            Type.String({ minLength: 1, maxLength: 200, description: 'Makes a repeated request safe' }),
          ),
        }),
        body: Type.Object(
          {
            params: Type.Optional(
              Type.Record(Type.String(), Type.Unknown(), {
                description: 'Values of the flow’s params, converted to their declared types',
              }),
            ),
            credentials: Type.Optional(
              Type.Record(Type.String(), RuntimeConnectionBody, {
                description:
                  'Credentials for this run only, by connection name: a whole connection (type, settings, secrets), ' +
                  'or secrets completing a stored one. Held in the server’s memory until the run ends; never stored, ' +
                  'logged or returned. A run that needs them after a restart ends incomplete (CREDENTIALS_LOST).',
              }),
            ),
          },
          { additionalProperties: false },
        ),
        response: { 202: RunCreated, ...GUARDED_ERRORS, ...CONFLICT_ERRORS, ...BODY_ERRORS },
      },
    },
    async (request, reply) => {
      const { name } = request.params as { name: string };
      const { params, credentials } = request.body as {
        params?: Record<string, unknown>;
        credentials?: RuntimeCredentials;
      };
      const header = request.headers['idempotency-key'];
      const idempotencyKey = Array.isArray(header) ? header[0] : header;
      const workspace = workspaceOf(request);
      const flow = await scopeOf(request).store.flows.get(workspace.id, name);
      if (!flow) throw notFound(`flow "${name}"`);
      if (flow.enabled !== 1) throw new HttpError(409, 'FLOW_DISABLED', `flow "${name}" is disabled`);
      const { run, duplicate } = await scopeOf(request).runs.create({
        workspace,
        flow,
        trigger: 'manual',
        params: params ?? {},
        idempotencyKey,
        credentials,
      });
      return reply
        .code(202)
        .header('location', `/api/v1/workspaces/${workspace.name}/runs/${run.id}`)
        .send({ runId: run.id, status: run.status, ...(duplicate ? { duplicate: true } : {}) });
    },
  );

  app.get(
    '/workspaces/:ws/flows/:name/connections',
    {
      onRequest: guard(context, 'flow.read'),
      schema: {
        summary:
          'The connections a run of the flow uses, and which are stored: a manual run may give the others (or the secrets of stored ones) as credentials',
        tags: ['runs'],
        params: Type.Object({ ws: Type.String(), name: Type.String({ description: 'Flow name' }) }),
        response: { 200: Type.Object({ items: Type.Array(FlowConnection) }), ...GUARDED_ERRORS },
      },
    },
    async (request) => {
      const { name } = request.params as { name: string };
      const workspace = workspaceOf(request);
      const flow = await scopeOf(request).store.flows.get(workspace.id, name);
      if (!flow) throw notFound(`flow "${name}"`);
      const loaded = await scopeOf(request).runner.flows.get(
        workspace.id,
        workspace.name,
        flow.name,
        flow.version,
      );
      const items = [];
      for (const connection of connectionsOf(loaded.flow, { signing: false })) {
        const row = await scopeOf(request).store.connections.get(workspace.id, connection);
        items.push({
          name: connection,
          stored: row !== undefined,
          type: row?.type ?? null,
          secrets: row ? Object.keys(JSON.parse(row.secrets) as Record<string, string>).sort() : [],
        });
      }
      return { items };
    },
  );

  app.get(
    '/workspaces/:ws/runs',
    {
      onRequest: guard(context, 'run.read'),
      schema: {
        summary: 'The activity stream: runs, newest first (ids, status, times and counts; no values)',
        tags: ['runs'],
        params: Type.Object({ ws: Type.String() }),
        querystring: Type.Object({
          ...PageQuery.properties,
          flow: Type.Optional(Type.String({ description: 'Only runs of this flow' })),
          status: Type.Optional(RunStatusSchema),
        }),
        response: { 200: PageOf(RunSummary), ...GUARDED_ERRORS },
      },
    },
    async (request) => {
      const { limit, cursor, flow, status } = request.query as {
        limit?: number;
        cursor?: string;
        flow?: string;
        status?: RunStatus;
      };
      const page = await scopeOf(request).store.runs.list(
        workspaceOf(request).id,
        { flow, status },
        pageLimit(limit),
        cursor,
      );
      return { items: page.items.map(runSummary), next: page.next };
    },
  );

  app.get(
    '/workspaces/:ws/runs/:id',
    {
      onRequest: guard(context, 'run.read'),
      schema: {
        summary: 'Read a run: its summary, execution details and whether its input was kept',
        tags: ['runs'],
        params: RunParams,
        response: { 200: RunDetail, ...GUARDED_ERRORS },
      },
    },
    async (request) => {
      const { id } = request.params as { id: string };
      const run = await scopeOf(request).store.runs.inWorkspace(workspaceOf(request).id, id);
      if (!run) throw notFound(`run "${id}"`);
      const [details, input] = await Promise.all([
        ENDED.has(run.status) && run.privacy === 'standard'
          ? scopeOf(request).store.runs.details(run.id)
          : undefined,
        run.input_kept === 1 ? scopeOf(request).store.runs.input(run.id) : undefined,
      ]);
      const note = inputNote(run);
      // The execution details carry step samples (values): reading them is a data reveal.
      if (details) await auditRoute(request, 'run.data.read', { runId: run.id });
      return {
        run: runSummary(run),
        input: { kept: run.input_kept === 1, stored: input !== undefined, ...(note ? { note } : {}) },
        details: details
          ? { steps: JSON.parse(details.steps) as unknown[], errorMessage: details.error_message }
          : null,
      };
    },
  );

  app.post(
    '/workspaces/:ws/runs/:id/cancel',
    {
      onRequest: guard(context, 'run.cancel'),
      schema: {
        summary: 'Cancel a running run (it ends as failed, CANCELLED)',
        tags: ['runs'],
        params: RunParams,
        response: {
          202: Type.Object({ runId: Type.String(), status: Type.Literal('cancelling') }),
          ...GUARDED_ERRORS,
          ...CONFLICT_ERRORS,
        },
      },
    },
    async (request, reply) => {
      const { id } = request.params as { id: string };
      const run = await scopeOf(request).store.runs.inWorkspace(workspaceOf(request).id, id);
      if (!run) throw notFound(`run "${id}"`);
      if (run.status !== 'running' || !scopeOf(request).runner.cancel(run.id)) {
        throw new HttpError(
          409,
          'NOT_RUNNING',
          `run "${id}" is ${run.status === 'running' ? 'not running in this server' : run.status}, so it cannot be cancelled`,
          run.status === 'incomplete' ? 'discard it from the dead-letter queue instead' : undefined,
        );
      }
      return reply.code(202).send({ runId: run.id, status: 'cancelling' });
    },
  );
}
