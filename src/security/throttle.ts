/**
 * Failure counting with exponential back-off, for sign-in (per account and per client address)
 * and for bearer tokens that do not check out (per address). After `freeFailures` failures in a
 * row a key must wait `baseDelayMs · 2^(failures − freeFailures)` after its latest failure,
 * capped at `maxDelayMs` (the lockout window); a key that has not failed for `forgetAfterMs`
 * starts over. A success clears an account's count.
 *
 * Counts are kept in this process's memory (at most `maxKeys` keys, the oldest dropped first):
 * right for one server process; several processes behind a balancer each count on their own,
 * which multiplies the allowance by their number. Keys are opaque strings — callers pass a hash
 * of the e-mail, never the address itself.
 */

export interface BackoffPolicy {
  /** Failures allowed before any wait. */
  freeFailures: number;
  /** The first wait, after `freeFailures` failures. */
  baseDelayMs: number;
  /** The longest wait: the lockout window. */
  maxDelayMs: number;
  /** A key with no failure for this long starts over. */
  forgetAfterMs: number;
}

interface Entry {
  failures: number;
  lastFailure: number;
}

export class Backoff {
  private readonly entries = new Map<string, Entry>();

  constructor(
    readonly policy: BackoffPolicy,
    private readonly now: () => number,
    private readonly maxKeys = 100_000,
  ) {}

  private live(key: string, now: number): Entry | undefined {
    const entry = this.entries.get(key);
    if (entry && now - entry.lastFailure >= this.policy.forgetAfterMs) {
      this.entries.delete(key);
      return undefined;
    }
    return entry;
  }

  /** The wait a key has after `failures` failures in a row. */
  delayAfter(failures: number): number {
    const { freeFailures, baseDelayMs, maxDelayMs } = this.policy;
    if (failures < freeFailures) return 0;
    const exponent = Math.min(failures - freeFailures, 40);
    return Math.min(maxDelayMs, baseDelayMs * 2 ** exponent);
  }

  /** Milliseconds until the key may try again; 0 when it may now. */
  retryAfter(key: string): number {
    const now = this.now();
    const entry = this.live(key, now);
    if (!entry) return 0;
    // No wait owed is no wait, even if the clock stepped back since the last failure.
    const delay = this.delayAfter(entry.failures);
    if (delay === 0) return 0;
    return Math.max(0, entry.lastFailure + delay - now);
  }

  /** Count a failure; returns the failures in a row so far. */
  fail(key: string): number {
    const now = this.now();
    const entry = this.live(key, now) ?? { failures: 0, lastFailure: now };
    entry.failures++;
    entry.lastFailure = now;
    // Re-inserting keeps the map in order of latest failure, so the oldest is dropped first.
    this.entries.delete(key);
    this.entries.set(key, entry);
    if (this.entries.size > this.maxKeys) {
      const oldest = this.entries.keys().next().value;
      if (oldest !== undefined) this.entries.delete(oldest);
    }
    return entry.failures;
  }

  failures(key: string): number {
    return this.live(key, this.now())?.failures ?? 0;
  }

  clear(key: string): void {
    this.entries.delete(key);
  }
}
