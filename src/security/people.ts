/**
 * People: users who sign in to the console with an e-mail address and a password, their
 * memberships (a role per workspace), their sessions, and the single-use tokens that let a
 * person set a password — invites (made by a workspace admin) and resets (made by an admin or
 * an operator; there is no mail server, so the link is handed over by whoever made it).
 *
 * Everything that changes who may do what is written together with its audit entry (ids only,
 * never an e-mail address). Signing in is throttled per account and per client address, and a
 * failed sign-in looks the same whatever the reason — unknown address, wrong password,
 * disabled account — down to the work done: an unknown address is checked against a dummy
 * hash, so the answer takes as long as a wrong password does.
 *
 * Used by the server (through src/server/people.ts) and by the CLI (`lethe user …`), over the
 * home region's store.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { Transaction } from 'kysely';
import { LetheError } from '../errors/index.js';
import type { AuditLog } from '../privacy/audit.js';
import { newId } from '../store/ids.js';
import type { Store } from '../store/index.js';
import type { MembershipRow, SessionRow, UserRow, UserTokenRow } from '../store/people.js';
import type { Database } from '../store/schema.js';
import { isRole, ROLES, type Role } from './permissions.js';
import { checkPassword, hashPassword, needsRehash, verifyPassword } from './passwords.js';
import type { PasswordHashing, PeopleConfig } from './people-config.js';
import { csrfToken, hashSessionId, newCsrfSecret, newSessionId } from './sessions.js';
import { Backoff } from './throttle.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

const EMAIL = /^[^\s@]{1,64}@[^\s@]{1,252}$/;

/** The e-mail address as stored: trimmed and lower-cased (checked for shape only). */
export function normalizeEmail(email: string): string {
  const address = email.trim().toLowerCase();
  if (address.length > 254 || !EMAIL.test(address)) {
    throw new LetheError('USAGE', 'that is not an e-mail address');
  }
  return address;
}

/** The in-memory throttle key of an account: a hash, so the process holds no addresses. */
function accountKey(email: string): string {
  return createHash('sha256').update(`lethe-signin\n${email.trim().toLowerCase()}`).digest('base64url');
}

export type TokenPurpose = 'invite' | 'reset';

const TOKEN_PREFIX: Record<TokenPurpose, string> = { invite: 'lethe_invite_', reset: 'lethe_reset_' };

function hashUserToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

/** A session just made: the id goes in the cookie (and nowhere else), the CSRF token to the page. */
export interface NewSession {
  id: string;
  idHash: string;
  csrfToken: string;
  expiresAt: number;
}

export type SignInResult =
  { ok: true; user: UserRow; session: NewSession; rehashed: boolean } | { ok: false; retryAfterMs: number };

export interface IssuedToken {
  id: string;
  token: string;
  expiresAt: number;
  userId: string;
}

export interface SessionCheck {
  session: SessionRow;
  user: UserRow;
}

const rank = (role: string) => ROLES.indexOf(role as Role);

/** A role that may not do what was asked (the API answers 403, the CLI says why). */
export class RoleTooLow extends Error {}

export class People {
  /** The clock (tests move it). */
  now: () => number;
  readonly accountFailures: Backoff;
  readonly addressFailures: Backoff;
  readonly tokenFailures: Backoff;
  private dummy: Promise<string> | undefined;
  private lastSweep = 0;
  private dummyFor: PasswordHashing | undefined;

  constructor(
    private readonly store: Store,
    private readonly audit: AuditLog,
    readonly config: PeopleConfig,
    now: () => number = Date.now,
  ) {
    this.now = now;
    const clock = () => this.now();
    this.accountFailures = new Backoff(config.accountBackoff, clock);
    this.addressFailures = new Backoff(config.addressBackoff, clock);
    this.tokenFailures = new Backoff(config.tokenBackoff, clock);
  }

  private transaction<T>(work: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
    return this.audit.transaction(work);
  }

  /** A hash of a random password with today's settings: what an unknown address is checked against. */
  private dummyHash(): Promise<string> {
    if (!this.dummy || this.dummyFor !== this.config.hashing) {
      this.dummyFor = this.config.hashing;
      this.dummy = hashPassword(randomBytes(24).toString('base64url'), this.config.hashing);
    }
    return this.dummy;
  }

  // ---- users ---------------------------------------------------------------------------

  async userByEmail(email: string): Promise<UserRow | undefined> {
    return this.store.users.byEmail(normalizeEmail(email));
  }

  async requireUser(email: string): Promise<UserRow> {
    const user = await this.userByEmail(email);
    if (!user) throw new LetheError('USAGE', 'no user has that e-mail address');
    return user;
  }

  /**
   * Make a user (with a password, or without one until an invite or reset sets it), and their
   * membership of a workspace when given, in one transaction.
   */
  async createUser(
    options: {
      email: string;
      password?: string;
      operator?: boolean;
      membership?: { workspaceId: string; role: string };
    },
    actor: string,
  ): Promise<UserRow> {
    const email = normalizeEmail(options.email);
    if (options.password !== undefined) checkPassword(options.password, email);
    const hash =
      options.password === undefined ? null : await hashPassword(options.password, this.config.hashing);
    const now = this.now();
    const user: UserRow = {
      id: newId(now),
      email,
      password_hash: hash,
      deployment_role: options.operator ? 'operator' : null,
      created_at: now,
      updated_at: now,
      password_changed_at: hash === null ? null : now,
      disabled_at: null,
    };
    await this.transaction(async (trx) => {
      if (await this.store.users.byEmail(email, trx)) {
        throw new LetheError('CONFLICT', 'a user with that e-mail address exists already');
      }
      await this.store.users.insert(user, trx);
      await this.audit.append(
        {
          actor,
          action: 'user.created',
          details: { userId: user.id, operator: !!options.operator },
          at: now,
        },
        trx,
      );
      if (options.membership)
        await this.setMembership({ ...options.membership, userId: user.id }, actor, trx);
    });
    return user;
  }

  async listUsers(): Promise<UserRow[]> {
    return this.store.users.list();
  }

  /** Disable (or enable again) a user; disabling ends every session of theirs. */
  async setDisabled(userId: string, disabled: boolean, actor: string): Promise<{ sessionsEnded: number }> {
    const now = this.now();
    return this.transaction(async (trx) => {
      const user = await this.store.users.byId(userId, trx);
      if (!user) throw new LetheError('USAGE', 'no such user');
      await this.store.users.setDisabled(userId, disabled ? now : null, now, trx);
      const sessionsEnded = disabled ? await this.store.sessions.deleteOfUser(userId, trx) : 0;
      await this.audit.append(
        {
          actor,
          action: disabled ? 'user.disabled' : 'user.enabled',
          details: { userId, sessionsEnded },
          at: now,
        },
        trx,
      );
      return { sessionsEnded };
    });
  }

  // ---- memberships ---------------------------------------------------------------------

  async membershipsOf(userId: string): Promise<MembershipRow[]> {
    return this.store.memberships.ofUser(userId);
  }

  /** A workspace's members with their users, by user id. */
  async members(workspaceId: string): Promise<{ membership: MembershipRow; user: UserRow }[]> {
    const result: { membership: MembershipRow; user: UserRow }[] = [];
    for (const membership of await this.store.memberships.ofWorkspace(workspaceId)) {
      const user = await this.store.users.byId(membership.user_id);
      if (user) result.push({ membership, user });
    }
    return result;
  }

  async roleIn(workspaceId: string, userId: string): Promise<Role | undefined> {
    const row = await this.store.memberships.get(workspaceId, userId);
    return row && isRole(row.role) ? row.role : undefined;
  }

  /**
   * Give a user a role in a workspace (adding the membership or changing its role). `callerRole`
   * is the role of whoever asks, when it is a workspace member (the API): only an owner may
   * grant owner or change an owner's role. The last owner of a workspace stays an owner.
   */
  async setMembership(
    options: { workspaceId: string; userId: string; role: string; callerRole?: Role },
    actor: string,
    trx?: Transaction<Database>,
  ): Promise<{ previous: string | undefined }> {
    const { workspaceId, userId, role, callerRole } = options;
    if (!isRole(role)) {
      throw new LetheError('USAGE', `unknown role "${role}": use owner, admin, editor or viewer`);
    }
    const now = this.now();
    const work = async (db: Transaction<Database>) => {
      const user = await this.store.users.byId(userId, db);
      if (!user) throw new LetheError('USAGE', 'no such user');
      const existing = await this.store.memberships.get(workspaceId, userId, db);
      if (callerRole !== undefined) {
        if (rank(role) > rank(callerRole) || (existing && rank(existing.role) > rank(callerRole))) {
          throw new RoleTooLow(`the role "${callerRole}" may not grant or change a higher role than its own`);
        }
      }
      if (existing?.role === 'owner' && role !== 'owner') await this.keepAnOwner(workspaceId, userId, db);
      const previous = await this.store.memberships.put(
        { workspace_id: workspaceId, user_id: userId, role, created_at: now },
        db,
      );
      if (previous === role) return { previous };
      await this.audit.append(
        previous === undefined
          ? { workspaceId, actor, action: 'membership.added', details: { userId, role }, at: now }
          : {
              workspaceId,
              actor,
              action: 'membership.role_changed',
              details: { userId, from: previous, to: role },
              at: now,
            },
        db,
      );
      return { previous };
    };
    return trx ? work(trx) : this.transaction(work);
  }

  async removeMembership(
    options: { workspaceId: string; userId: string; callerRole?: Role },
    actor: string,
  ): Promise<boolean> {
    const { workspaceId, userId, callerRole } = options;
    const now = this.now();
    return this.transaction(async (trx) => {
      const existing = await this.store.memberships.get(workspaceId, userId, trx);
      if (!existing) return false;
      if (callerRole !== undefined && rank(existing.role) > rank(callerRole)) {
        throw new RoleTooLow(
          `the role "${callerRole}" may not remove a member whose role is "${existing.role}"`,
        );
      }
      if (existing.role === 'owner') await this.keepAnOwner(workspaceId, userId, trx);
      await this.store.memberships.delete(workspaceId, userId, trx);
      await this.audit.append(
        {
          workspaceId,
          actor,
          action: 'membership.removed',
          details: { userId, role: existing.role },
          at: now,
        },
        trx,
      );
      return true;
    });
  }

  private async keepAnOwner(workspaceId: string, leaving: string, db: Transaction<Database>): Promise<void> {
    // SQLite runs one write transaction at a time; PostgreSQL needs the rows locked.
    const owners = (
      await this.store.memberships.owners(workspaceId, this.store.dialect === 'postgres', db)
    ).filter((row) => row.user_id !== leaving);
    if (owners.length === 0) {
      throw new LetheError('CONFLICT', 'the workspace would have no owner left', {
        hint: 'make another member an owner first',
      });
    }
  }

  // ---- signing in ----------------------------------------------------------------------

  /**
   * Check an e-mail address and a password. Every failure is `{ ok: false }` — whatever the
   * reason — after the same work; while the account or the address is backing off, the
   * answer comes at once, without a check, with how long to wait.
   */
  async signIn(email: string, password: string, address: string, replacing?: string): Promise<SignInResult> {
    this.sweepNowAndThen();
    const key = accountKey(email);
    const addressKey = `ip:${address}`;
    const wait = Math.max(this.accountFailures.retryAfter(key), this.addressFailures.retryAfter(addressKey));
    if (wait > 0) return { ok: false, retryAfterMs: wait };

    let user: UserRow | undefined;
    try {
      user = await this.store.users.byEmail(normalizeEmail(email));
    } catch (error) {
      if (!(error instanceof LetheError)) throw error;
      user = undefined;
    }
    // An unknown address, or one with no password yet, is checked against a dummy hash: the
    // same work, the same answer.
    const stored = user?.password_hash ?? (await this.dummyHash());
    const matches = (await verifyPassword(stored, password)) && user?.password_hash != null;
    const now = this.now();
    if (!matches || !user || user.disabled_at !== null) {
      this.accountFailures.fail(key);
      this.addressFailures.fail(addressKey);
      const reason = !user
        ? 'unknown_account'
        : user.password_hash === null
          ? 'no_password'
          : !matches
            ? 'wrong_password'
            : 'disabled';
      await this.audit.append({
        // An unknown address has no id, and the address itself is never recorded.
        actor: user ? `user:${user.id}` : 'anonymous',
        action: 'signin.failed',
        reason,
        at: now,
      });
      return { ok: false, retryAfterMs: 0 };
    }
    this.accountFailures.clear(key);

    let rehashed = false;
    if (needsRehash(stored, this.config.hashing)) {
      const upgraded = await hashPassword(password, this.config.hashing);
      await this.store.users.rehash(user.id, stored, upgraded, now);
      rehashed = true;
    }
    const session = await this.transaction(async (trx) => {
      // Rotation: a session the browser still had is ended; the new one has a new id.
      if (replacing) await this.store.sessions.delete(replacing, trx);
      const made = await this.insertSession(user.id, now, trx);
      await this.audit.append(
        { actor: `user:${user.id}`, action: 'signin.succeeded', details: { rehashed }, at: now },
        trx,
      );
      return made;
    });
    return { ok: true, user, session, rehashed };
  }

  private async insertSession(userId: string, now: number, db: Transaction<Database>): Promise<NewSession> {
    const { id, idHash } = newSessionId();
    const secret = newCsrfSecret();
    const expiresAt = now + this.config.sessionAbsoluteMs;
    await this.store.sessions.insert(
      {
        id_hash: idHash,
        user_id: userId,
        created_at: now,
        last_seen_at: now,
        expires_at: expiresAt,
        csrf_secret: secret,
      },
      db,
    );
    return { id, idHash, csrfToken: csrfToken(secret, id), expiresAt };
  }

  /**
   * The live session of a cookie's id, and its user: undefined when unknown, past its absolute
   * end, idle too long, or its user is disabled (an ended session is deleted).
   */
  async checkSession(sessionId: string): Promise<SessionCheck | undefined> {
    const idHash = hashSessionId(sessionId);
    const session = await this.store.sessions.byHash(idHash);
    if (!session) return undefined;
    const now = this.now();
    const lastSeen = Number(session.last_seen_at);
    if (Number(session.expires_at) <= now || now - lastSeen >= this.config.sessionIdleMs) {
      await this.store.sessions.delete(idHash);
      return undefined;
    }
    const user = await this.store.users.byId(session.user_id);
    if (!user || user.disabled_at !== null) {
      await this.store.sessions.delete(idHash);
      return undefined;
    }
    // Seen again: written at most once a minute (an idle timeout is counted from the last write).
    if (now - lastSeen >= Math.min(MINUTE, this.config.sessionIdleMs / 10)) {
      await this.store.sessions.touch(idHash, now);
    }
    return { session, user };
  }

  /** The CSRF token of a live session (for pages and GET /api/v1/auth/me). */
  async csrfTokenOf(sessionId: string): Promise<{ csrfToken: string; expiresAt: number } | undefined> {
    const session = await this.store.sessions.byHash(hashSessionId(sessionId));
    if (!session) return undefined;
    return { csrfToken: csrfToken(session.csrf_secret, sessionId), expiresAt: Number(session.expires_at) };
  }

  async userById(id: string): Promise<UserRow | undefined> {
    return this.store.users.byId(id);
  }

  async signOut(sessionHash: string, userId: string): Promise<void> {
    const now = this.now();
    await this.transaction(async (trx) => {
      if (!(await this.store.sessions.delete(sessionHash, trx))) return;
      await this.audit.append({ actor: `user:${userId}`, action: 'signout', at: now }, trx);
    });
  }

  /**
   * Change a password, knowing the current one. Every session of the user ends; the caller
   * gets a fresh one (so the person stays signed in, on a new id).
   */
  async changePassword(
    userId: string,
    current: string,
    next: string,
    address: string,
  ): Promise<{ ok: true; session: NewSession } | { ok: false; retryAfterMs: number }> {
    const user = await this.store.users.byId(userId);
    if (!user || user.disabled_at !== null || user.password_hash === null)
      return { ok: false, retryAfterMs: 0 };
    const key = accountKey(user.email);
    const wait = this.accountFailures.retryAfter(key);
    if (wait > 0) return { ok: false, retryAfterMs: wait };
    if (!(await verifyPassword(user.password_hash, current))) {
      this.accountFailures.fail(key);
      this.addressFailures.fail(`ip:${address}`);
      return { ok: false, retryAfterMs: 0 };
    }
    checkPassword(next, user.email);
    const hash = await hashPassword(next, this.config.hashing);
    const now = this.now();
    const session = await this.transaction(async (trx) => {
      await this.store.users.setPassword(userId, hash, now, trx);
      const sessionsEnded = await this.store.sessions.deleteOfUser(userId, trx);
      await this.audit.append(
        { actor: `user:${userId}`, action: 'password.changed', details: { sessionsEnded }, at: now },
        trx,
      );
      return this.insertSession(userId, now, trx);
    });
    return { ok: true, session };
  }

  // ---- invites and resets --------------------------------------------------------------

  private async issue(
    purpose: TokenPurpose,
    row: Omit<UserTokenRow, 'id' | 'purpose' | 'token_hash' | 'created_at' | 'expires_at' | 'used_at'>,
    ttlMs: number,
    db: Transaction<Database>,
  ): Promise<{ id: string; token: string; expiresAt: number }> {
    const now = this.now();
    const token = TOKEN_PREFIX[purpose] + randomBytes(32).toString('base64url');
    const id = newId(now);
    const expiresAt = now + ttlMs;
    await this.store.userTokens.insert(
      {
        ...row,
        id,
        purpose,
        token_hash: hashUserToken(token),
        created_at: now,
        expires_at: expiresAt,
        used_at: null,
      },
      db,
    );
    return { id, token, expiresAt };
  }

  /**
   * Invite an e-mail address into a workspace with a role. A person without an account gets
   * one (without a password) that the invite completes; a person with an account confirms
   * with their password. The answer is the same either way.
   */
  async invite(
    options: { workspaceId: string; email: string; role: string; callerRole?: Role },
    actor: string,
  ): Promise<IssuedToken> {
    const { workspaceId, role, callerRole } = options;
    const email = normalizeEmail(options.email);
    if (!isRole(role))
      throw new LetheError('USAGE', `unknown role "${role}": use owner, admin, editor or viewer`);
    if (callerRole !== undefined && rank(role) > rank(callerRole)) {
      throw new RoleTooLow(`the role "${callerRole}" may not invite someone as "${role}"`);
    }
    const now = this.now();
    return this.transaction(async (trx) => {
      // Locked (PostgreSQL), so that forgetting people who never joined cannot take this one
      // while the invite is being made.
      let user = await this.store.users.byEmail(email, trx, this.store.dialect === 'postgres');
      if (!user) {
        user = {
          id: newId(now),
          email,
          password_hash: null,
          deployment_role: null,
          created_at: now,
          updated_at: now,
          password_changed_at: null,
          disabled_at: null,
        };
        await this.store.users.insert(user, trx);
        await this.audit.append(
          {
            actor,
            action: 'user.created',
            details: { userId: user.id, operator: false, invited: true },
            at: now,
          },
          trx,
        );
      }
      const issued = await this.issue(
        'invite',
        { user_id: user.id, email, workspace_id: workspaceId, role, created_by: actor },
        this.config.inviteTtlMs,
        trx,
      );
      await this.audit.append(
        {
          workspaceId,
          actor,
          action: 'invite.created',
          details: { tokenId: issued.id, userId: user.id, role },
          at: now,
        },
        trx,
      );
      return { ...issued, userId: user.id };
    });
  }

  async openInvites(workspaceId: string): Promise<UserTokenRow[]> {
    return this.store.userTokens.openInvites(workspaceId, this.now());
  }

  async revokeInvite(workspaceId: string, id: string, actor: string): Promise<boolean> {
    const now = this.now();
    return this.transaction(async (trx) => {
      if (!(await this.store.userTokens.revokeInvite(workspaceId, id, now, trx))) return false;
      await this.audit.append(
        { workspaceId, actor, action: 'invite.revoked', details: { tokenId: id }, at: now },
        trx,
      );
      await this.forgetNeverJoined(now, actor, trx);
      return true;
    });
  }

  /**
   * Delete the accounts invites made for people who never joined (their e-mail address has no
   * purpose once no invite is open): when an invite is withdrawn, and on every sweep for those
   * that expired. Audited with the user id only.
   */
  private async forgetNeverJoined(now: number, actor: string, trx: Transaction<Database>): Promise<number> {
    const lock = this.store.dialect === 'postgres';
    let forgotten = 0;
    for (const id of await this.store.users.neverJoined(now, lock, trx)) {
      // PostgreSQL: the row is ours now; a fresh look sees an invite committed while we waited.
      if (lock && (await this.store.users.neverJoined(now, false, trx, id)).length === 0) continue;
      await this.store.users.forget(id, trx);
      await this.audit.append(
        { actor, action: 'user.forgotten', details: { userId: id, reason: 'never joined' }, at: now },
        trx,
      );
      forgotten++;
    }
    return forgotten;
  }

  /** A reset token for a user (their sessions go on until the token is used). */
  async issueReset(userId: string, actor: string, workspaceId?: string): Promise<IssuedToken> {
    const now = this.now();
    return this.transaction(async (trx) => {
      const user = await this.store.users.byId(userId, trx);
      if (!user) throw new LetheError('USAGE', 'no such user');
      const issued = await this.issue(
        'reset',
        { user_id: userId, email: null, workspace_id: workspaceId ?? null, role: null, created_by: actor },
        this.config.resetTtlMs,
        trx,
      );
      await this.audit.append(
        {
          workspaceId: workspaceId ?? null,
          actor,
          action: 'password.reset_issued',
          details: { userId, tokenId: issued.id },
          at: now,
        },
        trx,
      );
      return { ...issued, userId };
    });
  }

  /** The token row, if the token is one of ours, of that purpose, unused and unexpired. */
  private async usable(purpose: TokenPurpose, token: string): Promise<UserTokenRow | undefined> {
    if (typeof token !== 'string' || !token.startsWith(TOKEN_PREFIX[purpose]) || token.length > 200) {
      return undefined;
    }
    const row = await this.store.userTokens.byHash(hashUserToken(token));
    if (!row || row.purpose !== purpose || row.used_at !== null || Number(row.expires_at) <= this.now()) {
      return undefined;
    }
    return row;
  }

  /**
   * An invite is its inviter's act: it holds only while the inviter could still make it — a
   * member (or an API token) of the workspace with at least admin and at least the invited role.
   * An operator's invite (`lethe user invite`) holds as long as it lasts.
   */
  private async inviterStillMay(actor: string, workspaceId: string, role: string): Promise<boolean> {
    if (!isRole(role)) return false;
    const needed = Math.max(rank('admin'), rank(role));
    const [kind, id] = [actor.slice(0, actor.indexOf(':')), actor.slice(actor.indexOf(':') + 1)];
    if (kind === 'user') {
      const inviter = await this.store.users.byId(id);
      const membership = await this.store.memberships.get(workspaceId, id);
      return inviter?.disabled_at === null && membership !== undefined && rank(membership.role) >= needed;
    }
    if (kind === 'token') {
      const now = this.now();
      const inviter = (await this.store.tokens.list(workspaceId)).find((t) => t.id === id);
      return (
        inviter !== undefined &&
        inviter.revoked_at === null &&
        (inviter.expires_at === null || Number(inviter.expires_at) > now) &&
        isRole(inviter.role) &&
        rank(inviter.role) >= needed
      );
    }
    return actor === 'cli';
  }

  /**
   * Accept an invite: a new account sets its password; an existing one confirms with its
   * password. The membership is added, the token used up, and a session started.
   * Undefined when the token is unknown, used, expired, or the password does not match.
   */
  async acceptInvite(
    token: string,
    password: string,
  ): Promise<{ user: UserRow; session: NewSession; workspaceId: string } | undefined> {
    const row = await this.usable('invite', token);
    if (!row || !row.user_id || !row.workspace_id || !row.role) return undefined;
    if (!(await this.inviterStillMay(row.created_by, row.workspace_id, row.role))) return undefined;
    const user = await this.store.users.byId(row.user_id);
    if (!user || user.disabled_at !== null) return undefined;
    let hash: string | undefined;
    if (user.password_hash === null) {
      checkPassword(password, user.email);
      hash = await hashPassword(password, this.config.hashing);
    } else {
      // Confirming with the account's password counts like a sign-in: otherwise whoever can
      // invite an existing address could guess its password here, past the account back-off.
      const key = accountKey(user.email);
      if (this.accountFailures.retryAfter(key) > 0) return undefined;
      if (!(await verifyPassword(user.password_hash, password))) {
        this.accountFailures.fail(key);
        return undefined;
      }
      this.accountFailures.clear(key);
    }
    const now = this.now();
    const { workspace_id: workspaceId, role } = row;
    return this.transaction(async (trx) => {
      if (!(await this.store.userTokens.consume(row.id, now, trx))) return undefined;
      if (hash !== undefined) await this.store.users.setPassword(user.id, hash, now, trx);
      const existing = await this.store.memberships.get(workspaceId, user.id, trx);
      // An invite never lowers a role the person already has.
      if (!existing || rank(existing.role) < rank(role)) {
        await this.setMembership({ workspaceId, userId: user.id, role }, `user:${user.id}`, trx);
      }
      await this.audit.append(
        {
          workspaceId,
          actor: `user:${user.id}`,
          action: 'invite.accepted',
          details: { tokenId: row.id },
          at: now,
        },
        trx,
      );
      const session = await this.insertSession(user.id, now, trx);
      await this.audit.append(
        { actor: `user:${user.id}`, action: 'signin.succeeded', details: { via: 'invite' }, at: now },
        trx,
      );
      return { user, session, workspaceId };
    });
  }

  /** Use a reset token: a new password, every session ended. False when the token is not usable. */
  async consumeReset(token: string, password: string): Promise<boolean> {
    const row = await this.usable('reset', token);
    if (!row || !row.user_id) return false;
    const user = await this.store.users.byId(row.user_id);
    if (!user || user.disabled_at !== null) return false;
    checkPassword(password, user.email);
    const hash = await hashPassword(password, this.config.hashing);
    const now = this.now();
    return this.transaction(async (trx) => {
      if (!(await this.store.userTokens.consume(row.id, now, trx))) return false;
      await this.store.users.setPassword(user.id, hash, now, trx);
      const sessionsEnded = await this.store.sessions.deleteOfUser(user.id, trx);
      await this.audit.append(
        {
          actor: `user:${user.id}`,
          action: 'password.reset',
          details: { tokenId: row.id, sessionsEnded },
          at: now,
        },
        trx,
      );
      return true;
    });
  }

  /** Every ten minutes at most, in the background: ended sessions and spent tokens go. */
  private sweepNowAndThen(): void {
    const now = this.now();
    if (now - this.lastSweep < 10 * MINUTE) return;
    this.lastSweep = now;
    this.sweep().catch(() => undefined);
  }

  /**
   * Delete ended sessions, the accounts of people whose invites ended without their joining,
   * and spent tokens (a week after they were used or expired).
   */
  async sweep(): Promise<{ sessions: number; tokens: number; neverJoined: number }> {
    const now = this.now();
    const sessions = await this.store.sessions.deleteExpired(now, now - this.config.sessionIdleMs);
    // Before the spent tokens go: the ended invite is what tells such an account apart.
    const neverJoined = await this.transaction((trx) => this.forgetNeverJoined(now, 'retention', trx));
    const tokens = await this.store.userTokens.deleteSpent(now - 7 * 24 * HOUR);
    return { sessions, tokens, neverJoined };
  }
}
