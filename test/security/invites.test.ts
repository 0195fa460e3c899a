/**
 * Invites and password resets: single-use, expiring links made by a workspace admin (or the
 * operator's CLI, see test/cli/user-cli.test.ts), stored as hashes only, refused the same way
 * once used, expired or withdrawn as when unknown, and recorded in the audit log by id.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sql } from 'kysely';
import { expect, it } from 'vitest';
import { createToken } from '../../src/security/tokens.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { call, describeStores, expectError, useServer, WS, type JsonReply } from '../server/api-support.js';
import {
  auditEntries,
  cookieOf,
  makeUser,
  OTHER_PASSWORD,
  PASSWORD,
  people,
  session,
  signIn,
  uniqueEmail,
  useClock,
  webConfig,
  withSession,
} from './people-support.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;

/** A POST to /api/v1/auth/… without credentials, as the invite and reset pages send it. */
async function post(t: TestServer, path: string, body: unknown): Promise<JsonReply> {
  const response = await fetch(`${t.url}/api/v1/auth${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  return {
    status: response.status,
    body: (text === '' ? {} : JSON.parse(text)) as Record<string, unknown>,
    headers: response.headers,
    text,
  };
}

type Link = {
  id: string;
  token: string;
  url: string;
  expiresAt: string;
};

async function invite(
  t: TestServer,
  email: string,
  role: string,
  caller = 'admin',
): Promise<JsonReply<Link>> {
  return call<Link>(t, 'POST', `${WS}/members/invites`, {
    body: { email, role },
    token: await t.token(caller as 'admin'),
  });
}

async function inviteOk(t: TestServer, email: string, role: string, caller = 'admin'): Promise<Link> {
  const reply = await invite(t, email, role, caller);
  expect(reply.status, reply.text).toBe(201);
  return reply.body;
}

async function resetLink(t: TestServer, userId: string, caller = 'admin'): Promise<JsonReply<Link>> {
  return call<Link>(t, 'POST', `${WS}/members/${userId}/reset`, { token: await t.token(caller as 'admin') });
}

async function defaultWorkspaceId(t: TestServer): Promise<string> {
  return (await t.server.context.home.workspaces.ensure('default')).id;
}

/** Every stored user_tokens row, as text (what a database dump would show). */
async function tokenRowsText(t: TestServer): Promise<string> {
  const rows = await sql<{ row: unknown }>`select * from user_tokens`.execute(t.server.context.home.db);
  return JSON.stringify(rows.rows);
}

await describeStores('invites and password resets', (store) => {
  const config = { web: webConfig({ LETHE_RATE_LIMIT_AUTH: '0' }) };
  const server = useServer(store, { config });
  const ownServer = () => startTestServer({ store, config });

  it('invites an e-mail with a role: accepting with a good password makes the user and member, signed in', async () => {
    const t = server();
    const email = uniqueEmail('invited');
    const link = await inviteOk(t, email, 'editor');
    expect(link.token).toMatch(/^lethe_invite_[A-Za-z0-9_-]{43}$/);
    expect(link.url).toBe(`${t.url}/invite#${link.token}`);
    expect(Date.parse(link.expiresAt) - Date.now()).toBeGreaterThan(72 * HOUR - MINUTE);
    expect(Date.parse(link.expiresAt) - Date.now()).toBeLessThanOrEqual(72 * HOUR);

    // Listed as open, without its token.
    const open = await call(t, 'GET', `${WS}/members/invites`, { token: await t.token('admin') });
    expect(open.text).toContain(link.id);
    expect(open.text).not.toContain(link.token);

    const accepted = await post(t, '/invites/accept', { token: link.token, password: PASSWORD });
    expect(accepted.status, accepted.text).toBe(200);
    expect(accepted.body).toMatchObject({ user: { email }, workspace: 'default' });
    const cookie = cookieOf(accepted.headers);
    expect(cookie).toMatch(/^[A-Za-z0-9_-]{43}$/);
    const me = await withSession(t, { cookie: cookie! }, 'GET', '/api/v1/auth/me');
    expect(me.body).toMatchObject({
      kind: 'user',
      user: { email },
      workspaces: [{ name: 'default', role: 'editor' }],
    });

    const user = (await people(t).userByEmail(email))!;
    expect(await people(t).roleIn(await defaultWorkspaceId(t), user.id)).toBe('editor');
    expect((await signIn(t, email, PASSWORD)).status).toBe(200);
    // The server's log names the user by id only: never the address, the token or the password.
    for (const secret of [email, link.token, PASSWORD]) expect(t.logs.join('\n')).not.toContain(secret);
    // No longer open; the audit log has the ids, never the address or the token.
    const after = await call(t, 'GET', `${WS}/members/invites`, { token: await t.token('admin') });
    expect(after.text).not.toContain(link.id);
    const entries = [
      ...(await auditEntries(t, 'invite.created')),
      ...(await auditEntries(t, 'invite.accepted')),
      ...(await auditEntries(t, 'membership.added')),
    ].filter((entry) => JSON.stringify(entry).includes(user.id) || JSON.stringify(entry).includes(link.id));
    expect(entries.map((entry) => entry.action).sort()).toEqual([
      'invite.accepted',
      'invite.created',
      'membership.added',
    ]);
    for (const entry of entries) {
      expect(JSON.stringify(entry)).not.toContain(email);
      expect(JSON.stringify(entry)).not.toContain(link.token);
    }
  });

  it('takes an invite once: a second use is refused exactly like an unknown token', async () => {
    const t = server();
    const link = await inviteOk(t, uniqueEmail('once'), 'viewer');
    expect((await post(t, '/invites/accept', { token: link.token, password: PASSWORD })).status).toBe(200);
    const again = await post(t, '/invites/accept', { token: link.token, password: PASSWORD });
    const unknown = await post(t, '/invites/accept', {
      token: `lethe_invite_${'A'.repeat(43)}`,
      password: PASSWORD,
    });
    expectError(again, 400, 'INVALID_TOKEN');
    expect(again.body).toEqual(unknown.body);
    expect(again.status).toBe(unknown.status);
    expect(cookieOf(again.headers)).toBeUndefined();
    // Two at once: exactly one of them wins.
    const racing = await inviteOk(t, uniqueEmail('race'), 'viewer');
    const replies = await Promise.all(
      [0, 1, 2].map(() => post(t, '/invites/accept', { token: racing.token, password: PASSWORD })),
    );
    expect(replies.map((reply) => reply.status).sort()).toEqual([200, 400, 400]);
  });

  it('expires an invite after LETHE_INVITE_TTL_HOURS (72 by default, or as configured)', async () => {
    // A server of its own: the moved clock leaves back-off entries in the future behind.
    const t = await ownServer();
    const clock = useClock(t);
    const config = people(t).config;
    const saved = config.inviteTtlMs;
    try {
      const late = await inviteOk(t, uniqueEmail('late'), 'viewer');
      const inTime = await inviteOk(t, uniqueEmail('intime'), 'viewer');
      expect(Date.parse(late.expiresAt)).toBe(clock.now() + 72 * HOUR);
      clock.advance(72 * HOUR - MINUTE);
      expect((await post(t, '/invites/accept', { token: inTime.token, password: PASSWORD })).status).toBe(
        200,
      );
      clock.advance(MINUTE);
      expectError(
        await post(t, '/invites/accept', { token: late.token, password: PASSWORD }),
        400,
        'INVALID_TOKEN',
      );

      config.inviteTtlMs = 10 * MINUTE;
      const short = await inviteOk(t, uniqueEmail('short'), 'viewer');
      expect(Date.parse(short.expiresAt)).toBe(clock.now() + 10 * MINUTE);
      clock.advance(10 * MINUTE);
      expectError(
        await post(t, '/invites/accept', { token: short.token, password: PASSWORD }),
        400,
        'INVALID_TOKEN',
      );
      // Expired invites are not listed as open.
      const open = await call(t, 'GET', `${WS}/members/invites`, { token: await t.token('admin') });
      expect(open.text).not.toContain(short.id);
    } finally {
      config.inviteTtlMs = saved;
      await t.close();
    }
  });

  it('lets an existing user accept with their own password, under the sign-in back-off', async () => {
    const t = await ownServer();
    const clock = useClock(t);
    try {
      const existing = await makeUser(t, { role: 'viewer', workspace: 'elsewhere' });
      const link = await inviteOk(t, existing.email, 'editor');
      // Five wrong passwords (LETHE_LOGIN_FAILURES), then even the right one waits: an invite is
      // no way around the account's back-off.
      for (let i = 0; i < 5; i++) {
        const wrong = await post(t, '/invites/accept', { token: link.token, password: `wrong guess ${i}` });
        expectError(wrong, 400, 'INVALID_TOKEN');
      }
      const early = await post(t, '/invites/accept', { token: link.token, password: PASSWORD });
      expectError(early, 400, 'INVALID_TOKEN');
      expect((await signIn(t, existing.email, PASSWORD)).status).toBe(429);
      clock.advance(1000);
      const accepted = await post(t, '/invites/accept', { token: link.token, password: PASSWORD });
      expect(accepted.status, accepted.text).toBe(200);
      expect(await people(t).roleIn(await defaultWorkspaceId(t), existing.id)).toBe('editor');
      // The password stays the account's own.
      expect((await signIn(t, existing.email, PASSWORD)).status).toBe(200);
    } finally {
      await t.close();
    }
  });

  it('holds an invite only while its inviter could still make it: demoted, removed or revoked, it stops', async () => {
    const t = server();
    const wsId = await defaultWorkspaceId(t);
    // A signed-in admin invites; demoted to editor, their open invite stops working; back to admin, it works.
    const admin = await makeUser(t, { role: 'admin' });
    const s = await session(t, admin.email);
    const byUser = await withSession(t, s, 'POST', `${WS}/members/invites`, {
      body: { email: uniqueEmail('by-user'), role: 'editor' },
    });
    expect(byUser.status, byUser.text).toBe(201);
    const userLink = byUser.body as unknown as Link;
    await people(t).setMembership({ workspaceId: wsId, userId: admin.id, role: 'editor' }, 'test');
    expectError(
      await post(t, '/invites/accept', { token: userLink.token, password: PASSWORD }),
      400,
      'INVALID_TOKEN',
    );
    await people(t).setMembership({ workspaceId: wsId, userId: admin.id, role: 'admin' }, 'test');
    const accepted = await post(t, '/invites/accept', { token: userLink.token, password: PASSWORD });
    expect(accepted.status, accepted.text).toBe(200);

    // An API token's invite stops when the token is revoked.
    const { token, id } = await createToken(t.server.context.home.tokens, {
      workspaceId: wsId,
      role: 'admin',
    });
    const byToken = await call<Link>(t, 'POST', `${WS}/members/invites`, {
      body: { email: uniqueEmail('by-token'), role: 'viewer' },
      token,
    });
    expect(byToken.status, byToken.text).toBe(201);
    await t.server.context.home.tokens.revoke(wsId, id, Date.now());
    expectError(
      await post(t, '/invites/accept', { token: byToken.body.token, password: PASSWORD }),
      400,
      'INVALID_TOKEN',
    );
  });

  it('refuses a withdrawn invite', async () => {
    const t = server();
    const link = await inviteOk(t, uniqueEmail('revoked'), 'viewer');
    const revoked = await call(t, 'DELETE', `${WS}/members/invites/${link.id}`, {
      token: await t.token('admin'),
    });
    expect(revoked.status, revoked.text).toBe(204);
    expectError(
      await post(t, '/invites/accept', { token: link.token, password: PASSWORD }),
      400,
      'INVALID_TOKEN',
    );
    // Withdrawing twice, or an unknown id, is a 404.
    expectError(
      await call(t, 'DELETE', `${WS}/members/invites/${link.id}`, { token: await t.token('admin') }),
      404,
    );
    expect((await auditEntries(t, 'invite.revoked')).some((e) => e.details.includes(link.id))).toBe(true);
  });

  it('forgets the account an invite made once its last invite is withdrawn; a user who has joined or has a password stays', async () => {
    const t = server();
    const admin = await t.token('admin');
    const db = t.server.context.home.db;
    const userRow = (email: string) =>
      db.selectFrom('users').select(['id', 'password_hash']).where('email', '=', email).executeTakeFirst();
    const withdraw = async (link: Link) =>
      expect((await call(t, 'DELETE', `${WS}/members/invites/${link.id}`, { token: admin })).status).toBe(
        204,
      );

    // A new address, invited twice: the account stays while one invite is open.
    const email = uniqueEmail('never-joined');
    const first = await inviteOk(t, email, 'viewer');
    const second = await inviteOk(t, email, 'editor');
    const made = await userRow(email);
    expect(made?.password_hash).toBeNull();
    await withdraw(first);
    expect(await userRow(email)).toBeDefined();
    await withdraw(second);
    expect(await userRow(email)).toBeUndefined();
    const leftovers = await db
      .selectFrom('user_tokens')
      .select('id')
      .where('user_id', '=', made!.id)
      .execute();
    expect(leftovers).toEqual([]);
    const forgotten = (await auditEntries(t, 'user.forgotten')).filter((e) => e.details.includes(made!.id));
    expect(forgotten).toHaveLength(1);
    expect(forgotten[0]!.details).not.toContain(email);
    // Invited again later, the address gets a fresh account that works.
    const again = await inviteOk(t, email, 'viewer');
    expect((await post(t, '/invites/accept', { token: again.token, password: PASSWORD })).status).toBe(200);

    // Someone with an account: withdrawing their invite leaves it alone.
    const existing = await makeUser(t);
    await withdraw(await inviteOk(t, existing.email, 'viewer'));
    expect(await userRow(existing.email)).toBeDefined();
  });

  it('forgets the account of an invite that expired unaccepted at the next sweep', async () => {
    const t = await ownServer();
    const clock = useClock(t);
    try {
      const email = uniqueEmail('expired-invite');
      const link = await inviteOk(t, email, 'viewer');
      const joined = uniqueEmail('joined');
      const accepted = await inviteOk(t, joined, 'viewer');
      expect((await post(t, '/invites/accept', { token: accepted.token, password: PASSWORD })).status).toBe(
        200,
      );
      expect((await people(t).sweep()).neverJoined).toBe(0);
      clock.advance(72 * HOUR + MINUTE);
      expectError(
        await post(t, '/invites/accept', { token: link.token, password: PASSWORD }),
        400,
        'INVALID_TOKEN',
      );
      expect((await people(t).sweep()).neverJoined).toBe(1);
      const emails = (await t.server.context.home.db.selectFrom('users').select('email').execute()).map(
        (row) => row.email,
      );
      expect(emails).not.toContain(email);
      expect(emails).toContain(joined);
    } finally {
      await t.close();
    }
  });

  it('refuses a weak or common password with a clear error, and the invite stays usable', async () => {
    const t = server();
    const email = uniqueEmail('weak');
    const link = await inviteOk(t, email, 'viewer');
    const common = await post(t, '/invites/accept', { token: link.token, password: 'password123' });
    expect(expectError(common, 400, 'WEAK_PASSWORD').message).toMatch(/common/);
    const short = await post(t, '/invites/accept', { token: link.token, password: 'short' });
    expect(expectError(short, 400, 'WEAK_PASSWORD').message).toMatch(/characters/);
    expect(cookieOf(common.headers)).toBeUndefined();
    const user = (await people(t).userByEmail(email))!;
    expect(user.password_hash).toBeNull();
    expect(await people(t).roleIn(await defaultWorkspaceId(t), user.id)).toBeUndefined();
    expect((await post(t, '/invites/accept', { token: link.token, password: PASSWORD })).status).toBe(200);
  });

  it('lets an admin invite up to admin, never owner; an owner may invite an owner', async () => {
    const t = server();
    const wouldBe = uniqueEmail('would-be-owner');
    expectError(await invite(t, wouldBe, 'owner', 'admin'), 403, 'FORBIDDEN');
    // Refused before anything is made: no account waits for that address.
    expect(await people(t).userByEmail(wouldBe)).toBeUndefined();
    expect((await invite(t, uniqueEmail('admin'), 'admin', 'admin')).status).toBe(201);
    // An editor may not invite at all.
    expectError(await invite(t, uniqueEmail('e'), 'viewer', 'editor'), 403, 'FORBIDDEN');
    const email = uniqueEmail('owner');
    const link = await inviteOk(t, email, 'owner', 'owner');
    expect((await post(t, '/invites/accept', { token: link.token, password: PASSWORD })).status).toBe(200);
    const user = (await people(t).userByEmail(email))!;
    expect(await people(t).roleIn(await defaultWorkspaceId(t), user.id)).toBe('owner');
  });

  it('stores only the SHA-256 of an invite or reset token, never the token', async () => {
    const t = server();
    const link = await inviteOk(t, uniqueEmail('hashed'), 'viewer');
    const member = await makeUser(t, { role: 'viewer' });
    const reset = await resetLink(t, member.id);
    expect(reset.status, reset.text).toBe(201);
    const text = await tokenRowsText(t);
    for (const token of [link.token, reset.body.token]) {
      const hash = (await import('node:crypto')).createHash('sha256').update(token).digest('hex');
      expect(text).toContain(hash);
      expect(text).not.toContain(token);
      expect(text).not.toContain(token.replace(/^lethe_(invite|reset)_/, ''));
    }
    if (store === 'sqlite') {
      const files = readdirSync(t.dataDir).filter((name) => name.startsWith('lethe.db'));
      const bytes = Buffer.concat(files.map((file) => readFileSync(join(t.dataDir, file))));
      for (const token of [link.token, reset.body.token]) expect(bytes.includes(token)).toBe(false);
    }
    const logs = t.logs.join('\n');
    for (const token of [link.token, reset.body.token]) expect(logs).not.toContain(token);
  });

  it('resets a password with an admin’s single-use link: every session of the user ends', async () => {
    const t = server();
    const member = await makeUser(t, { role: 'editor' });
    const laptop = await session(t, member.email);
    const phone = await session(t, member.email);
    const reply = await resetLink(t, member.id);
    expect(reply.status, reply.text).toBe(201);
    expect(reply.headers.get('cache-control')).toBe('no-store');
    const link = reply.body;
    expect(link.token).toMatch(/^lethe_reset_[A-Za-z0-9_-]{43}$/);
    expect(link.url).toBe(`${t.url}/reset#${link.token}`);
    // Until it is used, the sessions go on.
    expect((await withSession(t, laptop, 'GET', `${WS}/runs`)).status).toBe(200);

    const weak = await post(t, '/reset', { token: link.token, password: 'qwerty123' });
    expectError(weak, 400, 'WEAK_PASSWORD');
    expect((await withSession(t, laptop, 'GET', `${WS}/runs`)).status).toBe(200);

    const done = await post(t, '/reset', { token: link.token, password: OTHER_PASSWORD });
    expect(done.status, done.text).toBe(204);
    for (const old of [laptop, phone])
      expect((await withSession(t, old, 'GET', `${WS}/runs`)).status).toBe(401);
    expect(await t.server.context.home.sessions.countOfUser(member.id)).toBe(0);
    expect((await signIn(t, member.email, PASSWORD)).status).toBe(401);
    expect((await signIn(t, member.email, OTHER_PASSWORD)).status).toBe(200);

    // Once only, refused like an unknown token.
    const again = await post(t, '/reset', { token: link.token, password: PASSWORD });
    const unknown = await post(t, '/reset', { token: `lethe_reset_${'B'.repeat(43)}`, password: PASSWORD });
    expectError(again, 400, 'INVALID_TOKEN');
    expect(again.body).toEqual(unknown.body);
    // An invite token is not a reset token.
    const invited = await inviteOk(t, uniqueEmail('cross'), 'viewer');
    expectError(await post(t, '/reset', { token: invited.token, password: PASSWORD }), 400, 'INVALID_TOKEN');

    // Audit: issued and used, by id only.
    const issued = (await auditEntries(t, 'password.reset_issued')).find((e) =>
      e.details.includes(member.id),
    )!;
    expect(JSON.parse(issued.details)).toEqual({ userId: member.id, tokenId: link.id });
    const used = (await auditEntries(t, 'password.reset')).find((e) => e.actor === `user:${member.id}`)!;
    expect(JSON.parse(used.details)).toEqual({ tokenId: link.id, sessionsEnded: 2 });
    for (const entry of [issued, used]) {
      expect(JSON.stringify(entry)).not.toContain(member.email);
      expect(JSON.stringify(entry)).not.toContain(link.token);
    }
  });

  it('expires a reset link after LETHE_RESET_TTL_MINUTES (60 by default)', async () => {
    const t = await ownServer();
    const clock = useClock(t);
    try {
      const member = await makeUser(t, { role: 'viewer' });
      const first = (await resetLink(t, member.id)).body;
      const second = (await resetLink(t, member.id)).body;
      expect(Date.parse(first.expiresAt)).toBe(clock.now() + 60 * MINUTE);
      clock.advance(59 * MINUTE);
      expect((await post(t, '/reset', { token: second.token, password: OTHER_PASSWORD })).status).toBe(204);
      clock.advance(MINUTE);
      expectError(await post(t, '/reset', { token: first.token, password: PASSWORD }), 400, 'INVALID_TOKEN');
    } finally {
      await t.close();
    }
  });

  it('issues resets only for members of this workspace alone, with a role no higher than the caller’s', async () => {
    const t = server();
    const owner = await makeUser(t, { role: 'owner' });
    expectError(await resetLink(t, owner.id, 'admin'), 403, 'FORBIDDEN');
    expect((await resetLink(t, owner.id, 'owner')).status).toBe(201);
    const elsewhere = await makeUser(t, { role: 'viewer', workspace: 'elsewhere' });
    expectError(await resetLink(t, elsewhere.id), 404, 'NOT_FOUND');
    await people(t).setMembership(
      { workspaceId: await defaultWorkspaceId(t), userId: elsewhere.id, role: 'viewer' },
      'test',
    );
    expectError(await resetLink(t, elsewhere.id), 403, 'FORBIDDEN');
    const viewer = await makeUser(t, { role: 'viewer' });
    expectError(await resetLink(t, viewer.id, 'editor'), 403, 'FORBIDDEN');
  });
});
