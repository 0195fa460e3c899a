/**
 * Counters for the CLI, kept in a small SQLite file (`.lethe/state/counters.db` beside the flow,
 * or under --state). SQLite's own locking makes every reservation atomic across processes —
 * two `lethe run`s at once queue on the write lock instead of sharing numbers — and its journal
 * makes it durable, so a crash never hands a number out twice. The file is made on first use
 * only, so flows without autonumber never need a state folder.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type Database from 'better-sqlite3';
import { LetheError } from '../errors/index.js';
import { switchToWal } from '../sqlite/index.js';
import type { CounterKey, CounterReservation, CounterStore } from './counter-store.js';

interface Opened {
  db: Database.Database;
  current: (key: CounterKey) => number;
  reserve: Database.Transaction<(key: CounterKey, count: number) => CounterReservation>;
  release: Database.Transaction<(key: CounterKey, reservation: CounterReservation) => boolean>;
}

export class FileCounterStore implements CounterStore {
  private opened: Promise<Opened> | undefined;

  constructor(readonly folder: string) {}

  private open(): Promise<Opened> {
    this.opened ??= this.openNow();
    return this.opened;
  }

  private async openNow(): Promise<Opened> {
    const { default: Sqlite } = await import('better-sqlite3');
    let db: Database.Database;
    try {
      mkdirSync(this.folder, { recursive: true, mode: 0o700 });
      db = new Sqlite(join(this.folder, 'counters.db'), { timeout: 30_000 });
      await switchToWal(db);
      db.pragma('synchronous = FULL');
      db.exec(`create table if not exists counters (
        workspace text not null,
        counter text not null,
        period text not null,
        value integer not null,
        updated_at text not null,
        primary key (workspace, counter, period)
      ) strict`);
    } catch (error) {
      const reason = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
      throw new LetheError('COUNTER_ERROR', `cannot keep autonumber counters in ${this.folder} (${reason})`, {
        hint: 'give a writable folder with --state DIR',
        cause: error,
      });
    }
    const select = db.prepare<[string, string, string], { value: number }>(
      'select value from counters where workspace = ? and counter = ? and period = ?',
    );
    const upsert = db.prepare(
      `insert into counters (workspace, counter, period, value, updated_at) values (?, ?, ?, ?, ?)
       on conflict (workspace, counter, period) do update set value = excluded.value, updated_at = excluded.updated_at`,
    );
    const current = (key: CounterKey) => select.get(key.workspace, key.counter, key.period)?.value ?? 0;
    return {
      db,
      current,
      reserve: db.transaction((key: CounterKey, count: number) => {
        const last = current(key);
        upsert.run(key.workspace, key.counter, key.period, last + count, new Date().toISOString());
        return { first: last + 1, last: last + count };
      }),
      release: db.transaction((key: CounterKey, reservation: CounterReservation) => {
        if (current(key) !== reservation.last) return false;
        upsert.run(key.workspace, key.counter, key.period, reservation.first - 1, new Date().toISOString());
        return true;
      }),
    };
  }

  async reserve(key: CounterKey, count: number): Promise<CounterReservation> {
    if (!Number.isSafeInteger(count) || count < 1) throw new RangeError(`cannot reserve ${count} numbers`);
    // `immediate` takes the write lock before reading, so concurrent processes serialise here.
    return (await this.open()).reserve.immediate(key, count);
  }

  async release(key: CounterKey, reservation: CounterReservation): Promise<boolean> {
    return (await this.open()).release.immediate(key, reservation);
  }

  async current(key: CounterKey): Promise<number> {
    return (await this.open()).current(key);
  }

  async close(): Promise<void> {
    const opened = this.opened;
    this.opened = undefined;
    if (opened) (await opened.catch(() => undefined))?.db.close();
  }
}
