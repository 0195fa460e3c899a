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

/** Error replies every guarded route may give. */
export const GUARDED_ERRORS = { 400: ErrorReply, 401: ErrorReply, 403: ErrorReply, 404: ErrorReply };
