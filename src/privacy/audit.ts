/**
 * The audit log: append-only and hash-chained. Each entry's hash covers the previous entry's
 * hash and the entry itself (canonical JSON), so changing, removing or reordering any entry
 * breaks every hash after it, and `lethe audit verify` says where. Entries carry ids and counts
 * only — never names, e-mails or values. Retention may purge the oldest entries: the anchor
 * row remembers the last purged entry's hash, and verification starts there.
 */
import { createHash } from 'node:crypto';
import type { Kysely, Transaction } from 'kysely';
import { isUniqueViolation } from '../store/database.js';
import type { AuditLogTable, Database, Db } from '../store/schema.js';

export const GENESIS_HASH = '0'.repeat(64);

export interface AuditEntry {
  /** Null for deployment-wide entries. */
  workspaceId?: string | null;
  /** Who: a token id, a user id, `retention`, `cli`… */
  actor: string;
  /** What: `purge`, `erasure.completed`, `workspace.closed`, `token.created`… */
  action: string;
  dataClass?: string | null;
  count?: number | null;
  reason?: string | null;
  /** Ids and flags only. */
  details?: Record<string, string | number | boolean | null>;
  at?: number;
}

export interface Verification {
  ok: boolean;
  /** Entries checked. */
  checked: number;
  /** The first entry that does not verify. */
  brokenAt?: number;
  problem?: string;
}

function canonical(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonical).join(',')}]`;
  const record = value as Record<string, unknown>;
  return `{${Object.keys(record)
    .sort()
    .map((key) => `${JSON.stringify(key)}:${canonical(record[key])}`)
    .join(',')}}`;
}

/** The hash of an entry: SHA-256 over the previous hash and the entry without its hashes. */
export function entryHash(row: Omit<AuditLogTable, 'hash'>): string {
  const { prev_hash: previous, ...entry } = row;
  return createHash('sha256')
    .update(previous)
    .update('\n')
    .update(canonical({ ...entry, details: JSON.parse(entry.details) as unknown }))
    .digest('hex');
}

export class AuditLog {
  constructor(private readonly db: Kysely<Database>) {}

  /** Append one entry (in `trx` when given, so it commits with what it records). */
  async append(entry: AuditEntry, trx?: Db): Promise<{ seq: number; hash: string }> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.appendOnce(entry, trx ?? this.db);
      } catch (error) {
        // Two writers took the same place in the chain: the loser tries again after the winner.
        if (!isUniqueViolation(error) || attempt >= 20 || trx) throw error;
      }
    }
  }

  /**
   * Run `work` in a transaction, so the entries it appends (`append(entry, trx)`) commit with
   * the change they record, or neither does. When another writer took the same place in the
   * chain, the whole transaction runs again after it.
   */
  async transaction<T>(work: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
    for (let attempt = 0; ; attempt++) {
      try {
        return await this.db.transaction().execute(work);
      } catch (error) {
        if (!isUniqueViolation(error) || attempt >= 20) throw error;
      }
    }
  }

  private async appendOnce(entry: AuditEntry, db: Db): Promise<{ seq: number; hash: string }> {
    const last = await db
      .selectFrom('audit_log')
      .select(['seq', 'hash'])
      .orderBy('seq', 'desc')
      .limit(1)
      .executeTakeFirst();
    const anchor = last
      ? undefined
      : await db.selectFrom('audit_anchor').select(['seq', 'hash']).executeTakeFirst();
    const previous = last ?? anchor ?? { seq: 0, hash: GENESIS_HASH };
    const row: Omit<AuditLogTable, 'hash'> = {
      seq: Number(previous.seq) + 1,
      at: entry.at ?? Date.now(),
      workspace_id: entry.workspaceId ?? null,
      actor: entry.actor,
      action: entry.action,
      data_class: entry.dataClass ?? null,
      count: entry.count ?? null,
      reason: entry.reason ?? null,
      details: JSON.stringify(entry.details ?? {}),
      prev_hash: previous.hash,
    };
    const hash = entryHash(row);
    await db
      .insertInto('audit_log')
      .values({ ...row, hash })
      .execute();
    return { seq: row.seq, hash };
  }

  /** Check the whole chain from its anchor (or the start). */
  async verify(): Promise<Verification> {
    const anchor = await this.db.selectFrom('audit_anchor').select(['seq', 'hash']).executeTakeFirst();
    let expectedSeq = Number(anchor?.seq ?? 0) + 1;
    let previous = anchor?.hash ?? GENESIS_HASH;
    let checked = 0;
    const batch = 1000;
    for (let after = expectedSeq - 1; ;) {
      const rows = await this.db
        .selectFrom('audit_log')
        .selectAll()
        .where('seq', '>', after)
        .orderBy('seq')
        .limit(batch)
        .execute();
      for (const row of rows) {
        const seq = Number(row.seq);
        if (seq !== expectedSeq)
          return { ok: false, checked, brokenAt: expectedSeq, problem: `entry ${expectedSeq} is missing` };
        if (row.prev_hash !== previous) {
          return {
            ok: false,
            checked,
            brokenAt: seq,
            problem: `entry ${seq} does not follow entry ${seq - 1}`,
          };
        }
        let details: unknown;
        try {
          details = JSON.parse(row.details);
        } catch {
          details = undefined;
        }
        // The stored hash is what is checked, not part of what is hashed.
        const { hash: _stored, ...entry } = row;
        const recomputed =
          details === undefined
            ? ''
            : entryHash({
                ...entry,
                seq,
                at: Number(row.at),
                count: row.count === null ? null : Number(row.count),
              });
        if (recomputed !== row.hash)
          return { ok: false, checked, brokenAt: seq, problem: `entry ${seq} was altered` };
        previous = row.hash;
        expectedSeq++;
        checked++;
        after = seq;
      }
      if (rows.length < batch) return { ok: true, checked };
    }
  }

  /**
   * Purge entries older than `before` (retention), keeping the chain verifiable: the anchor
   * moves to the last entry purged. Returns how many went.
   */
  async purgeBefore(before: number, limit: number): Promise<number> {
    return this.db.transaction().execute(async (trx) => {
      // Only a prefix of the chain may go: the oldest entries, up to the first not old enough.
      const oldest = await trx
        .selectFrom('audit_log')
        .select(['seq', 'hash', 'at'])
        .orderBy('seq')
        .limit(limit)
        .execute();
      const prefix: typeof oldest = [];
      for (const row of oldest) {
        if (Number(row.at) >= before) break;
        prefix.push(row);
      }
      const contiguous = prefix;
      if (contiguous.length === 0) return 0;
      const upTo = contiguous[contiguous.length - 1]!;
      await trx.deleteFrom('audit_log').where('seq', '<=', upTo.seq).execute();
      const now = Date.now();
      await trx
        .insertInto('audit_anchor')
        .values({ id: 1, seq: upTo.seq, hash: upTo.hash, updated_at: now })
        .onConflict((conflict) =>
          conflict.column('id').doUpdateSet({ seq: upTo.seq, hash: upTo.hash, updated_at: now }),
        )
        .execute();
      return contiguous.length;
    });
  }
}
