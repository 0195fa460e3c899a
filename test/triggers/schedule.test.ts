/**
 * Schedules: a tick fires exactly once — across a restart (with the missed-fire policy deciding
 * what downtime ticks do) and with two server processes on one store — and flows created,
 * changed, disabled or deleted while the server runs are picked up without a restart.
 *
 * Most tests drive a `Triggers` without timers on a fake clock against a real server's store
 * (the server's own triggers are stopped first); two tests use real per-second cron ticks, real
 * restarts and two real servers, waiting with bounded loops on the store.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseFlow } from '../../src/flow/load.js';
import type { Store } from '../../src/store/index.js';
import { cronOf, dueTicks } from '../../src/triggers/schedule.js';
import { Triggers, type ScheduleState } from '../../src/triggers/index.js';
import { pgSchemaUrl, startTestServer, type StoreKind, type TestServer } from '../helpers/server.js';
import { pgAvailable } from '../helpers/services.js';

const MINUTE = 60_000;
const hasPostgres = await pgAvailable();
const STORES: StoreKind[] = hasPostgres ? ['sqlite', 'postgres'] : ['sqlite'];

function flowText(name: string, cron: string, extra = ''): string {
  return `version: 1
name: ${name}
trigger: { schedule: { cron: "${cron}"${extra} } }
steps:
  - id: v
    input: { values: [{ a: 1 }] }
  - id: out
    output: { from: v, respond: true }
`;
}

async function putFlow(store: Store, workspaceId: string, text: string): Promise<void> {
  const { flow } = parseFlow(text, 'flow.yaml', tmpdir());
  await store.flows.put({ workspaceId, flow, source: text, format: 'yaml', author: 'test' });
}

/** Runs of a flow by tick (epoch ms), read from the idempotency keys the schedule gives them. */
async function ticksOf(store: Store, workspaceId: string, flow: string): Promise<Map<number, number>> {
  const rows = await store.db
    .selectFrom('runs')
    .select(['idempotency_key', 'trigger'])
    .where('workspace_id', '=', workspaceId)
    .where('flow_name', '=', flow)
    .execute();
  const counts = new Map<number, number>();
  for (const row of rows) {
    expect(row.trigger).toBe('schedule');
    const prefix = `schedule:${flow}:`;
    expect(row.idempotency_key?.startsWith(prefix)).toBe(true);
    const tick = Date.parse(row.idempotency_key!.slice(prefix.length));
    counts.set(tick, (counts.get(tick) ?? 0) + 1);
  }
  return counts;
}

/** Wait until `check` holds, polling every 20 ms, at most `timeoutMs`. */
async function until(
  check: () => Promise<boolean> | boolean,
  timeoutMs: number,
  what: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

const running: Triggers[] = [];
const servers: TestServer[] = [];
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const triggers of running.splice(0)) await triggers.stop();
  for (const server of servers.splice(0)) await server.close();
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function server(options: Parameters<typeof startTestServer>[0] = {}): Promise<TestServer> {
  const started = await startTestServer(options);
  servers.push(started);
  return started;
}

describe('which ticks are due (pure)', () => {
  const cron = cronOf({ cron: '* * * * *' }, 'UTC');
  const t0 = Date.parse('2024-05-01T10:00:00Z');

  it('fires every on-time tick once, however late the timer woke', () => {
    const due = dueTicks(cron, 'skip', {
      floor: t0 - 1,
      onTimeFrom: t0 - MINUTE,
      now: t0 + 2 * MINUTE + 300,
    });
    expect(due.fire).toEqual([t0, t0 + MINUTE, t0 + 2 * MINUTE]);
    expect(due.last).toBe(t0 + 2 * MINUTE);
    // The same window again, after recording the last tick: nothing.
    const again = dueTicks(cron, 'skip', {
      floor: due.last!,
      onTimeFrom: t0 - MINUTE,
      now: t0 + 2 * MINUTE + 900,
    });
    expect(again).toEqual({ fire: [], last: undefined, missed: undefined });
  });

  it('once fires the most recent missed tick; skip fires none; both move past them', () => {
    const window = { floor: t0, onTimeFrom: t0 + 5 * MINUTE + 200, now: t0 + 5 * MINUTE + 200 };
    const once = dueTicks(cron, 'once', window);
    expect(once.fire).toEqual([t0 + 5 * MINUTE]);
    expect(once.last).toBe(t0 + 5 * MINUTE);
    const skip = dueTicks(cron, 'skip', window);
    expect(skip.fire).toEqual([]);
    expect(skip.last).toBe(t0 + 5 * MINUTE);
    expect(skip.missed).toBe(t0 + 5 * MINUTE);
  });

  it('fires an on-time tick beside the missed one, and nothing at or before the floor', () => {
    const window = { floor: t0 + MINUTE, onTimeFrom: t0 + 4 * MINUTE + 500, now: t0 + 5 * MINUTE + 10 };
    expect(dueTicks(cron, 'once', window).fire).toEqual([t0 + 4 * MINUTE, t0 + 5 * MINUTE]);
    expect(dueTicks(cron, 'skip', window).fire).toEqual([t0 + 5 * MINUTE]);
    expect(
      dueTicks(cron, 'once', { floor: t0 + 5 * MINUTE, onTimeFrom: t0, now: t0 + 5 * MINUTE + 10 }).fire,
    ).toEqual([]);
  });

  it('reads the cron in the time zone: the schedule’s, else the flow’s, else UTC', () => {
    const nine = { cron: '0 9 * * *' };
    const next = (zone: string | undefined, schedule: { cron: string; timezone?: string } = nine) =>
      cronOf(schedule, zone).nextRun(new Date('2024-05-01T00:30:00Z'))!.toISOString();
    expect(next(undefined)).toBe('2024-05-01T09:00:00.000Z');
    expect(next('Asia/Tokyo')).toBe('2024-05-02T00:00:00.000Z');
    expect(next('UTC', { ...nine, timezone: 'America/New_York' })).toBe('2024-05-01T13:00:00.000Z');
  });
});

describe.each(STORES)('schedules on a fake clock (%s)', (kind) => {
  it('fires each tick once; after downtime, once fires the latest missed tick and skip none', async () => {
    const t = await server({ store: kind });
    await t.server.triggers.stop();
    const { store } = t.server.context;
    const ws = await store.workspaces.ensure('default');
    await putFlow(store, ws.id, flowText('min-once', '* * * * *'));
    await putFlow(store, ws.id, flowText('min-skip', '* * * * *', ', missed: skip'));
    const created = (await store.flows.get(ws.id, 'min-skip'))!.updated_at;
    const first = Math.ceil((created + 1) / MINUTE) * MINUTE;
    let clock = Date.now();
    const now = () => clock;

    const a = new Triggers(t.server.context, { timers: false, now });
    await a.start();
    expect(await a.checkSchedules()).toEqual([]);
    clock = first + 100;
    const fired = await a.checkSchedules();
    expect(fired.map((f) => [f.flow, f.tick, f.duplicate]).sort()).toEqual([
      ['min-once', new Date(first).toISOString(), false],
      ['min-skip', new Date(first).toISOString(), false],
    ]);
    clock += 20_000;
    expect(await a.checkSchedules()).toEqual([]);
    clock = first + MINUTE + 5;
    expect((await a.checkSchedules()).length).toBe(2);
    expect(await store.triggerState.get<ScheduleState>(ws.id, 'min-skip', 'schedule')).toEqual({
      last: first + MINUTE,
      tick: new Date(first + MINUTE).toISOString(),
    });
    await a.stop();

    // Down for three ticks (+2, +3, +4 min); a new process starts half a minute after the last.
    clock = first + 4 * MINUTE + 30_000;
    const b = new Triggers(t.server.context, { timers: false, now });
    await b.start();
    const caughtUp = await b.checkSchedules();
    expect(caughtUp.map((f) => [f.flow, f.tick])).toEqual([
      ['min-once', new Date(first + 4 * MINUTE).toISOString()],
    ]);
    expect(await b.checkSchedules()).toEqual([]);
    clock = first + 5 * MINUTE + 10;
    expect((await b.checkSchedules()).map((f) => f.flow).sort()).toEqual(['min-once', 'min-skip']);
    await b.stop();

    // Two processes at once on one store, racing for every tick: one run each.
    clock = first + 5 * MINUTE + 30_000;
    const c = new Triggers(t.server.context, { timers: false, now });
    const d = new Triggers(t.server.context, { timers: false, now });
    await Promise.all([c.start(), d.start()]);
    for (const minute of [6, 7, 8]) {
      clock = first + minute * MINUTE + 1;
      const both = (await Promise.all([c.checkSchedules(), d.checkSchedules(), c.checkSchedules()])).flat();
      expect(both.filter((f) => !f.duplicate).length).toBe(2);
    }
    await Promise.all([c.stop(), d.stop()]);

    const minutes = (counts: Map<number, number>) =>
      [...counts.keys()].map((tick) => (tick - first) / MINUTE).sort();
    const once = await ticksOf(store, ws.id, 'min-once');
    const skip = await ticksOf(store, ws.id, 'min-skip');
    expect([...once.values(), ...skip.values()].every((count) => count === 1)).toBe(true);
    expect(minutes(once)).toEqual([0, 1, 4, 5, 6, 7, 8]);
    expect(minutes(skip)).toEqual([0, 1, 5, 6, 7, 8]);
  });

  it('fires in the flow’s time zone', async () => {
    const t = await server({ store: kind });
    await t.server.triggers.stop();
    const { store } = t.server.context;
    const ws = await store.workspaces.ensure('default');
    const text = flowText('tokyo-nine', '0 9 * * *').replace(
      'version: 1\n',
      'version: 1\ntimezone: Asia/Tokyo\n',
    );
    await putFlow(store, ws.id, text);
    let clock = Date.now();
    const triggers = new Triggers(t.server.context, { timers: false, now: () => clock });
    running.push(triggers);
    await triggers.start();
    const midnightUtc = Math.ceil(clock / 86_400_000) * 86_400_000; // 09:00 in Tokyo
    clock = midnightUtc - 1000;
    expect(await triggers.checkSchedules()).toEqual([]);
    clock = midnightUtc + 10;
    expect((await triggers.checkSchedules()).map((f) => f.tick)).toEqual([
      new Date(midnightUtc).toISOString(),
    ]);
  });

  it('picks up flows created, changed, disabled and deleted while it runs', async () => {
    const t = await server({ store: kind });
    await t.server.triggers.stop();
    const { store } = t.server.context;
    const ws = await store.workspaces.ensure('default');
    let clock = Date.now();
    const triggers = new Triggers(t.server.context, { timers: false, now: () => clock });
    await triggers.start();
    expect(await triggers.checkSchedules()).toEqual([]);

    await putFlow(store, ws.id, flowText('later', '*/2 * * * *'));
    clock = Math.ceil(clock / (2 * MINUTE)) * 2 * MINUTE + 10;
    expect((await triggers.checkSchedules()).map((f) => f.flow)).toEqual(['later']);

    // Changed to every minute: the next odd minute fires.
    await putFlow(store, ws.id, flowText('later', '* * * * *'));
    clock += MINUTE;
    expect((await triggers.checkSchedules()).map((f) => f.flow)).toEqual(['later']);

    // Disabled: nothing; enabled again: ticks while it was off are not caught up.
    await store.db.updateTable('flows').set({ enabled: 0 }).where('name', '=', 'later').execute();
    clock += MINUTE;
    expect(await triggers.checkSchedules()).toEqual([]);
    clock += 3 * MINUTE;
    expect(await triggers.checkSchedules()).toEqual([]);
    await store.db.updateTable('flows').set({ enabled: 1 }).where('name', '=', 'later').execute();
    expect(await triggers.checkSchedules()).toEqual([]);
    clock += MINUTE;
    expect((await triggers.checkSchedules()).length).toBe(1);

    // Deleted: nothing more.
    await store.flows.delete(ws.id, 'later');
    clock += MINUTE;
    expect(await triggers.checkSchedules()).toEqual([]);
    await triggers.stop();
    // Runs outlive their flow: three ticks fired, each once.
    expect([...(await ticksOf(store, ws.id, 'later')).values()]).toEqual([1, 1, 1]);
  });
});

describe('schedules in real time', () => {
  it('fires exactly once per tick across a restart: once catches up the latest missed tick, skip none', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'lethe-schedule-'));
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    const t1 = await server({ dataDir });
    const store1 = t1.server.context.store;
    const ws = await store1.workspaces.ensure('default');
    await putFlow(store1, ws.id, flowText('sec-once', '* * * * * *'));
    await putFlow(store1, ws.id, flowText('sec-skip', '* * * * * *', ', missed: skip'));
    const created = new Map<string, number>();
    for (const name of ['sec-once', 'sec-skip'])
      created.set(name, (await store1.flows.get(ws.id, name))!.updated_at);
    await t1.server.triggers.refresh();
    await until(
      async () =>
        (await ticksOf(store1, ws.id, 'sec-once')).size >= 2 &&
        (await ticksOf(store1, ws.id, 'sec-skip')).size >= 2,
      5000,
      'two ticks of each flow',
    );
    await t1.close();
    const down = Date.now();
    // Stay down across two tick boundaries.
    const resume = Math.ceil(down / 1000) * 1000 + 1100;
    await until(() => Date.now() >= resume, 3000, 'two ticks to pass');

    const t2 = await server({ dataDir });
    const store2 = t2.server.context.store;
    const since = t2.server.triggers.startTime!;
    await until(
      async () =>
        Math.max(...(await ticksOf(store2, ws.id, 'sec-once')).keys()) >= since + 2000 &&
        Math.max(...(await ticksOf(store2, ws.id, 'sec-skip')).keys()) >= since + 2000,
      6000,
      'two ticks after the restart',
    );
    const readAt = Date.now();
    for (const name of ['sec-once', 'sec-skip']) {
      const counts = await ticksOf(store2, ws.id, name);
      expect(
        [...counts.values()].every((count) => count === 1),
        `${name}: a tick fired twice`,
      ).toBe(true);
      const fired = new Set(counts.keys());
      // The first server fired every tick from the flow's creation to its last one.
      const last1 = Math.max(...[...fired].filter((tick) => tick < down));
      for (let tick = Math.ceil((created.get(name)! + 1) / 1000) * 1000; tick <= last1; tick += 1000) {
        expect(fired.has(tick), `${name}: tick ${new Date(tick).toISOString()} before the stop`).toBe(true);
      }
      // Ticks nobody watched: at least two; once fires the latest of them, skip none.
      const missed: number[] = [];
      for (let tick = last1 + 1000; tick < since; tick += 1000) missed.push(tick);
      expect(missed.length).toBeGreaterThanOrEqual(2);
      const firedMissed = missed.filter((tick) => fired.has(tick));
      expect(firedMissed).toEqual(name === 'sec-once' ? [missed[missed.length - 1]] : []);
      // The second server fires every tick from its start.
      for (let tick = Math.ceil(since / 1000) * 1000; tick <= readAt - 500; tick += 1000) {
        expect(fired.has(tick), `${name}: tick ${new Date(tick).toISOString()} after the restart`).toBe(true);
      }
    }
  });

  it.each(STORES)('never double-fires with two servers on one store (%s)', async (kind) => {
    const dataDir = mkdtempSync(join(tmpdir(), 'lethe-schedule-'));
    cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
    let databaseUrl: string | undefined;
    if (kind === 'postgres') {
      const schema = await pgSchemaUrl();
      databaseUrl = schema.url;
      cleanups.push(schema.drop);
    }
    const a = await server({ dataDir, config: { databaseUrl } });
    const b = await server({ dataDir, config: { databaseUrl } });
    const store = a.server.context.store;
    const ws = await store.workspaces.ensure('default');
    await putFlow(store, ws.id, flowText('both', '* * * * * *'));
    const created = (await store.flows.get(ws.id, 'both'))!.updated_at;
    await Promise.all([a.server.triggers.refresh(), b.server.triggers.refresh()]);
    await until(async () => (await ticksOf(store, ws.id, 'both')).size >= 2, 5000, 'two ticks');
    const readAt = Date.now();
    const counts = await ticksOf(store, ws.id, 'both');
    expect([...counts.values()].every((count) => count === 1)).toBe(true);
    for (let tick = Math.ceil((created + 1) / 1000) * 1000; tick <= readAt - 500; tick += 1000) {
      expect(counts.has(tick), `tick ${new Date(tick).toISOString()}`).toBe(true);
    }
    // Each run was reported fired by exactly one of the two servers.
    const firedLogs = [...a.logs, ...b.logs]
      .map((line) => JSON.parse(line) as { msg?: string; flow?: string; tick?: string })
      .filter((line) => line.msg === 'schedule fired' && line.flow === 'both');
    expect(new Set(firedLogs.map((line) => line.tick)).size).toBe(firedLogs.length);
  });

  it('notices a flow created after start by its periodic re-scan, and a deleted one', async () => {
    const t = await server();
    await t.server.triggers.stop();
    const { store } = t.server.context;
    const ws = await store.workspaces.ensure('default');
    const triggers = new Triggers(t.server.context, { rescanMs: 100 });
    running.push(triggers);
    await triggers.start();
    await putFlow(store, ws.id, flowText('rescanned', '* * * * * *'));
    await until(
      async () => (await ticksOf(store, ws.id, 'rescanned')).size >= 1,
      3000,
      'a run of the new flow',
    );
    await store.flows.delete(ws.id, 'rescanned');
    await until(async () => !(await store.flows.get(ws.id, 'rescanned')), 1000, 'the delete');
    const deletedAt = Date.now();
    // A flow created after the delete shows that re-scans and ticks went on after it.
    await putFlow(store, ws.id, flowText('marker', '* * * * * *'));
    await until(
      async () =>
        [...(await ticksOf(store, ws.id, 'marker')).keys()].some((tick) => tick >= deletedAt + 1000),
      3000,
      'a tick of a flow created after the delete',
    );
    const after = await ticksOf(store, ws.id, 'rescanned');
    expect([...after.keys()].filter((tick) => tick > deletedAt + 200)).toEqual([]);
  });
});
