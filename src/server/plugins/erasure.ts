/**
 * Data-subject erasure requests (privacy issue item 5): `POST /workspaces/{ws}/erasure-requests`
 * with `{ subject: "email:…" | "account:…" | "key:…", reason? }` makes a request due in 30
 * days and starts processing it at once; `POST …/{id}/extend` moves the due date once, by up
 * to 60 days, with a reason; the list flags overdue requests; one request gives its progress
 * and, once done, its completion report. Replies never contain the subject.
 *
 * Requests are processed in the background, one at a time per request (a lease in the store
 * keeps two processes from working on the same one). Open requests are picked up when the
 * server starts — so one interrupted by a restart resumes — and every half minute after, so
 * requests made with `lethe erase --no-process` or left waiting for a running run complete.
 */
import type { FastifyInstance } from 'fastify';
import Type from 'typebox';
import { LetheError } from '../../errors/index.js';
import {
  createErasureRequest,
  ErasureConflict,
  extendErasureRequest,
  getErasureRequest,
  listErasureRequests,
  MAX_EXTENSION_DAYS,
  MAX_REASON_LENGTH,
  openErasureRequests,
  processErasure,
  setErasureClock,
  viewOf,
} from '../../privacy/erasure.js';
import { pageLimit } from '../../store/ids.js';
import { actorOf, guard, scopeOf, workspaceOf } from '../auth.js';
import type { ServerContext } from '../context.js';
import { HttpError, notFound } from '../http-errors.js';
import {
  BODY_ERRORS,
  CONFLICT_ERRORS,
  GUARDED_ERRORS,
  IdParams,
  MaybeTime,
  PageOf,
  PageQuery,
  Time,
  WorkspaceParams,
} from './schemas.js';

/** How often open requests are looked for (made by the CLI, or waiting for a run). */
const SWEEP_MS = 30_000;

const Counts = {
  found: Type.Integer({ description: 'Records that held the subject' }),
  deleted: Type.Integer(),
  pseudonymised: Type.Integer({ description: 'Records kept with the subject replaced by a pseudonym' }),
};

const TableCounts = Type.Object({ table: Type.String(), ...Counts });

const ClassReport = Type.Object({
  dataClass: Type.String(),
  stored: Type.Boolean({ description: 'Whether this version stores records of the class' }),
  mayHoldPersonalData: Type.Boolean(),
  ...Counts,
  tables: Type.Array(TableCounts),
  note: Type.String(),
  flows: Type.Optional(Type.Array(Type.String(), { description: 'Flows whose versions were pseudonymised' })),
  connections: Type.Optional(
    Type.Array(Type.String(), { description: 'Connections pseudonymised: they must be reconfigured' }),
  ),
});

const Report = Type.Object(
  {
    requestId: Type.String(),
    subjectKind: Type.String(),
    legalHold: Type.Boolean(),
    pseudonym: Type.Union([Type.String(), Type.Null()]),
    createdAt: Time,
    dueAt: Time,
    completedAt: Time,
    completedLate: Type.Boolean(),
    runsMarked: Type.Integer({ description: 'Runs whose input was erased (they stay, failed: ERASED)' }),
    classes: Type.Array(ClassReport, { description: 'Every data class, with what was found and done' }),
    notes: Type.Array(Type.String()),
  },
  { description: 'The completion report' },
);

const ErasureRequest = Type.Object({
  id: Type.String(),
  subjectKind: Type.String({ description: 'email | account | key (the subject itself is never shown)' }),
  status: Type.Union([Type.Literal('open'), Type.Literal('processing'), Type.Literal('completed')]),
  requestedBy: Type.String(),
  reason: Type.Union([Type.String(), Type.Null()]),
  createdAt: Time,
  dueAt: Time,
  overdue: Type.Boolean({ description: 'Open after its due date' }),
  extended: Type.Boolean(),
  extendedAt: MaybeTime,
  extensionReason: Type.Union([Type.String(), Type.Null()]),
  completedAt: MaybeTime,
  progress: Type.Union([
    Type.Object({
      passes: Type.Integer(),
      startedAt: MaybeTime,
      tables: Type.Array(Type.Object({ table: Type.String(), dataClass: Type.String(), ...Counts })),
      lastError: Type.Union([Type.String(), Type.Null()]),
    }),
    Type.Null(),
  ]),
  report: Type.Union([Report, Type.Null()]),
});

const CreateBody = Type.Object(
  {
    subject: Type.String({
      minLength: 1,
      maxLength: 400,
      description: 'email:<address>, account:<id> or key:<value>',
    }),
    reason: Type.Optional(Type.String({ maxLength: MAX_REASON_LENGTH })),
  },
  { additionalProperties: false },
);

const ExtendBody = Type.Object(
  {
    reason: Type.String({ minLength: 1, maxLength: MAX_REASON_LENGTH }),
    days: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: MAX_EXTENSION_DAYS,
        description: `Days added to the due date (default and most: ${MAX_EXTENSION_DAYS})`,
      }),
    ),
  },
  { additionalProperties: false },
);

/**
 * The runner caches parsed flow versions; erasure pseudonymises them in place, so the cached
 * parses (which still hold the subject) must go.
 */
function forgetParsedFlows(context: ServerContext): void {
  context.runner.flows.forget();
}

export async function erasurePlugin(app: FastifyInstance, context: ServerContext): Promise<void> {
  const running = new Map<string, Promise<void>>();
  const stop = new AbortController();
  let timer: NodeJS.Timeout | undefined;
  const log = context.logger.child({ component: 'erasure' });

  /**
   * Process a request in the background (once at a time per request in this process), in its
   * workspace's region.
   */
  function start(scope: ServerContext, id: string): void {
    const key = `${scope.region}/${id}`;
    if (running.has(key) || stop.signal.aborted) return;
    const work = (async () => {
      try {
        const { outcome } = await processErasure(scope, id, {
          signal: stop.signal,
          onBatch: (table) => {
            if (table === 'flow_versions') forgetParsedFlows(scope);
          },
        });
        log.info({ requestId: id, region: scope.region, outcome }, 'erasure request processed');
      } catch (error) {
        // Ids and error classes only: a message could quote data.
        log.error(
          {
            requestId: id,
            region: scope.region,
            code: error instanceof LetheError ? error.code : 'INTERNAL',
          },
          'erasure failed',
        );
      } finally {
        running.delete(key);
      }
    })();
    running.set(key, work);
  }

  async function sweep(): Promise<void> {
    for (const scope of context.regions.values()) {
      try {
        for (const id of await openErasureRequests(scope)) start(scope, id);
      } catch (error) {
        log.error(
          { region: scope.region, code: error instanceof LetheError ? error.code : 'INTERNAL' },
          'looking for erasure requests failed',
        );
      }
    }
  }

  app.addHook('onReady', async () => {
    void sweep();
    timer = setInterval(() => void sweep(), SWEEP_MS);
    timer.unref();
  });
  app.addHook('onClose', async () => {
    if (timer) clearInterval(timer);
    stop.abort(new Error('the server is stopping'));
    await Promise.allSettled([...running.values()]);
    for (const scope of context.regions.values()) setErasureClock(scope, undefined);
  });

  app.post(
    '/workspaces/:ws/erasure-requests',
    {
      onRequest: guard(context, 'erasure.write'),
      schema: {
        summary: 'Request the erasure of a data subject (processed at once, due in 30 days)',
        tags: ['privacy'],
        params: WorkspaceParams,
        body: CreateBody,
        response: {
          201: Type.Object({
            request: ErasureRequest,
            previous: Type.Array(Type.String(), { description: 'Earlier requests for the same subject' }),
          }),
          200: Type.Object(
            {
              request: ErasureRequest,
              previous: Type.Array(Type.String()),
            },
            { description: 'An open request for the same subject exists: it is returned' },
          ),
          ...GUARDED_ERRORS,
          ...BODY_ERRORS,
        },
      },
    },
    async (request, reply) => {
      const { subject, reason } = request.body as { subject: string; reason?: string };
      const workspace = workspaceOf(request);
      const scope = scopeOf(request);
      const created = await createErasureRequest(scope, {
        workspaceId: workspace.id,
        subject,
        reason,
        requestedBy: actorOf(request),
      });
      start(scope, created.request.id);
      return reply.code(created.created ? 201 : 200).send({
        request: viewOf(scope, created.request),
        previous: created.previous,
      });
    },
  );

  app.get(
    '/workspaces/:ws/erasure-requests',
    {
      onRequest: guard(context, 'erasure.read'),
      schema: {
        summary: 'List erasure requests, newest first, overdue ones flagged',
        tags: ['privacy'],
        params: WorkspaceParams,
        querystring: Type.Object({
          ...PageQuery.properties,
          status: Type.Optional(Type.Union([Type.Literal('open'), Type.Literal('completed')])),
          overdue: Type.Optional(
            Type.Boolean({ description: 'Only overdue (true) or on-time (false) requests' }),
          ),
        }),
        response: { 200: PageOf(ErasureRequest), ...GUARDED_ERRORS },
      },
    },
    async (request) => {
      const { limit, cursor, status, overdue } = request.query as {
        limit?: number;
        cursor?: string;
        status?: 'open' | 'completed';
        overdue?: boolean;
      };
      return listErasureRequests(
        scopeOf(request),
        workspaceOf(request).id,
        { status, overdue },
        pageLimit(limit),
        cursor,
      );
    },
  );

  app.get(
    '/workspaces/:ws/erasure-requests/:id',
    {
      onRequest: guard(context, 'erasure.read'),
      schema: {
        summary: 'Read an erasure request: its progress, and the completion report once done',
        tags: ['privacy'],
        params: IdParams,
        response: { 200: ErasureRequest, ...GUARDED_ERRORS },
      },
    },
    async (request) => {
      const { id } = request.params as { id: string };
      const row = await getErasureRequest(scopeOf(request), workspaceOf(request).id, id);
      if (!row) throw notFound(`erasure request "${id}"`);
      return viewOf(scopeOf(request), row);
    },
  );

  app.post(
    '/workspaces/:ws/erasure-requests/:id/extend',
    {
      onRequest: guard(context, 'erasure.write'),
      schema: {
        summary: `Extend the due date once, by up to ${MAX_EXTENSION_DAYS} days, with a reason (GDPR Art. 12(3))`,
        tags: ['privacy'],
        params: IdParams,
        body: ExtendBody,
        response: { 200: ErasureRequest, ...GUARDED_ERRORS, ...BODY_ERRORS, ...CONFLICT_ERRORS },
      },
    },
    async (request) => {
      const { id } = request.params as { id: string };
      const { reason, days } = request.body as { reason: string; days?: number };
      const workspace = workspaceOf(request);
      let row;
      try {
        row = await extendErasureRequest(scopeOf(request), workspace.id, id, {
          reason,
          days,
          actor: actorOf(request),
        });
      } catch (error) {
        if (error instanceof ErasureConflict) throw new HttpError(409, error.kind, error.message);
        throw error;
      }
      if (!row) throw notFound(`erasure request "${id}"`);
      return viewOf(scopeOf(request), row);
    },
  );
}
