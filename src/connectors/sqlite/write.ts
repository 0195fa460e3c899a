/**
 * Writing to SQLite: the statements planned in ../sql/write.ts, run in one IMMEDIATE
 * transaction (the write lock is taken up front, so a concurrent writer waits for
 * busy_timeout instead of failing half way). Any failure or cancellation rolls back.
 */
import type { Database, Statement } from 'better-sqlite3';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { SqliteAdapter, SqliteIntrospector, SqliteQueryCompiler } from 'kysely';
import { LetheError } from '../../errors/index.js';
import type { Table } from '../../table/index.js';
import type { IoContext, WriteRequest, WriteResult } from '../connector.js';
import { cancelled, describeRows, quoteIdentifier } from '../sql/errors.js';
import { redactValues, toSqliteParameter } from '../sql/values.js';
import {
  compilerFor,
  planCreateTable,
  planWrite,
  type PlannedStatement,
  type SqlDialect,
} from '../sql/write.js';
import { findSqliteTable, sqliteWriteTarget } from './catalog.js';

export const sqliteDialect: SqlDialect = {
  compiler: compilerFor({
    adapter: () => new SqliteAdapter(),
    introspector: (db) => new SqliteIntrospector(db),
    queryCompiler: () => new SqliteQueryCompiler(),
  }),
  // SQLITE_MAX_VARIABLE_NUMBER of the SQLite that better-sqlite3 bundles.
  maxParameters: 32766,
  columnTypes: { integer: 'integer', real: 'real', boolean: 'integer', text: 'text', json: 'text' },
  columnNamesIgnoreCase: true,
};

/** Rows written between two turns of the event loop (progress is reported after every statement). */
const ROWS_PER_TURN = 1000;

export interface SqliteWriteOptions {
  connection: string;
  readonly: boolean;
}

export async function writeSqlite(
  db: Database,
  request: WriteRequest,
  table: Table,
  context: IoContext,
  options: SqliteWriteOptions,
): Promise<WriteResult> {
  const { connection } = options;
  const create = request.create === true && findSqliteTable(db, request.table) === undefined;
  const target = create
    ? { name: request.table, columns: [...table.columns] }
    : sqliteWriteTarget(db, request.table, connection);
  const creation = create ? planCreateTable(sqliteDialect, target, request, table) : undefined;
  const statements = planWrite(sqliteDialect, target, request, table, toSqliteParameter, connection);
  if (context.signal.aborted) throw cancelled();
  const prepared = new Map<string, Statement<[unknown[]]>>();
  const total = table.rows.length;
  let affected = 0;
  let current: PlannedStatement | undefined;
  try {
    db.exec('BEGIN IMMEDIATE');
    if (creation) db.prepare(creation.sql).run();
    let sinceTurn = 0;
    for (const statement of statements) {
      current = statement;
      let compiled = prepared.get(statement.sql);
      if (!compiled) {
        compiled = db.prepare<[unknown[]]>(statement.sql);
        prepared.set(statement.sql, compiled);
      }
      affected += compiled.run(statement.parameters as unknown[]).changes;
      context.progress(statement.firstRow + statement.rowCount, total);
      sinceTurn += statement.rowCount;
      if (sinceTurn >= ROWS_PER_TURN) {
        sinceTurn = 0;
        await nextTurn();
        if (context.signal.aborted) throw cancelled();
      }
    }
    current = undefined;
    db.exec('COMMIT');
  } catch (error) {
    if (db.inTransaction) db.exec('ROLLBACK');
    if (error instanceof LetheError) throw error;
    throw writeError(error, request, current, options);
  }
  return { affected };
}

function writeError(
  error: unknown,
  request: WriteRequest,
  statement: PlannedStatement | undefined,
  options: SqliteWriteOptions,
): LetheError {
  const where = `table "${request.table}" of ${options.connection}`;
  const code = (error as { code?: unknown }).code;
  const message = error instanceof Error ? error.message : String(error);
  if (message.includes('ON CONFLICT clause does not match')) {
    const key = request.key.map(quoteIdentifier).join(', ');
    return new LetheError(
      'SINK_ERROR',
      `upsert into ${where} needs a primary key or unique index on (${key})`,
      {
        cause: error,
        hint: `add one, e.g. CREATE UNIQUE INDEX ${quoteIdentifier(`${request.table}_key`)} ON ${quoteIdentifier(request.table)} (${key})`,
      },
    );
  }
  const rows =
    statement && statement.rowCount > 0 ? ` (${describeRows(statement.firstRow, statement.rowCount)})` : '';
  const shown = statement ? redactValues(message, statement.parameters) : message;
  return new LetheError('SINK_ERROR', `cannot write to ${where} (mode ${request.mode}): ${shown}${rows}`, {
    cause: error,
    hint:
      code === 'SQLITE_READONLY'
        ? options.readonly
          ? 'the connection is opened with readonly: true'
          : 'the database file or its folder is not writable'
        : code === 'SQLITE_BUSY'
          ? 'another process holds the write lock; raise busyTimeoutMs or retry later'
          : 'nothing was written: the whole write was rolled back',
  });
}
