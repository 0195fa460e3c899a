/**
 * Counters kept in memory: for embedding the engine in tests and one-off tools where numbers
 * need not survive the process. Same rules as the durable stores: blocks never overlap, and a
 * block is given back only if nothing was taken after it.
 */
import type { CounterKey, CounterReservation, CounterStore } from './counter-store.js';

export class MemoryCounterStore implements CounterStore {
  private readonly values = new Map<string, number>();

  private id(key: CounterKey): string {
    return JSON.stringify([key.workspace, key.counter, key.period]);
  }

  async reserve(key: CounterKey, count: number): Promise<CounterReservation> {
    if (!Number.isSafeInteger(count) || count < 1) throw new RangeError(`cannot reserve ${count} numbers`);
    const last = this.values.get(this.id(key)) ?? 0;
    this.values.set(this.id(key), last + count);
    return { first: last + 1, last: last + count };
  }

  async release(key: CounterKey, reservation: CounterReservation): Promise<boolean> {
    if ((this.values.get(this.id(key)) ?? 0) !== reservation.last) return false;
    this.values.set(this.id(key), reservation.first - 1);
    return true;
  }

  async current(key: CounterKey): Promise<number> {
    return this.values.get(this.id(key)) ?? 0;
  }

  async close(): Promise<void> {}
}
