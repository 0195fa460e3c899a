/**
 * Reading from PostgreSQL: a whole table (`table` or `schema.table`) or the user's query with
 * `$1…` parameters bound by the driver. Rows arrive as arrays (column names never become
 * object keys) already converted by ./types.ts, and the field list gives the columns even
 * when there are no rows.
 *
 * The statement runs in a transaction that is rolled back when it returns no rows, so an
 * input given an UPDATE without RETURNING fails without having changed anything.
 */
import { sql } from 'kysely';
import type { PoolClient, QueryArrayConfig, QueryArrayResult } from 'pg';
import { LetheError } from '../../errors/index.js';
import type { Row, Table } from '../../table/index.js';
import type { IoContext, ReadRequest } from '../connector.js';
import { describePosition, noSuchTable } from '../sql/errors.js';
import { redactValues, toPostgresParameter, type PostgresParameter } from '../sql/values.js';
import { parseTableName, tableSuggestions } from './catalog.js';
import { isServerError, serverHint, type ServerError } from './errors.js';
import { postgresDialect, rollbackQuietly } from './write.js';

/**
 * Rows as arrays, and the extended protocol even without parameters: one statement per
 * query (a string with several is refused) and the same behaviour with or without `$1`.
 * `queryMode` is a node-postgres option its type definitions do not list yet.
 */
function arrayQuery(text: string, values: PostgresParameter[]): QueryArrayConfig {
  const config: QueryArrayConfig & { queryMode: 'extended' } = {
    text,
    values,
    rowMode: 'array',
    queryMode: 'extended',
  };
  return config;
}

function describeSource(request: ReadRequest, connection: string): string {
  return request.kind === 'table'
    ? `cannot read table "${request.table}" from ${connection}`
    : `query on ${connection} failed`;
}

function statementText(request: ReadRequest): string {
  if (request.kind === 'query') return request.sql;
  const { schema, name } = parseTableName(request.table);
  const table = schema === undefined ? sql.id(name) : sql.id(schema, name);
  return sql`select * from ${table}`.compile(postgresDialect.compiler).sql;
}

export async function readPostgres(
  client: PoolClient,
  request: ReadRequest,
  context: IoContext,
  connection: string,
): Promise<Table> {
  const values =
    request.kind === 'query' ? request.parameters.map((value) => toPostgresParameter(value, true)) : [];
  const fail = (message: string, hint?: string, cause?: unknown) =>
    new LetheError('SOURCE_ERROR', `${describeSource(request, connection)}: ${message}`, { hint, cause });
  await client.query('BEGIN');
  let result: QueryArrayResult<Row>;
  try {
    result = await client.query<Row>(arrayQuery(statementText(request), values));
  } catch (error) {
    await rollbackQuietly(client);
    if (!isServerError(error)) throw error;
    if (request.kind === 'table' && error.code === '42P01') {
      throw noSuchTable(
        'SOURCE_ERROR',
        request.table,
        await tableSuggestions(client, parseTableName(request.table)),
        connection,
      );
    }
    throw fail(serverMessage(error, request, values), serverHint(error), error);
  }
  const columns = result.fields.map((field) => field.name);
  const repeated = columns.find((name, index) => columns.indexOf(name) !== index);
  if (result.command !== 'SELECT' && columns.length === 0) {
    await rollbackQuietly(client);
    throw fail(
      `the statement returns no rows (it is a ${result.command}), so it was rolled back`,
      'an input needs a statement that returns rows: SELECT, or INSERT/UPDATE/DELETE … RETURNING',
    );
  }
  if (repeated !== undefined) {
    await rollbackQuietly(client);
    throw fail(`the result has two columns named "${repeated}"`, 'give the columns distinct names with AS');
  }
  await client.query('COMMIT');
  context.progress(result.rows.length, result.rows.length);
  return { columns, rows: result.rows };
}

/** The server's message without values, and where in the user's SQL it points. */
function serverMessage(error: ServerError, request: ReadRequest, values: PostgresParameter[]): string {
  const message = redactValues(error.message, values);
  const position = Number(error.position);
  return request.kind === 'query' && position > 0
    ? `${message} (at ${describePosition(request.sql, position)})`
    : message;
}
