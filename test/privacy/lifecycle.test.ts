/**
 * Closing a workspace (issue 4 item 6): passive storage (unreadable, key sealed, triggers and
 * queued runs stopped), reopening, purge after the deadline, deletion at once — and
 * crypto-shredding, proven by restoring an old copy of the database and failing to decrypt.
 */
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { verifyAuditChain } from '../../src/privacy/retention-audit.js';
import {
  closeWorkspace,
  PARKED_FLOW,
  purgeClosedWorkspaces,
  purgeDeadline,
  reopenWorkspace,
  workspaceTables,
  WORKSPACE_CLOSED,
} from '../../src/privacy/workspace-lifecycle.js';
import { Keystore, keystorePath } from '../../src/security/keystore.js';
import { loadMasterKey, openVault, Vault } from '../../src/security/vault.js';
import { Store } from '../../src/store/index.js';
import type { RunRow } from '../../src/store/runs.js';
import { startTestServer, type StoreKind, type TestServer } from '../helpers/server.js';
import { call, describeStores, expectError, useServer } from '../server/api-support.js';
import { runRow } from '../store/support.js';

const api = (ws: string) => `/api/v1/workspaces/${ws}`;

let counter = 0;
const uniqueWs = (prefix: string) => `${prefix}-${++counter}-${randomBytes(3).toString('hex')}`;

/** A workspace with an owner token, a connection holding `secret`, and the given flows. */
async function workspaceWith(
  t: TestServer,
  name: string,
  secret: string,
  flows: Record<string, string> = {},
): Promise<{ owner: string; id: string }> {
  const owner = await t.token('owner', name);
  const put = await call(t, 'PUT', `${api(name)}/connections/warehouse`, {
    token: owner,
    body: {
      type: 'postgres',
      settings: { host: 'db.example.org', database: 'sales', user: 'etl' },
      secrets: { password: secret },
    },
  });
  expect(put.status, put.text).toBeLessThan(300);
  for (const [flow, yaml] of Object.entries(flows)) {
    const reply = await call(t, 'PUT', `${api(name)}/flows/${flow}`, {
      token: owner,
      body: yaml,
      headers: { 'content-type': 'application/yaml' },
    });
    expect(reply.status, reply.text).toBeLessThan(300);
  }
  const id = (await t.server.context.store.workspaces.byName(name))!.id;
  return { owner, id };
}

const flowYaml = (name: string, trigger?: string) =>
  [
    'version: 1',
    `name: ${name}`,
    ...(trigger ? [`trigger: ${trigger}`] : []),
    'steps:',
    '  - id: source',
    '    input: { values: [{ a: 1 }] }',
    '',
  ].join('\n');

/** Decrypt the stored secret of a connection through a vault. */
async function decryptWith(store: Store, vault: Vault, workspaceId: string): Promise<string> {
  const row = await store.connections.get(workspaceId, 'warehouse');
  if (!row) throw new Error('no connection row');
  const secrets = JSON.parse(row.secrets) as Record<string, string>;
  return vault.decrypt(workspaceId, 'warehouse', 'password', secrets.password!);
}

/** Every row, in every table, that holds the workspace id anywhere (as text). */
async function rowsMentioning(store: Store, id: string): Promise<Record<string, unknown[]>> {
  const tables =
    store.dialect === 'sqlite'
      ? await sql<{
          name: string;
        }>`select name from sqlite_master where type = 'table' and name not like 'sqlite%'`.execute(store.db)
      : await sql<{ name: string }>`select table_name as name from information_schema.tables
          where table_schema = current_schema() and table_type = 'BASE TABLE'`.execute(store.db);
  const found: Record<string, unknown[]> = {};
  for (const { name } of tables.rows) {
    const rows = await sql<Record<string, unknown>>`select * from ${sql.table(name)}`.execute(store.db);
    const hits = rows.rows.filter((row) => JSON.stringify(row).includes(id));
    if (hits.length > 0) found[name] = hits;
  }
  return found;
}

/** Wait (bounded) until `check` holds. */
async function eventually(check: () => Promise<boolean>, what: string, timeoutMs = 8000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

async function runsOf(store: Store, workspaceId: string): Promise<RunRow[]> {
  return store.db.selectFrom('runs').selectAll().where('workspace_id', '=', workspaceId).execute();
}

describe('crypto-shredding: a restored old copy of the database cannot be decrypted (SQLite)', () => {
  let t: TestServer;
  let backupDir: string;
  beforeAll(async () => {
    t = await startTestServer({ store: 'sqlite' });
    backupDir = mkdtempSync(join(tmpdir(), 'lethe-backup-'));
  });
  afterAll(async () => {
    await t?.close();
    rmSync(backupDir, { recursive: true, force: true });
  });

  for (const how of ['closed with mode "now"', 'purged after passive storage'] as const) {
    it(`${how}: the backup, with the same master key and keystore, fails to decrypt`, async () => {
      const store = t.server.context.store;
      const canary = `pw-${randomBytes(12).toString('hex')}`;
      const keptCanary = `pw-${randomBytes(12).toString('hex')}`;
      const closing = await workspaceWith(t, uniqueWs('shred'), canary);
      const kept = await workspaceWith(t, uniqueWs('kept'), keptCanary);
      const closingName = (await store.workspaces.byId(closing.id))!.name;

      // The backup: a consistent copy of the SQLite database file, taken while the server runs.
      const copyDir = join(backupDir, randomBytes(4).toString('hex'));
      mkdirSync(copyDir);
      await sql`vacuum into ${join(copyDir, 'lethe.db')}`.execute(store.db);

      // The same master key and the same keystore file the server has (a restore on the same host).
      const restore = async () => {
        const backup = await Store.open({ dataDir: copyDir });
        const vault = new Vault(
          backup.workspaceKeys,
          loadMasterKey(t.dataDir, {}),
          new Keystore(keystorePath(t.dataDir, {})),
        );
        return { backup, vault };
      };
      // Before closing, the copy decrypts: the test can pass, and the copy is a real one.
      {
        const { backup, vault } = await restore();
        expect(await decryptWith(backup, vault, closing.id)).toBe(canary);
        await backup.close();
      }

      if (how === 'closed with mode "now"') {
        const reply = await call(t, 'POST', `${api(closingName)}/close`, {
          token: closing.owner,
          body: { mode: 'now' },
        });
        expect(reply.status, reply.text).toBe(200);
        expect(reply.body).toMatchObject({ status: 'purged', mode: 'now', purgeAfter: null });
      } else {
        const closed = await call<{ purgeAfter: string }>(t, 'POST', `${api(closingName)}/close`, {
          token: closing.owner,
          body: { mode: 'passive' },
        });
        expect(closed.status, closed.text).toBe(200);
        const purged = await purgeClosedWorkspaces(t.server.context, Date.parse(closed.body.purgeAfter) + 1);
        expect(purged.map((p) => p.workspaceId)).toEqual([closing.id]);
      }

      const { backup, vault } = await restore();
      try {
        // The copy still holds the wrapped key and the ciphertext…
        expect(await backup.workspaceKeys.all(closing.id)).toHaveLength(1);
        expect(await backup.connections.get(closing.id, 'warehouse')).toBeDefined();
        // …but nothing decrypts them any more.
        await expect(decryptWith(backup, vault, closing.id)).rejects.toThrow(
          /closed and its key destroyed \(crypto-shredded\)/,
        );
        // The other workspace in the same copy still decrypts: only the closed one is shredded.
        expect(await decryptWith(backup, vault, kept.id)).toBe(keptCanary);
      } finally {
        await backup.close();
      }
      // The keystore keeps a tombstone, no secret.
      const file = JSON.parse(readFileSync(keystorePath(t.dataDir, {}), 'utf8')) as {
        workspaces: Record<string, Record<string, unknown>>;
      };
      expect(file.workspaces[closing.id]).toEqual({
        state: 'destroyed',
        createdAt: expect.any(Number),
        destroyedAt: expect.any(Number),
      });
      // And the live database has nothing of the workspace but its audit receipts.
      expect(Object.keys(await rowsMentioning(store, closing.id))).toEqual(['audit_log']);
    });
  }
});

/** The status a workspace's webhook answers a POST of `body` with. */
async function hookStatus(t: TestServer, workspace: string, path: string, body = '{}'): Promise<number> {
  const response = await fetch(`${t.url}/hooks/${workspace}/${path}`, {
    method: 'POST',
    body,
    headers: { 'content-type': 'application/json' },
  });
  await response.arrayBuffer();
  return response.status;
}

await describeStores('closing a workspace', (kind: StoreKind) => {
  const server = useServer(kind);

  it('passive: the API refuses it (410), webhooks and schedules stop, queued runs do not run, secrets are sealed; reopen undoes it', async () => {
    const t = server();
    const { store, vault } = t.server.context;
    const name = uniqueWs('passive');
    const secret = `pw-${randomBytes(8).toString('hex')}`;
    const { owner, id } = await workspaceWith(t, name, secret, {
      hook: flowYaml('hook', '{ webhook: { path: in } }'),
      tick: flowYaml('tick', '{ schedule: { cron: "* * * * * *" } }'),
      manual: flowYaml('manual'),
    });
    const admin = await t.token('admin', name);
    // Before closing: all of it works (so the checks below can fail).
    expect(await hookStatus(t, name, 'in')).toBe(202);
    await eventually(
      async () => (await runsOf(store, id)).some((run) => run.trigger === 'schedule'),
      'a scheduled run',
    );
    expect(await decryptWith(store, vault, id)).toBe(secret);
    // A queued run that waits (a retry with back-off): it must not run once the workspace is closed.
    const waiting = runRow(id, {
      flow_name: 'manual',
      attempt: 1,
      available_at: Date.now() + 3_600_000,
    });
    await store.commits.submit((trx) => store.runs.insert(trx, waiting, { params: {}, payload: undefined }));

    // Only the owner may close it.
    expectError(await call(t, 'POST', `${api(name)}/close`, { token: admin, body: {} }), 403, 'FORBIDDEN');
    const before = Date.now();
    const closed = await call<{
      status: string;
      purgeAfter: string;
      closedAt: string;
      flowsParked: number;
      runsDeadLettered: number;
    }>(t, 'POST', `${api(name)}/close`, { token: owner });
    expect(closed.status, closed.text).toBe(200);
    expect(closed.body).toMatchObject({
      status: 'sealed',
      mode: 'passive',
      flowsParked: 3,
      runsDeadLettered: 1,
    });
    const closedAt = Date.parse(closed.body.closedAt);
    expect(closedAt).toBeGreaterThanOrEqual(before);
    expect(Date.parse(closed.body.purgeAfter)).toBe(purgeDeadline(closedAt));
    // About six months.
    expect(Date.parse(closed.body.purgeAfter) - closedAt).toBeGreaterThan(180 * 86_400_000);
    expect(Date.parse(closed.body.purgeAfter) - closedAt).toBeLessThan(185 * 86_400_000);

    // Every route refuses it, whatever the role; a foreign token still gets 404.
    for (const path of [
      'flows',
      'flows/manual',
      'runs',
      'dlq',
      'connections',
      'connections/warehouse',
      'tokens',
      'inventory',
    ]) {
      const reply = await call(t, 'GET', `${api(name)}/${path}`, { token: owner });
      expect(expectError(reply, 410, 'WORKSPACE_CLOSED').message).toMatch(
        /is closed: its data is in passive storage until/,
      );
      expect(reply.text).not.toContain(secret);
    }
    expectError(
      await call(t, 'POST', `${api(name)}/flows/manual/runs`, { token: owner, body: {} }),
      410,
      'WORKSPACE_CLOSED',
    );
    expectError(await call(t, 'POST', `${api(name)}/close`, { token: owner, body: { mode: 'now' } }), 410);
    expectError(
      await call(t, 'GET', `${api(name)}/flows`, { token: await t.token('owner', uniqueWs('other')) }),
      404,
    );

    // Webhooks stop (within the hook target cache's 2 s).
    await eventually(async () => (await hookStatus(t, name, 'in')) === 404, 'the webhook to refuse');
    // Schedules stop: after any tick in flight settles, no new run for a while.
    await new Promise((resolve) => setTimeout(resolve, 1200));
    const settled = (await runsOf(store, id)).length;
    await new Promise((resolve) => setTimeout(resolve, 2500));
    expect((await runsOf(store, id)).length).toBe(settled);
    // The queued run went to the dead-letter queue, marked as such, and never ran.
    expect(await store.runs.get(waiting.id)).toMatchObject({
      status: 'incomplete',
      error_code: WORKSPACE_CLOSED,
      started_at: null,
    });
    expect((await store.flows.get(id, 'tick'))!.enabled).toBe(PARKED_FLOW);
    // The key is sealed: the secret cannot be decrypted, by this vault or a fresh one.
    await expect(decryptWith(store, vault, id)).rejects.toThrow(/closed \(in passive storage\)/);
    await expect(decryptWith(store, openVault(store.workspaceKeys, t.dataDir, {}), id)).rejects.toThrow(
      /passive storage/,
    );
    // The data is still there (passive storage), unread.
    expect(await store.connections.get(id, 'warehouse')).toBeDefined();

    // Reopening (an operator's act) undoes it.
    const reopened = await reopenWorkspace(t.server.context, name, { actor: 'cli' });
    expect(reopened).toMatchObject({ flowsResumed: 3, runsInDlq: 1 });
    expect((await call(t, 'GET', `${api(name)}/flows`, { token: owner })).status).toBe(200);
    expect(await decryptWith(store, vault, id)).toBe(secret);
    await eventually(async () => (await hookStatus(t, name, 'in')) === 202, 'the webhook to answer again');
    await eventually(async () => (await runsOf(store, id)).length > settled + 1, 'schedules to fire again');
    const dlq = await call<{ items: { id: string }[] }>(t, 'GET', `${api(name)}/dlq`, { token: owner });
    expect(dlq.body.items.map((item) => item.id)).toContain(waiting.id);
    // Closing again works, and the audit log has the story, ids and counts only.
    const entries = await store.db
      .selectFrom('audit_log')
      .selectAll()
      .where('workspace_id', '=', id)
      .orderBy('seq')
      .execute();
    expect(entries.map((entry) => entry.action).filter((action) => action.startsWith('workspace.'))).toEqual([
      'workspace.closed',
      'workspace.reopened',
    ]);
    expect(JSON.stringify(entries)).not.toMatch(new RegExp(`${name}|${secret}|warehouse`));
    expect(await verifyAuditChain(store.db)).toMatchObject({ ok: true });
    await closeWorkspace(t.server.context, name, { mode: 'passive', actor: 'cli' });
    await expect(closeWorkspace(t.server.context, name, { mode: 'passive', actor: 'cli' })).rejects.toThrow(
      /already closed/,
    );
  });

  it('purges a closed workspace once its passive storage has ended, and not before; no row is left', async () => {
    const t = server();
    const { store, vault, runs } = t.server.context;
    const name = uniqueWs('purge');
    const { owner, id } = await workspaceWith(t, name, 'hunter2', {
      manual: flowYaml('manual'),
      hook: flowYaml('hook', '{ webhook: {} }'),
    });
    // Records in many classes: runs with details, a webhook with its gateway log, a counter, files.
    const flow = (await store.flows.get(id, 'manual'))!;
    const workspace = (await store.workspaces.byId(id))!;
    const created = await runs.create({ workspace, flow, trigger: 'manual' });
    await t.server.context.runner.waitFor(created.run.id, 10_000);
    expect(await hookStatus(t, name, 'hook', '{"x":1}')).toBe(202);
    await store.counters.reserve({ workspace: id, counter: 'c', period: '' }, 3);
    const files = t.server.context.runner.filesDir(name);
    mkdirSync(files, { recursive: true });
    writeFileSync(join(files, 'data.csv'), 'a\n1\n');
    await eventually(
      async () =>
        (await runsOf(store, id)).every((run) => run.status === 'succeeded') &&
        (await runsOf(store, id)).length === 2,
      'runs to finish',
    );
    const before = await rowsMentioning(store, id);
    for (const table of [
      'workspaces',
      'workspace_keys',
      'flows',
      'flow_versions',
      'connections',
      'api_tokens',
      'runs',
      'gateway_log',
    ])
      expect(before[table], table).toBeDefined();

    const closed = await closeWorkspace(t.server.context, name, { mode: 'passive', actor: 'cli' });
    // Not yet due: nothing happens (but the key stays sealed).
    // (Other tests' closed workspaces may be due: only this one's fate is checked.)
    const mine = async (now: number) =>
      (await purgeClosedWorkspaces(t.server.context, now)).filter((p) => p.workspaceId === id);
    expect(await mine(closed.purgeAfter - 1)).toEqual([]);
    expect((await store.workspaces.byId(id))?.status).toBe('sealed');
    // A close cut short between the database and the keystore is sealed by the next pass.
    await vault.reopenWorkspace(id);
    await purgeClosedWorkspaces(t.server.context, closed.purgeAfter - 1);
    expect(vault.keyState(id)).toBe('sealed');
    // Past the deadline it cannot be reopened, and the purge takes everything.
    await expect(
      reopenWorkspace(t.server.context, name, { actor: 'cli', now: closed.purgeAfter }),
    ).rejects.toThrow(/past its purge date/);
    const [purged] = await mine(closed.purgeAfter);
    expect(purged).toMatchObject({ workspaceId: id, workspace: name, keyWas: 'sealed', filesRemoved: true });
    const left = await rowsMentioning(store, id);
    expect(Object.keys(left)).toEqual(['audit_log']);
    // Every table with a workspace_id column was visited, and each deletion is counted.
    for (const table of Object.keys(before).filter((table) => table !== 'audit_log'))
      expect(purged!.deleted[table], table).toBe(before[table]!.length);
    expect(existsSync(files)).toBe(false);
    expect(vault.keyState(id)).toBe('destroyed');
    expect((await call(t, 'GET', `${api(name)}/flows`, { token: owner })).status).toBe(401); // its tokens are gone
    // The receipts: one per data class, with counts; the chain verifies.
    const entries = await store.db
      .selectFrom('audit_log')
      .selectAll()
      .where('workspace_id', '=', id)
      .orderBy('seq')
      .execute();
    const purges = entries.filter((entry) => entry.action === 'workspace.purged');
    expect(Object.fromEntries(purges.map((entry) => [entry.data_class, Number(entry.count)]))).toEqual(
      purged!.byClass,
    );
    expect(entries.map((entry) => entry.action)).toContain('workspace.key_destroyed');
    expect(
      purges.every((entry) => entry.actor === 'retention' && entry.reason === 'passive storage ended'),
    ).toBe(true);
    expect(await verifyAuditChain(store.db)).toMatchObject({ ok: true });
    // Nothing else is due.
    expect(await mine(closed.purgeAfter + 1)).toEqual([]);
  });

  it("the server's own retention pass purges a closed workspace whose passive storage has ended", async () => {
    const t = server();
    const { store, vault, retention } = t.server.context;
    const name = uniqueWs('due');
    const { id } = await workspaceWith(t, name, 'hunter2', { manual: flowYaml('manual') });
    await closeWorkspace(t.server.context, name, { mode: 'passive', actor: 'cli' });
    await retention!.runOnce();
    expect((await store.workspaces.byId(id))?.status).toBe('sealed');
    // The deadline passes (moved into the past rather than waiting six months).
    await store.db
      .updateTable('workspaces')
      .set({ purge_after: Date.now() - 1 })
      .where('id', '=', id)
      .execute();
    await retention!.runOnce();
    expect(await store.workspaces.byId(id)).toBeUndefined();
    expect(vault.keyState(id)).toBe('destroyed');
    expect(Object.keys(await rowsMentioning(store, id))).toEqual(['audit_log']);
  });

  it('knows every table that has a workspace_id column', async () => {
    const tables = await workspaceTables(server().server.context.store);
    for (const table of [
      'api_tokens',
      'connections',
      'flows',
      'gateway_log',
      'runs',
      'run_inputs',
      'run_details',
      'workspace_keys',
      'erasure_requests',
      'audit_log',
    ])
      expect(tables).toContain(table);
    expect(tables).not.toContain('workspaces');
  });

  it('now: refuses other roles, deletes at once, and the token that did it is gone too', async () => {
    const t = server();
    const name = uniqueWs('now');
    const { owner, id } = await workspaceWith(t, name, 'hunter2', { manual: flowYaml('manual') });
    for (const role of ['viewer', 'editor', 'admin'] as const)
      expectError(
        await call(t, 'POST', `${api(name)}/close`, {
          token: await t.token(role, name),
          body: { mode: 'now' },
        }),
        403,
      );
    expectError(await call(t, 'POST', `${api(name)}/close`, { token: owner, body: { mode: 'later' } }), 400);
    const reply = await call<{ deleted: Record<string, number> }>(t, 'POST', `${api(name)}/close`, {
      token: owner,
      body: { mode: 'now' },
    });
    expect(reply.status, reply.text).toBe(200);
    expect(reply.body.deleted).toMatchObject({ config: expect.any(Number), credential: expect.any(Number) });
    expect(await t.server.context.store.workspaces.byId(id)).toBeUndefined();
    expect(Object.keys(await rowsMentioning(t.server.context.store, id))).toEqual(['audit_log']);
    expectError(await call(t, 'GET', `${api(name)}/flows`, { token: owner }), 401);
  });
});
