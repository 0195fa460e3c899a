/**
 * The retention API on SQLite and PostgreSQL: privacy settings (read, replace within bounds,
 * refused outside them, audited), the retention status, legal hold through the API, and purge
 * metrics.
 */
import { beforeEach, describe, expect, it } from 'vitest';
import { retentionConfig } from '../../src/privacy/retention-policy.js';
import { call, describeStores, expectError, useServer, WS } from '../server/api-support.js';
import type { TestServer } from '../helpers/server.js';
import { gatewayRow } from '../store/support.js';

const DAY = 86_400_000;
const SETTINGS = `${WS}/settings/privacy`;

async function gatewayRows(t: TestServer, workspace: string, ages: number[]): Promise<void> {
  const ws = await t.server.context.store.workspaces.ensure(workspace);
  for (const age of ages) {
    const at = Date.now() - age * DAY;
    await t.server.context.store.db
      .insertInto('gateway_log')
      .values(gatewayRow(ws.id, { received_at: at }))
      .execute();
  }
}

async function gatewayCount(t: TestServer, workspace: string): Promise<number> {
  const ws = (await t.server.context.store.workspaces.byName(workspace))!;
  const rows = await t.server.context.store.db
    .selectFrom('gateway_log')
    .select('id')
    .where('workspace_id', '=', ws.id)
    .execute();
  return rows.length;
}

await describeStores('retention API', (store) => {
  const server = useServer(store, {
    config: {
      retention: retentionConfig({
        bounds: { activity: { min: 7, max: 90 }, gateway_log: { min: 1, max: 90 } },
        // Deterministic: passes run when the test says (runOnce), never on a timer.
        purge: { enabled: false },
      }),
    },
  });

  beforeEach(async () => {
    // Every test starts from the default settings.
    const reply = await call(server(), 'PUT', SETTINGS, { body: {} });
    expect(reply.status, reply.text).toBe(200);
  });

  describe('privacy settings', () => {
    it('reads and replaces the settings, keeps other settings keys, and audits each change once', async () => {
      const t = server();
      const store = t.server.context.store;
      const ws = (await store.workspaces.byName('default'))!;
      // Settings that are not privacy settings stay as they are.
      await store.db
        .updateTable('workspaces')
        .set({ settings: JSON.stringify({ theme: 'dark' }) })
        .where('id', '=', ws.id)
        .execute();
      expect((await call(t, 'GET', SETTINGS)).body).toEqual({});
      const wanted = { retentionDays: { activity: 10, gateway_log: 3 }, logAccess: 'deny' };
      const put = await call(t, 'PUT', SETTINGS, { body: wanted });
      expect(put.status, put.text).toBe(200);
      expect(put.body).toEqual(wanted);
      expect((await call(t, 'GET', SETTINGS)).body).toEqual(wanted);
      const row = await store.workspaces.byId(ws.id);
      expect(JSON.parse(row!.settings)).toEqual({ theme: 'dark', ...wanted });

      const entries = async () =>
        store.db
          .selectFrom('audit_log')
          .selectAll()
          .where('workspace_id', '=', ws.id)
          .where('action', '=', 'settings.privacy.changed')
          .orderBy('seq')
          .execute();
      const before = await entries();
      const last = before[before.length - 1]!;
      expect(last.actor).toMatch(/^token:/);
      expect(JSON.parse(last.details)).toEqual({
        legalHold: false,
        logAccess: 'deny',
        'retentionDays.activity': 10,
        'retentionDays.gateway_log': 3,
      });
      // The same settings again: no change, no entry.
      await call(t, 'PUT', SETTINGS, { body: wanted });
      expect(await entries()).toHaveLength(before.length);
    });

    it('refuses periods outside the deployment’s bounds, the audit class, and malformed settings', async () => {
      const t = server();
      const cases: [unknown, string, RegExp][] = [
        [
          { retentionDays: { activity: 6 } },
          'USAGE',
          /retentionDays.activity: 6 is outside this deployment’s bounds \(7 to 90 days\)/,
        ],
        [{ retentionDays: { activity: 91 } }, 'USAGE', /outside/],
        [{ retentionDays: { audit: 400 } }, 'USAGE', /audit log is kept for the whole deployment/],
        [{ retentionDays: { directory: 5 } }, 'USAGE', /not a data class with a retention period/],
        [{ retentionDays: { activity: 0 } }, 'INVALID_REQUEST', /retentionDays/],
        [{ legalHold: 'yes' }, 'INVALID_REQUEST', /legalHold/],
        [{ legalHeld: true }, 'INVALID_REQUEST', /legalHeld/],
      ];
      for (const [body, code, message] of cases) {
        const reply = await call(t, 'PUT', SETTINGS, { body });
        expect(expectError(reply, 400, code).message).toMatch(message);
      }
      // Nothing was saved.
      expect((await call(t, 'GET', SETTINGS)).body).toEqual({});
    });

    it('lets viewers read and only admins change', async () => {
      const t = server();
      const viewer = await t.token('viewer');
      const editor = await t.token('editor');
      expect((await call(t, 'GET', SETTINGS, { token: viewer })).status).toBe(200);
      expect((await call(t, 'GET', `${WS}/retention`, { token: viewer })).status).toBe(200);
      for (const token of [viewer, editor]) {
        const reply = await call(t, 'PUT', SETTINGS, { token, body: { legalHold: true } });
        expectError(reply, 403, 'FORBIDDEN');
      }
      expect((await call(t, 'GET', SETTINGS)).body).toEqual({});
      const other = await t.token('owner', 'elsewhere');
      expectError(
        await call(t, 'PUT', SETTINGS, { token: other, body: { legalHold: true } }),
        404,
        'NOT_FOUND',
      );
    });
  });

  describe('retention status and legal hold', () => {
    it('shows the period in force per class, the records, what is due, and the oldest record', async () => {
      const t = server();
      await gatewayRows(t, 'status', [40, 20, 1]);
      const token = await t.token('viewer', 'status');
      const path = '/api/v1/workspaces/status/retention';
      let reply = await call<{
        legalHold: boolean;
        unit: string;
        classes: {
          dataClass: string;
          retentionDays: number;
          source: string;
          records: number;
          due: number;
          oldestAgeSeconds: number | null;
          bounds: unknown;
        }[];
      }>(t, 'GET', path, { token });
      expect(reply.status, reply.text).toBe(200);
      expect(reply.body).toMatchObject({ legalHold: false, unit: 'day' });
      const gateway = () => reply.body.classes.find((c) => c.dataClass === 'gateway_log')!;
      expect(reply.body.classes.map((c) => c.dataClass).sort()).toEqual(
        ['activity', 'audit', 'dlq', 'execution_detail', 'gateway_log', 'notification'].sort(),
      );
      expect(gateway()).toMatchObject({
        retentionDays: 30,
        source: 'deployment',
        records: 3,
        due: 1,
        bounds: { minDays: 1, maxDays: 90 },
      });
      expect(gateway().oldestAgeSeconds).toBeGreaterThanOrEqual(40 * 86_400 - 5);
      expect(reply.body.classes.find((c) => c.dataClass === 'audit')).toMatchObject({
        retentionDays: 365,
        bounds: null,
      });

      const admin = await t.token('admin', 'status');
      await call(t, 'PUT', '/api/v1/workspaces/status/settings/privacy', {
        token: admin,
        body: { retentionDays: { gateway_log: 10 } },
      });
      reply = await call(t, 'GET', path, { token });
      expect(gateway()).toMatchObject({ retentionDays: 10, source: 'workspace', records: 3, due: 2 });

      await call(t, 'PUT', '/api/v1/workspaces/status/settings/privacy', {
        token: admin,
        body: { retentionDays: { gateway_log: 10 }, legalHold: true },
      });
      reply = await call(t, 'GET', path, { token });
      expect(reply.body.legalHold).toBe(true);
      expect(gateway()).toMatchObject({ records: 3, due: 0 });
    });

    it('purges nothing of a workspace on legal hold, then its expired records once the hold is lifted; counts them in metrics', async () => {
      const t = server();
      const purger = t.server.context.retention!;
      await gatewayRows(t, 'held', [40, 35, 1]);
      await gatewayRows(t, 'free', [40, 1]);
      const admin = await t.token('admin', 'held');
      const settings = '/api/v1/workspaces/held/settings/privacy';
      expect((await call(t, 'PUT', settings, { token: admin, body: { legalHold: true } })).status).toBe(200);

      const first = await purger.runOnce();
      expect(await gatewayCount(t, 'held')).toBe(3);
      expect(await gatewayCount(t, 'free')).toBe(1);
      const free = (await t.server.context.store.workspaces.byName('free'))!;
      expect(first.purged.filter((p) => p.dataClass === 'gateway_log')).toEqual([
        { workspaceId: free.id, dataClass: 'gateway_log', count: 1 },
      ]);

      expect((await call(t, 'PUT', settings, { token: admin, body: { legalHold: false } })).status).toBe(200);
      await purger.runOnce();
      expect(await gatewayCount(t, 'held')).toBe(1);

      const metrics = await (await t.api('/metrics')).text();
      const purged = /lethe_purged_records_total\{data_class="gateway_log"\} (\d+)/.exec(metrics);
      expect(Number(purged?.[1])).toBeGreaterThanOrEqual(3);
      expect(metrics).toMatch(/lethe_purge_duration_seconds_count \d+/);
      const status = await call<{ lastPass: { purged: number } | null }>(t, 'GET', `${WS}/retention`);
      expect(status.body.lastPass).not.toBeNull();
    });
  });
});
