/**
 * Residency (privacy issue item 9): a workspace pinned to a region has its rows in that
 * region's store only — proven with two stores (the home SQLite store and a second region,
 * SQLite or PostgreSQL) by listing every table's rows for the workspace and by scanning every
 * byte of the home store for a canary the workspace's data carries. Moving it back home is an
 * explicit operation that copies, checks, switches and deletes, and is audited in both chains.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import { openDeployment } from '../../src/cli/deployment.js';
import { verifyAuditChain } from '../../src/privacy/retention-audit.js';
import { workspaceTables } from '../../src/privacy/workspace-lifecycle.js';
import type { RegionsConfig } from '../../src/regions/config.js';
import { moveWorkspace, type MoveScope } from '../../src/regions/move.js';
import type { Store } from '../../src/store/index.js';
import { pgSchemaUrl, startTestServer, type TestServer } from '../helpers/server.js';
import { describeWithPostgres } from '../helpers/services.js';
import {
  canary,
  expectNowhere,
  expectSomewhere,
  folderBlobs,
  postgresBlobs,
  type Blob,
} from '../privacy/confidential-scan.js';
import { call, expectError, postHook } from '../server/api-support.js';

const FLOW = `version: 1
name: intake
trigger: { webhook: { path: intake } }
steps:
  - id: order
    input: { trigger: true }
  - id: save
    output: { from: order, file: out/orders.csv }
`;

const api = (ws: string) => `/api/v1/workspaces/${ws}`;

/** Rows per table that carry the workspace's id, in one store. */
async function rowsOf(store: Store, workspaceId: string): Promise<Record<string, number>> {
  const found: Record<string, number> = {};
  for (const table of [...(await workspaceTables(store)), 'workspaces']) {
    const column = table === 'workspaces' ? 'id' : 'workspace_id';
    const result = await sql<{ n: number | string }>`select count(*) as n from ${sql.table(table)}
      where ${sql.ref(column)} = ${workspaceId}`.execute(store.db);
    const n = Number(result.rows[0]?.n ?? 0);
    if (n > 0) found[table] = n;
  }
  return found;
}

async function waitForRun(t: TestServer, ws: string, token: string, id: string): Promise<string> {
  for (let i = 0; i < 400; i++) {
    const reply = await call<{ run: { status: string } }>(t, 'GET', `${api(ws)}/runs/${id}`, { token });
    expect(reply.status, reply.text).toBe(200);
    if (['succeeded', 'failed', 'incomplete'].includes(reply.body.run.status)) return reply.body.run.status;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`run ${id} did not end`);
}

/** Post the canary to the workspace's webhook; the run writes it to a file. */
async function intake(t: TestServer, ws: string, token: string, value: string): Promise<void> {
  const runId = await postHook(t, 'intake', { order: 1, note: value }, ws);
  expect(await waitForRun(t, ws, token, runId)).toBe('succeeded');
}

function residency(kind: 'sqlite' | 'postgres') {
  const cleanups: (() => Promise<void> | void)[] = [];
  afterAll(async () => {
    for (const cleanup of cleanups.reverse()) await cleanup();
  });

  it('keeps every row of a workspace pinned to a region in that region’s store, and moves it when told', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'lethe-home-'));
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    let eu: RegionsConfig['others'][number];
    let euBlobs: () => Promise<Blob[]>;
    if (kind === 'sqlite') {
      const dir = mkdtempSync(join(tmpdir(), 'lethe-eu-'));
      cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
      eu = { name: 'eu', dir };
      euBlobs = async () => folderBlobs(dir);
    } else {
      const schema = await pgSchemaUrl();
      cleanups.push(schema.drop);
      eu = { name: 'eu', url: schema.url };
      euBlobs = () => postgresBlobs(schema.url);
    }
    const regions: RegionsConfig = { home: 'default', others: [eu] };
    const euFiles = kind === 'sqlite' ? eu.dir! : join(dataDir, 'regions', 'eu');
    const homeBlobs = () => folderBlobs(dataDir, (path) => path.startsWith(join(dataDir, 'regions')));

    let t = await startTestServer({ dataDir, config: { regions } });
    cleanups.push(() => t.close());
    const { deployment } = t.server.context;
    const located = await deployment.createWorkspace('acme', 'eu');
    const id = located.workspace.id;
    expect(located.workspace.region).toBe('eu');
    // Names are unique across regions.
    await expect(deployment.createWorkspace('acme')).rejects.toThrow(/exists already, in region "eu"/);
    const owner = await t.token('owner', 'acme');

    const secret = canary('secret');
    const value = canary('payload');
    const setting = canary('setting');
    const put = await call(t, 'PUT', `${api('acme')}/connections/warehouse`, {
      token: owner,
      body: {
        type: 'postgres',
        settings: { host: `${setting}.example.org`, database: 'd' },
        secrets: { password: secret },
      },
    });
    expect(put.status, put.text).toBeLessThan(300);
    const flowPut = await call(t, 'PUT', `${api('acme')}/flows/intake`, {
      token: owner,
      body: FLOW,
      headers: { 'content-type': 'application/yaml' },
    });
    expect(flowPut.status, flowPut.text).toBe(201);
    const privacy = await call(t, 'PUT', `${api('acme')}/settings/privacy`, {
      token: owner,
      body: { retentionDays: { activity: 10 } },
    });
    expect(privacy.status, privacy.text).toBe(200);
    await intake(t, 'acme', owner, value);

    // The rows: in the home store only the directory entry and the API token; everything else in eu.
    const home = t.server.context.home;
    const euStore = t.server.context.regions.get('eu')!.store;
    expect(Object.keys(await rowsOf(home, id)).sort()).toEqual(['api_tokens', 'workspaces']);
    const inEu = await rowsOf(euStore, id);
    for (const table of [
      'workspaces',
      'flows',
      'flow_versions',
      'connections',
      'workspace_keys',
      'runs',
      'run_details',
      'gateway_log',
      'audit_log',
    ])
      expect(inEu[table], `${table} in eu`).toBeGreaterThan(0);
    expect(inEu.api_tokens).toBeUndefined();
    // The bytes: the canaries are in the eu store and files, nowhere in the home store's files.
    const euNow = [...(await euBlobs()), ...folderBlobs(join(euFiles, 'files'))];
    expectSomewhere(euNow, value, 'the payload in eu');
    expectSomewhere(euNow, setting, 'the connection setting in eu');
    for (const needle of [value, setting, secret]) expectNowhere(await homeBlobs(), needle, 'the home store');
    expect(readFileSync(join(euFiles, 'files', 'acme', 'out', 'orders.csv'), 'utf8')).toContain(value);
    expect(existsSync(join(dataDir, 'files', 'acme'))).toBe(false);

    // While the directory says it is moving, the API and its webhooks answer 503.
    await home.db.updateTable('workspaces').set({ status: 'moving' }).where('id', '=', id).execute();
    expectError(await call(t, 'GET', `${api('acme')}/flows`, { token: owner }), 503, 'UNAVAILABLE');
    await home.db.updateTable('workspaces').set({ status: 'active' }).where('id', '=', id).execute();
    await t.close();

    // The move, as `lethe workspace move acme --to default` does it.
    const environment = {
      LETHE_DATA_DIR: process.env.LETHE_DATA_DIR,
      LETHE_REGIONS: process.env.LETHE_REGIONS,
    };
    process.env.LETHE_REGIONS = eu.url ? `eu=${eu.url}` : `eu=${eu.dir}`;
    try {
      const opened = await openDeployment({ dataDir, mustExist: true });
      try {
        const scopes = new Map<string, MoveScope>(opened.scopes.map((scope) => [scope.region, scope]));
        // A run waiting in the queue holds the move back, and nothing changes.
        const euScope = scopes.get('eu')!;
        await euScope.store.db
          .updateTable('runs')
          .set({ status: 'queued' })
          .where('workspace_id', '=', id)
          .execute();
        await expect(
          moveWorkspace(opened.deployment, scopes, 'acme', 'default', { actor: 'cli' }),
        ).rejects.toThrow(/runs queued or running/);
        expect((await opened.deployment.locate('acme'))?.region.spec.name).toBe('eu');
        await euScope.store.db
          .updateTable('runs')
          .set({ status: 'succeeded' })
          .where('workspace_id', '=', id)
          .execute();

        const moved = await moveWorkspace(opened.deployment, scopes, 'acme', 'default', { actor: 'cli' });
        expect(moved).toMatchObject({ from: 'eu', to: 'default', filesMoved: true });
        expect(moved.rows.flows).toBe(1);
        // Only the audit chain's own entries stay behind (ids and counts; append-only).
        expect(Object.keys(await rowsOf(euScope.store, id))).toEqual(['audit_log']);
        const audit = await euScope.store.db
          .selectFrom('audit_log')
          .select('action')
          .where('workspace_id', '=', id)
          .execute();
        expect(audit.map((entry) => entry.action)).toContain('workspace.moved_out');
        const homeAudit = await opened.home.store.db
          .selectFrom('audit_log')
          .selectAll()
          .where('workspace_id', '=', id)
          .execute();
        expect(homeAudit.map((entry) => entry.action)).toEqual(['workspace.moved']);
        expect(JSON.parse(homeAudit[0]!.details ?? '{}')).toEqual({ from: 'eu', to: 'default' });
        for (const scope of opened.scopes)
          expect(await verifyAuditChain(scope.store.db)).toMatchObject({ ok: true });
        await expect(
          moveWorkspace(opened.deployment, scopes, 'acme', 'default', { actor: 'cli' }),
        ).rejects.toThrow(/in region "default" already/);
      } finally {
        await opened.deployment.close();
      }
    } finally {
      for (const [key, before] of Object.entries(environment)) {
        if (before === undefined) delete process.env[key];
        else process.env[key] = before;
      }
    }

    // Home now holds it all; eu holds nothing of it but audit entries, and no canary at all.
    const euAfter = [...(await euBlobs()), ...folderBlobs(join(euFiles, 'files'))];
    for (const needle of [value, setting]) expectNowhere(euAfter, needle, 'the eu store after the move');
    expect(existsSync(join(euFiles, 'files', 'acme'))).toBe(false);
    t = await startTestServer({ dataDir, config: { regions } });
    cleanups.push(() => t.close());
    expect((await t.server.context.deployment.locate('acme'))?.region.spec.name).toBe('default');
    const store = t.server.context.store;
    const row = await store.connections.get(id, 'warehouse');
    const sealed = JSON.parse(row!.secrets) as Record<string, string>;
    expect(await t.server.context.vault.decrypt(id, 'warehouse', 'password', sealed.password!)).toBe(secret);
    const second = canary('after');
    await intake(t, 'acme', owner, second);
    expect(readFileSync(join(dataDir, 'files', 'acme', 'out', 'orders.csv'), 'utf8')).toContain(second);
    expectSomewhere(await homeBlobs(), value, 'the moved payload at home');
    await t.close();
  });
}

describe('residency with a SQLite region', () => residency('sqlite'));
await describeWithPostgres('residency with a PostgreSQL region', () => residency('postgres'));
