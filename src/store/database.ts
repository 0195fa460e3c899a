/**
 * store — the server's system of record: Kysely over SQLite (better-sqlite3, WAL, in the data
 * dir) by default, or PostgreSQL when LETHE_DATABASE_URL says so. Both get the same tables
 * (./migrations.ts) and the same queries; this module opens, migrates and closes them.
 */
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import {
  CompiledQuery,
  Kysely,
  PostgresDialect,
  SqliteDialect,
  SqliteDriver,
  sql,
  type DatabaseConnection,
  type Driver,
  type Migration,
  type SqliteDialectConfig,
} from 'kysely';
import { LetheError } from '../errors/index.js';
import { switchToWal } from '../sqlite/index.js';
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

/** Whether a database error is a unique or primary-key violation (SQLite or PostgreSQL). */
export function isUniqueViolation(error: unknown): boolean {
  const code = (error as { code?: unknown } | null)?.code;
  return code === '23505' || code === 'SQLITE_CONSTRAINT_UNIQUE' || code === 'SQLITE_CONSTRAINT_PRIMARYKEY';
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

/** How long a SQLite write waits for another connection's write lock. */
const SQLITE_BUSY_TIMEOUT_MS = 10_000;

/**
 * Transactions take the write lock when they begin (`begin immediate`). A deferred transaction
 * that reads and then writes fails at once with SQLITE_BUSY — no busy wait — when another
 * process (`lethe keys rotate`, `lethe purge`…) wrote to the file after the read began.
 */
class ImmediateSqliteDriver extends SqliteDriver {
  override async beginTransaction(connection: DatabaseConnection): Promise<void> {
    await connection.executeQuery(CompiledQuery.raw('begin immediate'));
  }
}

class ImmediateSqliteDialect extends SqliteDialect {
  constructor(private readonly settings: SqliteDialectConfig) {
    super(settings);
  }

  override createDriver(): Driver {
    return new ImmediateSqliteDriver(this.settings);
  }
}

async function openSqlite(options: OpenOptions): Promise<StoreDatabase> {
  const { default: Sqlite } = await import('better-sqlite3');
  mkdirSync(options.dataDir, { recursive: true, mode: 0o700 });
  const file = join(options.dataDir, 'lethe.db');
  // Made here, readable by the owner only: the store holds run inputs and webhook bodies, and
  // SQLite gives its -wal and -shm files the database file's mode. ('a' never truncates.)
  closeSync(openSync(file, 'a', 0o600));
  const sqlite = new Sqlite(file, { timeout: SQLITE_BUSY_TIMEOUT_MS });
  // Incremental vacuum must be chosen before the first table exists; it lets retention give
  // space back to the file system a little at a time.
  sqlite.pragma('auto_vacuum = INCREMENTAL');
  await switchToWal(sqlite);
  sqlite.pragma(`synchronous = ${options.sqliteSynchronous === 'normal' ? 'NORMAL' : 'FULL'}`);
  sqlite.pragma('foreign_keys = ON');
  // Deleted rows are overwritten, not just unlinked: purged and erased data must not linger
  // in free pages of the file.
  sqlite.pragma('secure_delete = ON');
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
  const db = new Kysely<Database>({ dialect: new ImmediateSqliteDialect({ database }) });
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
  // An idle pooled connection that the server ends (restart, idle timeout, an operator) is an
  // 'error' event on the pool, which would end the process if nobody listened. The pool drops
  // that connection by itself, and the next query opens a new one (or fails, and says why).
  pool.on('error', () => undefined);
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
    await migrate(opened.db, opened.dialect);
  } catch (error) {
    await opened.close();
    throw error;
  }
  return opened;
}

/* eslint-disable @typescript-eslint/no-explicit-any -- the bookkeeping tables are not in Database */
type AnyDb = Kysely<any>;

/**
 * Apply every pending migration, all or nothing, under a lock, so that processes starting
 * together migrate once; fails with the migration's name. `migrations` is for tests.
 *
 * This replaces Kysely's Migrator, which learns whether its bookkeeping tables exist by
 * introspecting every table of the database (so another schema's DDL at the same moment made
 * opening the store fail, and another schema's kysely_migration was taken for ours), and which
 * on SQLite takes no lock and applies migrations outside a transaction. The bookkeeping tables
 * keep Kysely's names and shape, so databases it migrated carry on.
 */
export async function migrate(
  db: Kysely<Database>,
  dialect: DialectName,
  migrations: Record<string, Migration> = MIGRATIONS,
): Promise<void> {
  /** `books` reaches the bookkeeping tables (schema-qualified on PostgreSQL). */
  const apply = async (trx: AnyDb, books: AnyDb) => {
    await books.schema
      .createTable('kysely_migration')
      .ifNotExists()
      .addColumn('name', 'varchar(255)', (c) => c.notNull().primaryKey())
      .addColumn('timestamp', 'varchar(255)', (c) => c.notNull())
      .execute();
    await books.schema
      .createTable('kysely_migration_lock')
      .ifNotExists()
      .addColumn('id', 'varchar(255)', (c) => c.notNull().primaryKey())
      .addColumn('is_locked', 'integer', (c) => c.notNull().defaultTo(0))
      .execute();
    const rows: { name: string }[] = await books.selectFrom('kysely_migration').select('name').execute();
    const applied = new Set(rows.map((row) => row.name));
    const unknown = [...applied].filter((name) => !Object.hasOwn(migrations, name)).sort();
    if (unknown.length > 0) {
      throw new LetheError(
        'INTERNAL',
        `the store was migrated by a newer Lethe (migration ${unknown[0]}): run that version or a later one`,
      );
    }
    for (const name of Object.keys(migrations).sort()) {
      if (applied.has(name)) continue;
      try {
        await migrations[name]!.up(trx);
      } catch (error) {
        throw new LetheError(
          'INTERNAL',
          `the store could not be migrated (migration ${name}): ${(error as Error).message}`,
          { cause: error },
        );
      }
      await books
        .insertInto('kysely_migration')
        .values({ name, timestamp: new Date().toISOString() })
        .execute();
    }
  };
  if (dialect === 'sqlite') {
    // Usually there is nothing to do: find that out without a lock, so opening an up-to-date
    // store (a CLI command next to a busy server) writes nothing and waits for no one.
    if (await upToDate(db as AnyDb, migrations)) return;
    await inSqliteWriteTransaction(db, () => apply(db as AnyDb, db as AnyDb));
    return;
  }
  // Our tables go to the first schema of the search path: look for the bookkeeping there only,
  // not in a later schema of the path that may belong to someone else.
  const current = await sql<{ schema: string | null }>`select current_schema() as schema`.execute(db);
  const schema = current.rows[0]?.schema;
  if (!schema) {
    throw new LetheError(
      'INTERNAL',
      'the store could not be migrated: the search path names no schema that exists',
    );
  }
  if (await upToDate((db as AnyDb).withSchema(schema), migrations)) return;
  await db.transaction().execute(async (trx) => {
    // One migrator per schema at a time; the lock ends with the transaction.
    await sql`select pg_advisory_xact_lock(hashtext(${`lethe/migrate/${schema}`}))`.execute(trx);
    await apply(trx as AnyDb, (trx as AnyDb).withSchema(schema));
  });
}

/** Whether exactly these migrations have been applied (false also when the table is missing). */
async function upToDate(db: AnyDb, migrations: Record<string, Migration>): Promise<boolean> {
  let rows: { name: string }[];
  try {
    rows = await db.selectFrom('kysely_migration').select('name').execute();
  } catch {
    return false;
  }
  const applied = new Set(rows.map((row) => row.name));
  const names = Object.keys(migrations);
  return applied.size === names.length && names.every((name) => applied.has(name));
}
/* eslint-enable @typescript-eslint/no-explicit-any */

/** How long migrations wait for another process's migrations on the same SQLite file. */
const SQLITE_MIGRATION_WAIT_MS = 60_000;

async function inSqliteWriteTransaction(db: Kysely<Database>, work: () => Promise<void>): Promise<void> {
  // Wait for the write lock in small sleeps rather than in SQLite's busy handler, which would
  // block the event loop, and with it any store in this process that holds the lock.
  await sql`pragma busy_timeout = 0`.execute(db);
  try {
    const deadline = Date.now() + SQLITE_MIGRATION_WAIT_MS;
    for (;;) {
      try {
        await sql`begin immediate`.execute(db);
        break;
      } catch (error) {
        if ((error as { code?: unknown }).code !== 'SQLITE_BUSY' || Date.now() > deadline) throw error;
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    }
  } finally {
    await sql.raw(`pragma busy_timeout = ${SQLITE_BUSY_TIMEOUT_MS}`).execute(db);
  }
  try {
    await work();
    await sql`commit`.execute(db);
  } catch (error) {
    await sql`rollback`.execute(db).catch(() => undefined);
    throw error;
  }
}
