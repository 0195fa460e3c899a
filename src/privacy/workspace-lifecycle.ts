/**
 * privacy — closing a workspace (SPEC 6, seeds 001 and 002): at once on request, or into
 * passive storage for 6 months and then purged; either way its key is destroyed in the end, so
 * every copy of its data — backups included — stays unreadable (crypto-shredding).
 *
 * - **Passive** (`closeWorkspace(…, { mode: 'passive' })`): the workspace is `sealed` with
 *   `closed_at` and `purge_after`; its keystore secret is sealed (the vault refuses it); its
 *   flows are parked (`flows.enabled = 2`: nothing fires them — schedules, polls, webhooks and
 *   manual runs all want 1); its queued runs go to the dead-letter queue as `WORKSPACE_CLOSED`;
 *   its running runs in this process are cancelled; the API refuses the workspace (410).
 *   `reopenWorkspace` undoes it before `purge_after` (dead-lettered runs stay there, to be
 *   retried on purpose).
 * - **Now**, and passive storage that has ended (`purgeClosedWorkspaces`): the keystore entry
 *   is destroyed first (so even a purge cut short leaves nothing readable), then every row
 *   with the workspace's id is deleted in bounded batches, in every table that has a
 *   `workspace_id` column (found by asking the database, so a new table cannot be missed),
 *   then the workspace row and its files folder.
 * - The audit log (hash-chained, ids and counts only) keeps its entries for the workspace: it
 *   is the receipt of the closing and purge, and removing entries would break the chain. It
 *   ages out under its own retention.
 */
import { rmSync } from 'node:fs';
import { sql } from 'kysely';
import { LetheError } from '../errors/index.js';
import type { Vault } from '../security/vault.js';
import type { Store } from '../store/index.js';
import { STORED_TABLES } from '../store/tables.js';
import type { Workspace } from '../store/workspaces.js';
import type { AuditLog } from './audit.js';

/** How long a closed workspace stays in passive storage (seed 002). */
export const PASSIVE_STORAGE_MONTHS = 6;
/** The error class of runs that were queued when their workspace closed. */
export const WORKSPACE_CLOSED = 'WORKSPACE_CLOSED';
/** `flows.enabled` of a flow parked while its workspace is sealed (1 = enabled, 0 = disabled). */
export const PARKED_FLOW = 2;
/** Tables whose rows outlive a workspace: the audit log is its receipt (see the header). */
export const KEPT_ON_PURGE: readonly string[] = ['audit_log'];

const BATCH = 2000;

export type CloseMode = 'now' | 'passive';

/** What closing needs; a ServerContext is one. */
export interface LifecycleContext {
  store: Store;
  /** The home region's store, when it is not `store`: the workspace's directory records are there. */
  home?: Store;
  vault: Vault;
  audit: AuditLog;
  /** In a server: cancels this process's running runs of a closing workspace, and knows its files. */
  runner?: {
    cancel(runId: string): boolean;
    waitFor(runId: string, timeoutMs: number): Promise<unknown>;
    filesDir(workspaceName: string): string;
  };
  triggers?: { refresh(): Promise<void> };
  /** A workspace's files folder, removed on purge (the runner's when not given). */
  filesDir?: (workspaceName: string) => string;
}

export interface CloseOptions {
  mode: CloseMode;
  /** Who: `token:<id>`, `cli`… (an id, never a name). */
  actor: string;
  now?: number;
  /** Months of passive storage (tests may shorten it). */
  passiveMonths?: number;
  /** How long `now` waits for this process's running runs of the workspace to stop (default 10 s). */
  graceMs?: number;
}

export interface PurgeResult {
  workspaceId: string;
  workspace: string;
  /** Rows deleted, by table. */
  deleted: Record<string, number>;
  /** Rows deleted, by data class. */
  byClass: Record<string, number>;
  /** The keystore entry's state before it was destroyed. */
  keyWas: string;
  filesRemoved: boolean;
}

export interface CloseResult {
  workspaceId: string;
  workspace: string;
  mode: CloseMode;
  /** sealed: in passive storage; purged: gone. */
  status: 'sealed' | 'purged';
  closedAt: number;
  purgeAfter: number;
  /** Flows parked (no longer fired by schedules, polls or webhooks). */
  flowsParked: number;
  /** Queued runs sent to the dead-letter queue. */
  runsDeadLettered: number;
  /** Running runs of this process cancelled. */
  runsCancelled: number;
  purge?: PurgeResult;
}

export interface ReopenResult {
  workspaceId: string;
  workspace: string;
  flowsResumed: number;
  /** Runs dead-lettered when the workspace closed, still in the DLQ (retry them on purpose). */
  runsInDlq: number;
}

/** When a workspace closed at `closedAt` is purged: the same day, `months` later (UTC). */
export function purgeDeadline(closedAt: number, months = PASSIVE_STORAGE_MONTHS): number {
  const date = new Date(closedAt);
  date.setUTCMonth(date.getUTCMonth() + months);
  return date.getTime();
}

async function find(context: LifecycleContext, name: string): Promise<Workspace> {
  const workspace = await context.store.workspaces.byName(name);
  if (!workspace) throw new LetheError('USAGE', `no workspace "${name}"`);
  return workspace;
}

/**
 * Close a workspace: `passive` seals it for `PASSIVE_STORAGE_MONTHS`, `now` also purges it at
 * once (a sealed workspace may be purged now too).
 */
export async function closeWorkspace(
  context: LifecycleContext,
  name: string,
  options: CloseOptions,
): Promise<CloseResult> {
  const now = options.now ?? Date.now();
  let workspace = await find(context, name);
  if (workspace.status === 'sealed' && options.mode === 'passive') {
    throw new LetheError('CONFLICT', `workspace "${name}" is already closed`, {
      hint: 'close it with --now (mode "now") to purge it at once',
    });
  }
  let result: CloseResult;
  if (workspace.status !== 'sealed') {
    const deadline = options.mode === 'now' ? now : purgeDeadline(now, options.passiveMonths);
    result = await seal(context, workspace, options, now, deadline);
    workspace = { ...workspace, status: 'sealed', closed_at: now, purge_after: deadline };
  } else {
    result = {
      workspaceId: workspace.id,
      workspace: workspace.name,
      mode: options.mode,
      status: 'sealed',
      closedAt: Number(workspace.closed_at ?? now),
      purgeAfter: Number(workspace.purge_after ?? now),
      flowsParked: 0,
      runsDeadLettered: 0,
      runsCancelled: 0,
    };
  }
  if (options.mode === 'passive') return result;
  const purge = await purgeWorkspace(context, workspace, {
    actor: options.actor,
    now,
    reason: 'closed at once on request',
  });
  return { ...result, status: 'purged', purge };
}

async function seal(
  context: LifecycleContext,
  workspace: Workspace,
  options: CloseOptions,
  now: number,
  deadline: number,
): Promise<CloseResult> {
  const { store } = context;
  const changes = await store.db.transaction().execute(async (trx) => {
    const sealed = await trx
      .updateTable('workspaces')
      .set({ status: 'sealed', closed_at: now, purge_after: deadline })
      .where('id', '=', workspace.id)
      .where('status', '=', 'active')
      .executeTakeFirst();
    if (Number(sealed.numUpdatedRows) !== 1) {
      throw new LetheError('CONFLICT', `workspace "${workspace.name}" was closed meanwhile`);
    }
    const parked = await trx
      .updateTable('flows')
      .set({ enabled: PARKED_FLOW })
      .where('workspace_id', '=', workspace.id)
      .where('enabled', '=', 1)
      .executeTakeFirst();
    const deadLettered = await trx
      .updateTable('runs')
      .set({ status: 'incomplete', finished_at: now, error_code: WORKSPACE_CLOSED })
      .where('workspace_id', '=', workspace.id)
      .where('status', '=', 'queued')
      .executeTakeFirst();
    const counts = {
      flowsParked: Number(parked.numUpdatedRows),
      runsDeadLettered: Number(deadLettered.numUpdatedRows),
    };
    await context.audit.append(
      {
        workspaceId: workspace.id,
        actor: options.actor,
        action: 'workspace.closed',
        at: now,
        details: { mode: options.mode, purgeAfter: deadline, ...counts },
      },
      trx,
    );
    return counts;
  });
  // After the commit: a crash between the two leaves a sealed workspace with an active key,
  // which purgeClosedWorkspaces seals on its next pass.
  await context.vault.sealWorkspace(workspace.id, now);
  const runsCancelled = await cancelRunning(context, workspace.id, options.mode === 'now', options.graceMs);
  await context.triggers?.refresh();
  return {
    workspaceId: workspace.id,
    workspace: workspace.name,
    mode: options.mode,
    status: 'sealed',
    closedAt: now,
    purgeAfter: deadline,
    ...changes,
    runsCancelled,
  };
}

/** Cancel this process's running runs of a workspace; with `wait`, until they have stopped. */
async function cancelRunning(
  context: LifecycleContext,
  workspaceId: string,
  wait: boolean,
  graceMs = 10_000,
): Promise<number> {
  const runner = context.runner;
  if (!runner) return 0;
  const running = await context.store.db
    .selectFrom('runs')
    .select('id')
    .where('workspace_id', '=', workspaceId)
    .where('status', '=', 'running')
    .execute();
  const stopped: Promise<unknown>[] = [];
  let cancelled = 0;
  for (const { id } of running) {
    if (!runner.cancel(id)) continue; // not running in this process
    cancelled++;
    // Registered in the same tick as the cancel: the run cannot end before it is watched.
    if (wait) stopped.push(runner.waitFor(id, graceMs));
  }
  await Promise.all(stopped);
  return cancelled;
}

/** Tables with a workspace_id column, as the database has them. */
export async function workspaceTables(store: Store): Promise<string[]> {
  const rows =
    store.dialect === 'sqlite'
      ? await sql<{ name: string }>`select m.name as name from sqlite_master m
          join pragma_table_info(m.name) c on c.name = 'workspace_id'
          where m.type = 'table'`.execute(store.db)
      : await sql<{ name: string }>`select c.table_name as name from information_schema.columns c
          join information_schema.tables t
            on t.table_schema = c.table_schema and t.table_name = c.table_name and t.table_type = 'BASE TABLE'
          where c.table_schema = current_schema() and c.column_name = 'workspace_id'`.execute(store.db);
  return rows.rows.map((row) => row.name).sort();
}

/** Delete a workspace's rows of one table in batches (never one long lock). */
export async function deleteRows(store: Store, table: string, workspaceId: string): Promise<number> {
  let total = 0;
  for (;;) {
    const result =
      store.dialect === 'sqlite'
        ? await sql`delete from ${sql.table(table)} where rowid in
            (select rowid from ${sql.table(table)} where workspace_id = ${workspaceId} limit ${BATCH})`.execute(
            store.db,
          )
        : await sql`delete from ${sql.table(table)} where ctid in
            (select ctid from ${sql.table(table)} where workspace_id = ${workspaceId} limit ${BATCH})`.execute(
            store.db,
          );
    const count = Number(result.numAffectedRows ?? 0);
    total += count;
    if (count < BATCH) return total;
  }
}

/**
 * Purge a sealed workspace: destroy its key, then delete its rows everywhere (but the audit
 * log), its workspace row and its files.
 */
export async function purgeWorkspace(
  context: LifecycleContext,
  workspace: Workspace,
  options: { actor: string; now?: number; reason: string },
): Promise<PurgeResult> {
  const now = options.now ?? Date.now();
  const { store } = context;
  const current = await store.workspaces.byId(workspace.id);
  if (current && current.status !== 'sealed') {
    throw new LetheError('CONFLICT', `workspace "${workspace.name}" is not closed: close it first`);
  }
  // First the key: from here on nothing of the workspace can be decrypted anywhere.
  const keyWas = await context.vault.destroyWorkspace(workspace.id, now);
  const deleted: Record<string, number> = {};
  const byClass: Record<string, number> = {};
  for (const table of await workspaceTables(store)) {
    if (KEPT_ON_PURGE.includes(table)) continue;
    const count = await deleteRows(store, table, workspace.id);
    if (count === 0) continue;
    deleted[table] = count;
    const dataClass = STORED_TABLES[table as keyof typeof STORED_TABLES]?.dataClass ?? 'unclassified';
    byClass[dataClass] = (byClass[dataClass] ?? 0) + count;
  }
  const gone = await store.db.deleteFrom('workspaces').where('id', '=', workspace.id).executeTakeFirst();
  if (Number(gone.numDeletedRows) > 0) {
    deleted.workspaces = Number(gone.numDeletedRows);
    byClass.config = (byClass.config ?? 0) + Number(gone.numDeletedRows);
  }
  // A workspace of another region than home: its directory entry and access records go too.
  const home = context.home;
  if (home && home !== store) {
    for (const table of await workspaceTables(home)) {
      if (KEPT_ON_PURGE.includes(table)) continue;
      const count = await deleteRows(home, table, workspace.id);
      if (count === 0) continue;
      deleted[table] = (deleted[table] ?? 0) + count;
      const dataClass = STORED_TABLES[table as keyof typeof STORED_TABLES]?.dataClass ?? 'unclassified';
      byClass[dataClass] = (byClass[dataClass] ?? 0) + count;
    }
    const entry = await home.db.deleteFrom('workspaces').where('id', '=', workspace.id).executeTakeFirst();
    deleted.workspaces = (deleted.workspaces ?? 0) + Number(entry.numDeletedRows);
  }
  const filesDir = context.filesDir ?? context.runner?.filesDir.bind(context.runner);
  let filesRemoved = false;
  if (filesDir) {
    rmSync(filesDir(workspace.name), { recursive: true, force: true });
    filesRemoved = true;
  }
  await context.audit.append({
    workspaceId: workspace.id,
    actor: options.actor,
    action: 'workspace.key_destroyed',
    reason: options.reason,
    at: now,
    details: { keyWas },
  });
  for (const [dataClass, count] of Object.entries(byClass)) {
    await context.audit.append({
      workspaceId: workspace.id,
      actor: options.actor,
      action: 'workspace.purged',
      dataClass,
      count,
      reason: options.reason,
      at: now,
    });
  }
  await context.triggers?.refresh();
  return { workspaceId: workspace.id, workspace: workspace.name, deleted, byClass, keyWas, filesRemoved };
}

/** Reopen a sealed workspace before its purge date (an operator's decision: the CLI only). */
export async function reopenWorkspace(
  context: LifecycleContext,
  name: string,
  options: { actor: string; now?: number },
): Promise<ReopenResult> {
  const now = options.now ?? Date.now();
  const workspace = await find(context, name);
  if (workspace.status !== 'sealed') throw new LetheError('CONFLICT', `workspace "${name}" is not closed`);
  if (workspace.purge_after !== null && Number(workspace.purge_after) <= now) {
    throw new LetheError(
      'CONFLICT',
      `workspace "${name}" is past its purge date (${new Date(Number(workspace.purge_after)).toISOString()}) and cannot be reopened`,
    );
  }
  await context.vault.reopenWorkspace(workspace.id);
  const result = await context.store.db.transaction().execute(async (trx) => {
    const reopened = await trx
      .updateTable('workspaces')
      .set({ status: 'active', closed_at: null, purge_after: null })
      .where('id', '=', workspace.id)
      .where('status', '=', 'sealed')
      .executeTakeFirst();
    if (Number(reopened.numUpdatedRows) !== 1)
      throw new LetheError('CONFLICT', `workspace "${name}" changed meanwhile`);
    const resumed = await trx
      .updateTable('flows')
      .set({ enabled: 1 })
      .where('workspace_id', '=', workspace.id)
      .where('enabled', '=', PARKED_FLOW)
      .executeTakeFirst();
    const dlq = await trx
      .selectFrom('runs')
      .select((eb) => eb.fn.countAll<number>().as('count'))
      .where('workspace_id', '=', workspace.id)
      .where('status', '=', 'incomplete')
      .where('error_code', '=', WORKSPACE_CLOSED)
      .executeTakeFirst();
    const counts = { flowsResumed: Number(resumed.numUpdatedRows), runsInDlq: Number(dlq?.count ?? 0) };
    await context.audit.append(
      {
        workspaceId: workspace.id,
        actor: options.actor,
        action: 'workspace.reopened',
        at: now,
        details: counts,
      },
      trx,
    );
    return counts;
  });
  await context.triggers?.refresh();
  return { workspaceId: workspace.id, workspace: workspace.name, ...result };
}

/**
 * For the purger: purge every sealed workspace whose passive storage has ended (`purge_after`
 * ≤ now), exactly as closing with `now` does. It also seals the key of any sealed workspace
 * whose key is still active (a close cut short between the database and the keystore).
 */
export async function purgeClosedWorkspaces(
  context: LifecycleContext,
  now: number = Date.now(),
): Promise<PurgeResult[]> {
  const sealed = await context.store.db
    .selectFrom('workspaces')
    .selectAll()
    .where('status', '=', 'sealed')
    .orderBy('purge_after')
    .execute();
  const results: PurgeResult[] = [];
  for (const workspace of sealed) {
    if (workspace.purge_after !== null && Number(workspace.purge_after) <= now) {
      results.push(
        await purgeWorkspace(context, workspace, {
          actor: 'retention',
          now,
          reason: 'passive storage ended',
        }),
      );
    } else if (context.vault.keyState(workspace.id) === 'active') {
      await context.vault.sealWorkspace(workspace.id, now);
      await context.audit.append({
        workspaceId: workspace.id,
        actor: 'retention',
        action: 'workspace.key_sealed',
        at: now,
      });
    }
  }
  return results;
}
