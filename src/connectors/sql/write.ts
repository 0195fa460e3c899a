/**
 * Write planning shared by the SQL connectors: checks a table against its target and turns it
 * into the statements of one write (insert, upsert, update, delete or replace). The connector
 * runs them in one transaction.
 *
 * Kysely is used as a query compiler only: it quotes identifiers and places parameters, and
 * never sees a connection. Each statement shape is compiled once with placeholder "slots" as
 * parameters, and every batch or row then reuses the SQL text with its own values, so no SQL
 * is ever built from values and a million-row update compiles one statement, not a million.
 */
import {
  DummyDriver,
  Kysely,
  sql,
  type Compilable,
  type DatabaseIntrospector,
  type DialectAdapter,
  type QueryCompiler,
} from 'kysely';
import { LetheError } from '../../errors/index.js';
import { didYouMean } from '../../errors/suggest.js';
import { rowKeyFunction, type Table, type Value } from '../../table/index.js';
import type { WriteRequest } from '../connector.js';
import { listNames } from './errors.js';

/** Rows per multi-row INSERT at most, so progress moves and statements stay parseable quickly. */
const MAX_ROWS_PER_STATEMENT = 1000;

/** Any table with any columns: the compiler checks names against nothing, the catalog does that. */
export type SchemalessDatabase = Record<string, Record<string, unknown>>;

/** What a column holds, judged from the data, for `create: true`. */
export type ColumnKind = 'integer' | 'real' | 'boolean' | 'text' | 'json';
export type SqlColumnType = 'integer' | 'bigint' | 'real' | 'double precision' | 'boolean' | 'text' | 'jsonb';

export interface SqlDialect {
  /** A Kysely instance with a dummy driver: compiles, never executes. */
  readonly compiler: Kysely<SchemalessDatabase>;
  /** The column type this database uses for each kind of data (for `create: true`). */
  readonly columnTypes: Readonly<Record<ColumnKind, SqlColumnType>>;
  /** The most parameters one statement may bind. */
  readonly maxParameters: number;
  /** SQLite matches column names without regard to ASCII case; PostgreSQL (quoted) exactly. */
  readonly columnNamesIgnoreCase: boolean;
}

/** A Kysely instance that compiles for one dialect and can never execute (a dummy driver). */
export function compilerFor(parts: {
  adapter: () => DialectAdapter;
  introspector: (db: Kysely<SchemalessDatabase>) => DatabaseIntrospector;
  queryCompiler: () => QueryCompiler;
}): Kysely<SchemalessDatabase> {
  return new Kysely<SchemalessDatabase>({
    dialect: {
      createAdapter: parts.adapter,
      createDriver: () => new DummyDriver(),
      createIntrospector: parts.introspector,
      createQueryCompiler: parts.queryCompiler,
    },
  });
}

/** The table written to, as found in the database's catalog. */
export interface WriteTarget {
  readonly schema?: string;
  readonly name: string;
  /** Its columns, spelt as the database spells them. */
  readonly columns: readonly string[];
}

export interface PlannedStatement {
  readonly sql: string;
  readonly parameters: readonly unknown[];
  /** The input rows the statement writes: 0-based first row and count (0 for "delete all"). */
  readonly firstRow: number;
  readonly rowCount: number;
}

/** Binds one input value for the target column of that name (see ./values.ts). */
export type BindValue = (value: Value, column: string) => unknown;

/** Stands for one parameter while a statement shape is compiled. */
class Slot {
  constructor(readonly cell: number) {}
}

/** A compiled statement shape: its SQL and, for each parameter, which cell of a batch feeds it. */
interface Template {
  readonly sql: string;
  readonly cells: readonly number[];
}

function compileTemplate(query: Compilable): Template {
  const compiled = query.compile();
  const cells = compiled.parameters.map((parameter) => {
    if (!(parameter instanceof Slot)) {
      throw new LetheError('INTERNAL', 'a compiled write statement has a parameter that is not a slot');
    }
    return parameter.cell;
  });
  return { sql: compiled.sql, cells };
}

/** A record keyed by column names; a null prototype keeps `__proto__` an ordinary column. */
function record<T>(names: readonly string[], value: (name: string, index: number) => T): Record<string, T> {
  const out = Object.create(null) as Record<string, T>;
  names.forEach((name, index) => {
    out[name] = value(name, index);
  });
  return out;
}

function foldAsciiCase(name: string): string {
  return name.replace(/[A-Z]/g, (letter) => letter.toLowerCase());
}

/** Kysely reads `a.b` as schema and table and `a as b` as an alias, so such names cannot pass. */
function compilableTableName(name: string): boolean {
  return !name.includes('.') && !name.includes(' as ') && name === name.trim();
}

/**
 * Check the write and return its statements, in order. Every check runs before the first
 * statement is produced, so a bad write fails before its transaction begins; the statements
 * themselves are produced lazily, one batch of bound values at a time.
 */
export function planWrite(
  dialect: SqlDialect,
  target: WriteTarget,
  request: WriteRequest,
  table: Table,
  bind: BindValue,
  connection: string,
): Iterable<PlannedStatement> {
  const where = `table "${request.table}" of ${connection}`;
  const fail = (message: string, hint?: string) => new LetheError('SINK_ERROR', message, { hint });
  const width = table.columns.length;
  if (width === 0 && table.rows.length > 0) {
    throw fail(`the input has rows but no columns to write to ${where}`);
  }
  if (!compilableTableName(target.name)) {
    throw fail(
      `cannot write to ${where}: table names with ".", " as " or surrounding spaces are not supported`,
      'rename the table, or write through a view with a plain name',
    );
  }

  const columns = targetColumns(target, table, dialect, where);
  const keyIndexes =
    request.mode === 'upsert' || request.mode === 'update' || request.mode === 'delete'
      ? keyColumns(request, table, where)
      : [];
  const keyNames = keyIndexes.map((index) => columns[index]!);
  const valueIndexes = columns.flatMap((_, index) => (keyIndexes.includes(index) ? [] : [index]));
  const valueNames = valueIndexes.map((index) => columns[index]!);
  if (request.mode === 'update' && valueNames.length === 0) {
    throw fail(`update of ${where} needs a column to set besides the key (${request.key.join(', ')})`);
  }
  const rowsPerStatement = Math.min(
    MAX_ROWS_PER_STATEMENT,
    Math.floor(dialect.maxParameters / Math.max(width, 1)),
  );
  if (rowsPerStatement === 0) {
    throw fail(`the input has ${width} columns, more than one statement can bind for ${where}`);
  }

  const db = dialect.compiler;
  const into = target.schema === undefined ? db : db.withSchema(target.schema);
  const bindRow = (rowIndex: number, out: unknown[]) => {
    const row = table.rows[rowIndex]!;
    for (let c = 0; c < width; c++) out.push(bind(row[c] ?? null, columns[c]!));
  };

  const insertTemplates = new Map<number, Template>();
  const insertTemplate = (rowCount: number): Template => {
    let template = insertTemplates.get(rowCount);
    if (template) return template;
    const values = Array.from({ length: rowCount }, (_, r) =>
      record(columns, (_name, c) => new Slot(r * width + c)),
    );
    const insert = into.insertInto(target.name).values(values);
    template = compileTemplate(
      request.mode !== 'upsert'
        ? insert
        : insert.onConflict((conflict) => {
            const on = conflict.columns(keyNames);
            return valueNames.length === 0
              ? on.doNothing()
              : on.doUpdateSet(record(valueNames, (name) => sql.id('excluded', name)));
          }),
    );
    insertTemplates.set(rowCount, template);
    return template;
  };

  /** A row's statement: its cells are the row's bound values, so a slot names a column by index. */
  const rowTemplate = (): Template => {
    if (request.mode === 'update') {
      let update = into
        .updateTable(target.name)
        .set(record(valueNames, (_name, i) => new Slot(valueIndexes[i]!)));
      for (const [k, name] of keyNames.entries()) {
        update = update.where(sql.id(name), '=', new Slot(keyIndexes[k]!));
      }
      return compileTemplate(update);
    }
    let remove = into.deleteFrom(target.name);
    for (const [k, name] of keyNames.entries()) {
      remove = remove.where(sql.id(name), '=', new Slot(keyIndexes[k]!));
    }
    return compileTemplate(remove);
  };

  function* inserts(): Generator<PlannedStatement> {
    const upsertEnd = request.mode === 'upsert' ? upsertBatchEnd(table, keyIndexes) : undefined;
    let first = 0;
    while (first < table.rows.length) {
      const limit = Math.min(table.rows.length, first + rowsPerStatement);
      const end = upsertEnd ? upsertEnd(first, limit) : limit;
      const cells: unknown[] = [];
      for (let r = first; r < end; r++) bindRow(r, cells);
      const template = insertTemplate(end - first);
      yield {
        sql: template.sql,
        parameters: template.cells.map((cell) => cells[cell]),
        firstRow: first,
        rowCount: end - first,
      };
      first = end;
    }
  }

  function* rowByRow(): Generator<PlannedStatement> {
    if (table.rows.length === 0) return;
    const template = rowTemplate();
    for (let r = 0; r < table.rows.length; r++) {
      const cells: unknown[] = [];
      bindRow(r, cells);
      yield {
        sql: template.sql,
        parameters: template.cells.map((cell) => cells[cell]),
        firstRow: r,
        rowCount: 1,
      };
    }
  }

  function* statements(): Generator<PlannedStatement> {
    switch (request.mode) {
      case 'replace': {
        const deleteAll = into.deleteFrom(target.name).compile();
        yield { sql: deleteAll.sql, parameters: deleteAll.parameters, firstRow: 0, rowCount: 0 };
        yield* inserts();
        return;
      }
      case 'insert':
      case 'upsert':
        yield* inserts();
        return;
      case 'update':
      case 'delete':
        yield* rowByRow();
        return;
    }
  }

  return { [Symbol.iterator]: statements };
}

/** The target column each input column writes to; fails naming every column the target lacks. */
function targetColumns(target: WriteTarget, table: Table, dialect: SqlDialect, where: string): string[] {
  const fold = dialect.columnNamesIgnoreCase ? foldAsciiCase : (name: string) => name;
  const byName = new Map(target.columns.map((name) => [fold(name), name]));
  const missing = table.columns.filter((name) => !byName.has(fold(name)));
  if (missing.length > 0) {
    const named = missing.map((name) => `"${name}"`).join(', ');
    const suggestion = missing.length === 1 ? didYouMean(missing[0]!, target.columns) : '';
    throw new LetheError(
      'SINK_ERROR',
      `${where} has no column${missing.length === 1 ? '' : 's'} ${named}${suggestion}`,
      {
        hint: `its columns are: ${listNames(target.columns)}; leave the others out of the input with select (drop: [...])`,
      },
    );
  }
  const mapped = table.columns.map((name) => byName.get(fold(name))!);
  const twice = mapped.find((name, index) => mapped.indexOf(name) !== index);
  if (twice !== undefined) {
    const inputs = table.columns.filter((_, index) => mapped[index] === twice).map((name) => `"${name}"`);
    throw new LetheError(
      'SINK_ERROR',
      `the input columns ${inputs.join(' and ')} are the same column "${twice}" of ${where}`,
    );
  }
  return mapped;
}

function keyColumns(request: WriteRequest, table: Table, where: string): number[] {
  if (request.key.length === 0) {
    throw new LetheError('SINK_ERROR', `mode "${request.mode}" on ${where} needs key columns`);
  }
  return request.key.map((name) => {
    const index = table.columns.indexOf(name);
    if (index === -1) {
      throw new LetheError(
        'SINK_ERROR',
        `key column "${name}" is not in the input${didYouMean(name, table.columns)}`,
        {
          hint: `the input's columns are: ${listNames(table.columns)}`,
        },
      );
    }
    return index;
  });
}

/**
 * PostgreSQL refuses an upsert that meets the same key twice in one statement, and upserting
 * row by row means the last row wins; so a batch ends before a row whose key it already holds.
 * Keys are compared by value and type; a key with a null never conflicts.
 */
function upsertBatchEnd(
  table: Table,
  keyIndexes: readonly number[],
): (first: number, limit: number) => number {
  const keyOf = rowKeyFunction(keyIndexes);
  return (first, limit) => {
    const seen = new Set<unknown>();
    for (let r = first; r < limit; r++) {
      const row = table.rows[r]!;
      if (keyIndexes.some((index) => (row[index] ?? null) === null)) continue;
      const key = keyOf(row);
      if (seen.has(key)) return r;
      seen.add(key);
    }
    return limit;
  };
}

/** The kind of data in one column: the narrowest that holds every non-null value. */
export function columnKind(table: Table, column: number): ColumnKind {
  let kind: ColumnKind | undefined;
  for (const row of table.rows) {
    const value = row[column] ?? null;
    if (value === null) continue;
    const here: ColumnKind =
      typeof value === 'number'
        ? Number.isSafeInteger(value)
          ? 'integer'
          : 'real'
        : typeof value === 'boolean'
          ? 'boolean'
          : typeof value === 'string'
            ? 'text'
            : 'json';
    if (kind === undefined || kind === here) kind = here;
    else if ((kind === 'integer' && here === 'real') || (kind === 'real' && here === 'integer'))
      kind = 'real';
    else return 'text';
  }
  return kind ?? 'text';
}

/**
 * CREATE TABLE for `create: true`: one column per input column, typed from the data, with the
 * key (when the mode has one) as primary key, so that upserts work at once.
 */
export function planCreateTable(
  dialect: SqlDialect,
  target: { schema?: string; name: string },
  request: WriteRequest,
  table: Table,
): PlannedStatement {
  if (table.columns.length === 0) {
    throw new LetheError('SINK_ERROR', `cannot create table "${request.table}": the input has no columns`);
  }
  if (!compilableTableName(target.name)) {
    throw new LetheError(
      'SINK_ERROR',
      `cannot create table "${request.table}": table names with ".", " as " or surrounding spaces are not supported`,
    );
  }
  const schema =
    target.schema === undefined ? dialect.compiler.schema : dialect.compiler.schema.withSchema(target.schema);
  let create = schema.createTable(target.name);
  table.columns.forEach((name, index) => {
    create = create.addColumn(name, dialect.columnTypes[columnKind(table, index)]);
  });
  const key = request.mode === 'insert' || request.mode === 'replace' ? [] : request.key;
  if (key.length > 0) {
    for (const name of key) {
      if (!table.columns.includes(name)) {
        throw new LetheError(
          'SINK_ERROR',
          `key column "${name}" is not in the input${didYouMean(name, table.columns)}`,
        );
      }
    }
    create = create.addPrimaryKeyConstraint(`${target.name}_pkey`, key as never);
  }
  const compiled = create.compile();
  return { sql: compiled.sql, parameters: compiled.parameters, firstRow: 0, rowCount: 0 };
}
