/**
 * People and their access, as stored (migration 0003): users (e-mail and a password hash),
 * memberships (user × workspace → role), console sessions (SHA-256 of the id only) and
 * single-use invite and reset tokens (SHA-256 only). These tables live in the home region's
 * store, beside the directory of workspaces. Every write takes an optional transaction, so the
 * audit entry that records it commits with it.
 */
import type { Kysely } from 'kysely';
import type { Database, Db, MembershipsTable, SessionsTable, UsersTable, UserTokensTable } from './schema.js';

export type UserRow = UsersTable;
export type MembershipRow = MembershipsTable;
export type SessionRow = SessionsTable;
export type UserTokenRow = UserTokensTable;

export class UserRepository {
  constructor(private readonly db: Kysely<Database>) {}

  /** With `lock` (PostgreSQL) the row stays locked until the transaction ends. */
  async byEmail(email: string, db: Db = this.db, lock = false): Promise<UserRow | undefined> {
    const query = db.selectFrom('users').selectAll().where('email', '=', email);
    return (lock ? query.forUpdate() : query).executeTakeFirst();
  }

  /**
   * People an invite made who never joined: no password, no membership, no invite or reset
   * still open, and an invite that ended (withdrawn, expired or spent). With `lock`
   * (PostgreSQL) their rows stay locked until the transaction ends.
   */
  async neverJoined(now: number, lock: boolean, db: Db = this.db, only?: string): Promise<string[]> {
    let query = db
      .selectFrom('users')
      .select('id')
      .where('password_hash', 'is', null)
      .where(({ not, exists, selectFrom }) =>
        not(
          exists(
            selectFrom('memberships').select('user_id').whereRef('memberships.user_id', '=', 'users.id'),
          ),
        ),
      )
      .where(({ not, exists, selectFrom }) =>
        not(
          exists(
            selectFrom('user_tokens')
              .select('id')
              .whereRef('user_tokens.user_id', '=', 'users.id')
              .where('used_at', 'is', null)
              .where('expires_at', '>', now),
          ),
        ),
      )
      .where(({ exists, selectFrom }) =>
        exists(
          selectFrom('user_tokens')
            .select('id')
            .whereRef('user_tokens.user_id', '=', 'users.id')
            .where('purpose', '=', 'invite'),
        ),
      );
    if (only !== undefined) query = query.where('id', '=', only);
    return (await (lock ? query.forUpdate() : query).execute()).map((row) => row.id);
  }

  /** Delete a user with their tokens and sessions (for people who never joined). */
  async forget(id: string, db: Db = this.db): Promise<void> {
    await db.deleteFrom('user_tokens').where('user_id', '=', id).execute();
    await db.deleteFrom('sessions').where('user_id', '=', id).execute();
    await db.deleteFrom('users').where('id', '=', id).execute();
  }

  async byId(id: string, db: Db = this.db): Promise<UserRow | undefined> {
    return db.selectFrom('users').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async list(db: Db = this.db): Promise<UserRow[]> {
    return db.selectFrom('users').selectAll().orderBy('email').execute();
  }

  async insert(row: UserRow, db: Db = this.db): Promise<void> {
    await db.insertInto('users').values(row).execute();
  }

  async setPassword(id: string, hash: string, now: number, db: Db = this.db): Promise<void> {
    await db
      .updateTable('users')
      .set({ password_hash: hash, password_changed_at: now, updated_at: now })
      .where('id', '=', id)
      .execute();
  }

  /** Replace the hash only if it is still `previous` (a re-hash at sign-in racing a change). */
  async rehash(id: string, previous: string, hash: string, now: number, db: Db = this.db): Promise<void> {
    await db
      .updateTable('users')
      .set({ password_hash: hash, updated_at: now })
      .where('id', '=', id)
      .where('password_hash', '=', previous)
      .execute();
  }

  async setDisabled(id: string, disabledAt: number | null, now: number, db: Db = this.db): Promise<boolean> {
    const result = await db
      .updateTable('users')
      .set({ disabled_at: disabledAt, updated_at: now })
      .where('id', '=', id)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }
}

export class MembershipRepository {
  constructor(private readonly db: Kysely<Database>) {}

  async get(workspaceId: string, userId: string, db: Db = this.db): Promise<MembershipRow | undefined> {
    return db
      .selectFrom('memberships')
      .selectAll()
      .where('workspace_id', '=', workspaceId)
      .where('user_id', '=', userId)
      .executeTakeFirst();
  }

  async ofWorkspace(workspaceId: string, db: Db = this.db): Promise<MembershipRow[]> {
    return db
      .selectFrom('memberships')
      .selectAll()
      .where('workspace_id', '=', workspaceId)
      .orderBy('user_id')
      .execute();
  }

  /**
   * The owners of a workspace. With `lock` (PostgreSQL) the rows stay locked until the
   * transaction ends: two transactions that each take away an owner then cannot both count
   * the other's owner as staying (the second one re-reads after the first commits).
   */
  async owners(workspaceId: string, lock: boolean, db: Db = this.db): Promise<MembershipRow[]> {
    const query = db
      .selectFrom('memberships')
      .selectAll()
      .where('workspace_id', '=', workspaceId)
      .where('role', '=', 'owner')
      .orderBy('user_id');
    return (lock ? query.forUpdate() : query).execute();
  }

  async ofUser(userId: string, db: Db = this.db): Promise<MembershipRow[]> {
    return db
      .selectFrom('memberships')
      .selectAll()
      .where('user_id', '=', userId)
      .orderBy('workspace_id')
      .execute();
  }

  /** Add, or change the role of, a membership; returns the role it had before (if any). */
  async put(row: MembershipRow, db: Db = this.db): Promise<string | undefined> {
    const existing = await this.get(row.workspace_id, row.user_id, db);
    if (existing) {
      await db
        .updateTable('memberships')
        .set({ role: row.role })
        .where('workspace_id', '=', row.workspace_id)
        .where('user_id', '=', row.user_id)
        .execute();
      return existing.role;
    }
    await db.insertInto('memberships').values(row).execute();
    return undefined;
  }

  async delete(workspaceId: string, userId: string, db: Db = this.db): Promise<boolean> {
    const result = await db
      .deleteFrom('memberships')
      .where('workspace_id', '=', workspaceId)
      .where('user_id', '=', userId)
      .executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }
}

export class SessionRepository {
  constructor(private readonly db: Kysely<Database>) {}

  async insert(row: SessionRow, db: Db = this.db): Promise<void> {
    await db.insertInto('sessions').values(row).execute();
  }

  async byHash(idHash: string, db: Db = this.db): Promise<SessionRow | undefined> {
    return db.selectFrom('sessions').selectAll().where('id_hash', '=', idHash).executeTakeFirst();
  }

  async touch(idHash: string, now: number, db: Db = this.db): Promise<void> {
    await db.updateTable('sessions').set({ last_seen_at: now }).where('id_hash', '=', idHash).execute();
  }

  async delete(idHash: string, db: Db = this.db): Promise<boolean> {
    const result = await db.deleteFrom('sessions').where('id_hash', '=', idHash).executeTakeFirst();
    return Number(result.numDeletedRows) > 0;
  }

  /** End every session of a user; returns how many there were. */
  async deleteOfUser(userId: string, db: Db = this.db): Promise<number> {
    const result = await db.deleteFrom('sessions').where('user_id', '=', userId).executeTakeFirst();
    return Number(result.numDeletedRows);
  }

  async countOfUser(userId: string, db: Db = this.db): Promise<number> {
    const row = await db
      .selectFrom('sessions')
      .select((eb) => eb.fn.countAll<number>().as('count'))
      .where('user_id', '=', userId)
      .executeTakeFirst();
    return Number(row?.count ?? 0);
  }

  /** Remove sessions past their absolute end or idle since `idleBefore`. */
  async deleteExpired(now: number, idleBefore: number, db: Db = this.db): Promise<number> {
    const result = await db
      .deleteFrom('sessions')
      .where((eb) => eb.or([eb('expires_at', '<=', now), eb('last_seen_at', '<', idleBefore)]))
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  }
}

export class UserTokenRepository {
  constructor(private readonly db: Kysely<Database>) {}

  async insert(row: UserTokenRow, db: Db = this.db): Promise<void> {
    await db.insertInto('user_tokens').values(row).execute();
  }

  async byHash(hash: string, db: Db = this.db): Promise<UserTokenRow | undefined> {
    return db.selectFrom('user_tokens').selectAll().where('token_hash', '=', hash).executeTakeFirst();
  }

  /**
   * Mark a token used, once: the conditional update succeeds for exactly one caller, and only
   * while the token has not expired.
   */
  async consume(id: string, now: number, db: Db = this.db): Promise<boolean> {
    const result = await db
      .updateTable('user_tokens')
      .set({ used_at: now })
      .where('id', '=', id)
      .where('used_at', 'is', null)
      .where('expires_at', '>', now)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  /** Open invites of a workspace (not used, not expired), oldest first. */
  async openInvites(workspaceId: string, now: number, db: Db = this.db): Promise<UserTokenRow[]> {
    return db
      .selectFrom('user_tokens')
      .selectAll()
      .where('purpose', '=', 'invite')
      .where('workspace_id', '=', workspaceId)
      .where('used_at', 'is', null)
      .where('expires_at', '>', now)
      .orderBy('created_at')
      .execute();
  }

  /** Withdraw an open invite of a workspace. */
  async revokeInvite(workspaceId: string, id: string, now: number, db: Db = this.db): Promise<boolean> {
    const result = await db
      .updateTable('user_tokens')
      .set({ used_at: now })
      .where('id', '=', id)
      .where('purpose', '=', 'invite')
      .where('workspace_id', '=', workspaceId)
      .where('used_at', 'is', null)
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  /** Remove tokens that can no longer be used (used or expired before `before`). */
  async deleteSpent(before: number, db: Db = this.db): Promise<number> {
    const result = await db
      .deleteFrom('user_tokens')
      .where((eb) => eb.or([eb('expires_at', '<', before), eb('used_at', '<', before)]))
      .executeTakeFirst();
    return Number(result.numDeletedRows);
  }
}
