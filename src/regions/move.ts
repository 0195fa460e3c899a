/**
 * Moving a workspace to another region: an operator's explicit, audited operation
 * (`lethe workspace move <name> --to <region>`). Every row of the workspace is copied to the
 * target region's store in one transaction there, the counts are checked on both sides, the
 * directory is switched, and only then are the rows deleted from the old region's store and its
 * files moved. While it runs, the directory marks the workspace `moving`: its API and webhooks
 * answer 503. A workspace with runs queued or running is not moved, and one that changes during
 * the copy (a schedule fired) is left where it was.
 *
 * Not moved: the audit log's entries stay in the chain they were written to (append-only; ids
 * and counts only). The directory's records (API tokens, members) stay in the home region.
 * Data keys move as they are: every region shares the deployment's master key and keystore.
 */
import { cpSync, existsSync, rmSync } from 'node:fs';
import { sql, type Kysely } from 'kysely';
import { LetheError } from '../errors/index.js';
import type { AuditLog } from '../privacy/audit.js';
import { deleteRows, workspaceTables } from '../privacy/workspace-lifecycle.js';
import type { Database, Store } from '../store/index.js';
import type { Workspace } from '../store/workspaces.js';
import type { Deployment } from './deployment.js';

/** What a move needs of a region. */
export interface MoveScope {
  region: string;
  store: Store;
  audit: AuditLog;
  filesDir(workspaceName: string): string;
}

export interface MoveResult {
  workspace: string;
  workspaceId: string;
  from: string;
  to: string;
  /** Rows moved, per table (the workspace row included). */
  rows: Record<string, number>;
  filesMoved: boolean;
}

/** Tables that stay where they are: the audit chain, and the home region's directory records. */
const STAYS = ['audit_log'];
const DIRECTORY = ['api_tokens', 'memberships', 'user_tokens'];
const BATCH = 500;

type Row = Record<string, unknown>;

type Db = Kysely<Database>;

async function countOf(db: Db, table: string, workspaceId: string): Promise<number> {
  const result = await sql<{ n: number | string }>`
    select count(*) as n from ${sql.table(table)} where workspace_id = ${workspaceId}`.execute(db);
  return Number(result.rows[0]?.n ?? 0);
}

/** The rows of a table that belong to the workspace, in batches (keyset over rowid / ctid). */
async function* rowsOf(store: Store, table: string, workspaceId: string): AsyncGenerator<Row[]> {
  let after: string | number = store.dialect === 'sqlite' ? -1 : '(0,0)';
  for (;;) {
    const result =
      store.dialect === 'sqlite'
        ? await sql<Row>`select rowid as lethe_move_key, * from ${sql.table(table)}
            where workspace_id = ${workspaceId} and rowid > ${after} order by rowid limit ${BATCH}`.execute(
            store.db,
          )
        : await sql<Row>`select ctid::text as lethe_move_key, * from ${sql.table(table)}
            where workspace_id = ${workspaceId} and ctid > ${after}::tid order by ctid limit ${BATCH}`.execute(
            store.db,
          );
    if (result.rows.length === 0) return;
    after = result.rows[result.rows.length - 1]!.lethe_move_key as string | number;
    yield result.rows.map(({ lethe_move_key: _key, ...row }) => row);
    if (result.rows.length < BATCH) return;
  }
}

async function deleteOf(db: Db, table: string, workspaceId: string): Promise<void> {
  await sql`delete from ${sql.table(table)} where workspace_id = ${workspaceId}`.execute(db);
}

/**
 * Move a workspace to region `to`. `scopes` are the deployment's regions by name (store, audit
 * log, files). Throws, leaving the workspace where it was, when it cannot move.
 */
export async function moveWorkspace(
  deployment: Deployment,
  scopes: ReadonlyMap<string, MoveScope>,
  name: string,
  to: string,
  options: { actor: string; now?: number },
): Promise<MoveResult> {
  const now = options.now ?? Date.now();
  const located = await deployment.locate(name);
  if (!located) throw new LetheError('USAGE', `there is no workspace "${name}"`);
  const from = scopes.get(located.region.spec.name)!;
  const target = scopes.get(deployment.region(to).spec.name)!;
  const home = deployment.home.store;
  const workspace = located.workspace;
  if (from === target) throw new LetheError('USAGE', `workspace "${name}" is in region "${to}" already`);
  if (workspace.status !== 'active') {
    throw new LetheError(
      'CONFLICT',
      `workspace "${name}" is ${workspace.status}: only an active workspace moves`,
      {
        hint: 'reopen it first (lethe workspace reopen)',
      },
    );
  }
  const busy = await from.store.db
    .selectFrom('runs')
    .select((eb) => eb.fn.countAll<number>().as('n'))
    .where('workspace_id', '=', workspace.id)
    .where('status', 'in', ['queued', 'running'])
    .executeTakeFirstOrThrow();
  if (Number(busy.n) > 0) {
    throw new LetheError('CONFLICT', `workspace "${name}" has ${Number(busy.n)} runs queued or running`, {
      hint: 'wait until they end (or disable its flows), then move it',
    });
  }

  // From here the API and webhooks answer 503 for it.
  const marked = await home.db
    .updateTable('workspaces')
    .set({ status: 'moving' })
    .where('id', '=', workspace.id)
    .where('status', '=', 'active')
    .executeTakeFirst();
  if (Number(marked.numUpdatedRows) !== 1) {
    throw new LetheError('CONFLICT', `workspace "${name}" changed as the move began; try again`);
  }
  const tables = (await workspaceTables(from.store)).filter(
    (table) => !STAYS.includes(table) && !DIRECTORY.includes(table),
  );
  const rows: Record<string, number> = {};
  try {
    const before = new Map<string, number>();
    for (const table of tables) before.set(table, await countOf(from.store.db, table, workspace.id));
    // One transaction in the target region: a failure leaves nothing there.
    await target.store.db.transaction().execute(async (trx) => {
      for (const table of tables) {
        // Left over from a move that failed before its directory switch: the old region is the truth.
        await deleteOf(trx, table, workspace.id);
        let copied = 0;
        for await (const batch of rowsOf(from.store, table, workspace.id)) {
          await trx
            .insertInto(table as never)
            .values(batch as never)
            .execute();
          copied += batch.length;
        }
        if (copied !== before.get(table) || (await countOf(trx, table, workspace.id)) !== copied) {
          throw new LetheError(
            'CONFLICT',
            `workspace "${name}" changed while it was being moved (table ${table})`,
            {
              hint: 'wait until its runs end or disable its flows, then move it again',
            },
          );
        }
        if (copied > 0) rows[table] = copied;
      }
      const row: Workspace = { ...workspace, region: to, status: 'active' };
      if (target.store === home) {
        await trx
          .updateTable('workspaces')
          .set({ settings: row.settings, region: to })
          .where('id', '=', row.id)
          .execute();
      } else {
        await trx.deleteFrom('workspaces').where('id', '=', row.id).execute();
        await trx.insertInto('workspaces').values(row).execute();
      }
      rows.workspaces = 1;
      // Nothing arrived in the old region during the copy (a schedule, a late webhook).
      for (const table of tables) {
        if ((await countOf(from.store.db, table, workspace.id)) !== before.get(table)) {
          throw new LetheError(
            'CONFLICT',
            `workspace "${name}" changed while it was being moved (table ${table})`,
            {
              hint: 'wait until its runs end or disable its flows, then move it again',
            },
          );
        }
      }
    });
  } catch (error) {
    await home.db
      .updateTable('workspaces')
      .set({ status: 'active' })
      .where('id', '=', workspace.id)
      .where('status', '=', 'moving')
      .execute();
    throw error;
  }

  // The files follow before the switch, so the workspace never runs without them.
  const oldFiles = from.filesDir(workspace.name);
  const filesMoved = existsSync(oldFiles);
  if (filesMoved) cpSync(oldFiles, target.filesDir(workspace.name), { recursive: true, force: true });

  // The switch: the directory now points at the new region.
  await home.db
    .updateTable('workspaces')
    .set({ region: to, status: 'active', ...(target.store === home ? {} : { settings: '{}' }) })
    .where('id', '=', workspace.id)
    .execute();

  // Then the old region forgets it.
  for (const table of tables) await deleteRows(from.store, table, workspace.id);
  if (from.store !== home)
    await from.store.db.deleteFrom('workspaces').where('id', '=', workspace.id).execute();
  if (filesMoved) rmSync(oldFiles, { recursive: true, force: true });

  const total = Object.values(rows).reduce((sum, n) => sum + n, 0);
  const entry = { workspaceId: workspace.id, actor: options.actor, reason: 'residency', at: now };
  await scopes.get(deployment.home.spec.name)!.audit.append({
    ...entry,
    action: 'workspace.moved',
    count: total,
    details: { from: from.region, to: target.region },
  });
  if (from.store !== home)
    await from.audit.append({
      ...entry,
      action: 'workspace.moved_out',
      count: total,
      details: { to: target.region },
    });
  if (target.store !== home)
    await target.audit.append({
      ...entry,
      action: 'workspace.moved_in',
      count: total,
      details: { from: from.region },
    });
  return {
    workspace: name,
    workspaceId: workspace.id,
    from: from.region,
    to: target.region,
    rows,
    filesMoved,
  };
}
