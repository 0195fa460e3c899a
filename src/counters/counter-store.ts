/**
 * counters — where autonumber keeps its sequences. The engine only sees this interface; the CLI
 * keeps counters in a local state file (./file-counter-store.ts) and the server in its store.
 */

/** One sequence: per workspace, per counter name, per period (e.g. "2026" for yearly resets). */
export interface CounterKey {
  workspace: string;
  counter: string;
  /** Empty for counters that never reset. */
  period: string;
}

/** A block of consecutive numbers handed to one run. */
export interface CounterReservation {
  first: number;
  last: number;
}

export interface CounterStore {
  /**
   * Atomically hand out `count` consecutive numbers, following the last number handed out.
   * Concurrent callers (other runs, other processes) never get overlapping blocks.
   */
  reserve(key: CounterKey, count: number): Promise<CounterReservation>;
  /**
   * Give a block back, only if no number after it has been handed out since: so nothing is
   * ever reused, and a failed run leaves no gap when it was the last to take numbers.
   * Returns whether the block was given back.
   */
  release(key: CounterKey, reservation: CounterReservation): Promise<boolean>;
  /** The last number handed out (0 if none). */
  current(key: CounterKey): Promise<number>;
  close(): Promise<void>;
}
