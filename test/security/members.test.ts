/**
 * The members API: who may list, change and remove members, and with which roles. Nobody
 * grants or changes a role above their own (so only an owner makes or unmakes owners), a
 * workspace keeps at least one owner, every change is audited by id, and a change takes
 * effect on the member's very next request.
 */
import { expect, it } from 'vitest';
import type { Role } from '../../src/security/permissions.js';
import type { TestServer } from '../helpers/server.js';
import { call, describeStores, expectError, useServer, WS } from '../server/api-support.js';
import { auditEntries, makeUser, people, session, webConfig, withSession } from './people-support.js';

interface Member {
  userId: string;
  email: string;
  role: string;
  disabled: boolean;
  passwordSet: boolean;
}

async function members(t: TestServer, workspace = 'default'): Promise<Member[]> {
  const reply = await call<{ items: Member[] }>(t, 'GET', `/api/v1/workspaces/${workspace}/members`, {
    token: await t.token('admin', workspace),
  });
  expect(reply.status, reply.text).toBe(200);
  return reply.body.items;
}

async function setRole(
  t: TestServer,
  userId: string,
  role: string,
  caller: Role = 'admin',
  workspace = 'default',
) {
  return call(t, 'PUT', `/api/v1/workspaces/${workspace}/members/${userId}`, {
    body: { role },
    token: await t.token(caller, workspace),
  });
}

async function remove(t: TestServer, userId: string, caller: Role = 'admin', workspace = 'default') {
  return call(t, 'DELETE', `/api/v1/workspaces/${workspace}/members/${userId}`, {
    token: await t.token(caller, workspace),
  });
}

async function roleOf(t: TestServer, userId: string, workspace = 'default') {
  const ws = await t.server.context.home.workspaces.ensure(workspace);
  return people(t).roleIn(ws.id, userId);
}

let workspaces = 0;
/** A workspace no other test uses (owners are counted per workspace). */
function freshWorkspace(): string {
  workspaces++;
  return `team-${workspaces}-${Math.random().toString(36).slice(2, 8)}`;
}

await describeStores('workspace members', (store) => {
  const server = useServer(store, { config: { web: webConfig({ LETHE_RATE_LIMIT_AUTH: '0' }) } });

  it('lists members with their roles for an admin (never a password hash); not for an editor', async () => {
    const t = server();
    const ws = freshWorkspace();
    const owner = await makeUser(t, { role: 'owner', workspace: ws });
    const viewer = await makeUser(t, { role: 'viewer', workspace: ws });
    await makeUser(t, { role: 'viewer', workspace: freshWorkspace() });
    const listed = await members(t, ws);
    expect(listed.map((m) => [m.userId, m.email, m.role]).sort()).toEqual(
      [
        [owner.id, owner.email, 'owner'],
        [viewer.id, viewer.email, 'viewer'],
      ].sort(),
    );
    expect(listed[0]).toMatchObject({ disabled: false, passwordSet: true });
    const raw = await call(t, 'GET', `/api/v1/workspaces/${ws}/members`, {
      token: await t.token('admin', ws),
    });
    expect(raw.text).not.toMatch(/argon2|pbkdf2|password_hash/);
    expectError(
      await call(t, 'GET', `/api/v1/workspaces/${ws}/members`, { token: await t.token('editor', ws) }),
      403,
      'FORBIDDEN',
    );
  });

  it('lets an admin change roles up to admin, never to owner nor an owner’s', async () => {
    const t = server();
    const ws = freshWorkspace();
    const owner = await makeUser(t, { role: 'owner', workspace: ws });
    const editor = await makeUser(t, { role: 'editor', workspace: ws });
    const changed = await setRole(t, editor.id, 'admin', 'admin', ws);
    expect(changed.status, changed.text).toBe(200);
    expect(changed.body).toEqual({ userId: editor.id, role: 'admin', previous: 'editor' });
    expect((await setRole(t, editor.id, 'viewer', 'admin', ws)).status).toBe(200);
    expect(await roleOf(t, editor.id, ws)).toBe('viewer');

    expectError(await setRole(t, editor.id, 'owner', 'admin', ws), 403, 'FORBIDDEN');
    expectError(await setRole(t, owner.id, 'viewer', 'admin', ws), 403, 'FORBIDDEN');
    expectError(await remove(t, owner.id, 'admin', ws), 403, 'FORBIDDEN');
    expect(await roleOf(t, editor.id, ws)).toBe('viewer');
    expect(await roleOf(t, owner.id, ws)).toBe('owner');
    // An editor changes nothing; an unknown role or member is refused.
    expectError(await setRole(t, editor.id, 'viewer', 'editor', ws), 403, 'FORBIDDEN');
    expectError(await setRole(t, editor.id, 'superuser', 'admin', ws), 400);
    expectError(await setRole(t, 'nobody', 'viewer', 'admin', ws), 404, 'NOT_FOUND');
    expectError(await remove(t, 'nobody', 'admin', ws), 404, 'NOT_FOUND');
    // Nor may a member of another workspace be made a member through this one.
    const outsider = await makeUser(t, { role: 'viewer', workspace: freshWorkspace() });
    expectError(await setRole(t, outsider.id, 'viewer', 'admin', ws), 404, 'NOT_FOUND');
    expect(await roleOf(t, outsider.id, ws)).toBeUndefined();
  });

  it('lets an owner make, change and remove owners, but never the last one', async () => {
    const t = server();
    const ws = freshWorkspace();
    const first = await makeUser(t, { role: 'owner', workspace: ws });
    const second = await makeUser(t, { role: 'admin', workspace: ws });
    // The only owner can neither be demoted nor removed.
    expectError(await setRole(t, first.id, 'admin', 'owner', ws), 409, 'CONFLICT');
    const last = await remove(t, first.id, 'owner', ws);
    expect(expectError(last, 409, 'CONFLICT').message).toMatch(/no owner/);
    expect(await roleOf(t, first.id, ws)).toBe('owner');

    expect((await setRole(t, second.id, 'owner', 'owner', ws)).status).toBe(200);
    expect((await setRole(t, first.id, 'admin', 'owner', ws)).status).toBe(200);
    expectError(await setRole(t, second.id, 'editor', 'owner', ws), 409, 'CONFLICT');
    expectError(await remove(t, second.id, 'owner', ws), 409, 'CONFLICT');
    expect((await setRole(t, first.id, 'owner', 'owner', ws)).status).toBe(200);
    expect((await remove(t, second.id, 'owner', ws)).status).toBe(204);
    expect((await members(t, ws)).map((m) => [m.userId, m.role])).toEqual([[first.id, 'owner']]);
  });

  it('keeps an owner when two owners are demoted at the same time', async () => {
    const t = server();
    // A few rounds: the race is lost only now and then when unguarded.
    for (let round = 0; round < 4; round++) {
      const ws = freshWorkspace();
      const a = await makeUser(t, { role: 'owner', workspace: ws });
      const b = await makeUser(t, { role: 'owner', workspace: ws });
      const replies = await Promise.all([
        setRole(t, a.id, 'admin', 'owner', ws),
        remove(t, b.id, 'owner', ws),
      ]);
      // Either may win; the other is refused.
      expect(replies.map((r) => r.status).filter((status) => status !== 409)).toHaveLength(1);
      expect((await members(t, ws)).filter((m) => m.role === 'owner')).toHaveLength(1);
    }
  });

  it('audits additions, role changes and removals by id only', async () => {
    const t = server();
    const ws = freshWorkspace();
    await makeUser(t, { role: 'owner', workspace: ws });
    const member = await makeUser(t, { role: 'viewer', workspace: ws });
    await setRole(t, member.id, 'editor', 'admin', ws);
    await remove(t, member.id, 'admin', ws);
    const workspace = (await t.server.context.home.workspaces.byName(ws))!;
    const entries = [
      ...(await auditEntries(t, 'membership.added')),
      ...(await auditEntries(t, 'membership.role_changed')),
      ...(await auditEntries(t, 'membership.removed')),
    ].filter((entry) => entry.workspace_id === workspace.id && entry.details.includes(member.id));
    expect(entries.map((e) => [e.action, JSON.parse(e.details)])).toEqual([
      ['membership.added', { userId: member.id, role: 'viewer' }],
      ['membership.role_changed', { userId: member.id, from: 'viewer', to: 'editor' }],
      ['membership.removed', { userId: member.id, role: 'editor' }],
    ]);
    for (const entry of entries) expect(JSON.stringify(entry)).not.toContain(member.email);
    // The API's changes name the token that made them.
    expect(entries[1]!.actor).toMatch(/^token:/);
  });

  it('takes effect at once: a demoted member loses write, a removed member loses the workspace', async () => {
    const t = server();
    const editor = await makeUser(t, { role: 'editor' });
    const s = await session(t, editor.email);
    const flow = { version: 1, name: 'members-flow', steps: [{ id: 'v', input: { values: [{ a: 1 }] } }] };
    expect((await withSession(t, s, 'PUT', `${WS}/flows/members-flow`, { body: flow })).status).toBeLessThan(
      300,
    );
    expect((await setRole(t, editor.id, 'viewer')).status).toBe(200);
    const demoted = await withSession(t, s, 'PUT', `${WS}/flows/members-flow`, { body: flow });
    expect(demoted.status).toBe(403);
    expect(demoted.body).toMatchObject({ error: { code: 'FORBIDDEN' } });
    expect((await withSession(t, s, 'GET', `${WS}/flows`)).status).toBe(200);
    expect((await remove(t, editor.id)).status).toBe(204);
    const gone = await withSession(t, s, 'GET', `${WS}/flows`);
    expect(gone.status).toBe(404);
    expect((await withSession(t, s, 'GET', '/api/v1/auth/me')).body).toMatchObject({ workspaces: [] });
  });

  it('lets a signed-in admin manage members with the same rules', async () => {
    const t = server();
    const admin = await makeUser(t, { role: 'admin' });
    const viewer = await makeUser(t, { role: 'viewer' });
    const owner = await makeUser(t, { role: 'owner' });
    const s = await session(t, admin.email);
    const up = await withSession(t, s, 'PUT', `${WS}/members/${viewer.id}`, { body: { role: 'editor' } });
    expect(up.status, up.text).toBe(200);
    const grant = await withSession(t, s, 'PUT', `${WS}/members/${viewer.id}`, { body: { role: 'owner' } });
    expect(grant.status).toBe(403);
    expect((await withSession(t, s, 'DELETE', `${WS}/members/${owner.id}`)).status).toBe(403);
    expect((await withSession(t, s, 'DELETE', `${WS}/members/${viewer.id}`)).status).toBe(204);
    const entry = (await auditEntries(t, 'membership.removed')).find((e) => e.details.includes(viewer.id))!;
    expect(entry.actor).toBe(`user:${admin.id}`);
  });
});
