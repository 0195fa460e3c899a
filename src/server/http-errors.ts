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
  CONFLICT: 409,
  CANCELLED: 503,
  UNAVAILABLE: 503,
};

/** Fastify's own request errors, said the way the rest of the API says things. */
const FASTIFY_ERRORS: Record<string, { status: number; error: ErrorBody['error'] }> = {
  FST_ERR_CTP_INVALID_JSON_BODY: {
    status: 400,
    error: {
      code: 'INVALID_JSON',
      message: 'the body is not valid JSON',
      hint: 'send a JSON document with Content-Type: application/json',
    },
  },
  FST_ERR_CTP_EMPTY_JSON_BODY: {
    status: 400,
    error: {
      code: 'EMPTY_BODY',
      message: 'the body is empty but Content-Type says application/json',
      hint: 'send a JSON document, or leave out the Content-Type header',
    },
  },
  FST_ERR_CTP_BODY_TOO_LARGE: {
    status: 413,
    error: {
      code: 'BODY_TOO_LARGE',
      message: 'the body is larger than this server accepts',
      hint: 'the limit is LETHE_BODY_LIMIT bytes (default 1 MiB)',
    },
  },
  FST_ERR_CTP_INVALID_MEDIA_TYPE: {
    status: 415,
    error: {
      code: 'UNSUPPORTED_MEDIA_TYPE',
      message: 'this route does not accept that Content-Type',
      hint: 'send application/json (flows also take application/yaml)',
    },
  },
};

/** One line for several problems: the first few, and how many more (each is in `errors`). */
function summarize(errors: readonly LetheError[]): string {
  const first = (error: LetheError) => formatError(error).split('\n')[0]!;
  if (errors.length === 1) return first(errors[0]!);
  const shown = errors.slice(0, 3).map(first).join('; ');
  const more = errors.length > 3 ? `; and ${errors.length - 3} more` : '';
  return `${errors.length} problems: ${shown}${more}`;
}

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
          message: summarize(error.errors),
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
  const known = fastify?.code === undefined ? undefined : FASTIFY_ERRORS[fastify.code];
  if (known) return { status: known.status, body: { error: known.error } };
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
