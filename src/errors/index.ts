/**
 * errors — the one error family of Lethe: every failure is a value with a code (its class,
 * which the activity stream may keep), a message for people, and where it happened. One
 * formatter turns it into the text the CLI prints and the API will return.
 */

export type ErrorCode =
  | 'USAGE' // wrong command line
  | 'FLOW_SYNTAX' // YAML/JSON that does not parse
  | 'FLOW_INVALID' // a flow that parses but breaks the format or its rules
  | 'CONNECTIONS_INVALID' // a connections file that is wrong
  | 'PARAM_INVALID' // a run parameter that is missing or does not convert
  | 'EXPRESSION_SYNTAX'
  | 'EXPRESSION_ERROR' // an expression failed on a row
  | 'EXPRESSION_LIMIT' // an expression hit the time, depth or size limit
  | 'TYPE_CONVERSION' // a value that does not convert to the declared type
  | 'COLUMN_UNKNOWN'
  | 'DATA_INVALID' // data a command cannot work with (e.g. sum of a string)
  | 'SOURCE_ERROR' // reading an input failed
  | 'SINK_ERROR' // writing an output failed
  | 'CONNECTION_ERROR' // a connection could not be opened or used
  | 'COUNTER_ERROR'
  | 'CANCELLED'
  | 'CONFLICT' // the request clashes with what exists (an idempotency key used for another flow…)
  | 'INPUT_LOST' // a run's input was held in memory only (confidential) and the process that held it is gone
  | 'CREDENTIALS_LOST' // credentials given at run time were held in memory only and are gone
  | 'FLOW_DELETED' // the run's flow was deleted before the run could end: nothing to retry it with
  | 'UNAVAILABLE' // something needed is not there now (a region not configured, a workspace being moved)
  | 'INTERNAL';

/** Where in a flow (or other source file) something is. `path` is like `steps[3].join.left`. */
export interface SourceLocation {
  file?: string;
  line?: number;
  column?: number;
  path?: string;
}

export interface ErrorDetails {
  location?: SourceLocation;
  /** The step the error happened in. */
  step?: string;
  /** The step's command, for the message. */
  command?: string;
  /** 1-based row number within the step's input. */
  row?: number;
  /** The data column involved. */
  column?: string;
  /** The expression being evaluated. */
  expression?: string;
  /** What the user can do about it. */
  hint?: string;
  cause?: unknown;
}

export class LetheError extends Error {
  override readonly name = 'LetheError';
  readonly code: ErrorCode;
  readonly details: ErrorDetails;

  constructor(code: ErrorCode, message: string, details: ErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.code = code;
    this.details = details;
  }

  /** A copy with more context filled in where this error has none. */
  withContext(extra: ErrorDetails): LetheError {
    const merged: ErrorDetails = { ...extra, ...stripUndefined(this.details) };
    // A location is kept whole: a data file's line must not mix with a flow file's column.
    const location = this.details.location ?? extra.location;
    if (location) merged.location = location;
    const copy = new LetheError(this.code, this.message, merged);
    copy.stack = this.stack;
    return copy;
  }
}

/** Several errors found at once (a flow with many mistakes); each is reported. */
export class LetheErrors extends Error {
  override readonly name = 'LetheErrors';
  readonly code: ErrorCode;
  readonly errors: readonly LetheError[];

  constructor(errors: readonly LetheError[]) {
    super(errors.map(formatError).join('\n'));
    this.errors = errors;
    this.code = errors[0]?.code ?? 'INTERNAL';
  }
}

function stripUndefined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, v]) => v !== undefined)) as Partial<T>;
}

export function isLetheError(error: unknown): error is LetheError {
  return error instanceof LetheError;
}

/** `file:line:col: path: step "x" (filter), row 3, column "a": message (expression: …) — hint` */
export function formatError(error: LetheError): string {
  const { location, step, command, row, column, expression, hint } = error.details;
  const parts: string[] = [];
  if (location?.file) {
    let where = location.file;
    if (location.line !== undefined) {
      where += `:${location.line}`;
      if (location.column !== undefined) where += `:${location.column}`;
    }
    parts.push(where);
  }
  if (location?.path) parts.push(location.path);
  const context: string[] = [];
  if (step !== undefined) context.push(`step "${step}"${command ? ` (${command})` : ''}`);
  if (row !== undefined) context.push(`row ${row}`);
  if (column !== undefined) context.push(`column "${column}"`);
  if (context.length > 0) parts.push(context.join(', '));
  let text = parts.length > 0 ? `${parts.join(': ')}: ${error.message}` : error.message;
  if (expression !== undefined) text += ` (in expression ${quoteExpression(expression)})`;
  if (hint) text += `\n  hint: ${hint}`;
  return text;
}

function quoteExpression(expression: string): string {
  const oneLine = expression.replace(/\s+/g, ' ').trim();
  return oneLine.length > 120 ? `"${oneLine.slice(0, 117)}..."` : `"${oneLine}"`;
}

/** Any thrown value as a LetheError (unknown failures become INTERNAL, keeping the cause). */
export function toLetheError(error: unknown, fallback: ErrorCode = 'INTERNAL'): LetheError {
  if (error instanceof LetheError) return error;
  if (error instanceof Error) return new LetheError(fallback, error.message, { cause: error });
  return new LetheError(fallback, String(error));
}

/** Plain JSON form for `--json` output and, later, the API. */
export function errorToJson(error: LetheError): Record<string, unknown> {
  return {
    code: error.code,
    message: error.message,
    ...stripUndefined({ ...error.details, cause: undefined }),
  };
}
