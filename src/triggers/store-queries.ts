/**
 * Store queries the triggers need beyond the repositories (src/store/records.ts): seen-row
 * hashes with the time they were seen, remembering many at once, forgetting a flow's, and a
 * lease that keeps polls of one flow from overlapping across server processes. They use the
 * store's Kysely instance directly and touch only trigger_state and poll_seen.
 */
import type { Kysely } from 'kysely';
import type { Database } from '../store/index.js';

const CHUNK = 500;
const INSERT_CHUNK = 200;

export interface SeenRow {
  rowHash: string;
  seenAt: number;
}

/** The seen rows of a poll, by key hash, with when each was last remembered. */
export async function seenWithTime(
  db: Kysely<Database>,
  workspaceId: string,
  flowName: string,
  keyHashes: readonly string[],
): Promise<Map<string, SeenRow>> {
  const found = new Map<string, SeenRow>();
  for (let i = 0; i < keyHashes.length; i += CHUNK) {
    const rows = await db
      .selectFrom('poll_seen')
      .select(['key_hash', 'row_hash', 'seen_at'])
      .where('workspace_id', '=', workspaceId)
      .where('flow_name', '=', flowName)
      .where('key_hash', 'in', keyHashes.slice(i, i + CHUNK))
      .execute();
    for (const row of rows) found.set(row.key_hash, { rowHash: row.row_hash, seenAt: Number(row.seen_at) });
  }
  return found;
}

/** Remember (insert or update) many key → row hashes, in one transaction per chunk. */
export async function rememberMany(
  db: Kysely<Database>,
  workspaceId: string,
  flowName: string,
  entries: readonly { keyHash: string; rowHash: string }[],
  now: number,
): Promise<void> {
  for (let i = 0; i < entries.length; i += INSERT_CHUNK) {
    const values = entries.slice(i, i + INSERT_CHUNK).map((entry) => ({
      workspace_id: workspaceId,
      flow_name: flowName,
      key_hash: entry.keyHash,
      row_hash: entry.rowHash,
      seen_at: now,
    }));
    await db
      .insertInto('poll_seen')
      .values(values)
      .onConflict((conflict) =>
        conflict.columns(['workspace_id', 'flow_name', 'key_hash']).doUpdateSet((eb) => ({
          row_hash: eb.ref('excluded.row_hash'),
          seen_at: eb.ref('excluded.seen_at'),
        })),
      )
      .execute();
  }
}

/** Forget every seen row of a flow (its poll configuration changed). */
export async function forgetSeen(db: Kysely<Database>, workspaceId: string, flowName: string): Promise<void> {
  await db
    .deleteFrom('poll_seen')
    .where('workspace_id', '=', workspaceId)
    .where('flow_name', '=', flowName)
    .execute();
}

/**
 * Take a lease (a trigger_state row of `kind`, its updated_at the expiry) unless another owner
 * holds one that has not expired. Returns whether `owner` holds it now.
 */
export async function acquireLease(
  db: Kysely<Database>,
  workspaceId: string,
  flowName: string,
  kind: string,
  owner: string,
  now: number,
  until: number,
): Promise<boolean> {
  const state = JSON.stringify({ owner });
  await db
    .insertInto('trigger_state')
    .values({ workspace_id: workspaceId, flow_name: flowName, kind, state, updated_at: until })
    .onConflict((conflict) =>
      conflict
        .columns(['workspace_id', 'flow_name', 'kind'])
        .doUpdateSet({ state, updated_at: until })
        .where((eb) =>
          eb.or([eb('trigger_state.updated_at', '<', now), eb('trigger_state.state', '=', state)]),
        ),
    )
    .execute();
  const row = await db
    .selectFrom('trigger_state')
    .select('state')
    .where('workspace_id', '=', workspaceId)
    .where('flow_name', '=', flowName)
    .where('kind', '=', kind)
    .executeTakeFirst();
  return row?.state === state;
}

/** Give a lease back (only if `owner` still holds it). */
export async function releaseLease(
  db: Kysely<Database>,
  workspaceId: string,
  flowName: string,
  kind: string,
  owner: string,
): Promise<void> {
  await db
    .deleteFrom('trigger_state')
    .where('workspace_id', '=', workspaceId)
    .where('flow_name', '=', flowName)
    .where('kind', '=', kind)
    .where('state', '=', JSON.stringify({ owner }))
    .execute();
}
