import { afterEach, expect, it } from 'vitest';
import type { Store } from '../../src/store/index.js';
import { newId } from '../../src/store/ids.js';
import type { GatewayLogRow } from '../../src/store/records.js';
import type { Transaction } from 'kysely';
import type { Database } from '../../src/store/schema.js';
import { isUniqueViolation } from '../../src/store/database.js';
import { describeStores, gatewayRow, newPlace, runRow, type StorePlace } from './support.js';

const entry = (workspaceId: string, id = newId()): GatewayLogRow =>
  gatewayRow(workspaceId, { id, flow_name: 'f', received_at: 1, size: 1 });

/** Ids of the gateway log rows a store sees (through its own connection). */
async function visible(store: Store, ids: string[]): Promise<Set<string>> {
  if (ids.length === 0) return new Set();
  const rows = await store.db.selectFrom('gateway_log').select('id').where('id', 'in', ids).execute();
  return new Set(rows.map((row) => row.id));
}

await describeStores('group commit', (kind) => {
  let place: StorePlace | undefined;
  afterEach(async () => {
    await place?.cleanup();
    place = undefined;
  });
  /** A writer store and a second store (another connection) that only sees committed rows. */
  const open = async () => {
    place = await newPlace(kind);
    const writer = await place.open();
    const reader = await place.open();
    const ws = (await writer.workspaces.ensure('gc')).id;
    return { writer, reader, ws };
  };
  const insert = (store: Store, row: GatewayLogRow) => (trx: Transaction<Database>) =>
    store.gatewayLog.insert(trx, row);

  it('a lone write commits at once, in its own transaction', async () => {
    const { writer, reader, ws } = await open();
    const row = entry(ws);
    await writer.commits.submit(insert(writer, row));
    expect(writer.commits.stats).toEqual({ commits: 1, items: 1 });
    expect(await visible(reader, [row.id])).toEqual(new Set([row.id]));
  });

  it('concurrent writes share transactions, and each resolves only once its rows are committed', async () => {
    const { writer, reader, ws } = await open();
    // More than one batch holds (512), so at least two transactions.
    const rows = Array.from({ length: 600 }, () => entry(ws));
    const seenAtResolve = await Promise.all(
      rows.map((row) => writer.commits.submit(insert(writer, row)).then(() => visible(reader, [row.id]))),
    );
    // Every submitter, when its promise resolved, could read its row from another connection.
    expect(seenAtResolve.filter((seen) => seen.size === 1)).toHaveLength(600);
    expect(writer.commits.stats.items).toBe(600);
    expect(writer.commits.stats.commits).toBeGreaterThanOrEqual(2);
    expect(writer.commits.stats.commits).toBeLessThan(30);
    expect(
      (
        await visible(
          reader,
          rows.map((row) => row.id),
        )
      ).size,
    ).toBe(600);
  });

  it('writes arriving over time still share transactions while one commits', async () => {
    const { writer, reader, ws } = await open();
    const rows = Array.from({ length: 200 }, () => entry(ws));
    const submits: Promise<void>[] = [];
    for (const [i, row] of rows.entries()) {
      submits.push(writer.commits.submit(insert(writer, row)));
      if (i % 10 === 9) await new Promise((resolve) => setImmediate(resolve));
    }
    await Promise.all(submits);
    expect(writer.commits.stats.items).toBe(200);
    expect(writer.commits.stats.commits).toBeLessThan(200);
    expect(
      (
        await visible(
          reader,
          rows.map((row) => row.id),
        )
      ).size,
    ).toBe(200);
  });

  it('two runs with one idempotency key in one batch: one is stored, the other rejects', async () => {
    const { writer, ws } = await open();
    const other = (await writer.workspaces.ensure('gc-other')).id;
    const runs = [
      runRow(ws, { idempotency_key: 'k' }),
      runRow(ws, { idempotency_key: 'k' }),
      runRow(other, { idempotency_key: 'k' }),
      runRow(ws),
    ];
    const results = await Promise.allSettled(
      runs.map((run) => writer.commits.submit((trx) => writer.runs.insert(trx, run, undefined))),
    );
    expect(results.map((result) => result.status)).toEqual([
      'fulfilled',
      'rejected',
      'fulfilled',
      'fulfilled',
    ]);
    expect(isUniqueViolation((results[1] as PromiseRejectedResult).reason)).toBe(true);
    expect((await writer.runs.byIdempotencyKey(ws, 'k'))?.id).toBe(runs[0]!.id);
    expect(await writer.runs.get(runs[1]!.id)).toBeUndefined();
    expect((await writer.runs.byIdempotencyKey(other, 'k'))?.id).toBe(runs[2]!.id);
  });

  it('work is not visible to others before its transaction commits', async () => {
    const { writer, reader, ws } = await open();
    const row = entry(ws);
    let seenInside: Set<string> | undefined;
    await writer.commits.submit(async (trx) => {
      await writer.gatewayLog.insert(trx, row);
      seenInside = await visible(reader, [row.id]);
    });
    expect(seenInside).toEqual(new Set());
    expect(await visible(reader, [row.id])).toEqual(new Set([row.id]));
  });

  it('one failing item rejects alone; the others commit; its own writes are undone', async () => {
    const { writer, reader, ws } = await open();
    const rows = Array.from({ length: 20 }, () => entry(ws));
    const duplicate = entry(ws, rows[3]!.id);
    const halfDone = entry(ws);
    const boom = new Error('boom');
    const submits = [
      ...rows.map((row) => writer.commits.submit(insert(writer, row))),
      // A database error (a duplicate key: on PostgreSQL it aborts the whole transaction)…
      writer.commits.submit(insert(writer, duplicate)),
      // …and an error thrown by the work after it wrote something.
      writer.commits.submit(async (trx) => {
        await writer.gatewayLog.insert(trx, halfDone);
        throw boom;
      }),
    ];
    const results = await Promise.allSettled(submits);
    expect(results.slice(0, 20).map((r) => r.status)).toEqual(Array(20).fill('fulfilled'));
    expect(results[20]!.status).toBe('rejected');
    expect(results[21]).toEqual({ status: 'rejected', reason: boom });
    expect(
      (
        await visible(
          reader,
          rows.map((row) => row.id),
        )
      ).size,
    ).toBe(20);
    expect(await visible(reader, [halfDone.id])).toEqual(new Set());
    expect(writer.commits.stats.items).toBe(20);
  });

  it('close waits for pending work, then refuses more', async () => {
    const { writer, reader, ws } = await open();
    const rows = Array.from({ length: 100 }, () => entry(ws));
    const settled: string[] = [];
    const submits = rows.map((row) =>
      writer.commits
        .submit(async (trx) => {
          // Slow work, so close() really has something to wait for.
          await new Promise((resolve) => setTimeout(resolve, 1));
          await writer.gatewayLog.insert(trx, row);
        })
        .then(() => settled.push(row.id)),
    );
    await writer.commits.close();
    // Every submitter's promise has resolved by the time close() does.
    expect(settled).toHaveLength(100);
    expect(
      (
        await visible(
          reader,
          rows.map((row) => row.id),
        )
      ).size,
    ).toBe(100);
    await Promise.all(submits);
    await expect(writer.commits.submit(insert(writer, entry(ws)))).rejects.toThrow('the store is closing');
    // Closing again (as Store.close does) returns at once.
    await writer.commits.close();
  });

  it('work submitted while a batch commits goes into the next one', async () => {
    const { writer, reader, ws } = await open();
    const first = entry(ws);
    const chained: GatewayLogRow[] = [];
    await writer.commits.submit(insert(writer, first)).then(async () => {
      // Submitted from a resolved submitter, right after the flush looked at the queue.
      const next = entry(ws);
      chained.push(next);
      await writer.commits.submit(insert(writer, next));
    });
    expect((await visible(reader, [first.id, chained[0]!.id])).size).toBe(2);
    expect(writer.commits.stats).toEqual({ commits: 2, items: 2 });
  });
});
