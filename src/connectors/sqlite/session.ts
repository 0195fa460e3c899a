/**
 * A SQLite session (loaded only when a flow uses a sqlite connection).
 *
 * The file is opened when a session opens and must already exist unless `create: true`: an
 * empty database made from a misspelt path would only turn into a puzzling "no table" later.
 * The file's journal mode is the user's; `wal: true` switches it to WAL (a lasting change). better-sqlite3 is synchronous and a
 * session has one connection, so a session runs one read or write at a time (steps of a run
 * may ask concurrently) — and reads and writes yield to the event loop between chunks.
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { LetheError } from '../../errors/index.js';
import type { Table } from '../../table/index.js';
import type {
  ConnectionConfig,
  ConnectorSession,
  IoContext,
  ReadRequest,
  WriteRequest,
  WriteResult,
} from '../connector.js';
import { connectionLabel } from '../sql/errors.js';
import { checkSettings } from '../sql/settings.js';
import { readSqlite } from './read.js';
import { sqliteSettingsSchema } from './settings.js';
import { writeSqlite } from './write.js';

const IN_MEMORY = ':memory:';
const DEFAULT_BUSY_TIMEOUT_MS = 5000;

class SqliteSession implements ConnectorSession {
  /** The tail of the operations queued on this session's one connection. */
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;

  constructor(
    private readonly db: Database.Database,
    private readonly label: string,
    private readonly readonly: boolean,
  ) {}

  read(request: ReadRequest, context: IoContext): Promise<Table> {
    return this.exclusive(() => readSqlite(this.db, request, context, this.label));
  }

  write(request: WriteRequest, table: Table, context: IoContext): Promise<WriteResult> {
    return this.exclusive(() =>
      writeSqlite(this.db, request, table, context, { connection: this.label, readonly: this.readonly }),
    );
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await this.queue;
    this.db.close();
  }

  private exclusive<T>(operation: () => Promise<T>): Promise<T> {
    if (this.closed) return Promise.reject(new LetheError('CONNECTION_ERROR', `${this.label} is closed`));
    const result = this.queue.then(operation);
    this.queue = result.catch(() => undefined);
    return result;
  }
}

export function openDatabase(connection: ConnectionConfig): SqliteSession {
  const settings = checkSettings(sqliteSettingsSchema, connection);
  const label = connectionLabel('SQLite', connection.name);
  const inMemory = settings.path === IN_MEMORY;
  const file = inMemory ? IN_MEMORY : resolve(connection.baseDir, settings.path);
  const readonly = settings.readonly ?? false;
  let db: Database.Database;
  try {
    if (settings.create && !inMemory) mkdirSync(dirname(file), { recursive: true });
    db = new Database(file, {
      readonly,
      fileMustExist: !inMemory && !(settings.create ?? false),
      timeout: settings.busyTimeoutMs ?? DEFAULT_BUSY_TIMEOUT_MS,
    });
  } catch (error) {
    throw new LetheError(
      'CONNECTION_ERROR',
      `cannot open the database "${settings.path}" of ${label}: ${(error as Error).message}`,
      {
        cause: error,
        hint: inMemory
          ? undefined
          : `the path resolves to ${file}; create the database first, or set create: true on the connection`,
      },
    );
  }
  // Opening reads nothing yet; a pragma reads the header now, so a file that is not a database
  // fails here with a clear message rather than at the first step that uses it.
  try {
    if (settings.wal && !readonly && !inMemory) db.pragma('journal_mode = WAL');
    else db.pragma('schema_version');
  } catch (error) {
    const busy = (error as { code?: unknown }).code === 'SQLITE_BUSY';
    if (!busy) {
      db.close();
      throw new LetheError(
        'CONNECTION_ERROR',
        `cannot use the database "${settings.path}" of ${label}: ${(error as Error).message}`,
        {
          cause: error,
          hint: 'is it a SQLite database?',
        },
      );
    }
    // Another process holds the file locked: WAL only helps concurrency, so keep its journal mode.
  }
  return new SqliteSession(db, label, readonly);
}
