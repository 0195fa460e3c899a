/**
 * The purger on SQLite and PostgreSQL: exactly the expired records of each class go — not other
 * workspaces', not younger ones, not a held workspace's, not runs in flight — related rows stay
 * consistent, every pass leaves one audit entry per (workspace, class), the chain verifies, and
 * the dry-run forecast says exactly what the pass then deletes.
 */
import { sql } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { AuditLog } from '../../src/privacy/audit.js';
import {
  retentionConfig,
  type PurgeableClass,
  type RetentionConfig,
} from '../../src/privacy/retention-policy.js';
import { savePrivacySettings } from '../../src/privacy/retention-settings.js';
import { PURGE_TARGETS, PURGED_ELSEWHERE } from '../../src/privacy/retention-tables.js';
import { Purger, type PurgeReport } from '../../src/privacy/retention.js';
import { newId } from '../../src/store/ids.js';
import type { Store } from '../../src/store/index.js';
import type { RunStatus } from '../../src/store/schema.js';
import { STORED_TABLES } from '../../src/store/tables.js';
import { describeStores, freshStore, gatewayRow, runRow, type StorePlace } from '../store/support.js';

const DAY = 86_400_000;

/** Rows of every purged table for one workspace, at ages around each class's period; ids by label. */
async function seed(store: Store, workspaceId: string, now: number) {
  const ids: Record<string, string> = {};
  const db = store.db;
  for (const [label, age] of [
    ['gw_40', 40],
    ['gw_20', 20],
    ['gw_1', 1],
  ] as const) {
    const id = (ids[label] = newId(now - age * DAY));
    await db
      .insertInto('gateway_log')
      .values(
        gatewayRow(workspaceId, {
          id,
          flow_name: 'f',
          received_at: now - age * DAY,
          content_type: 'application/json',
          size: 10,
          body: '{"a":1}',
        }),
      )
      .execute();
  }
  for (const [label, age] of [
    ['seen_40', 40],
    ['seen_1', 1],
  ] as const) {
    const id = (ids[label] = newId(now - age * DAY));
    await db
      .insertInto('webhook_events_seen')
      .values({ workspace_id: workspaceId, flow_name: 'f', event_id: id, seen_at: now - age * DAY })
      .execute();
  }
  for (const [label, age] of [
    ['note_8', 8],
    ['note_6', 6],
  ] as const) {
    const id = (ids[label] = newId(now - age * DAY));
    await db
      .insertInto('notifications')
      .values({
        id,
        workspace_id: workspaceId,
        kind: 'run.failed',
        run_id: null,
        flow_name: 'f',
        created_at: now - age * DAY,
        read_at: null,
      })
      .execute();
  }
  const run = async (label: string, age: number, status: RunStatus, withInput: boolean) => {
    const queued = now - age * DAY;
    const row = runRow(workspaceId, { queued_at: queued, available_at: queued, status });
    ids[label] = row.id;
    await store.runs.insert(db, row, withInput ? { params: {}, payload: [{ n: 1 }] } : undefined);
  };
  await run('run_succeeded_31', 31, 'succeeded', true); // an input left over: goes with its run
  await run('run_failed_15', 15, 'failed', false);
  await run('run_succeeded_1', 1, 'succeeded', false);
  await run('run_queued_40', 40, 'queued', true);
  await run('run_running_40', 40, 'running', true);
  await run('run_incomplete_40', 40, 'incomplete', true);
  await run('run_incomplete_20', 20, 'incomplete', true);
  await run('run_incomplete_nokept_40', 40, 'incomplete', false); // a confidential run in the DLQ
  for (const [label, age] of [
    ['orphan_input_40', 40],
    ['orphan_input_5', 5],
  ] as const) {
    const id = (ids[label] = newId(now - age * DAY));
    await db
      .insertInto('run_inputs')
      .values({ run_id: id, workspace_id: workspaceId, input: '{}', created_at: now - age * DAY })
      .execute();
  }
  for (const [label, age] of [
    ['details_61', 61],
    ['details_59', 59],
  ] as const) {
    const id = (ids[label] = newId(now - age * DAY));
    await db
      .insertInto('run_details')
      .values({
        run_id: id,
        workspace_id: workspaceId,
        steps: '[]',
        error_message: null,
        created_at: now - age * DAY,
      })
      .execute();
  }
  for (const [label, age, status] of [
    ['erasure_done_400', 400, 'completed'],
    ['erasure_open_400', 400, 'open'],
    ['erasure_done_100', 100, 'completed'],
  ] as const) {
    const id = (ids[label] = newId(now - age * DAY));
    await db
      .insertInto('erasure_requests')
      .values({
        id,
        workspace_id: workspaceId,
        subject_kind: 'email',
        subject_hash: id,
        subject_sealed: null,
        status,
        created_at: now - age * DAY,
        due_at: now - age * DAY + 30 * DAY,
        extended_at: null,
        extension_reason: null,
        completed_at: status === 'completed' ? now - age * DAY : null,
        report: null,
        requested_by: 'test',
      })
      .execute();
  }
  return ids;
}

/** Where each kind of labelled row lives (by the label's prefix): its table and key column. */
const LABELLED: readonly (readonly [prefix: string, table: string, key: string])[] = [
  ['gw_', 'gateway_log', 'id'],
  ['note_', 'notifications', 'id'],
  ['erasure_', 'erasure_requests', 'id'],
  ['seen_', 'webhook_events_seen', 'event_id'],
  ['details_', 'run_details', 'run_id'],
  ['orphan_input_', 'run_inputs', 'run_id'],
];

/** Which of a seeded workspace's labelled rows are still there. */
async function remaining(store: Store, ids: Record<string, string>): Promise<string[]> {
  const present: string[] = [];
  for (const [label, id] of Object.entries(ids)) {
    const place = LABELLED.find(([prefix]) => label.startsWith(prefix));
    let found: boolean;
    if (place) {
      const [, table, key] = place;
      const rows = await sql`select 1 as one from ${sql.table(table)} where ${sql.ref(key)} = ${id}`.execute(
        store.db,
      );
      found = rows.rows.length > 0;
    } else {
      const run = await store.runs.get(id);
      found = run !== undefined;
      if (found && (await store.runs.input(id)) !== undefined) present.push(`${label}+input`);
    }
    if (found) present.push(label);
  }
  return present.sort();
}

function counts(report: PurgeReport, workspaceId: string | null): Partial<Record<PurgeableClass, number>> {
  return Object.fromEntries(
    report.purged
      .filter((entry) => entry.workspaceId === workspaceId)
      .map((entry) => [entry.dataClass, entry.count]),
  );
}

const ALL_LABELS = [
  'details_59',
  'details_61',
  'erasure_done_100',
  'erasure_done_400',
  'erasure_open_400',
  'gw_1',
  'gw_20',
  'gw_40',
  'note_6',
  'note_8',
  'orphan_input_40',
  'orphan_input_5',
  'run_failed_15',
  'run_incomplete_20',
  'run_incomplete_20+input',
  'run_incomplete_40',
  'run_incomplete_40+input',
  'run_incomplete_nokept_40',
  'run_queued_40',
  'run_queued_40+input',
  'run_running_40',
  'run_running_40+input',
  'run_succeeded_1',
  'run_succeeded_31',
  'run_succeeded_31+input',
  'seen_1',
  'seen_40',
];

/** What stays of a workspace with the default policy after one pass. */
const DEFAULT_KEPT = [
  'details_59',
  'erasure_done_100',
  'erasure_open_400',
  'gw_1',
  'gw_20',
  'note_6',
  'orphan_input_5',
  'run_failed_15',
  'run_incomplete_20',
  'run_incomplete_20+input',
  'run_queued_40',
  'run_queued_40+input',
  'run_running_40',
  'run_running_40+input',
  'run_succeeded_1',
  'seen_1',
];

/** What one pass deletes from a workspace with the default policy. */
const DEFAULT_PURGED = {
  // The old received webhook, and the old event id of the replay window.
  gateway_log: 2,
  notification: 1,
  execution_detail: 1,
  // The incomplete run's input, the orphan, and the input left over for a finished run.
  dlq: 3,
  // The old finished run and the two incomplete runs that left the DLQ in the same pass.
  activity: 3,
  audit: 1,
};

describe('the purge registry', () => {
  it('covers every stored table that has an age column', () => {
    const covered = new Set<string>([...PURGE_TARGETS.map((target) => target.table), ...PURGED_ELSEWHERE]);
    const dated = Object.entries(STORED_TABLES)
      .filter(([, entry]) => entry.agedBy !== undefined)
      .map(([table]) => table);
    expect(dated.filter((table) => !covered.has(table))).toEqual([]);
    for (const target of PURGE_TARGETS) {
      const entry = STORED_TABLES[target.table];
      expect(entry.agedBy, target.table).toBe(target.agedBy);
      expect(entry.dataClass, target.table).toBe(target.dataClass);
    }
  });
});

await describeStores('retention purge', (kind) => {
  let place: StorePlace | undefined;
  afterEach(async () => {
    await place?.cleanup();
    place = undefined;
  });

  async function setup(
    config: RetentionConfig = retentionConfig({ purge: { enabled: false } }),
    onBatch?: () => void,
  ) {
    const fresh = await freshStore(kind);
    place = fresh.place;
    const store = fresh.store;
    const audit = new AuditLog(store.db);
    const purged: Partial<Record<PurgeableClass, number>> = {};
    const purger = new Purger({
      store,
      audit,
      config,
      onPurged: (dataClass, n) => {
        purged[dataClass] = (purged[dataClass] ?? 0) + n;
        onBatch?.();
      },
    });
    return { store, audit, purger, purged, config };
  }

  it('deletes exactly the expired records of each class, per workspace policy, and nothing else', async () => {
    const { store, audit, purger, purged, config } = await setup();
    const now = Date.now();
    const a = await store.workspaces.ensure('plain');
    const b = await store.workspaces.ensure('short');
    const c = await store.workspaces.ensure('held');
    await savePrivacySettings(
      audit,
      config,
      b.id,
      { retentionDays: { gateway_log: 5, activity: 10 } },
      'test',
    );
    await savePrivacySettings(audit, config, c.id, { legalHold: true }, 'test');
    const ghost = newId();
    const seeded = {
      a: await seed(store, a.id, now),
      b: await seed(store, b.id, now),
      c: await seed(store, c.id, now),
      ghost: await seed(store, ghost, now),
    };
    for (const ids of Object.values(seeded)) expect(await remaining(store, ids)).toEqual(ALL_LABELS);

    const forecast = await purger.forecast();
    const report = await purger.runOnce();

    expect(await remaining(store, seeded.a)).toEqual(DEFAULT_KEPT);
    // Rows of a workspace that no longer exists follow the defaults.
    expect(await remaining(store, seeded.ghost)).toEqual(DEFAULT_KEPT);
    // Shorter periods: the gateway log of 20 days and the failed run of 15 days go too.
    expect(await remaining(store, seeded.b)).toEqual(
      DEFAULT_KEPT.filter((l) => l !== 'gw_20' && l !== 'run_failed_15'),
    );
    // Legal hold: everything stays.
    expect(await remaining(store, seeded.c)).toEqual(ALL_LABELS);

    expect(counts(report, a.id)).toEqual(DEFAULT_PURGED);
    expect(counts(report, ghost)).toEqual(DEFAULT_PURGED);
    expect(counts(report, b.id)).toEqual({ ...DEFAULT_PURGED, gateway_log: 3, activity: 4 });
    expect(counts(report, c.id)).toEqual({});
    expect(report.expiredFromDlq).toBe(2 * 3);
    expect(report.total).toBe(3 * 11 + 2);
    expect(purged).toEqual({
      gateway_log: 7,
      notification: 3,
      execution_detail: 3,
      dlq: 9,
      activity: 10,
      audit: 3,
    });

    // The dry run said exactly this, per workspace and class.
    for (const row of forecast) {
      const done = report.purged.find(
        (e) => e.workspaceId === row.workspaceId && e.dataClass === row.dataClass,
      );
      expect(row.due, `${row.workspace} ${row.dataClass}`).toBe(done?.count ?? 0);
      if (row.due > 0) expect(row.oldestDueAt).toBeLessThan(now);
    }
    expect(forecast.find((row) => row.workspaceId === c.id)?.legalHold).toBe(true);

    // Incomplete runs whose DLQ period ended left it as failed (EXPIRED) before their summary
    // went; the younger one is still in the DLQ with its input, ready for a retry.
    const dlq = await store.db
      .selectFrom('runs')
      .select(['id', 'status'])
      .where('workspace_id', '=', a.id)
      .where('status', '=', 'incomplete')
      .execute();
    expect(dlq.map((run) => run.id)).toEqual([seeded.a.run_incomplete_20]);
    // No input outlives its run (but the ones deliberately planted without a run).
    const orphans = await store.db
      .selectFrom('run_inputs')
      .leftJoin('runs', 'runs.id', 'run_inputs.run_id')
      .select('run_inputs.run_id')
      .where('runs.id', 'is', null)
      .execute();
    expect(orphans.map((o) => o.run_id).sort()).toEqual(
      [seeded.a, seeded.b, seeded.c, seeded.ghost]
        .map((ids) => ids.orphan_input_5!)
        .concat(seeded.c.orphan_input_40!)
        .sort(),
    );

    // One receipt per (workspace, class), with the count and the reason; the chain verifies.
    const receipts = await store.db
      .selectFrom('audit_log')
      .selectAll()
      .where('action', '=', 'purge')
      .execute();
    expect(receipts).toHaveLength(report.purged.length);
    for (const entry of report.purged) {
      const receipt = receipts.find(
        (r) => r.workspace_id === entry.workspaceId && r.data_class === entry.dataClass,
      );
      expect(receipt, `${entry.workspaceId} ${entry.dataClass}`).toMatchObject({
        actor: 'retention',
        reason: 'retention',
        count: entry.count,
      });
    }
    expect(await new AuditLog(store.db).verify()).toMatchObject({ ok: true });

    // A second pass finds nothing, and writes no receipt.
    const again = await purger.runOnce();
    expect(again.total).toBe(0);
    expect(
      await store.db.selectFrom('audit_log').select('seq').where('action', '=', 'purge').execute(),
    ).toHaveLength(receipts.length);
  });

  it('keeps a held workspace’s audit entries, and the chain verifiable, when the oldest entries go', async () => {
    const { store, audit, purger, config } = await setup();
    const now = Date.now();
    const a = await store.workspaces.ensure('plain');
    const c = await store.workspaces.ensure('held');
    for (const [workspaceId, age] of [
      [a.id, 400],
      [a.id, 399],
      [c.id, 390],
      [a.id, 380],
      [a.id, 10],
    ] as const) {
      await audit.append({ workspaceId, actor: 'test', action: 'test.old', at: now - age * DAY });
    }
    await savePrivacySettings(audit, config, c.id, { legalHold: true }, 'test');
    const held = await purger.runOnce();
    expect(counts(held, null)).toEqual({ audit: 2 });
    let left = await store.db.selectFrom('audit_log').select(['seq', 'action']).orderBy('seq').execute();
    expect(left.map((row) => Number(row.seq))[0]).toBe(3);
    expect(await new AuditLog(store.db).verify()).toMatchObject({ ok: true });

    await savePrivacySettings(audit, config, c.id, { legalHold: false }, 'test');
    const lifted = await purger.runOnce();
    expect(counts(lifted, null)).toEqual({ audit: 2 });
    left = await store.db.selectFrom('audit_log').select(['seq', 'action']).orderBy('seq').execute();
    expect(left[0]).toMatchObject({ seq: 5, action: 'test.old' });
    const verified = await new AuditLog(store.db).verify();
    expect(verified.ok).toBe(true);
    // What remains: the young entry, the two settings changes, the receipts.
    expect(verified.checked).toBe(left.length);
  });

  it('purges one workspace only when asked (--workspace), and everything older than a time (`before`)', async () => {
    const { store, purger } = await setup();
    const now = Date.now();
    const a = await store.workspaces.ensure('one');
    const b = await store.workspaces.ensure('two');
    const ids = { a: await seed(store, a.id, now), b: await seed(store, b.id, now) };
    const report = await purger.runOnce({ workspaceId: b.id });
    expect(await remaining(store, ids.a)).toEqual(ALL_LABELS);
    expect(await remaining(store, ids.b)).toEqual(DEFAULT_KEPT);
    expect(counts(report, b.id)).toEqual(DEFAULT_PURGED);

    const all = await purger.runOnce({ workspaceId: a.id, before: now, reason: 'workspace closed' });
    // In-flight runs (and their inputs) and open erasure requests stay, whatever their age.
    expect(await remaining(store, ids.a)).toEqual([
      'erasure_open_400',
      'run_queued_40',
      'run_queued_40+input',
      'run_running_40',
      'run_running_40+input',
    ]);
    expect(await remaining(store, ids.b)).toEqual(DEFAULT_KEPT);
    const receipts = await store.db
      .selectFrom('audit_log')
      .select(['reason', 'workspace_id'])
      .where('reason', '=', 'workspace closed')
      .execute();
    expect(receipts).toHaveLength(all.purged.length);
    expect(receipts.every((r) => r.workspace_id === a.id)).toBe(true);
  });

  it('counts periods in seconds for tests, and purges in batches of the configured size', async () => {
    const config = retentionConfig({
      unit: 'second',
      defaults: { gateway_log: 1 },
      purge: { enabled: false, batchSize: 7 },
    });
    const { store, purger } = await setup(config);
    const ws = await store.workspaces.ensure('fast');
    const now = Date.now();
    for (let i = 0; i < 100; i++) {
      await store.db
        .insertInto('gateway_log')
        .values(gatewayRow(ws.id, { received_at: i < 60 ? now - 5000 - i : now + 60_000 }))
        .execute();
    }
    const report = await purger.runOnce();
    expect(counts(report, ws.id)).toEqual({ gateway_log: 60 });
    const left = await store.db.selectFrom('gateway_log').select('received_at').execute();
    expect(left).toHaveLength(40);
    expect(left.every((row) => Number(row.received_at) > now)).toBe(true);
  });

  it('stops purging a workspace as soon as its legal hold is saved, even mid-pass', async () => {
    const config = retentionConfig({ purge: { enabled: false, batchSize: 5, targetBatchMs: 1000 } });
    let onBatch = () => {};
    const { store, audit, purger } = await setup(config, () => onBatch());
    const ws = await store.workspaces.ensure('hold-me');
    const old = Date.now() - 40 * DAY;
    for (let i = 0; i < 200; i++) {
      await store.db
        .insertInto('gateway_log')
        .values(gatewayRow(ws.id, { received_at: old + i }))
        .execute();
    }
    const held = new Promise<void>((resolve) => {
      onBatch = () => {
        onBatch = () => {};
        // After the first batch: put the workspace on hold, as the API does.
        void savePrivacySettings(audit, config, ws.id, { legalHold: true }, 'test').then(() => {
          purger.settingsChanged();
          resolve();
        });
      };
    });
    const pass = purger.runOnce();
    await held;
    const report = await pass;
    const left = await store.db
      .selectFrom('gateway_log')
      .select('id')
      .where('workspace_id', '=', ws.id)
      .execute();
    // At most the batches already under way when the hold was saved went.
    expect(left.length).toBeGreaterThan(150);
    expect(counts(report, ws.id).gateway_log).toBe(200 - left.length);
  });
});
