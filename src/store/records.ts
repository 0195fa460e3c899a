/**
 * The smaller record kinds: connections (rows as stored: secrets already encrypted by the
 * vault), API tokens (hashes only), workspace data keys (wrapped), the gateway log,
 * notifications, and trigger state (schedule ticks, poll cursors and seen-row hashes).
 */
import { sql, type Kysely } from 'kysely';
import { decodeCursor, toPage, type Page } from './ids.js';
import type { Statements } from './statements.js';
import type {
  ApiTokensTable,
  ConnectionsTable,
  Database,
  Db,
  GatewayLogTable,
  NotificationsTable,
  WorkspaceKeysTable,
} from './schema.js';

export type ConnectionRow = ConnectionsTable;
export type TokenRow = ApiTokensTable;
export type GatewayLogRow = GatewayLogTable;
export type NotificationRow = NotificationsTable;
export type WorkspaceKeyRow = WorkspaceKeysTable;

export class ConnectionRepository {
  constructor(private readonly db: Kysely<Database>) {}

  async get(workspaceId: string, name: string, db: Db = this.db): Promise<ConnectionRow | undefined> {
    return db
      .selectFrom('connections')
      .selectAll()
      .where('workspace_id', '=', workspaceId)
      .where('name', '=', name)
      .executeTakeFirst();
  }

  async all(workspaceId: string): Promise<ConnectionRow[]> {
    return this.db
      .selectFrom('connections')
      .selectAll()
      .where('workspace_id', '=', workspaceId)
      .orderBy('name')
      .execute();
  }

  async list(workspaceId: string, limit: number, cursor?: string): Promise<Page<ConnectionRow>> {
    const after = decodeCursor(cursor);
    let query = this.db.selectFrom('connections').selectAll().where('workspace_id', '=', workspaceId);
    if (after !== undefined) query = query.where('name', '>', after);
    return toPage(
      await query
        .orderBy('name')
        .limit(limit + 1)
        .execute(),
      limit,
      (row) => row.name,
    );
  }

  /** Store a connection (in `trx` when given, e.g. with its audit entry). */
  async put(row: ConnectionRow, trx: Db = this.db): Promise<{ created: boolean }> {
    const existing = await this.get(row.workspace_id, row.name, trx);
    await trx
      .insertInto('connections')
      .values({ ...row, created_at: existing?.created_at ?? row.created_at })
      .onConflict((conflict) =>
        conflict.columns(['workspace_id', 'name']).doUpdateSet({
          type: row.type,
          settings: row.settings,
          secrets: row.secrets,
          updated_at: row.updated_at,
          updated_by: row.updated_by,
        }),
      )
      .execute();
    return { created: !existing };
  }

  async delete(workspaceId: string, name: string, trx: Db = this.db): Promise<boolean> {
    const result = await trx
      .deleteFrom('connections')
      .where('workspace_id', '=', workspaceId)
      .where('name', '=', name)
      .executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }
}

export class TokenRepository {
  constructor(private readonly db: Kysely<Database>) {}

  async insert(row: TokenRow, trx: Db = this.db): Promise<void> {
    await trx.insertInto('api_tokens').values(row).execute();
  }

  async byHash(hash: string): Promise<TokenRow | undefined> {
    return this.db.selectFrom('api_tokens').selectAll().where('token_hash', '=', hash).executeTakeFirst();
  }

  async touch(id: string, now: number): Promise<void> {
    await this.db.updateTable('api_tokens').set({ last_used_at: now }).where('id', '=', id).execute();
  }

  async list(workspaceId: string): Promise<Omit<TokenRow, 'token_hash'>[]> {
    return this.db
      .selectFrom('api_tokens')
      .select([
        'id',
        'workspace_id',
        'role',
        'name',
        'created_at',
        'expires_at',
        'last_used_at',
        'revoked_at',
      ])
      .where('workspace_id', '=', workspaceId)
      .orderBy('created_at')
      .execute();
  }

  async revoke(workspaceId: string, id: string, now: number, trx: Db = this.db): Promise<boolean> {
    const result = await trx
      .updateTable('api_tokens')
      .set({ revoked_at: now })
      .where('workspace_id', '=', workspaceId)
      .where('id', '=', id)
      .where('revoked_at', 'is', null)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }
}

export class WorkspaceKeyRepository {
  constructor(private readonly db: Kysely<Database>) {}

  async all(workspaceId: string): Promise<WorkspaceKeyRow[]> {
    return this.db
      .selectFrom('workspace_keys')
      .selectAll()
      .where('workspace_id', '=', workspaceId)
      .orderBy('version')
      .execute();
  }

  /** Insert a key version; false when that version exists already (another process won). */
  async insert(row: WorkspaceKeyRow): Promise<boolean> {
    const inserted = await this.db
      .insertInto('workspace_keys')
      .values(row)
      .onConflict((conflict) => conflict.columns(['workspace_id', 'version']).doNothing())
      .returning('version')
      .executeTakeFirst();
    return inserted !== undefined;
  }

  /**
   * Key rotation: store a key version wrapped again, only if the row is still as `row` says
   * (compare-and-set on the wrapping and its master key id). False when it changed meanwhile.
   */
  async replaceWrapping(
    row: Pick<WorkspaceKeyRow, 'workspace_id' | 'version' | 'wrapped_key' | 'master_key_id'>,
    next: Pick<WorkspaceKeyRow, 'wrapped_key' | 'master_key_id'>,
  ): Promise<boolean> {
    const result = await this.db
      .updateTable('workspace_keys')
      .set(next)
      .where('workspace_id', '=', row.workspace_id)
      .where('version', '=', row.version)
      // Compare-and-set: a row someone re-wrapped (or shredded) since it was read is left alone.
      .where('wrapped_key', '=', row.wrapped_key)
      .where('master_key_id', '=', row.master_key_id)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  /** Key rotation: up to `limit` rows not wrapped under `masterKeyId`, after `after`, in key order. */
  async notUnder(
    masterKeyId: string,
    after: { workspace_id: string; version: number } | undefined,
    limit: number,
  ): Promise<WorkspaceKeyRow[]> {
    let query = this.db.selectFrom('workspace_keys').selectAll().where('master_key_id', '!=', masterKeyId);
    if (after) {
      query = query.where((eb) =>
        eb.or([
          eb('workspace_id', '>', after.workspace_id),
          eb.and([eb('workspace_id', '=', after.workspace_id), eb('version', '>', after.version)]),
        ]),
      );
    }
    return query.orderBy('workspace_id').orderBy('version').limit(limit).execute();
  }

  /** Key rotation status: how many key rows each workspace has under each master key, and of which form. */
  async countByMasterKey(): Promise<
    { workspace_id: string; master_key_id: string; legacy: boolean; count: number }[]
  > {
    const prefix = sql<string>`substr(wrapped_key, 1, 3)`;
    const rows = await this.db
      .selectFrom('workspace_keys')
      .select(['workspace_id', 'master_key_id', prefix.as('prefix'), (eb) => eb.fn.countAll().as('count')])
      .groupBy(['workspace_id', 'master_key_id', prefix])
      .execute();
    return rows.map((row) => ({
      workspace_id: row.workspace_id,
      master_key_id: row.master_key_id,
      legacy: row.prefix !== 'k2.',
      count: Number(row.count),
    }));
  }
}

export class GatewayLogRepository {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly statements: Statements,
  ) {}

  async insert(trx: Db, row: GatewayLogRow): Promise<void> {
    await this.statements.insert(trx, 'gateway_log', row);
  }

  async list(workspaceId: string, limit: number, cursor?: string): Promise<Page<GatewayLogRow>> {
    const before = decodeCursor(cursor);
    let query = this.db.selectFrom('gateway_log').selectAll().where('workspace_id', '=', workspaceId);
    if (before !== undefined) query = query.where('id', '<', before);
    return toPage(
      await query
        .orderBy('id', 'desc')
        .limit(limit + 1)
        .execute(),
      limit,
      (row) => row.id,
    );
  }
}

export class NotificationRepository {
  constructor(private readonly db: Kysely<Database>) {}

  async insert(trx: Db, row: NotificationRow): Promise<void> {
    await trx.insertInto('notifications').values(row).execute();
  }

  async list(workspaceId: string, limit: number, cursor?: string): Promise<Page<NotificationRow>> {
    const before = decodeCursor(cursor);
    let query = this.db.selectFrom('notifications').selectAll().where('workspace_id', '=', workspaceId);
    if (before !== undefined) query = query.where('id', '<', before);
    return toPage(
      await query
        .orderBy('id', 'desc')
        .limit(limit + 1)
        .execute(),
      limit,
      (row) => row.id,
    );
  }

  async markRead(workspaceId: string, id: string, now: number): Promise<boolean> {
    const result = await this.db
      .updateTable('notifications')
      .set({ read_at: now })
      .where('workspace_id', '=', workspaceId)
      .where('id', '=', id)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }
}

export class TriggerStateRepository {
  constructor(private readonly db: Kysely<Database>) {}

  async get<T>(workspaceId: string, flowName: string, kind: string): Promise<T | undefined> {
    const row = await this.db
      .selectFrom('trigger_state')
      .select('state')
      .where('workspace_id', '=', workspaceId)
      .where('flow_name', '=', flowName)
      .where('kind', '=', kind)
      .executeTakeFirst();
    return row ? (JSON.parse(row.state) as T) : undefined;
  }

  async set(
    trx: Db,
    workspaceId: string,
    flowName: string,
    kind: string,
    state: unknown,
    now: number,
  ): Promise<void> {
    const text = JSON.stringify(state);
    await trx
      .insertInto('trigger_state')
      .values({ workspace_id: workspaceId, flow_name: flowName, kind, state: text, updated_at: now })
      .onConflict((conflict) =>
        conflict.columns(['workspace_id', 'flow_name', 'kind']).doUpdateSet({ state: text, updated_at: now }),
      )
      .execute();
  }

  /** Hashes of rows a poll has seen, by key hash. */
  async seen(workspaceId: string, flowName: string, keyHashes: string[]): Promise<Map<string, string>> {
    const found = new Map<string, string>();
    for (let i = 0; i < keyHashes.length; i += 500) {
      const rows = await this.db
        .selectFrom('poll_seen')
        .select(['key_hash', 'row_hash'])
        .where('workspace_id', '=', workspaceId)
        .where('flow_name', '=', flowName)
        .where('key_hash', 'in', keyHashes.slice(i, i + 500))
        .execute();
      for (const row of rows) found.set(row.key_hash, row.row_hash);
    }
    return found;
  }

  async remember(
    trx: Db,
    workspaceId: string,
    flowName: string,
    keyHash: string,
    rowHash: string,
    now: number,
  ): Promise<void> {
    await trx
      .insertInto('poll_seen')
      .values({
        workspace_id: workspaceId,
        flow_name: flowName,
        key_hash: keyHash,
        row_hash: rowHash,
        seen_at: now,
      })
      .onConflict((conflict) =>
        conflict
          .columns(['workspace_id', 'flow_name', 'key_hash'])
          .doUpdateSet({ row_hash: rowHash, seen_at: now }),
      )
      .execute();
  }
}
