/**
 * store — the server's system of record: Kysely over SQLite (better-sqlite3, WAL, in the data
 * dir) by default, or PostgreSQL when LETHE_DATABASE_URL says so. Both get the same tables
 * (./migrations.ts) and the same queries; this module opens, migrates and closes them.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { Kysely, Migrator, PostgresDialect, SqliteDialect, type MigrationProvider } from 'kysely';
import { LetheError } from '../errors/index.js';
import { MIGRATIONS } from './migrations.js';
import type { Database } from './schema.js';

export type DialectName = 'sqlite' | 'postgres';

export interface StoreDatabase {
  readonly db: Kysely<Database>;
  readonly dialect: DialectName;
  /** Where the data lives, for logs and health output (never with credentials). */
  readonly location: string;
  close(): Promise<void>;
}

export interface OpenOptions {
  /** A postgres:// URL; when absent, SQLite in `dataDir`. */
  url?: string;
  dataDir: string;
  /** SQLite durability: FULL (default) survives power loss, NORMAL a process crash. */
  sqliteSynchronous?: 'full' | 'normal';
}

/** A URL without its password, for messages. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password) parsed.password = '***';
    return parsed.toString();
  } catch {
    return 'an invalid URL';
  }
}

async function openSqlite(options: OpenOptions): Promise<StoreDatabase> {
  const { default: Sqlite } = await import('better-sqlite3');
  mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
  const file = join(options.dataDir, 'lethe.db');
  const sqlite = new Sqlite(file, { timeout: 10_000 });
  // Incremental vacuum must be chosen before the first table exists; it lets retention give
  // space back to the file system a little at a time.
  sqlite.pragma('auto_vacuum = INCREMENTAL');
  sqlite.pragma('journal_mode = WAL');
  sqlite.pragma(`synchronous = ${options.sqliteSynchronous === 'normal' ? 'NORMAL' : 'FULL'}`);
  sqlite.pragma('foreign_keys = ON');
  // Kysely prepares every query anew; a cache of prepared statements by SQL text saves that.
  const statements = new Map<string, ReturnType<typeof sqlite.prepare>>();
  const database = {
    close: () => sqlite.close(),
    prepare: (sql: string) => {
      let statement = statements.get(sql);
      if (!statement) {
        statement = sqlite.prepare(sql);
        if (statements.size < 1000) statements.set(sql, statement);
      }
      return statement;
    },
  };
  const db = new Kysely<Database>({ dialect: new SqliteDialect({ database }) });
  return { db, dialect: 'sqlite', location: file, close: () => db.destroy() };
}

async function openPostgres(url: string): Promise<StoreDatabase> {
  const { default: pg } = await import('pg');
  const types = {
    getTypeParser: ((oid: number, format?: string) =>
      // int8 (20): times and counts are epoch ms and row counts, well within 2^53.
      oid === 20
        ? (text: string) => Number(text)
        : pg.types.getTypeParser(oid, format as never)) as typeof pg.types.getTypeParser,
  };
  const pool = new pg.Pool({ connectionString: url, max: 10, types });
  try {
    (await pool.connect()).release();
  } catch (error) {
    await pool.end().catch(() => undefined);
    throw new LetheError(
      'CONNECTION_ERROR',
      `cannot reach the store at ${redactUrl(url)}: ${(error as Error).message}`,
      {
        cause: error,
      },
    );
  }
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  return { db, dialect: 'postgres', location: redactUrl(url), close: () => db.destroy() };
}

export async function openDatabase(options: OpenOptions): Promise<StoreDatabase> {
  const opened = options.url ? await openPostgres(options.url) : await openSqlite(options);
  try {
    await migrate(opened.db);
  } catch (error) {
    await opened.close();
    throw error;
  }
  return opened;
}

const provider: MigrationProvider = { getMigrations: async () => MIGRATIONS };

/** Apply every pending migration; fails with the migration's name. */
export async function migrate(db: Kysely<Database>): Promise<void> {
  const { error, results } = await new Migrator({ db, provider }).migrateToLatest();
  if (error) {
    const failed = results?.find((result) => result.status === 'Error');
    throw new LetheError(
      'INTERNAL',
      `the store could not be migrated${failed ? ` (migration ${failed.migrationName})` : ''}: ${(error as Error).message}`,
      { cause: error },
    );
  }
}
