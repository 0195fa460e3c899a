/**
 * One error shape for every route: `{ "error": { "code", "message", "hint"?, "location"? } }`,
 * with the HTTP status chosen from the error's code. Messages are the same ones the CLI prints.
 */
import { LetheError, LetheErrors, formatError, type ErrorCode } from '../errors/index.js';

/** An error that carries its HTTP status (404s, 409s, 401s…). */
export class HttpError extends Error {
  constructor(
    readonly statusCode: number,
    readonly code: string,
    message: string,
    readonly hint?: string,
  ) {
    super(message);
  }
}

export const notFound = (what: string) => new HttpError(404, 'NOT_FOUND', `${what} not found`);

const STATUS: Partial<Record<ErrorCode, number>> = {
  USAGE: 400,
  FLOW_SYNTAX: 400,
  FLOW_INVALID: 400,
  CONNECTIONS_INVALID: 400,
  PARAM_INVALID: 400,
  EXPRESSION_SYNTAX: 400,
};

export interface ErrorBody {
  error: {
    code: string;
    message: string;
    hint?: string;
    errors?: { message: string; line?: number; column?: number; path?: string }[];
  };
}

export function errorResponse(error: unknown): { status: number; body: ErrorBody } {
  if (error instanceof HttpError) {
    return {
      status: error.statusCode,
      body: {
        error: { code: error.code, message: error.message, ...(error.hint ? { hint: error.hint } : {}) },
      },
    };
  }
  if (error instanceof LetheErrors) {
    return {
      status: STATUS[error.code] ?? 400,
      body: {
        error: {
          code: error.code,
          message: `${error.errors.length} problem${error.errors.length === 1 ? '' : 's'} found`,
          errors: error.errors.map((e) => ({
            message: formatError(e),
            ...(e.details.location?.line !== undefined ? { line: e.details.location.line } : {}),
            ...(e.details.location?.column !== undefined ? { column: e.details.location.column } : {}),
            ...(e.details.location?.path ? { path: e.details.location.path } : {}),
          })),
        },
      },
    };
  }
  if (error instanceof LetheError) {
    return {
      status: STATUS[error.code] ?? 500,
      body: {
        error: {
          code: error.code,
          message: formatError(error).split('\n')[0]!,
          ...(error.details.hint ? { hint: error.details.hint } : {}),
        },
      },
    };
  }
  const fastify = error as { statusCode?: number; code?: string; message?: string; validation?: unknown };
  if (typeof fastify?.statusCode === 'number' && fastify.statusCode >= 400 && fastify.statusCode < 500) {
    return {
      status: fastify.statusCode,
      body: { error: { code: fastify.code ?? 'BAD_REQUEST', message: fastify.message ?? 'bad request' } },
    };
  }
  return {
    status: 500,
    body: { error: { code: 'INTERNAL', message: 'internal error (the server log has the request id)' } },
  };
}
