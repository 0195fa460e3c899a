/**
 * Writing to PostgreSQL: the statements planned in ../sql/write.ts, run on one pooled
 * connection inside BEGIN … COMMIT, so the table is written whole or not at all. Arrays bind
 * as PostgreSQL arrays into array columns and as JSON text elsewhere (see ../sql/values.ts).
 */
import { PostgresAdapter, PostgresIntrospector, PostgresQueryCompiler } from 'kysely';
import type { PoolClient } from 'pg';
import { LetheError } from '../../errors/index.js';
import type { Table, Value } from '../../table/index.js';
import type { IoContext, WriteRequest, WriteResult } from '../connector.js';
import { cancelled, describeRows, quoteIdentifier } from '../sql/errors.js';
import { redactValues, toPostgresParameter } from '../sql/values.js';
import {
  compilerFor,
  planCreateTable,
  planWrite,
  type PlannedStatement,
  type SqlDialect,
} from '../sql/write.js';
import { parseTableName, postgresTableExists, postgresWriteTarget } from './catalog.js';
import { isServerError, serverHint, type ServerError } from './errors.js';

export const postgresDialect: SqlDialect = {
  compiler: compilerFor({
    adapter: () => new PostgresAdapter(),
    introspector: (db) => new PostgresIntrospector(db),
    queryCompiler: () => new PostgresQueryCompiler(),
  }),
  // The protocol counts parameters in 16 bits.
  maxParameters: 65535,
  columnTypes: {
    integer: 'bigint',
    real: 'double precision',
    boolean: 'boolean',
    text: 'text',
    json: 'jsonb',
  },
  columnNamesIgnoreCase: false,
};

/** Rolls back after a failure; if even that fails the session discards the connection. */
export async function rollbackQuietly(client: PoolClient): Promise<void> {
  await client.query('ROLLBACK').catch(() => undefined);
}

export async function writePostgres(
  client: PoolClient,
  request: WriteRequest,
  table: Table,
  context: IoContext,
  connection: string,
): Promise<WriteResult> {
  const wanted = parseTableName(request.table);
  const create = request.create === true && !(await postgresTableExists(client, wanted));
  const target = create
    ? { ...wanted, columns: [...table.columns], arrayColumns: new Set<string>() }
    : await postgresWriteTarget(client, request.table, connection);
  const creation = create ? planCreateTable(postgresDialect, target, request, table) : undefined;
  const bind = (value: Value, column: string) => toPostgresParameter(value, target.arrayColumns.has(column));
  const statements = planWrite(postgresDialect, target, request, table, bind, connection);
  const total = table.rows.length;
  let affected = 0;
  let current: PlannedStatement | undefined;
  await client.query('BEGIN');
  try {
    if (creation) await client.query(creation.sql);
    for (const statement of statements) {
      if (context.signal.aborted) throw cancelled();
      current = statement;
      const result = await client.query(statement.sql, statement.parameters as unknown[]);
      affected += result.rowCount ?? 0;
      context.progress(statement.firstRow + statement.rowCount, total);
    }
    current = undefined;
    await client.query('COMMIT');
  } catch (error) {
    await rollbackQuietly(client);
    if (error instanceof LetheError || !isServerError(error)) throw error;
    throw writeError(error, request, current, connection);
  }
  return { affected };
}

function writeError(
  error: ServerError,
  request: WriteRequest,
  statement: PlannedStatement | undefined,
  connection: string,
): LetheError {
  const where = `table "${request.table}" of ${connection}`;
  if (error.code === '42P10') {
    const key = request.key.map(quoteIdentifier).join(', ');
    const { schema, name } = parseTableName(request.table);
    const table =
      schema === undefined ? quoteIdentifier(name) : `${quoteIdentifier(schema)}.${quoteIdentifier(name)}`;
    return new LetheError(
      'SINK_ERROR',
      `upsert into ${where} needs a primary key or unique index on (${key})`,
      {
        cause: error,
        hint: `add one, e.g. CREATE UNIQUE INDEX ON ${table} (${key})`,
      },
    );
  }
  const rows =
    statement && statement.rowCount > 0 ? ` (${describeRows(statement.firstRow, statement.rowCount)})` : '';
  const message = statement ? redactValues(error.message, statement.parameters) : error.message;
  const hint =
    error.code === '21000'
      ? 'the input has two rows whose keys the database sees as equal (e.g. 1 and "1"); remove duplicates first, e.g. with distinct by the key'
      : (serverHint(error) ?? 'nothing was written: the whole write was rolled back');
  return new LetheError('SINK_ERROR', `cannot write to ${where} (mode ${request.mode}): ${message}${rows}`, {
    cause: error,
    hint,
  });
}
