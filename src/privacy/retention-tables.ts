/**
 * What the purger deletes, table by table: every stored table that has a retention column
 * (`agedBy` in store/tables.ts) is listed here with its key, its data class and the rows that
 * must stay whatever their age (runs in flight, open erasure requests). A test fails when a
 * table with `agedBy` is not listed, so a new dated table cannot escape retention.
 *
 * Related rows (runs, their input, their details) — each class keeps its own period, with
 * three rules so that nothing a retry needs goes, and nothing goes stale:
 * - A run that is queued or running is never purged, nor its input: it is work in flight.
 * - An incomplete run (the dead-letter queue) leaves the DLQ when the `dlq` period is over: its
 *   input is deleted and the run becomes `failed` with the error class `EXPIRED` (as a discarded
 *   run becomes `DISCARDED`), so a retry can never start without its input. Its summary then
 *   stays for the `activity` period like any finished run.
 * - When a run's summary goes (`activity`), any input left for it goes in the same transaction,
 *   so no input ever outlives its run. Execution details (`execution_detail`, 60 days by default
 *   against 30 for the summary) are kept for their own period: the seeds promise both.
 *
 * Statements are plain SQL that SQLite and PostgreSQL both run: a batch is one
 * `DELETE … WHERE (key) IN (SELECT key … ORDER BY age LIMIT n) RETURNING …`, oldest first.
 */
import { sql, type RawBuilder } from 'kysely';
import type { Db } from '../store/schema.js';
import type { PurgeableClass } from './retention-policy.js';

export type PurgedTable =
  | 'gateway_log'
  | 'webhook_events_seen'
  | 'notifications'
  | 'run_details'
  | 'run_inputs'
  | 'runs'
  | 'erasure_requests';

export interface PurgeTarget {
  table: PurgedTable;
  dataClass: PurgeableClass;
  /** The primary key's columns (the first is returned as `key`). */
  key: readonly string[];
  /** The column age counts from (epoch ms), as in store/tables.ts. */
  agedBy: string;
  /** Rows that may go once old enough (SQL over the table's own columns); all when absent. */
  deletable?: RawBuilder<unknown>;
  /**
   * Rows a whole pass would delete once old enough, when more than `deletable` (what goes in
   * an earlier step of the pass: DLQ entries that expire before the runs' own step).
   */
  dueInPass?: (dlqCutoff: number) => RawBuilder<unknown>;
}

/** Runs in flight: never purged, nor their input. */
const IN_FLIGHT = ['queued', 'running'] as const;

/**
 * Every table purged by age, in the order a pass visits them: the DLQ before the activity
 * stream, so that a run leaving the DLQ can go in the same pass once its summary is old enough.
 */
export const PURGE_TARGETS: readonly PurgeTarget[] = [
  { table: 'gateway_log', dataClass: 'gateway_log', key: ['id'], agedBy: 'received_at' },
  // Signed webhooks' event ids (the replay window): part of the gateway log.
  {
    table: 'webhook_events_seen',
    dataClass: 'gateway_log',
    key: ['workspace_id', 'flow_name', 'event_id'],
    agedBy: 'seen_at',
  },
  { table: 'notifications', dataClass: 'notification', key: ['id'], agedBy: 'created_at' },
  { table: 'run_details', dataClass: 'execution_detail', key: ['run_id'], agedBy: 'created_at' },
  {
    table: 'run_inputs',
    dataClass: 'dlq',
    key: ['run_id'],
    agedBy: 'created_at',
    // Inputs of incomplete runs go with the run leaving the DLQ (expireDeadLetters).
    deletable: sql`not exists (select 1 from runs where runs.id = run_inputs.run_id and runs.status in (${sql.join(
      [...IN_FLIGHT, 'incomplete'],
    )}))`,
    // …which has the same period and the same age (an input is as old as its run).
    dueInPass: () =>
      sql`not exists (select 1 from runs where runs.id = run_inputs.run_id and runs.status in (${sql.join(
        IN_FLIGHT,
      )}))`,
  },
  {
    table: 'runs',
    dataClass: 'activity',
    key: ['id'],
    agedBy: 'queued_at',
    // (An expression, not the column: the batch must walk the age index, not the status one.)
    deletable: sql`(status || '') in ('succeeded', 'failed')`,
    // Incomplete runs leave the DLQ (as failed) earlier in the same pass.
    dueInPass: (dlqCutoff) =>
      sql`(status in ('succeeded', 'failed') or (status = 'incomplete' and queued_at < ${dlqCutoff}))`,
  },
  {
    table: 'erasure_requests',
    dataClass: 'audit',
    key: ['id'],
    agedBy: 'created_at',
    deletable: sql`status = 'completed'`,
  },
];

/** Tables with an age that the purger handles otherwise (the audit chain: AuditLog.purgeBefore). */
export const PURGED_ELSEWHERE = ['audit_log'] as const;

/** Which workspaces a statement covers: only these, all but these, or all. */
export type Scope = { only: readonly string[] } | { except: readonly string[] };

/**
 * The scope as a condition. The column is wrapped in an expression (`workspace_id || ''`) so
 * that no database plans the batch through a workspace index: a batch must walk the age index
 * in order from where the last one stopped, or every batch would sort a workspace's rows anew.
 */
export function scopeSql(scope: Scope, options: { plain?: boolean } = {}): RawBuilder<unknown> {
  const column = sql.ref('workspace_id');
  // (plain: counts, which may use any index.)
  const value = options.plain ? column : sql`(${column} || '')`;
  if ('only' in scope) return scope.only.length ? sql`${value} in (${sql.join(scope.only)})` : sql`1 = 0`;
  return scope.except.length ? sql`${value} not in (${sql.join(scope.except)})` : sql`1 = 1`;
}

export interface DeletedRow {
  key: string;
  workspace_id: string;
  aged: number;
}

/**
 * The statement that deletes one batch of `target`'s rows older than `cutoff` (and not younger
 * than `from`, where the previous batch stopped), oldest first, and returns them.
 */
export function batchStatement(
  target: PurgeTarget,
  cutoff: number,
  from: number,
  scope: Scope,
  limit: number,
): RawBuilder<DeletedRow> {
  const table = sql.table(target.table);
  // A row value, so that composite keys work too (SQLite ≥ 3.15 and PostgreSQL).
  const key = sql.join(target.key.map((column) => sql.ref(column)));
  const aged = sql.ref(target.agedBy);
  const deletable = target.deletable ?? sql`1 = 1`;
  return sql<DeletedRow>`delete from ${table} where (${key}) in (
      select ${key} from ${table}
      where ${aged} < ${cutoff} and ${aged} >= ${from} and ${scopeSql(scope)} and ${deletable}
      order by ${aged} limit ${limit}
    ) and ${deletable}
    returning ${sql.ref(target.key[0]!)} as key, workspace_id, ${aged} as aged`;
}

/** Delete one batch (batchStatement); returns the rows deleted. */
export async function deleteBatch(
  db: Db,
  target: PurgeTarget,
  cutoff: number,
  from: number,
  scope: Scope,
  limit: number,
): Promise<DeletedRow[]> {
  const rows = (await batchStatement(target, cutoff, from, scope, limit).execute(db)).rows;
  return rows.map((row) => ({ ...row, aged: Number(row.aged) }));
}

/** Delete the inputs of these runs (a run's summary or DLQ entry went); returns their workspaces. */
export async function deleteInputsOf(db: Db, runIds: readonly string[]): Promise<string[]> {
  if (runIds.length === 0) return [];
  const rows = await sql<{ workspace_id: string }>`delete from run_inputs
    where run_id in (${sql.join(runIds)}) returning workspace_id`.execute(db);
  return rows.rows.map((row) => row.workspace_id);
}

/**
 * Incomplete runs older than `cutoff` leave the dead-letter queue: they become failed
 * (`EXPIRED`). Returns them; the caller deletes their inputs in the same transaction.
 */
export async function expireDeadLetters(
  db: Db,
  cutoff: number,
  scope: Scope,
  limit: number,
  now: number,
): Promise<{ id: string; workspace_id: string }[]> {
  const query = sql<{ id: string; workspace_id: string }>`update runs
    set status = 'failed', error_code = 'EXPIRED', finished_at = coalesce(finished_at, ${now})
    where id in (
      select id from runs
      where status = 'incomplete' and queued_at < ${cutoff} and ${scopeSql(scope)}
      order by queued_at limit ${limit}
    ) and status = 'incomplete'
    returning id, workspace_id`;
  return (await query.execute(db)).rows;
}

export interface TableCount {
  workspace_id: string;
  count: number;
  oldest: number | null;
}

/**
 * Records of `target` that a pass would delete now, per workspace: older than `cutoff` and
 * deletable in some step of the pass (`dlqCutoff`: the DLQ period's cutoff of the same scope).
 */
export async function countDue(
  db: Db,
  target: PurgeTarget,
  cutoff: number,
  scope: Scope,
  dlqCutoff: number,
): Promise<TableCount[]> {
  const aged = sql.ref(target.agedBy);
  const due = target.dueInPass?.(dlqCutoff) ?? target.deletable ?? sql`1 = 1`;
  const rows = await sql<{ workspace_id: string; count: number | string; oldest: number | string | null }>`
    select workspace_id, count(*) as count, min(${aged}) as oldest from ${sql.table(target.table)}
    where ${aged} < ${cutoff} and ${scopeSql(scope, { plain: true })} and ${due}
    group by workspace_id`.execute(db);
  return rows.rows.map((row) => ({
    workspace_id: row.workspace_id,
    count: Number(row.count),
    oldest: row.oldest === null ? null : Number(row.oldest),
  }));
}

/** All records of a table for one workspace, and the oldest one's time. */
export async function countAll(
  db: Db,
  table: PurgedTable | 'audit_log',
  agedBy: string,
  workspaceId: string,
): Promise<{ count: number; oldest: number | null }> {
  const row = await sql<{ count: number | string; oldest: number | string | null }>`
    select count(*) as count, min(${sql.ref(agedBy)}) as oldest from ${sql.table(table)}
    where workspace_id = ${workspaceId}`.execute(db);
  const first = row.rows[0];
  return {
    count: Number(first?.count ?? 0),
    oldest: first?.oldest === null || first?.oldest === undefined ? null : Number(first.oldest),
  };
}
