/**
 * Group commit: writes that arrive together share one transaction, so under load a webhook's
 * durable enqueue costs a fraction of a commit (one fsync for many requests) while a lone
 * write still commits at once. Each caller's promise resolves only after the transaction that
 * holds its work has committed. If a shared transaction fails, its items are retried one by
 * one, so one bad item never fails the others.
 */
import type { Kysely, Transaction } from 'kysely';
import type { Database } from './schema.js';

export type Work = (trx: Transaction<Database>) => Promise<void>;

interface Pending {
  work: Work;
  resolve: () => void;
  reject: (error: unknown) => void;
}

export class GroupCommit {
  private pending: Pending[] = [];
  /** The flush under way, if any: it runs until nothing is pending. */
  private flushing: Promise<void> | undefined;
  private closed = false;
  /** Transactions committed and items written, for metrics. */
  readonly stats = { commits: 0, items: 0 };

  /** When the last commit ended: a commit soon after another means load, worth a short wait. */
  private lastCommitEnded = 0;

  constructor(
    private readonly db: Kysely<Database>,
    private readonly maxBatch = 512,
    /** Under load, how long a batch waits for company before it commits (0: never waits). */
    private readonly delayMs = 1,
  ) {}

  submit(work: Work): Promise<void> {
    if (this.closed) return Promise.reject(new Error('the store is closing'));
    return new Promise((resolve, reject) => {
      this.pending.push({ work, resolve, reject });
      this.flushing ??= this.flush();
    });
  }

  private async flush(): Promise<void> {
    // Let everything that arrives in this turn of the event loop join the batch; under load
    // (another commit just ended) wait a moment longer, so one fsync covers more requests.
    const busy = this.delayMs > 0 && performance.now() - this.lastCommitEnded < 5 * this.delayMs;
    await new Promise((resolve) => (busy ? setTimeout(resolve, this.delayMs) : setImmediate(resolve)));
    try {
      while (this.pending.length > 0) await this.commit(this.pending.splice(0, this.maxBatch));
    } finally {
      // In the same turn as the last look at `pending`: work submitted after it starts a new flush.
      this.flushing = undefined;
    }
  }

  private async commit(batch: Pending[]): Promise<void> {
    try {
      await this.db.transaction().execute(async (trx) => {
        for (const item of batch) await item.work(trx);
      });
      this.stats.commits++;
      this.stats.items += batch.length;
      this.lastCommitEnded = performance.now();
      for (const item of batch) item.resolve();
    } catch (error) {
      if (batch.length === 1) {
        batch[0]!.reject(error);
        return;
      }
      for (const item of batch) {
        try {
          await this.db.transaction().execute((trx) => item.work(trx));
          this.stats.commits++;
          this.stats.items++;
          item.resolve();
        } catch (itemError) {
          item.reject(itemError);
        }
      }
    }
  }

  /** Wait for everything submitted so far, then refuse new work. */
  async close(): Promise<void> {
    this.closed = true;
    await this.flushing;
  }
}
