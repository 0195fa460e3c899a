/**
 * Counters for the CLI, kept in a small SQLite file (`.lethe/state/counters.db` beside the flow,
 * or under --state). SQLite's own locking makes every reservation atomic across processes —
 * two `lethe run`s at once queue on the write lock instead of sharing numbers — and its journal
 * makes it durable, so a crash never hands a number out twice.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import type { CounterKey, CounterReservation, CounterStore } from './counter-store.js';

export class FileCounterStore implements CounterStore {
  private readonly db: Database.Database;
  private readonly reserveTx: Database.Transaction<(key: CounterKey, count: number) => CounterReservation>;
  private readonly releaseTx: Database.Transaction<(key: CounterKey, reservation: CounterReservation) => boolean>;

  constructor(readonly folder: string) {
    mkdirSync(folder, { recursive: true, mode: 0o700 });
    this.db = new Database(join(folder, 'counters.db'), { timeout: 30_000 });
    this.db.pragma('journal_mode = WAL');
    this.db.pragma('synchronous = FULL');
    this.db.exec(`create table if not exists counters (
      workspace text not null,
      counter text not null,
      period text not null,
      value integer not null,
      updated_at text not null,
      primary key (workspace, counter, period)
    ) strict`);
    const select = this.db.prepare<[string, string, string], { value: number }>(
      'select value from counters where workspace = ? and counter = ? and period = ?',
    );
    const upsert = this.db.prepare(
      `insert into counters (workspace, counter, period, value, updated_at) values (?, ?, ?, ?, ?)
       on conflict (workspace, counter, period) do update set value = excluded.value, updated_at = excluded.updated_at`,
    );
    this.reserveTx = this.db.transaction((key: CounterKey, count: number) => {
      const last = select.get(key.workspace, key.counter, key.period)?.value ?? 0;
      upsert.run(key.workspace, key.counter, key.period, last + count, new Date().toISOString());
      return { first: last + 1, last: last + count };
    });
    this.releaseTx = this.db.transaction((key: CounterKey, reservation: CounterReservation) => {
      const last = select.get(key.workspace, key.counter, key.period)?.value ?? 0;
      if (last !== reservation.last) return false;
      upsert.run(key.workspace, key.counter, key.period, reservation.first - 1, new Date().toISOString());
      return true;
    });
  }

  async reserve(key: CounterKey, count: number): Promise<CounterReservation> {
    if (!Number.isSafeInteger(count) || count < 1) throw new RangeError(`cannot reserve ${count} numbers`);
    // `immediate` takes the write lock before reading, so concurrent processes serialise here.
    return this.reserveTx.immediate(key, count);
  }

  async release(key: CounterKey, reservation: CounterReservation): Promise<boolean> {
    return this.releaseTx.immediate(key, reservation);
  }

  async current(key: CounterKey): Promise<number> {
    const row = this.db
      .prepare<[string, string, string], { value: number }>(
        'select value from counters where workspace = ? and counter = ? and period = ?',
      )
      .get(key.workspace, key.counter, key.period);
    return row?.value ?? 0;
  }

  async close(): Promise<void> {
    this.db.close();
  }
}
