/**
 * autonumber counters in the store (the CLI keeps them in a file). Each reservation is one
 * atomic statement — an upsert that adds the count and returns the new value — so concurrent
 * runs, in this process or others, never get overlapping blocks, on SQLite and PostgreSQL
 * alike. A block is given back only by a compare-and-set on the value it left.
 */
import { sql, type Kysely } from 'kysely';
import type { CounterKey, CounterReservation, CounterStore } from '../counters/counter-store.js';
import type { Database } from './schema.js';

export class StoreCounterStore implements CounterStore {
  constructor(private readonly db: Kysely<Database>) {}

  async reserve(key: CounterKey, count: number): Promise<CounterReservation> {
    if (!Number.isSafeInteger(count) || count < 1) throw new RangeError(`cannot reserve ${count} numbers`);
    const row = await this.db
      .insertInto('counters')
      .values({
        workspace_id: key.workspace,
        counter: key.counter,
        period: key.period,
        value: count,
        updated_at: Date.now(),
      })
      .onConflict((conflict) =>
        conflict.columns(['workspace_id', 'counter', 'period']).doUpdateSet({
          value: sql<number>`counters.value + ${count}`,
          updated_at: Date.now(),
        }),
      )
      .returning('value')
      .executeTakeFirstOrThrow();
    const last = Number(row.value);
    return { first: last - count + 1, last };
  }

  async release(key: CounterKey, reservation: CounterReservation): Promise<boolean> {
    const result = await this.db
      .updateTable('counters')
      .set({ value: reservation.first - 1, updated_at: Date.now() })
      .where('workspace_id', '=', key.workspace)
      .where('counter', '=', key.counter)
      .where('period', '=', key.period)
      .where('value', '=', reservation.last)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  async current(key: CounterKey): Promise<number> {
    const row = await this.db
      .selectFrom('counters')
      .select('value')
      .where('workspace_id', '=', key.workspace)
      .where('counter', '=', key.counter)
      .where('period', '=', key.period)
      .executeTakeFirst();
    return row ? Number(row.value) : 0;
  }

  async close(): Promise<void> {}
}
