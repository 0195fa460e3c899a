/**
 * Giving space back after a purge, so that the store does not grow without bound under a
 * steady load with retention on.
 *
 * - SQLite: the store is created with `auto_vacuum = INCREMENTAL`, so freed pages can be handed
 *   back to the file system a few at a time: `PRAGMA incremental_vacuum(n)` in small chunks,
 *   then a checkpoint — `TRUNCATE` when the store is quiet (the -wal file goes back to zero;
 *   the database file shrinks only once the checkpoint has copied the vacuum in), `PASSIVE`
 *   otherwise. These run on a maintenance connection of their own with no busy wait: SQLite
 *   runs synchronously, so a statement that waited for a lock would stop the whole process.
 *   When the store's connection holds the lock (a group commit in progress), the chunk is
 *   simply tried again after the next pass. (better-sqlite3 runs a pragma statement one step
 *   per call through Kysely, which would free one page; `exec` runs it to the end.)
 * - PostgreSQL: rows deleted in batches leave dead tuples; a plain `VACUUM` (never FULL: it
 *   would lock the table) of each table that lost rows (to the purger, or to the runner, which
 *   deletes a run's input when it ends), at most every `vacuumIntervalMs`, makes their space
 *   reusable, and gives back the empty pages at the end of the table — all of them once the
 *   load stops and the last rows expire. Indexes keep their emptied pages, which VACUUM
 *   recycles for new entries. Autovacuum does the same, later.
 */
import { existsSync, statSync } from 'node:fs';
import { sql } from 'kysely';
import type BetterSqlite3 from 'better-sqlite3';
import type { Store } from '../store/index.js';

/** Tables whose rows the purger deletes (the audit chain included). */
export const SPACE_TABLES = [
  'runs',
  'run_inputs',
  'run_details',
  'gateway_log',
  'webhook_events_seen',
  'notifications',
  'audit_log',
  'erasure_requests',
] as const;

export interface SpaceReport {
  /** SQLite: pages given back to the file system; PostgreSQL: tables vacuumed. */
  pagesFreed: number;
  tablesVacuumed: string[];
  /** SQLite: the checkpoint mode that ran, and whether it completed. */
  checkpoint?: { mode: 'TRUNCATE' | 'PASSIVE'; busy: boolean };
  /** Whether everything freed so far has been given back (nothing left to do until more goes). */
  complete: boolean;
}

export interface StoreSize {
  /** SQLite: the database file; PostgreSQL: tables with indexes and TOAST. */
  bytes: number;
  /** SQLite: the -wal file. */
  walBytes: number;
  /**
   * PostgreSQL: the tables' rows alone (heap and TOAST, without indexes) — what VACUUM gives
   * back to the file system; indexes keep their emptied pages for reuse.
   */
  heapBytes?: number;
}

/** How big the store is now (what the retention tests and the benchmark watch). */
export async function storeSize(store: Store, tables: readonly string[] = SPACE_TABLES): Promise<StoreSize> {
  if (store.dialect === 'sqlite') {
    const size = (file: string) => (existsSync(file) ? statSync(file).size : 0);
    return { bytes: size(store.location), walBytes: size(`${store.location}-wal`) };
  }
  const rows = await sql<{ bytes: string | number | null; heap: string | number | null }>`
    select sum(pg_total_relation_size(c.oid)) as bytes,
      sum(pg_relation_size(c.oid) + coalesce(pg_relation_size(nullif(c.reltoastrelid, 0)), 0)) as heap
    from unnest(${sql.val([...tables])}::text[]) as t join pg_class c on c.oid = to_regclass(t)`.execute(
    store.db,
  );
  return {
    bytes: Number(rows.rows[0]?.bytes ?? 0),
    walBytes: 0,
    heapBytes: Number(rows.rows[0]?.heap ?? 0),
  };
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** How often, and how long between, a vacuum chunk that finds the database busy is tried again. */
const MAX_BUSY_RETRIES = 200;
const BUSY_WAIT_MS = 5;

export class SpaceReclaimer {
  private maintenance: BetterSqlite3.Database | undefined;
  private closed = false;
  /** PostgreSQL: tables with deletions not yet vacuumed, and when tables were last vacuumed. */
  private readonly pending = new Set<string>();
  private lastVacuum = 0;
  /** Pages per incremental_vacuum chunk, adapted to `targetMs`. */
  private chunk = 256;

  constructor(
    private readonly store: Store,
    private readonly options: { vacuumIntervalMs: number; targetMs: number },
  ) {}

  /** Note that rows were deleted from `table`. */
  deleted(table: string): void {
    this.pending.add(table);
  }

  /**
   * Give space back: after a pass that deleted something, or (quiet) when nothing is being
   * written, so the last of it comes back once the load stops.
   */
  async reclaim(options: { quiet: boolean; stopping?: () => boolean }): Promise<SpaceReport> {
    if (this.closed) return { pagesFreed: 0, tablesVacuumed: [], complete: false };
    return this.store.dialect === 'sqlite' ? this.reclaimSqlite(options) : this.reclaimPostgres();
  }

  private async connection(): Promise<BetterSqlite3.Database> {
    if (!this.maintenance) {
      const { default: Sqlite } = await import('better-sqlite3');
      // No busy wait: a busy database is tried again later, never waited for.
      this.maintenance = new Sqlite(this.store.location, { timeout: 0, fileMustExist: true });
      // As the store's own connection: what is freed is overwritten, not just unlinked.
      this.maintenance.pragma('secure_delete = ON');
    }
    return this.maintenance;
  }

  private async reclaimSqlite(options: { quiet: boolean; stopping?: () => boolean }): Promise<SpaceReport> {
    const db = await this.connection();
    let pagesFreed = 0;
    let free = -1;
    const busy = (error: unknown) =>
      ['SQLITE_BUSY', 'SQLITE_LOCKED'].includes((error as { code?: string }).code ?? '');
    // The store's connection holds the write lock for a few ms at a time (a group commit):
    // when a chunk finds it taken, wait a moment and try again, for a while.
    let busyFor = 0;
    for (;;) {
      if (this.closed || options.stopping?.()) break;
      const started = performance.now();
      try {
        free = Number(db.pragma('freelist_count', { simple: true }));
        if (free === 0) break;
        const pages = Math.min(free, this.chunk);
        db.exec(`pragma incremental_vacuum(${pages})`);
        pagesFreed += pages;
        busyFor = 0;
      } catch (error) {
        if (!busy(error)) throw error;
        if (++busyFor > MAX_BUSY_RETRIES) break;
        await sleep(BUSY_WAIT_MS);
        continue;
      }
      const took = performance.now() - started;
      if (took > this.options.targetMs) this.chunk = Math.max(16, Math.floor(this.chunk / 2));
      else if (took < this.options.targetMs / 2) this.chunk = Math.min(16_384, this.chunk * 2);
      // As long again for everything else (webhooks) before the next chunk.
      await sleep(Math.max(1, took));
    }
    if (this.closed) return { pagesFreed, tablesVacuumed: [], complete: false };
    const mode = options.quiet ? 'TRUNCATE' : 'PASSIVE';
    let checkpointBusy = true;
    try {
      const [result] = db.pragma(`wal_checkpoint(${mode})`) as { busy: number }[];
      checkpointBusy = result?.busy === 1;
    } catch (error) {
      if (!busy(error)) throw error;
    }
    return {
      pagesFreed,
      tablesVacuumed: [],
      checkpoint: { mode, busy: checkpointBusy },
      complete: free === 0 && mode === 'TRUNCATE' && !checkpointBusy,
    };
  }

  private async reclaimPostgres(): Promise<SpaceReport> {
    const now = Date.now();
    if (now - this.lastVacuum < this.options.vacuumIntervalMs)
      return { pagesFreed: 0, tablesVacuumed: [], complete: false };
    this.lastVacuum = now;
    // The tables the purger deleted from, and any other of them with dead rows (the runner
    // deletes a run's input when it ends: churn that autovacuum would reach only later).
    const dead = await sql<{ relname: string }>`select relname from pg_stat_user_tables
      where schemaname = current_schema() and n_dead_tup > 0
        and relname in (${sql.join([...SPACE_TABLES])})`.execute(this.store.db);
    const tables = new Set([...this.pending, ...dead.rows.map((row) => row.relname)]);
    const vacuumed: string[] = [];
    for (const table of tables) {
      if (this.closed) break;
      // Not FULL: a plain VACUUM takes no lock that stops reads or writes.
      await sql`vacuum ${sql.table(table)}`.execute(this.store.db);
      this.pending.delete(table);
      vacuumed.push(table);
    }
    return { pagesFreed: 0, tablesVacuumed: vacuumed, complete: this.pending.size === 0 };
  }

  /** Close the maintenance connection (before the store closes, so its close checkpoints). */
  close(): void {
    this.closed = true;
    this.maintenance?.close();
    this.maintenance = undefined;
  }
}
