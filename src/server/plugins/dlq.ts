/**
 * The dead-letter queue: runs that ended `incomplete` (their attempts spent, or stopped by a
 * crash), kept with their trigger input for standard flows so they can be retried. Retry sends
 * one back to the queue with fresh attempts; discard gives up on it (it becomes failed,
 * DISCARDED, and its input is deleted). Reading an entry's kept input (params and trigger
 * payload), to decide between the two, is a data reveal and is audited. Runs that kept no
 * input (confidential flows, workspaces that deny log access) are listed with a note saying
 * so, and cannot be retried unless they need no input (scheduled runs); nor can runs that were
 * given credentials at run time, which were forgotten when the run ended.
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import Type from 'typebox';
import { pageLimit } from '../../store/ids.js';
import { guard, scopeOf, workspaceOf } from '../auth.js';
import type { ServerContext } from '../context.js';
import { HttpError, notFound } from '../http-errors.js';
import type { RunInputWithCredentials } from '../../runs/credentials.js';
import { auditRoute } from './audit-events.js';
import { inputNote, replayable, runSummary } from './runs.js';
import {
  CONFLICT_ERRORS,
  GUARDED_ERRORS,
  PageOf,
  PageQuery,
  RunParams,
  RunStatusSchema,
  RunSummary,
} from './schemas.js';

const DlqItem = Type.Object({
  ...RunSummary.properties,
  note: Type.Optional(Type.String({ description: 'Said when the input was not kept (confidential flows)' })),
});

export async function dlqPlugin(app: FastifyInstance, context: ServerContext): Promise<void> {
  /** The run, if it is in the workspace's dead-letter queue; a 404 or 409 otherwise. */
  async function incomplete(request: FastifyRequest, id: string) {
    const run = await scopeOf(request).store.runs.inWorkspace(workspaceOf(request).id, id);
    if (!run) throw notFound(`run "${id}"`);
    if (run.status !== 'incomplete') {
      throw new HttpError(409, 'NOT_IN_DLQ', `run "${id}" is ${run.status}, not in the dead-letter queue`);
    }
    return run;
  }

  app.get(
    '/workspaces/:ws/dlq',
    {
      onRequest: guard(context, 'dlq.read'),
      schema: {
        summary: 'The dead-letter queue: incomplete runs, newest first',
        tags: ['dlq'],
        params: Type.Object({ ws: Type.String() }),
        querystring: Type.Object({
          ...PageQuery.properties,
          flow: Type.Optional(Type.String({ description: 'Only runs of this flow' })),
        }),
        response: { 200: PageOf(DlqItem), ...GUARDED_ERRORS },
      },
    },
    async (request) => {
      const { limit, cursor, flow } = request.query as { limit?: number; cursor?: string; flow?: string };
      const page = await scopeOf(request).store.runs.list(
        workspaceOf(request).id,
        { flow, status: 'incomplete' },
        pageLimit(limit),
        cursor,
      );
      return {
        items: page.items.map((run) => {
          const note = inputNote(run);
          return { ...runSummary(run), ...(note ? { note } : {}) };
        }),
        next: page.next,
      };
    },
  );

  app.get(
    '/workspaces/:ws/dlq/:id/input',
    {
      onRequest: guard(context, 'dlq.read'),
      schema: {
        summary:
          'Read the input an incomplete run kept (its params and trigger payload): a data reveal, audited',
        tags: ['dlq'],
        params: RunParams,
        response: {
          200: Type.Object({
            runId: Type.String(),
            params: Type.Record(Type.String(), Type.Unknown()),
            payload: Type.Union([Type.Array(Type.Unknown()), Type.Null()], {
              description: 'The trigger payload (webhook body, polled rows); null for runs without one',
            }),
          }),
          ...GUARDED_ERRORS,
          ...CONFLICT_ERRORS,
        },
      },
    },
    async (request) => {
      const { id } = request.params as { id: string };
      const run = await incomplete(request, id);
      const input = run.input_kept === 1 ? await scopeOf(request).store.runs.input(id) : undefined;
      if (!input) {
        throw new HttpError(
          409,
          'INPUT_NOT_KEPT',
          run.input_kept === 1 ? `run "${id}" has no stored input` : `run "${id}": ${inputNote(run)}`,
        );
      }
      await auditRoute(request, 'dlq.input.read', { runId: id });
      return { runId: id, params: input.params, payload: input.payload ?? null };
    },
  );

  app.post(
    '/workspaces/:ws/dlq/:id/retry',
    {
      onRequest: guard(context, 'dlq.write'),
      schema: {
        summary: 'Retry an incomplete run: back to the queue with fresh attempts',
        tags: ['dlq'],
        params: RunParams,
        response: {
          202: Type.Object({ runId: Type.String(), status: RunStatusSchema }),
          ...GUARDED_ERRORS,
          ...CONFLICT_ERRORS,
        },
      },
    },
    async (request, reply) => {
      const { id } = request.params as { id: string };
      const workspace = workspaceOf(request);
      const run = await incomplete(request, id);
      if (!replayable(run)) {
        throw new HttpError(
          409,
          'INPUT_NOT_KEPT',
          `run "${id}" cannot be retried: its input was held in memory only and was never stored`,
          'send the request again or start a new run',
        );
      }
      const input = run.input_kept === 1 ? await scopeOf(request).store.runs.input(id) : undefined;
      if (((input as RunInputWithCredentials | undefined)?.credentials ?? []).length > 0) {
        throw new HttpError(
          409,
          'CREDENTIALS_NOT_KEPT',
          `run "${id}" cannot be retried: it was given credentials at run time, which were held in memory only`,
          'start a new run with its credentials (lethe run --ask-credentials)',
        );
      }
      // Another request may have retried or discarded it meanwhile: the update says.
      if (!(await scopeOf(request).store.runs.retry(workspace.id, id, Date.now()))) {
        throw new HttpError(409, 'NOT_IN_DLQ', `run "${id}" left the dead-letter queue meanwhile`);
      }
      scopeOf(request).runner.notify(id);
      return reply.code(202).send({ runId: id, status: 'queued' });
    },
  );

  app.delete(
    '/workspaces/:ws/dlq/:id',
    {
      onRequest: guard(context, 'dlq.write'),
      schema: {
        summary: 'Discard an incomplete run: it becomes failed (DISCARDED) and its input is deleted',
        tags: ['dlq'],
        params: RunParams,
        response: { 204: Type.Null(), ...GUARDED_ERRORS, ...CONFLICT_ERRORS },
      },
    },
    async (request, reply) => {
      const { id } = request.params as { id: string };
      const workspace = workspaceOf(request);
      await incomplete(request, id);
      if (!(await scopeOf(request).store.runs.discard(workspace.id, id))) {
        throw new HttpError(409, 'NOT_IN_DLQ', `run "${id}" left the dead-letter queue meanwhile`);
      }
      // A confidential run's input, held in memory for a retry, goes too.
      scopeOf(request).runner.dropInput(id);
      return reply.code(204).send();
    },
  );
}
