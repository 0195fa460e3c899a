/** Schema pieces shared by command definitions, and small helpers they share. */
import Type, { type Static } from 'typebox';
import { FILE_FORMATS } from '../connectors/files/format.js';
import {
  DEFAULT_MAX_PAGES,
  HTTP_METHODS,
  PAGINATE_STYLES,
  type HttpSessionApi,
} from '../connectors/http/request.js';
import { LetheError } from '../errors/index.js';
import type { BoundExpression } from '../expr/expression.js';
import type { Row, Table, Value } from '../table/index.js';
import type { CheckContext, Path, StepContext } from './command.js';

export const STEP_ID_PATTERN = '^[a-z][a-z0-9_-]*$';

export const STEP_ID_MESSAGE = 'must start with a lowercase letter and use only a-z, 0-9, "_" and "-"';

export const StepRef = Type.String({
  pattern: STEP_ID_PATTERN,
  errorMessage: STEP_ID_MESSAGE,
  description: 'The id of another step whose output this step reads.',
});

export const ExpressionText = Type.String({
  minLength: 1,
  description: 'A JSONata expression evaluated with the row as input; null columns are absent.',
});

export const ColumnName = Type.String({ minLength: 1, description: 'A column name.' });

export const ColumnList = Type.Array(ColumnName, { minItems: 1, uniqueItems: true });

/** `{new: old}` maps (select's column map, rename). */
export const ColumnMap = Type.Record(Type.String({ minLength: 1 }), ColumnName, {
  minProperties: 1,
  description: 'Map of new column name → existing column name.',
});

// Fields that input and output share.
export const FilePath = Type.String({ minLength: 1, description: 'A file path, relative to the flow file.' });

export const CsvDelimiter = Type.String({ minLength: 1, maxLength: 1, description: 'CSV field delimiter.' });

export const ConnectionName = Type.String({ minLength: 1, description: 'A connection name.' });

export const FileFormatField = Type.Enum(FILE_FORMATS, {
  description: 'File format; by default taken from the extension.',
});

// HTTP requests (`connection` + `request`) of inputs and outputs.
const HEADER_NAME = "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$";

const HttpQuery = Type.Record(
  Type.String({ minLength: 1 }),
  Type.Union([Type.String(), Type.Number(), Type.Boolean()]),
  { description: 'Query parameters (name → value), added to the URL.' },
);

const HttpHeaders = Type.Record(Type.String({ pattern: HEADER_NAME }), Type.String(), {
  description: 'Request headers, on top of the connection’s.',
});

const HttpPath = Type.String({
  minLength: 1,
  description: 'Path relative to the connection’s baseUrl, e.g. /orders (query parameters go in "query").',
});

const DottedPath = Type.String({
  minLength: 1,
  pattern: '^[^.]+(\\.[^.]+)*$',
  description: 'A dotted path into the JSON answer, e.g. data.items.',
});

const Paginate = Type.Object(
  {
    style: Type.Enum(PAGINATE_STYLES, { description: 'none | page | offset | cursor | link' }),
    param: Type.Optional(
      Type.String({
        minLength: 1,
        description:
          'page: the page number parameter (default page); offset: the offset parameter (default offset); cursor: the cursor parameter (default cursor).',
      }),
    ),
    start: Type.Optional(
      Type.Integer({
        minimum: 0,
        description: 'page: first page number (default 1); offset: first offset (default 0).',
      }),
    ),
    sizeParam: Type.Optional(
      Type.String({
        minLength: 1,
        description: 'page/offset: the page size parameter (offset: default limit).',
      }),
    ),
    size: Type.Optional(
      Type.Integer({
        minimum: 1,
        description: 'page/offset: records per page; a shorter page is the last (offset: default 100).',
      }),
    ),
    cursorPath: Type.Optional(DottedPath),
    nextPath: Type.Optional(DottedPath),
    maxPages: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 100_000,
        description: `At most this many pages (default ${DEFAULT_MAX_PAGES}); more is an error.`,
      }),
    ),
  },
  { additionalProperties: false, description: 'How to read further pages.' },
);

export const HttpInputRequest = Type.Object(
  {
    method: Type.Optional(
      Type.Enum(HTTP_METHODS, { default: 'GET', description: 'GET (default), POST, PUT, PATCH or DELETE.' }),
    ),
    path: HttpPath,
    query: Type.Optional(HttpQuery),
    headers: Type.Optional(HttpHeaders),
    body: Type.Optional(Type.Unknown({ description: 'A JSON body (e.g. a search), sent with every page.' })),
    records: Type.Optional(DottedPath),
    paginate: Type.Optional(Paginate),
  },
  {
    additionalProperties: false,
    description: 'An HTTP request through an http connection; the JSON answer is read as a table.',
  },
);

export const HttpOutputRequest = Type.Object(
  {
    method: Type.Optional(
      Type.Enum(
        HTTP_METHODS.filter((method) => method !== 'GET'),
        { default: 'POST', description: 'POST (default), PUT, PATCH or DELETE.' },
      ),
    ),
    path: HttpPath,
    query: Type.Optional(HttpQuery),
    headers: Type.Optional(HttpHeaders),
    batch: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 100_000,
        description:
          'Send rows in JSON arrays of up to this many; without it, one request per row (a JSON object).',
      }),
    ),
  },
  { additionalProperties: false, description: 'Send rows as JSON through an http connection, in row order.' },
);

/** Checks of a `request` the schema cannot express; paths are relative to the command body. */
export function checkHttpRequest(
  request: Static<typeof HttpInputRequest> | Static<typeof HttpOutputRequest>,
  kind: 'input' | 'output',
  context: CheckContext,
): void {
  const at = (...path: (string | number)[]) => ['request', ...path];
  if (/^[a-z][a-z0-9+.-]*:/i.test(request.path) || request.path.startsWith('//')) {
    context.error(
      at('path'),
      'must be a path relative to the connection’s baseUrl, not a URL',
      'set the address in the connection’s baseUrl',
    );
  } else if (/[?#]/.test(request.path)) {
    context.error(at('path'), 'has "?" or "#": give query parameters in "query"');
  }
  const placeholders = [...request.path.matchAll(/\{([^{}]*)\}/g)].map((match) => match[1]!);
  if (kind === 'input' && placeholders.length > 0) {
    context.error(at('path'), `has {${placeholders[0]}}: placeholders are filled from rows, by outputs only`);
  }
  if (kind === 'output' && placeholders.length > 0) {
    if (placeholders.some((name) => name === '')) context.error(at('path'), 'has an empty {} placeholder');
    if ('batch' in request && request.batch !== undefined) {
      context.error(
        at('batch'),
        `a batch cannot fill {${placeholders[0]}} in the path: that needs one request per row`,
      );
    }
  }
  const paginate = 'paginate' in request ? request.paginate : undefined;
  if (paginate === undefined) return;
  const applies: Record<string, readonly string[]> = {
    param: ['page', 'offset', 'cursor'],
    start: ['page', 'offset'],
    sizeParam: ['page', 'offset'],
    size: ['page', 'offset'],
    cursorPath: ['cursor'],
    nextPath: ['link'],
    maxPages: ['page', 'offset', 'cursor', 'link'],
  };
  for (const [field, styles] of Object.entries(applies)) {
    if (paginate[field as keyof typeof paginate] !== undefined && !styles.includes(paginate.style)) {
      context.error(
        at('paginate', field),
        `does not apply to style ${paginate.style} (only to ${styles.join(', ')})`,
      );
    }
  }
  if (paginate.style === 'cursor' && paginate.cursorPath === undefined) {
    context.error(
      at('paginate'),
      'style cursor needs "cursorPath": where the next cursor is in the answer (e.g. meta.next)',
    );
  }
  if (paginate.style === 'page' && (paginate.size === undefined) !== (paginate.sizeParam === undefined)) {
    context.error(at('paginate'), 'style page takes "size" and "sizeParam" together (or neither)');
  }
}

/** The HTTP session of a connection, or an error saying that "request" needs an http connection. */
export async function httpSession(name: string, context: StepContext): Promise<HttpSessionApi> {
  const session = await context.connections.session(name);
  const candidate = session as Partial<HttpSessionApi>;
  if (
    candidate.kind === 'http' &&
    typeof candidate.fetchTable === 'function' &&
    typeof candidate.send === 'function'
  ) {
    return session as HttpSessionApi;
  }
  throw context.error(
    'CONNECTION_ERROR',
    `connection "${name}" is not an HTTP connection, and "request" needs one`,
    {
      path: ['request'],
      hint: 'use type: http for the connection, or sql/table for a database',
    },
  );
}

/** Resolve a list of column names to indexes, each failure located at its list position. */
export function columnIndexes(
  table: Table,
  names: readonly string[],
  path: Path,
  context: StepContext,
): number[] {
  return names.map((name, i) => context.column(table, name, [...path, i]));
}

/**
 * Evaluate a row with JSONata itself (after the fast path declined it); errors get the row
 * number and the step's location.
 */
export async function evaluateWithJsonata(
  bound: BoundExpression,
  row: Row,
  rowNumber: number,
  context: StepContext,
  path: Path,
): Promise<Value> {
  try {
    return await bound.evaluate(row);
  } catch (error) {
    if (error instanceof LetheError) {
      throw context.error(error.code, error.message, { ...error.details, row: rowNumber, path });
    }
    throw error;
  }
}
