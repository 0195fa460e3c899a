/**
 * What a SQLite database holds, from its catalog: the tables a write may target (with their
 * columns) and the names "did you mean" picks from. SQLite matches names without regard to
 * ASCII case, and so does the lookup.
 */
import type { Database } from 'better-sqlite3';
import { noSuchTable } from '../sql/errors.js';
import type { WriteTarget } from '../sql/write.js';

/** Tables and views, without SQLite's own (`sqlite_…`). */
export function sqliteTables(db: Database): string[] {
  return db
    .prepare(
      `select name from sqlite_master where type in ('table', 'view') and name not like 'sqlite\\_%' escape '\\' order by name`,
    )
    .pluck()
    .all() as string[];
}

function sameName(a: string, b: string): boolean {
  return (
    a.length === b.length &&
    a.replace(/[A-Z]/g, (c) => c.toLowerCase()) === b.replace(/[A-Z]/g, (c) => c.toLowerCase())
  );
}

/** The table's name as the database spells it, if it exists. */
export function findSqliteTable(db: Database, table: string, tables = sqliteTables(db)): string | undefined {
  return (
    tables.find((candidate) => candidate === table) ?? tables.find((candidate) => sameName(candidate, table))
  );
}

/** The table a write names, with its columns; fails with "no table" and a suggestion. */
export function sqliteWriteTarget(db: Database, table: string, connection: string): WriteTarget {
  const tables = sqliteTables(db);
  const name = findSqliteTable(db, table, tables);
  if (name === undefined) throw noSuchTable('SINK_ERROR', table, tables, connection);
  const columns = db.prepare('select name from pragma_table_info(?)').pluck().all(name) as string[];
  return { name, columns };
}
