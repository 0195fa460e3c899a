import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { sql } from 'kysely';
import { expect, it } from 'vitest';
import { call, describeStores, useServer, WS } from '../server/api-support.js';
import {
  auditEntries,
  cookieOf,
  makeUser,
  OTHER_PASSWORD,
  PASSWORD,
  people,
  session,
  signIn,
  useClock,
  withSession,
} from './people-support.js';

const MINUTE = 60_000;

await describeStores('console sessions', (store) => {
  const server = useServer(store);

  it('sets exactly a __Host- cookie: Secure, HttpOnly, SameSite=Strict, Path=/, no Domain', async () => {
    const t = server();
    const user = await makeUser(t);
    const result = await signIn(t, user.email, user.password);
    expect(result.status, result.text).toBe(200);
    const lines = result.headers.getSetCookie();
    expect(lines).toHaveLength(1);
    const [pair, ...attributes] = lines[0]!.split('; ');
    expect(pair).toMatch(/^__Host-lethe_session=[A-Za-z0-9_-]{43}$/);
    expect(attributes.sort()).toEqual(['HttpOnly', 'Max-Age=28800', 'Path=/', 'SameSite=Strict', 'Secure']);
    expect(lines[0]).not.toMatch(/domain/i);
    // 256 random bits, base64url: 43 characters.
    expect(Buffer.from(cookieOf(result.headers)!, 'base64url')).toHaveLength(32);
    expect(result.headers.get('cache-control')).toBe('no-store');
    expect(result.body).toEqual({
      user: { id: user.id, email: user.email },
      csrfToken: expect.stringMatching(/^[A-Za-z0-9_-]{43}$/),
      expiresAt: expect.any(String),
    });
  });

  it('stores only the SHA-256 of the session id', async () => {
    const t = server();
    const user = await makeUser(t);
    const s = await session(t, user.email);
    const hash = createHash('sha256').update(s.cookie).digest('hex');
    const row = await t.server.context.home.sessions.byHash(hash);
    expect(row?.user_id).toBe(user.id);
    if (store === 'sqlite') {
      const files = readdirSync(t.dataDir).filter((name) => name.startsWith('lethe.db'));
      const bytes = Buffer.concat(files.map((file) => readFileSync(join(t.dataDir, file))));
      expect(bytes.includes(hash)).toBe(true);
      expect(bytes.includes(s.cookie)).toBe(false);
    } else {
      const rows = await sql<{ row: string }>`select s::text as row from sessions s`.execute(
        t.server.context.home.db,
      );
      const text = rows.rows.map((r) => r.row).join('\n');
      expect(text).toContain(hash);
      expect(text).not.toContain(s.cookie);
    }
    // Nor does any log line carry the id, the CSRF token, the e-mail or the password.
    const logs = t.logs.join('\n');
    for (const secret of [s.cookie, s.csrf, user.email, PASSWORD]) expect(logs).not.toContain(secret);
  });

  it('rotates the id at sign-in: a session the browser had ends, the new one has a new id', async () => {
    const t = server();
    const user = await makeUser(t, { role: 'viewer' });
    const first = await session(t, user.email);
    const again = await signIn(t, user.email, user.password, {
      cookie: `__Host-lethe_session=${first.cookie}`,
    });
    expect(again.status).toBe(200);
    const second = again.session!;
    expect(second.cookie).not.toBe(first.cookie);
    expect(second.csrf).not.toBe(first.csrf);
    expect((await withSession(t, first, 'GET', '/api/v1/auth/me')).status).toBe(401);
    expect((await withSession(t, second, 'GET', '/api/v1/auth/me')).status).toBe(200);
    // A made-up id is never adopted.
    const made = 'A'.repeat(43);
    const third = await signIn(t, user.email, user.password, { cookie: `__Host-lethe_session=${made}` });
    expect(third.session!.cookie).not.toBe(made);
  });

  it('ends a session idle for 30 minutes, and any session 8 hours after sign-in', async () => {
    const t = server();
    const clock = useClock(t);
    try {
      const user = await makeUser(t, { role: 'viewer' });
      const idle = await session(t, user.email);
      clock.advance(29 * MINUTE);
      expect((await withSession(t, idle, 'GET', `${WS}/runs`)).status).toBe(200);
      clock.advance(29 * MINUTE); // 58 minutes in, but used 29 minutes ago
      expect((await withSession(t, idle, 'GET', `${WS}/runs`)).status).toBe(200);
      clock.advance(30 * MINUTE);
      const ended = await withSession(t, idle, 'GET', `${WS}/runs`);
      expect(ended.status).toBe(401);
      expect(ended.body).toMatchObject({
        error: { code: 'UNAUTHENTICATED', message: expect.stringMatching(/ended/) },
      });
      // Ended sessions are deleted, not just refused.
      expect(await t.server.context.home.sessions.countOfUser(user.id)).toBe(0);

      const busy = await session(t, user.email);
      for (let minutes = 20; minutes < 8 * 60; minutes += 20) {
        clock.advance(20 * MINUTE);
        expect((await withSession(t, busy, 'GET', `${WS}/runs`)).status, `${minutes} min`).toBe(200);
      }
      clock.advance(20 * MINUTE); // 8 h after sign-in
      expect((await withSession(t, busy, 'GET', `${WS}/runs`)).status).toBe(401);
    } finally {
      people(t).now = Date.now;
    }
  });

  it('takes timeouts from the configuration', async () => {
    const t = server();
    const clock = useClock(t);
    const config = people(t).config;
    const saved = { idle: config.sessionIdleMs, absolute: config.sessionAbsoluteMs };
    config.sessionIdleMs = 5 * MINUTE;
    config.sessionAbsoluteMs = 60 * MINUTE;
    try {
      const user = await makeUser(t, { role: 'viewer' });
      const s = await session(t, user.email);
      clock.advance(5 * MINUTE);
      expect((await withSession(t, s, 'GET', `${WS}/runs`)).status).toBe(401);
    } finally {
      config.sessionIdleMs = saved.idle;
      config.sessionAbsoluteMs = saved.absolute;
      people(t).now = Date.now;
    }
  });

  it('signs out: the session ends and the cookie is removed', async () => {
    const t = server();
    const user = await makeUser(t, { role: 'viewer' });
    const s = await session(t, user.email);
    const out = await withSession(t, s, 'POST', '/api/v1/auth/logout');
    expect(out.status, out.text).toBe(204);
    expect(out.headers.getSetCookie()).toEqual([
      '__Host-lethe_session=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Strict',
    ]);
    expect((await withSession(t, s, 'GET', `${WS}/runs`)).status).toBe(401);
    expect((await auditEntries(t, 'signout')).some((entry) => entry.actor === `user:${user.id}`)).toBe(true);
    // A bearer token has nothing to sign out of.
    expect((await call(t, 'POST', '/api/v1/auth/logout')).body).toMatchObject({
      error: { code: 'NOT_A_SESSION' },
    });
  });

  it('ends every session of the user on a password change; this one continues on a new id', async () => {
    const t = server();
    const user = await makeUser(t, { role: 'viewer' });
    const laptop = await session(t, user.email);
    const phone = await session(t, user.email);
    expect(await t.server.context.home.sessions.countOfUser(user.id)).toBe(2);
    const weak = await withSession(t, laptop, 'POST', '/api/v1/auth/password', {
      body: { currentPassword: PASSWORD, newPassword: 'password1' },
    });
    expect(weak.body).toMatchObject({ error: { code: 'WEAK_PASSWORD' } });
    const wrong = await withSession(t, laptop, 'POST', '/api/v1/auth/password', {
      body: { currentPassword: 'not the password', newPassword: OTHER_PASSWORD },
    });
    expect(wrong.body).toMatchObject({ error: { code: 'WRONG_PASSWORD' } });
    const changed = await withSession(t, laptop, 'POST', '/api/v1/auth/password', {
      body: { currentPassword: PASSWORD, newPassword: OTHER_PASSWORD },
    });
    expect(changed.status, changed.text).toBe(200);
    const fresh = { cookie: cookieOf(changed.headers)!, csrf: changed.body.csrfToken as string };
    expect(fresh.cookie).not.toBe(laptop.cookie);
    for (const old of [laptop, phone])
      expect((await withSession(t, old, 'GET', `${WS}/runs`)).status).toBe(401);
    expect((await withSession(t, fresh, 'GET', `${WS}/runs`)).status).toBe(200);
    expect(await t.server.context.home.sessions.countOfUser(user.id)).toBe(1);
    expect((await signIn(t, user.email, PASSWORD)).status).toBe(401);
    expect((await signIn(t, user.email, OTHER_PASSWORD)).status).toBe(200);
    const [entry] = (await auditEntries(t, 'password.changed')).filter((e) => e.actor === `user:${user.id}`);
    expect(JSON.parse(entry!.details)).toEqual({ sessionsEnded: 2 });
  });

  it('ends every session of a user who is disabled, and refuses their sign-in', async () => {
    const t = server();
    const user = await makeUser(t, { role: 'viewer' });
    const s = await session(t, user.email);
    await people(t).setDisabled(user.id, true, 'test');
    expect((await withSession(t, s, 'GET', `${WS}/runs`)).status).toBe(401);
    expect((await signIn(t, user.email, user.password)).status).toBe(401);
    await people(t).setDisabled(user.id, false, 'test');
    expect((await signIn(t, user.email, user.password)).status).toBe(200);
  });

  it('gives a session the role of its membership; no membership is the same 404 as no workspace', async () => {
    const t = server();
    const viewer = await makeUser(t, { role: 'viewer' });
    const outsider = await makeUser(t, { role: 'owner', workspace: 'elsewhere' });
    const v = await session(t, viewer.email);
    const o = await session(t, outsider.email);
    expect((await withSession(t, v, 'GET', `${WS}/flows`)).status).toBe(200);
    const denied = await withSession(t, v, 'PUT', `${WS}/connections/c`, {
      body: { type: 'sqlite', settings: { path: 'a.db' } },
    });
    expect(denied.status).toBe(403);
    expect(denied.body).toMatchObject({
      error: { code: 'FORBIDDEN', message: 'the role "viewer" may not connection write' },
    });
    const foreign = await withSession(t, o, 'GET', `${WS}/flows`);
    const missing = await withSession(t, o, 'GET', '/api/v1/workspaces/nowhere/flows');
    expect(foreign.status).toBe(404);
    expect(foreign.body).toEqual({ error: { code: 'NOT_FOUND', message: 'workspace "default" not found' } });
    expect(missing.body).toEqual({ error: { code: 'NOT_FOUND', message: 'workspace "nowhere" not found' } });
    expect((await withSession(t, o, 'GET', '/api/v1/workspaces/elsewhere/flows')).status).toBe(200);
    // A role change takes effect on the next request.
    const ws = (await t.server.context.home.workspaces.byName('default'))!;
    await people(t).setMembership({ workspaceId: ws.id, userId: viewer.id, role: 'admin' }, 'test');
    expect((await withSession(t, v, 'GET', `${WS}/tokens`)).status).toBe(200);
    await people(t).removeMembership({ workspaceId: ws.id, userId: viewer.id }, 'test');
    expect((await withSession(t, v, 'GET', `${WS}/flows`)).status).toBe(404);
    // And /me says who is who.
    const me = await withSession(t, o, 'GET', '/api/v1/auth/me');
    expect(me.body).toMatchObject({
      kind: 'user',
      user: { id: outsider.id, email: outsider.email, operator: false },
      workspaces: [{ name: 'elsewhere', role: 'owner' }],
      csrfToken: o.csrf,
    });
  });

  it('records who changed what as user:<id>', async () => {
    const t = server();
    const editor = await makeUser(t, { role: 'editor' });
    const s = await session(t, editor.email);
    const put = await withSession(t, s, 'PUT', `${WS}/flows/authored`, {
      body: { version: 1, name: 'authored', steps: [{ id: 'v', input: { values: [{ a: 1 }] } }] },
    });
    expect(put.status, put.text).toBeLessThan(300);
    const versions = await t.server.context.store.db
      .selectFrom('flow_versions')
      .select('author')
      .where('flow_name', '=', 'authored')
      .execute();
    expect(versions.map((v) => v.author)).toEqual([`user:${editor.id}`]);
  });
});
