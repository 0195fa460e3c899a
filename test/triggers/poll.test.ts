/**
 * Polls: a flow polling a SQLite table through a stored connection fires exactly one run per
 * new row, none for unchanged rows, one per changed row in key mode, none again after a
 * restart or after a crash between firing and remembering; polls of one flow never overlap;
 * a failing poll is logged with ids only and retried on the next interval.
 *
 * The tests drive a `Triggers` without timers (`pollOnce`) on a clock of their own against a
 * real server's store, whose own triggers are stopped first; the last test uses real timers.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Sqlite from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import type { StepStats } from '../../src/engine/events.js';
import { parseFlow } from '../../src/flow/load.js';
import type { ServerContext } from '../../src/server/context.js';
import type { Store } from '../../src/store/index.js';
import { Triggers } from '../../src/triggers/index.js';
import type { PollState } from '../../src/triggers/poll.js';
import { acquireLease, releaseLease } from '../../src/triggers/store-queries.js';
import { pgSchemaUrl, startTestServer, type StoreKind, type TestServer } from '../helpers/server.js';
import { pgAvailable } from '../helpers/services.js';

const hasPostgres = await pgAvailable();
const STORES: StoreKind[] = hasPostgres ? ['sqlite', 'postgres'] : ['sqlite'];

/** The cursor a poll stored, decrypted with the workspace's key. */
async function storedCursor(context: ServerContext, workspaceId: string, flow: string): Promise<unknown> {
  const state = await context.store.triggerState.get<PollState>(workspaceId, flow, 'poll');
  if (state?.cursorSealed === undefined) return undefined;
  return JSON.parse(await context.vault.decrypt(workspaceId, `poll:${flow}`, 'cursor', state.cursorSealed));
}

function flowText(name: string, poll: string, every = '1h', table = 'items'): string {
  return `version: 1
name: ${name}
trigger: { poll: { every: ${every}, step: source, ${poll} } }
steps:
  - id: source
    input: { connection: src, table: ${table} }
  - id: row
    input: { trigger: true }
  - id: out
    output: { from: row, respond: true }
`;
}

async function putFlow(store: Store, workspaceId: string, text: string): Promise<void> {
  const { flow } = parseFlow(text, 'flow.yaml', tmpdir());
  await store.flows.put({ workspaceId, flow, source: text, format: 'yaml', author: 'test' });
}

/**
 * The rows a flow's runs received, read from what their `row` step (input: { trigger: true })
 * produced once every run succeeded — a run's input is deleted when it succeeds. Sorted, since
 * runs made together may be numbered in any order.
 */
async function payloads(store: Store, workspaceId: string, flow: string): Promise<unknown[]> {
  const runs = () =>
    store.db
      .selectFrom('runs')
      .select(['id', 'status', 'trigger', 'idempotency_key'])
      .where('workspace_id', '=', workspaceId)
      .where('flow_name', '=', flow)
      .execute();
  await until(
    async () => (await runs()).every((run) => run.status === 'succeeded'),
    10_000,
    `the runs of ${flow} to succeed`,
  );
  const out: Record<string, unknown>[] = [];
  for (const run of await runs()) {
    expect(run.trigger).toBe('poll');
    expect(run.idempotency_key?.startsWith(`poll:${flow}:`)).toBe(true);
    const details = await store.runs.details(run.id);
    const steps = JSON.parse(details!.steps) as StepStats[];
    const sample = steps.find((step) => step.id === 'row')!.sample!;
    expect(sample.rows.length).toBe(1);
    out.push(Object.fromEntries(sample.columns.map((column, i) => [column, sample.rows[0]![i]])));
  }
  return out.sort((a, b) => (JSON.stringify(a) < JSON.stringify(b) ? -1 : 1));
}

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

interface Setup {
  t: TestServer;
  store: Store;
  workspaceId: string;
  source: Sqlite.Database;
  open: () => Promise<TestServer>;
}

/** A server (its own triggers stopped) with a connection `src` to a SQLite file `src.db`. */
async function setup(kind: StoreKind): Promise<Setup> {
  const dataDir = mkdtempSync(join(tmpdir(), 'lethe-poll-'));
  let databaseUrl: string | undefined;
  if (kind === 'postgres') {
    const schema = await pgSchemaUrl();
    databaseUrl = schema.url;
    cleanups.push(schema.drop);
  }
  cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
  const open = async () => {
    const started = await startTestServer({ dataDir, config: { databaseUrl } });
    servers.push(started);
    await started.server.triggers.stop();
    return started;
  };
  const t = await open();
  const { store, runner } = t.server.context;
  const ws = await store.workspaces.ensure('default');
  const files = runner.filesDir(ws.name);
  mkdirSync(files, { recursive: true });
  const source = new Sqlite(join(files, 'src.db'));
  cleanups.push(() => void source.close());
  source.exec('create table items (id integer primary key, name text, n integer)');
  const now = Date.now();
  await store.connections.put({
    workspace_id: ws.id,
    name: 'src',
    type: 'sqlite',
    settings: JSON.stringify({ path: 'src.db' }),
    secrets: '{}',
    created_at: now,
    updated_at: now,
    updated_by: 'test',
  });
  return { t, store, workspaceId: ws.id, source, open };
}

describe.each(STORES)('poll triggers (%s)', (kind) => {
  it('fires once per new row and per changed row, never for unchanged ones, nor again after a restart', async () => {
    const { t, store, workspaceId, source, open } = await setup(kind);
    const insert = source.prepare('insert into items (id, name, n) values (?, ?, ?)');
    insert.run(1, 'a', 1);
    insert.run(2, 'b', 2);
    await putFlow(store, workspaceId, flowText('by-key', 'key: [id]'));
    await putFlow(store, workspaceId, flowText('by-cursor', 'cursor: id'));
    await putFlow(store, workspaceId, flowText('fire-first', 'key: [id], initial: fire'));
    let clock = Date.now();
    const triggers = new Triggers(t.server.context, { timers: false, now: () => clock });
    running.push(triggers);
    await triggers.start();
    const pollAll = async () => {
      clock += 1000;
      const outcome = async (flow: string) => {
        const result = await triggers.pollOnce(workspaceId, flow);
        return `${result.status}:${result.fired}`;
      };
      return [await outcome('by-key'), await outcome('by-cursor'), await outcome('fire-first')];
    };

    // The first poll takes a baseline, unless the flow says initial: fire.
    expect(await pollAll()).toEqual(['baseline:0', 'baseline:0', 'polled:2']);
    expect(await pollAll()).toEqual(['polled:0', 'polled:0', 'polled:0']);
    const state = await store.triggerState.get<PollState>(workspaceId, 'by-cursor', 'poll');
    // The cursor is a value from the source: it is kept encrypted, never in the clear.
    expect(JSON.stringify(state)).not.toMatch(/"cursor"/);
    expect(await storedCursor(t.server.context, workspaceId, 'by-cursor')).toBe(2);

    insert.run(3, 'c', 3);
    insert.run(4, 'd', 4);
    expect(await pollAll()).toEqual(['polled:2', 'polled:2', 'polled:2']);
    expect(await pollAll()).toEqual(['polled:0', 'polled:0', 'polled:0']);

    // A changed row fires in key mode (also when it changes back); the cursor did not move.
    source.prepare("update items set name = 'b2' where id = 2").run();
    expect(await pollAll()).toEqual(['polled:1', 'polled:0', 'polled:1']);
    source.prepare("update items set name = 'b' where id = 2").run();
    expect(await pollAll()).toEqual(['polled:1', 'polled:0', 'polled:1']);
    // A deleted row fires nothing.
    source.prepare('delete from items where id = 1').run();
    expect(await pollAll()).toEqual(['polled:0', 'polled:0', 'polled:0']);

    expect(await payloads(store, workspaceId, 'by-key')).toEqual([
      { id: 2, name: 'b', n: 2 },
      { id: 2, name: 'b2', n: 2 },
      { id: 3, name: 'c', n: 3 },
      { id: 4, name: 'd', n: 4 },
    ]);
    expect(await payloads(store, workspaceId, 'by-cursor')).toEqual([
      { id: 3, name: 'c', n: 3 },
      { id: 4, name: 'd', n: 4 },
    ]);
    expect((await payloads(store, workspaceId, 'fire-first')).length).toBe(6);

    // A crash between firing and remembering: the row fires again under the same idempotency
    // key, so no second run is made.
    insert.run(5, 'e', 5);
    clock += 1000;
    expect((await triggers.pollOnce(workspaceId, 'by-key')).fired).toBe(1);
    await store.db
      .deleteFrom('poll_seen')
      .where('flow_name', '=', 'by-key')
      .where('seen_at', '=', clock)
      .execute();
    clock += 1000;
    const retried = await triggers.pollOnce(workspaceId, 'by-key');
    expect([retried.changed, retried.fired]).toEqual([1, 0]);
    expect((await payloads(store, workspaceId, 'by-key')).length).toBe(5);

    // Only hashes are kept for key mode, one per key ever seen (1 to 5): no value of a row.
    const seen = await store.db
      .selectFrom('poll_seen')
      .selectAll()
      .where('flow_name', '=', 'by-key')
      .execute();
    expect(seen.length).toBe(5);
    for (const row of seen) {
      expect(row.key_hash).toMatch(/^[0-9a-f]{64}$/);
      expect(row.row_hash).toMatch(/^[0-9a-f]{64}$/);
    }

    // Restart on the same store; a row arrives while the server is down.
    await triggers.stop();
    await t.close();
    insert.run(6, 'f', 6);
    const t2 = await open();
    const again = new Triggers(t2.server.context, { timers: false, now: () => clock });
    running.push(again);
    const pollAgain = async () => {
      clock += 1000;
      return Promise.all(
        ['by-key', 'by-cursor', 'fire-first'].map(
          async (flow) => (await again.pollOnce(workspaceId, flow)).fired,
        ),
      );
    };
    const store2 = t2.server.context.store;
    // by-key: row 6; the other two had not polled since row 5 either.
    expect(await pollAgain()).toEqual([1, 2, 2]);
    expect(await pollAgain()).toEqual([0, 0, 0]);
    expect((await payloads(store2, workspaceId, 'by-key')).length).toBe(6);
    expect((await payloads(store2, workspaceId, 'by-cursor')).length).toBe(4);
    expect((await payloads(store2, workspaceId, 'fire-first')).length).toBe(8);
  });

  it('never runs two polls of one flow at once, in a process or across two', async () => {
    const { t, store, workspaceId, source } = await setup(kind);
    await putFlow(store, workspaceId, flowText('busy', 'key: [id]'));
    const a = new Triggers(t.server.context, { timers: false });
    const b = new Triggers(t.server.context, { timers: false });
    running.push(a, b);
    await Promise.all([a.start(), b.start()]);
    expect((await a.pollOnce(workspaceId, 'busy')).status).toBe('baseline');
    const insert = source.prepare('insert into items (id, name, n) values (?, ?, ?)');
    for (let id = 1; id <= 40; id++) insert.run(id, `row ${id}`, id);
    const outcomes = await Promise.all([
      a.pollOnce(workspaceId, 'busy'),
      a.pollOnce(workspaceId, 'busy'),
      b.pollOnce(workspaceId, 'busy'),
      b.pollOnce(workspaceId, 'busy'),
    ]);
    // One poll saw the 40 rows; every other one was kept out (busy) or found them seen.
    expect(outcomes.filter((o) => o.changed === 40 && o.fired === 40).length).toBe(1);
    for (const outcome of outcomes.filter((o) => o.fired === 0)) {
      expect(outcome.changed).toBe(0);
      expect(['busy', 'polled']).toContain(outcome.status);
    }
    expect((await payloads(store, workspaceId, 'busy')).length).toBe(40);
  });

  it('keeps a second process out with a lease until it is given back or expires', async () => {
    const { store, workspaceId } = await setup(kind);
    const take = (owner: string, now: number) =>
      acquireLease(store.db, workspaceId, 'f', 'poll-lease', owner, now, now + 1000);
    expect(await take('a', 10_000)).toBe(true);
    expect(await take('b', 10_500)).toBe(false);
    expect(await take('a', 10_600)).toBe(true); // the holder may renew
    await releaseLease(store.db, workspaceId, 'f', 'poll-lease', 'b'); // not b's to give back
    expect(await take('b', 10_700)).toBe(false);
    expect(await take('b', 11_700)).toBe(true); // a's lease ran out
    await releaseLease(store.db, workspaceId, 'f', 'poll-lease', 'b');
    expect(await take('a', 11_800)).toBe(true);
  });
});

describe('a failing poll', () => {
  it('is logged with ids only and retried on the next interval', async () => {
    const { t, store, workspaceId, source } = await setup('sqlite');
    await putFlow(store, workspaceId, flowText('late-table', 'cursor: id', '1s', 'secret_orders'));
    const triggers = new Triggers(t.server.context, { rescanMs: 60_000 });
    running.push(triggers);
    await triggers.start();
    const failure = () =>
      t.logs
        .map((line) => JSON.parse(line) as Record<string, unknown>)
        .find((line) => line.msg === 'polling failed' && line.flow === 'late-table');
    await until(() => failure() !== undefined, 3000, 'the failure to be logged');
    expect(failure()).toMatchObject({ workspace: workspaceId, flow: 'late-table', code: 'SOURCE_ERROR' });
    expect(JSON.stringify(failure())).not.toContain('secret_orders');

    source.exec(
      "create table secret_orders (id integer primary key, name text); insert into secret_orders values (1, 'x')",
    );
    const polled = () => storedCursor(t.server.context, workspaceId, 'late-table');
    await until(async () => (await polled()) === 1, 3000, 'the retry to take its baseline');
    source.exec("insert into secret_orders values (2, 'y')");
    await until(
      async () => (await payloads(store, workspaceId, 'late-table')).length === 1,
      3000,
      'a run for row 2',
    );
    expect(await payloads(store, workspaceId, 'late-table')).toEqual([{ id: 2, name: 'y' }]);
  });
});
