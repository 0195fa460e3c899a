/**
 * Audit events of the API (SPEC §7, security issue item 9): making and revoking tokens (API and
 * CLI), creating, changing, reading and deleting connections, creating, changing and deleting
 * flows, and data reveals (a run's step samples, stored webhook bodies). Each leaves exactly
 * one entry with the action, the actor, the workspace and a UTC timestamp — ids only, never a
 * name, a secret or a payload — and the chain still verifies.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { expect, it, vi } from 'vitest';
import { openDeployment } from '../../src/cli/deployment.js';
import { tokenCreateCommand } from '../../src/cli/server-commands.js';
import { verifyToken } from '../../src/security/tokens.js';
import { verifyAuditChain } from '../../src/privacy/retention-audit.js';
import { nameRef } from '../../src/server/plugins/audit-events.js';
import type { AuditLogTable } from '../../src/store/schema.js';
import type { TestServer } from '../helpers/server.js';
import {
  auditEntriesAfter,
  call,
  describeStores,
  lastAuditSeq,
  putFlow,
  useServer,
  waitForRun,
  WS,
} from '../server/api-support.js';

const SECRET_VALUE = 'hunter2-very-secret-value';
const PAYLOAD = 'payload-marker-5521';

/** A flow whose rows carry a marker, so a leak of a sample into the audit log would show. */
function flowText(name: string, extra = ''): string {
  return `version: 1
name: ${name}
steps:
  - id: values
    input: { values: [{ a: "${PAYLOAD}" }] }${extra}
`;
}

/** A token's id, as the audit log names its actor (`token:<id>`). */
async function actorOfToken(t: TestServer, token: string): Promise<string> {
  const principal = await verifyToken(t.server.context.home.tokens, token, Date.now());
  if (principal?.kind !== 'token') throw new Error('not a token');
  return `token:${principal.tokenId}`;
}

async function workspaceId(t: TestServer, name = 'default'): Promise<string> {
  return (await t.server.context.home.workspaces.byName(name))!.id;
}

/**
 * Do `work`, then expect exactly one new entry, with `action`, by `actor`, in the default
 * workspace, stamped between before and after, and none of `forbidden` anywhere in it.
 */
async function expectOneEntry(
  t: TestServer,
  action: string,
  actor: string,
  forbidden: string[],
  work: () => Promise<void>,
): Promise<AuditLogTable & { parsed: Record<string, unknown> }> {
  const seq = await lastAuditSeq(t);
  const before = Date.now();
  await work();
  const after = Date.now();
  const entries = await auditEntriesAfter(t, seq);
  expect(
    entries.map((entry) => entry.action),
    action,
  ).toEqual([action]);
  const entry = entries[0]!;
  expect(entry.actor).toBe(actor);
  expect(entry.workspace_id).toBe(await workspaceId(t));
  // `at` is epoch milliseconds: UTC by construction.
  expect(Number(entry.at)).toBeGreaterThanOrEqual(before);
  expect(Number(entry.at)).toBeLessThanOrEqual(after);
  const text = JSON.stringify(entry);
  for (const word of forbidden) expect(text, `${action} entry mentions "${word}"`).not.toContain(word);
  return { ...entry, parsed: JSON.parse(entry.details) as Record<string, unknown> };
}

await describeStores('audit events of the API', (store) => {
  const server = useServer(store);

  it('token made and revoked: one entry each, token id only (not its name or value)', async () => {
    const t = server();
    const admin = await t.token('admin');
    const actor = await actorOfToken(t, admin);
    let created = { id: '', token: '' };
    const made = await expectOneEntry(t, 'token.created', actor, ['deploy-bot-label'], async () => {
      const reply = await call<{ id: string; token: string }>(t, 'POST', `${WS}/tokens`, {
        token: admin,
        body: { role: 'viewer', name: 'deploy-bot-label' },
      });
      expect(reply.status, reply.text).toBe(201);
      created = reply.body;
    });
    expect(made.parsed).toEqual({ tokenId: created.id, role: 'viewer', expires: false });
    expect(JSON.stringify(made)).not.toContain(created.token);
    const revoked = await expectOneEntry(t, 'token.revoked', actor, ['deploy-bot-label'], async () => {
      expect((await call(t, 'DELETE', `${WS}/tokens/${created.id}`, { token: admin })).status).toBe(204);
    });
    expect(revoked.parsed).toEqual({ tokenId: created.id, alreadyRevoked: false });
    // A refused request leaves nothing.
    const seq = await lastAuditSeq(t);
    expect((await call(t, 'DELETE', `${WS}/tokens/nope`, { token: admin })).status).toBe(404);
    expect(await auditEntriesAfter(t, seq)).toEqual([]);
  });

  it('connection created, changed, read and deleted: one entry each, no name, no secret', async () => {
    const t = server();
    const admin = await t.token('admin');
    const actor = await actorOfToken(t, admin);
    const ws = await workspaceId(t);
    const name = 'warehouse-conn-audit';
    const ref = nameRef(ws, 'connection', name);
    const url = `${WS}/connections/${name}`;
    const body = {
      type: 'postgres',
      settings: { host: 'db.example.test', database: 'sales', user: 'lethe' },
      secrets: { password: SECRET_VALUE },
    };
    const forbidden = [name, SECRET_VALUE, 'db.example.test'];
    const created = await expectOneEntry(t, 'connection.created', actor, forbidden, async () => {
      const reply = await call(t, 'PUT', url, { token: admin, body });
      expect(reply.status, reply.text).toBe(201);
    });
    expect(created.parsed).toEqual({ connection: ref, secretsReplaced: true });
    const changed = await expectOneEntry(t, 'connection.changed', actor, forbidden, async () => {
      const reply = await call(t, 'PUT', url, { token: admin, body: { ...body, secrets: undefined } });
      expect(reply.status, reply.text).toBe(200);
    });
    expect(changed.parsed).toEqual({ connection: ref, secretsReplaced: false });
    const viewer = await t.token('viewer');
    const read = await expectOneEntry(
      t,
      'connection.read',
      await actorOfToken(t, viewer),
      forbidden,
      async () => {
        expect((await call(t, 'GET', url, { token: viewer })).status).toBe(200);
      },
    );
    expect(read.parsed).toEqual({ connection: ref });
    const deleted = await expectOneEntry(t, 'connection.deleted', actor, forbidden, async () => {
      expect((await call(t, 'DELETE', url, { token: admin })).status).toBe(204);
    });
    expect(deleted.parsed).toEqual({ connection: ref });
  });

  it('flow created, changed and deleted: one entry each (none for an unchanged text), no name, no text', async () => {
    const t = server();
    const editor = await t.token('editor');
    const actor = await actorOfToken(t, editor);
    const ws = await workspaceId(t);
    const name = 'audited-flow-xyz';
    const ref = nameRef(ws, 'flow', name);
    const forbidden = [name, PAYLOAD];
    const created = await expectOneEntry(t, 'flow.created', actor, forbidden, () =>
      putFlow(t, name, flowText(name), editor),
    );
    expect(created.parsed).toEqual({ flow: ref, version: 1 });
    const changed = await expectOneEntry(t, 'flow.changed', actor, forbidden, () =>
      putFlow(t, name, flowText(name, '\n  - id: out\n    output: { from: values, respond: true }'), editor),
    );
    expect(changed.parsed).toEqual({ flow: ref, version: 2 });
    const seq = await lastAuditSeq(t);
    await putFlow(
      t,
      name,
      flowText(name, '\n  - id: out\n    output: { from: values, respond: true }'),
      editor,
    );
    expect(await auditEntriesAfter(t, seq)).toEqual([]);
    const deleted = await expectOneEntry(t, 'flow.deleted', actor, forbidden, async () => {
      expect((await call(t, 'DELETE', `${WS}/flows/${name}`, { token: editor })).status).toBe(204);
    });
    // With what went along, counted: its two versions.
    expect(deleted.parsed).toEqual({ flow: ref, 'removed.flow_versions': 2 });
  });

  it('a change whose audit entry cannot be written does not happen (flows, connections, tokens)', async () => {
    const t = server();
    const admin = await t.token('admin');
    const ws = await workspaceId(t);
    await putFlow(t, 'kept-flow', flowText('kept-flow'));
    const db = t.server.context.home.db;
    const connection = { type: 'postgres', settings: { host: 'db.example.test', database: 'x', user: 'u' } };
    expect(
      (await call(t, 'PUT', `${WS}/connections/kept-conn`, { token: admin, body: connection })).status,
    ).toBe(201);
    const { id: tokenId } = (
      await call<{ id: string }>(t, 'POST', `${WS}/tokens`, {
        token: admin,
        body: { role: 'viewer', name: 'k' },
      })
    ).body;
    const counts = async () => ({
      flows: (await db.selectFrom('flows').select('name').where('workspace_id', '=', ws).execute()).map(
        (row) => row.name,
      ),
      versions: (
        await db.selectFrom('flow_versions').select('version').where('workspace_id', '=', ws).execute()
      ).length,
      connections: (
        await db.selectFrom('connections').select('name').where('workspace_id', '=', ws).execute()
      ).map((row) => row.name),
      tokens: (
        await db
          .selectFrom('api_tokens')
          .select(['id', 'revoked_at'])
          .where('workspace_id', '=', ws)
          .execute()
      ).map((row) => `${row.id}:${row.revoked_at === null ? 'live' : 'revoked'}`),
    });
    const before = await counts();
    const seq = await lastAuditSeq(t);
    // The audit log refuses every entry (a full disk, a lost connection: any failure to append).
    if (store === 'sqlite') {
      await sql`create trigger audit_down before insert on audit_log
        begin select raise(abort, 'audit log unavailable'); end`.execute(db);
    } else {
      await sql`create function audit_down() returns trigger language plpgsql
        as $$ begin raise exception 'audit log unavailable'; end $$`.execute(db);
      await sql`create trigger audit_down before insert on audit_log
        for each row execute function audit_down()`.execute(db);
    }
    try {
      const refused = [
        await call(t, 'PUT', `${WS}/flows/new-flow`, {
          token: admin,
          body: flowText('new-flow'),
          headers: { 'content-type': 'application/yaml' },
        }),
        await call(t, 'PUT', `${WS}/flows/kept-flow`, {
          token: admin,
          body: flowText('kept-flow', '\n  - id: out\n    output: { from: values, respond: true }'),
          headers: { 'content-type': 'application/yaml' },
        }),
        await call(t, 'DELETE', `${WS}/flows/kept-flow`, { token: admin }),
        await call(t, 'PUT', `${WS}/connections/new-conn`, { token: admin, body: connection }),
        await call(t, 'PUT', `${WS}/connections/kept-conn`, {
          token: admin,
          body: { ...connection, settings: { ...connection.settings, database: 'changed' } },
        }),
        await call(t, 'DELETE', `${WS}/connections/kept-conn`, { token: admin }),
        await call(t, 'POST', `${WS}/tokens`, { token: admin, body: { role: 'viewer', name: 'n' } }),
        await call(t, 'DELETE', `${WS}/tokens/${tokenId}`, { token: admin }),
      ];
      expect(refused.map((reply) => reply.status)).toEqual(Array(refused.length).fill(500));
    } finally {
      await sql`drop trigger audit_down${sql.raw(store === 'sqlite' ? '' : ' on audit_log')}`.execute(db);
      if (store === 'postgres') await sql`drop function audit_down()`.execute(db);
    }
    // Nothing changed, and nothing was recorded.
    expect(await counts()).toEqual(before);
    expect(await auditEntriesAfter(t, seq)).toEqual([]);
    const kept = await db
      .selectFrom('connections')
      .select('settings')
      .where('workspace_id', '=', ws)
      .where('name', '=', 'kept-conn')
      .executeTakeFirstOrThrow();
    expect(JSON.parse(kept.settings)).toMatchObject({ database: 'x' });
    // With the log back, the same change goes through, with its entry.
    await expectOneEntry(t, 'flow.created', await actorOfToken(t, admin), [], () =>
      putFlow(t, 'new-flow', flowText('new-flow'), admin),
    );
  });

  it('concurrent changes of one flow: every version is kept, each with its one entry, and the chain verifies', async () => {
    const t = server();
    const editor = await t.token('editor');
    const ws = await workspaceId(t);
    const seq = await lastAuditSeq(t);
    const texts = Array.from({ length: 8 }, (_, i) =>
      flowText('raced-flow', `\n  - id: out${i}\n    output: { from: values, respond: true }`),
    );
    await Promise.all(texts.map((text) => putFlow(t, 'raced-flow', text, editor)));
    const versions = await t.server.context.home.db
      .selectFrom('flow_versions')
      .select('version')
      .where('workspace_id', '=', ws)
      .where('flow_name', '=', 'raced-flow')
      .orderBy('version')
      .execute();
    expect(versions.map((row) => Number(row.version))).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    const entries = await auditEntriesAfter(t, seq);
    expect(entries.map((entry) => entry.action).sort()).toEqual([
      'flow.changed',
      'flow.changed',
      'flow.changed',
      'flow.changed',
      'flow.changed',
      'flow.changed',
      'flow.changed',
      'flow.created',
    ]);
    expect(
      entries
        .map((entry) => (JSON.parse(entry.details) as { version: number }).version)
        .sort((a, b) => a - b),
    ).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(await verifyAuditChain(t.server.context.home.db)).toMatchObject({ ok: true });
  });

  it('reading a run’s step samples is a data reveal: one entry with the run id, no values', async () => {
    const t = server();
    const viewer = await t.token('viewer');
    await putFlow(t, 'reveal', flowText('reveal'));
    const started = await call<{ runId: string }>(t, 'POST', `${WS}/flows/reveal/runs`, { body: {} });
    expect(started.status, started.text).toBe(202);
    const detail = await waitForRun(t, started.body.runId);
    expect(detail.details, 'a standard run keeps its details').not.toBeNull();
    const entry = await expectOneEntry(
      t,
      'run.data.read',
      await actorOfToken(t, viewer),
      [PAYLOAD],
      async () => {
        const reply = await call(t, 'GET', `${WS}/runs/${started.body.runId}`, { token: viewer });
        expect(reply.status).toBe(200);
        expect(reply.text).toContain(PAYLOAD);
      },
    );
    expect(entry.parsed).toEqual({ runId: started.body.runId });
    // The activity stream shows no values: no reveal, no entry.
    const seq = await lastAuditSeq(t);
    expect((await call(t, 'GET', `${WS}/runs`, { token: viewer })).status).toBe(200);
    expect(await auditEntriesAfter(t, seq)).toEqual([]);
  });

  it('reading stored webhook bodies is a data reveal: one entry with their count, no payload', async () => {
    const t = server();
    const viewer = await t.token('viewer');
    await putFlow(
      t,
      'hooked',
      `version: 1
name: hooked
trigger: { webhook: { path: hooked, respond: accepted } }
steps:
  - id: in
    input: { trigger: true }
`,
    );
    const hook = await fetch(`${t.url}/hooks/default/hooked`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ note: PAYLOAD }),
    });
    expect(hook.status, await hook.text()).toBeLessThan(300);
    const entry = await expectOneEntry(
      t,
      'gateway.bodies.read',
      await actorOfToken(t, viewer),
      [PAYLOAD],
      async () => {
        const reply = await call(t, 'GET', `${WS}/gateway-log`, { token: viewer });
        expect(reply.status).toBe(200);
        expect(reply.text).toContain(PAYLOAD);
      },
    );
    expect(Number(entry.count)).toBe(1);
    expect(entry.parsed).toEqual({});
  });

  it('the chain still verifies after all of it (lethe audit verify)', async () => {
    const t = server();
    const result = await verifyAuditChain(t.server.context.home.db);
    expect(result.ok, result.problem).toBe(true);
    expect(result.checked).toBeGreaterThanOrEqual(12);
  });
});

it('lethe token create (CLI) leaves one token.created entry, by cli, with the token id only', async () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'lethe-audit-cli-'));
  const write = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
  try {
    const code = await tokenCreateCommand({
      workspace: 'cli-ws',
      role: 'editor',
      name: 'ci-runner-label',
      dataDir,
    });
    expect(code).toBe(0);
    const printed = String(write.mock.calls[0]?.[0] ?? '').trim();
    write.mockRestore();
    expect(printed.length).toBeGreaterThan(20);
    const opened = await openDeployment({ dataDir, mustExist: true });
    try {
      const entries = await opened.home.store.db.selectFrom('audit_log').selectAll().execute();
      const tokens = entries.filter((entry) => entry.action === 'token.created');
      expect(tokens).toHaveLength(1);
      const entry = tokens[0]!;
      const ws = await opened.home.store.workspaces.byName('cli-ws');
      const [row] = await opened.home.store.tokens.list(ws!.id);
      expect(entry.actor).toBe('cli');
      expect(entry.workspace_id).toBe(ws!.id);
      expect(JSON.parse(entry.details)).toEqual({ tokenId: row!.id, role: 'editor', expires: false });
      expect(JSON.stringify(entry)).not.toContain('ci-runner-label');
      expect(JSON.stringify(entry)).not.toContain(printed);
      expect((await opened.home.audit.verify()).ok).toBe(true);
    } finally {
      await opened.deployment.close();
    }
  } finally {
    write.mockRestore();
    rmSync(dataDir, { recursive: true, force: true });
  }
});
