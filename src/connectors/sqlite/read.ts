/**
 * Reading from SQLite: a whole table or the user's query with `?` parameters bound by the
 * driver. Rows are streamed from the statement in chunks, with progress and a check for
 * cancellation between chunks. Integers are read as 64-bit values so that ids beyond 2^53
 * keep every digit (as text); BLOBs become base64 text.
 */
import type { Database, Statement } from 'better-sqlite3';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { sql } from 'kysely';
import { LetheError } from '../../errors/index.js';
import type { Row, Table, Value } from '../../table/index.js';
import type { IoContext, ReadRequest } from '../connector.js';
import { cancelled, noSuchTable } from '../sql/errors.js';
import { fromBigInt, redactValues, toSqliteParameter, type SqliteParameter } from '../sql/values.js';
import { sqliteTables } from './catalog.js';
import { sqliteDialect } from './write.js';

/** Rows read between two progress reports (and turns of the event loop). */
const CHUNK_ROWS = 5000;

function fromSqlite(value: unknown): Value {
  if (typeof value === 'bigint') return fromBigInt(value);
  if (value instanceof Uint8Array) return Buffer.from(value).toString('base64');
  // SQLite stores ±Infinity; a number that JSON cannot hold stays visible as text.
  if (typeof value === 'number' && !Number.isFinite(value)) return String(value);
  return value as string | number | null;
}

function describeSource(request: ReadRequest, connection: string): string {
  return request.kind === 'table'
    ? `cannot read table "${request.table}" from ${connection}`
    : `query on ${connection} failed`;
}

function prepare(db: Database, request: ReadRequest, connection: string): Statement<[SqliteParameter[]]> {
  const text =
    request.kind === 'table'
      ? sql`select * from ${sql.id(request.table)}`.compile(sqliteDialect.compiler).sql
      : request.sql;
  try {
    return db.prepare<[SqliteParameter[]]>(text);
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    if (request.kind === 'table' && message.startsWith('no such table')) {
      throw noSuchTable('SOURCE_ERROR', request.table, sqliteTables(db), connection);
    }
    throw new LetheError('SOURCE_ERROR', `${describeSource(request, connection)}: ${message}`, {
      cause: error,
      hint:
        request.kind === 'query'
          ? 'check the SQL; parameters are written as ? and given in "parameters"'
          : undefined,
    });
  }
}

export async function readSqlite(
  db: Database,
  request: ReadRequest,
  context: IoContext,
  connection: string,
): Promise<Table> {
  const statement = prepare(db, request, connection);
  if (!statement.reader) {
    throw new LetheError(
      'SOURCE_ERROR',
      `${describeSource(request, connection)}: the statement returns no rows`,
      {
        hint: 'an input needs a statement that returns rows: SELECT, or INSERT/UPDATE/DELETE … RETURNING',
      },
    );
  }
  const columns = statement.columns().map((column) => column.name);
  const repeated = columns.find((name, index) => columns.indexOf(name) !== index);
  if (repeated !== undefined) {
    throw new LetheError(
      'SOURCE_ERROR',
      `${describeSource(request, connection)}: the result has two columns named "${repeated}"`,
      {
        hint: 'give the columns distinct names with AS',
      },
    );
  }
  const parameters = request.kind === 'query' ? request.parameters.map(toSqliteParameter) : [];
  const rows: Row[] = [];
  try {
    statement.safeIntegers(true).raw(true);
    for (const raw of statement.iterate(parameters) as IterableIterator<unknown[]>) {
      const row = new Array<Value>(raw.length);
      for (let i = 0; i < raw.length; i++) row[i] = fromSqlite(raw[i]);
      rows.push(row);
      if (rows.length % CHUNK_ROWS === 0) {
        context.progress(rows.length);
        await nextTurn();
        if (context.signal.aborted) throw cancelled();
      }
    }
  } catch (error) {
    if (error instanceof LetheError) throw error;
    const message = error instanceof Error ? error.message : String(error);
    throw new LetheError(
      'SOURCE_ERROR',
      `${describeSource(request, connection)}: ${redactValues(message, parameters)}`,
      {
        cause: error,
      },
    );
  }
  context.progress(rows.length, rows.length);
  return { columns, rows };
}
