/** Schemas shared by the API routes (TypeBox: they document the OpenAPI and check requests). */
import Type from 'typebox';

export const WorkspaceParams = Type.Object({ ws: Type.String({ description: 'Workspace name' }) });

export const PageQuery = Type.Object({
  limit: Type.Optional(
    Type.Integer({ minimum: 1, maximum: 500, description: 'Items per page (default 50)' }),
  ),
  cursor: Type.Optional(Type.String({ description: 'The `next` value of the previous page' })),
});

export const ErrorReply = Type.Object(
  {
    error: Type.Object({
      code: Type.String(),
      message: Type.String(),
      hint: Type.Optional(Type.String()),
      errors: Type.Optional(
        Type.Array(
          Type.Object({
            message: Type.String(),
            line: Type.Optional(Type.Integer()),
            column: Type.Optional(Type.Integer()),
            path: Type.Optional(Type.String()),
          }),
        ),
      ),
    }),
  },
  { description: 'An error: its class, a message for people, and what to do' },
);

/** `{ items, next }`: every list route pages this way. */
export function PageOf<T extends Parameters<typeof Type.Array>[0]>(item: T) {
  return Type.Object({ items: Type.Array(item), next: Type.Union([Type.String(), Type.Null()]) });
}

/** Error replies every guarded route may give; 410 when the workspace has been closed. */
export const GUARDED_ERRORS = {
  400: ErrorReply,
  401: ErrorReply,
  403: ErrorReply,
  404: ErrorReply,
  410: ErrorReply,
};

/** Replies of routes that take a body: too large (413), or of a type the route does not read (415). */
export const BODY_ERRORS = { 413: ErrorReply, 415: ErrorReply };

/** Conflicts: the resource is not in a state that allows the request (409). */
export const CONFLICT_ERRORS = { 409: ErrorReply };

export const RunParams = Type.Object({
  ws: Type.String({ description: 'Workspace name' }),
  id: Type.String({ description: 'Run id' }),
});

export const IdParams = Type.Object({
  ws: Type.String({ description: 'Workspace name' }),
  id: Type.String({ description: 'Id of the item' }),
});

/** A time as ISO 8601 text (UTC). */
export const Time = Type.String({ description: 'ISO 8601 time (UTC)' });
export const MaybeTime = Type.Union([Time, Type.Null()]);

export function isoTime(ms: number): string;
export function isoTime(ms: number | null): string | null;
export function isoTime(ms: number | null): string | null {
  return ms === null ? null : new Date(Number(ms)).toISOString();
}

export const RUN_STATUSES = ['queued', 'running', 'succeeded', 'failed', 'incomplete'] as const;

export const RunStatusSchema = Type.Union(
  RUN_STATUSES.map((status) => Type.Literal(status)),
  { description: 'queued → running → succeeded | failed | incomplete (the dead-letter queue)' },
);

/** A run as the activity stream keeps it: ids, status, times and counts — never values. */
export const RunSummary = Type.Object({
  id: Type.String(),
  flow: Type.String(),
  version: Type.Integer({ description: 'The flow version the run uses' }),
  trigger: Type.String({ description: 'manual | schedule | webhook | poll' }),
  privacy: Type.String({ description: 'standard | confidential' }),
  status: RunStatusSchema,
  attempt: Type.Integer({ description: 'Attempts started so far' }),
  maxAttempts: Type.Integer(),
  queuedAt: Time,
  startedAt: MaybeTime,
  finishedAt: MaybeTime,
  durationMs: Type.Union([Type.Integer(), Type.Null()]),
  rowsRead: Type.Union([Type.Integer(), Type.Null()]),
  rowsWritten: Type.Union([Type.Integer(), Type.Null()]),
  errorCode: Type.Union([Type.String(), Type.Null()], { description: 'The error class, never its message' }),
  errorStep: Type.Union([Type.String(), Type.Null()]),
  inputKept: Type.Boolean({
    description: 'Whether the trigger input was written to the store (never for confidential flows)',
  }),
});
