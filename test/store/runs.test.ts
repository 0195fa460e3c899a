import { afterEach, describe, expect, it } from 'vitest';
import type { Store } from '../../src/store/index.js';
import type { RunOutcome, RunRow } from '../../src/store/runs.js';
import { describeStores, freshStore, runRow, uniqueName, useStore, type StorePlace } from './support.js';

const input = { params: { region: 'eu' }, payload: [{ id: 1, email: 'a@example.com' }] };

const outcome = (status: RunOutcome['status'], overrides: Partial<RunOutcome> = {}): RunOutcome => ({
  status,
  finishedAt: 5000,
  durationMs: 12.4,
  rowsRead: 3,
  rowsWritten: 2,
  errorCode: status === 'succeeded' ? null : 'EXPRESSION_ERROR',
  errorStep: status === 'succeeded' ? null : 'filter',
  ...overrides,
});

await describeStores('runs', (kind) => {
  const ctx = useStore(kind);
  const workspace = async () => (await ctx.store.workspaces.ensure(uniqueName())).id;
  const insert = async (run: RunRow, withInput = true) => {
    await ctx.store.runs.insert(ctx.store.db, run, withInput ? input : undefined);
    return run;
  };

  describe('insert and read', () => {
    it('keeps the input of a standard run, and none for a confidential one', async () => {
      const ws = await workspace();
      const standard = await insert(runRow(ws));
      const confidential = await insert(runRow(ws, { privacy: 'confidential', input_kept: 0 }));
      const bare = await insert(runRow(ws), false);
      expect(await ctx.store.runs.get(standard.id)).toEqual(standard);
      expect(await ctx.store.runs.input(standard.id)).toEqual(input);
      expect(await ctx.store.runs.get(confidential.id)).toEqual(confidential);
      expect(await ctx.store.runs.input(confidential.id)).toBeUndefined();
      expect(await ctx.store.runs.input(bare.id)).toBeUndefined();
      expect(await ctx.store.runs.get('nope')).toBeUndefined();
    });

    it('inWorkspace finds a run only in its own workspace', async () => {
      const ws = await workspace();
      const other = await workspace();
      const run = await insert(runRow(ws));
      expect(await ctx.store.runs.inWorkspace(ws, run.id)).toEqual(run);
      expect(await ctx.store.runs.inWorkspace(other, run.id)).toBeUndefined();
    });

    it('an idempotency key is unique in a workspace, not across workspaces', async () => {
      const ws = await workspace();
      const other = await workspace();
      const first = await insert(runRow(ws, { idempotency_key: 'order-42' }));
      await expect(insert(runRow(ws, { idempotency_key: 'order-42' }))).rejects.toThrow();
      const elsewhere = await insert(runRow(other, { idempotency_key: 'order-42' }));
      // Runs without a key never collide.
      await insert(runRow(ws));
      await insert(runRow(ws));
      expect((await ctx.store.runs.byIdempotencyKey(ws, 'order-42'))?.id).toBe(first.id);
      expect((await ctx.store.runs.byIdempotencyKey(other, 'order-42'))?.id).toBe(elsewhere.id);
      expect(await ctx.store.runs.byIdempotencyKey(ws, 'order-43')).toBeUndefined();
      const rejected = await ctx.store.runs.list(ws, { status: 'queued' }, 10);
      expect(rejected.items).toHaveLength(3);
    });
  });

  describe('claim', () => {
    it('is exclusive: of many concurrent claims exactly one wins', async () => {
      const ws = await workspace();
      const run = await insert(runRow(ws));
      const other = await ctx.place.open();
      const claims = await Promise.all(
        Array.from({ length: 12 }, (_, i) => (i % 2 ? other : ctx.store).runs.claim(run.id, 7000 + i)),
      );
      const won = claims.filter((claim) => claim !== undefined);
      expect(won).toHaveLength(1);
      expect(won[0]).toMatchObject({ id: run.id, status: 'running', attempt: 1 });
      expect(await ctx.store.runs.get(run.id)).toEqual(won[0]);
      expect(await ctx.store.runs.claim(run.id, 8000)).toBeUndefined();
    });

    it('counts an attempt per claim', async () => {
      const ws = await workspace();
      const run = await insert(runRow(ws));
      expect((await ctx.store.runs.claim(run.id, 1))?.attempt).toBe(1);
      await ctx.store.runs.requeue(ctx.store.db, run.id, 2);
      expect(await ctx.store.runs.get(run.id)).toMatchObject({
        status: 'queued',
        available_at: 2,
        started_at: null,
        attempt: 1,
      });
      expect((await ctx.store.runs.claim(run.id, 3))?.attempt).toBe(2);
      // A run interrupted by shutdown goes back without using up an attempt.
      await ctx.store.runs.requeue(ctx.store.db, run.id, 4, { uncountAttempt: true });
      expect(await ctx.store.runs.get(run.id)).toMatchObject({
        status: 'queued',
        available_at: 4,
        attempt: 1,
      });
    });
  });

  describe('finish', () => {
    it('on success records the outcome and details, and deletes the input', async () => {
      const ws = await workspace();
      const run = await insert(runRow(ws));
      const claimed = (await ctx.store.runs.claim(run.id, 4000))!;
      await ctx.store.runs.finish(
        ctx.store.db,
        claimed,
        outcome('succeeded', { details: { steps: [{ id: 'a', rowsIn: 3 }], errorMessage: null } }),
      );
      expect(await ctx.store.runs.get(run.id)).toEqual({
        ...claimed,
        status: 'succeeded',
        finished_at: 5000,
        duration_ms: 12,
        rows_read: 3,
        rows_written: 2,
      });
      expect(await ctx.store.runs.input(run.id)).toBeUndefined();
      expect(await ctx.store.runs.details(run.id)).toEqual({
        run_id: run.id,
        workspace_id: ws,
        steps: '[{"id":"a","rowsIn":3}]',
        error_message: null,
        created_at: 5000,
      });
    });

    it('on incomplete keeps the input for retry; on failed deletes it', async () => {
      const ws = await workspace();
      const incomplete = await insert(runRow(ws));
      const failed = await insert(runRow(ws));
      await ctx.store.runs.finish(
        ctx.store.db,
        (await ctx.store.runs.claim(incomplete.id, 1))!,
        outcome('incomplete'),
      );
      await ctx.store.runs.finish(
        ctx.store.db,
        (await ctx.store.runs.claim(failed.id, 1))!,
        outcome('failed'),
      );
      expect(await ctx.store.runs.get(incomplete.id)).toMatchObject({
        status: 'incomplete',
        error_code: 'EXPRESSION_ERROR',
        error_step: 'filter',
      });
      expect(await ctx.store.runs.input(incomplete.id)).toEqual(input);
      expect((await ctx.store.runs.get(failed.id))?.status).toBe('failed');
      expect(await ctx.store.runs.input(failed.id)).toBeUndefined();
    });

    it('replaces the details of an earlier attempt', async () => {
      const ws = await workspace();
      const run = await insert(runRow(ws));
      const details = (message: string) => ({ details: { steps: [], errorMessage: message } });
      await ctx.store.runs.finish(
        ctx.store.db,
        run,
        outcome('failed', { finishedAt: 1, ...details('first') }),
      );
      await ctx.store.runs.finish(
        ctx.store.db,
        run,
        outcome('failed', { finishedAt: 2, ...details('second') }),
      );
      expect(await ctx.store.runs.details(run.id)).toMatchObject({ error_message: 'second', created_at: 2 });
    });
  });

  describe('dead-letter queue', () => {
    const deadLetter = async (ws: string) => {
      const run = await insert(runRow(ws, { max_attempts: 1 }));
      await ctx.store.runs.finish(
        ctx.store.db,
        (await ctx.store.runs.claim(run.id, 1))!,
        outcome('incomplete'),
      );
      return run;
    };

    it('retry sends an incomplete run back with fresh attempts, only in its workspace', async () => {
      const ws = await workspace();
      const run = await deadLetter(ws);
      expect(await ctx.store.runs.retry(await workspace(), run.id, 9000)).toBe(false);
      expect(await ctx.store.runs.retry(ws, run.id, 9000)).toBe(true);
      expect(await ctx.store.runs.get(run.id)).toMatchObject({
        status: 'queued',
        attempt: 0,
        available_at: 9000,
        started_at: null,
        finished_at: null,
        error_code: null,
        error_step: null,
      });
      expect(await ctx.store.runs.input(run.id)).toEqual(input);
      // Only incomplete runs: a queued one is not retried again.
      expect(await ctx.store.runs.retry(ws, run.id, 9001)).toBe(false);
    });

    it('discard fails an incomplete run and deletes its input, only in its workspace', async () => {
      const ws = await workspace();
      const run = await deadLetter(ws);
      expect(await ctx.store.runs.discard(await workspace(), run.id)).toBe(false);
      expect(await ctx.store.runs.input(run.id)).toEqual(input);
      expect(await ctx.store.runs.discard(ws, run.id)).toBe(true);
      expect(await ctx.store.runs.get(run.id)).toMatchObject({ status: 'failed', error_code: 'DISCARDED' });
      expect(await ctx.store.runs.input(run.id)).toBeUndefined();
      expect(await ctx.store.runs.discard(ws, run.id)).toBe(false);
      const queued = await insert(runRow(ws));
      expect(await ctx.store.runs.discard(ws, queued.id)).toBe(false);
      expect((await ctx.store.runs.get(queued.id))?.status).toBe('queued');
    });
  });

  describe('list', () => {
    it('pages newest first with flow and status filters and cursors', async () => {
      const ws = await workspace();
      const other = await workspace();
      const made: RunRow[] = [];
      for (let i = 0; i < 9; i++) {
        made.push(
          await insert(
            runRow(ws, {
              queued_at: 1_000_000 + i,
              flow_name: i % 3 === 0 ? 'a' : 'b',
              status: i % 2 === 0 ? 'queued' : 'succeeded',
            }),
          ),
        );
      }
      await insert(runRow(other, { queued_at: 2_000_000, flow_name: 'a' }));
      const newest = [...made].reverse().map((run) => run.id);

      const ids = async (filter: Parameters<Store['runs']['list']>[1], limit: number) => {
        const pages: string[][] = [];
        let cursor: string | undefined;
        do {
          const page = await ctx.store.runs.list(ws, filter, limit, cursor);
          pages.push(page.items.map((run) => run.id));
          cursor = page.next ?? undefined;
        } while (cursor !== undefined);
        return pages;
      };
      expect(await ids({}, 4)).toEqual([newest.slice(0, 4), newest.slice(4, 8), newest.slice(8)]);
      expect(await ids({}, 9)).toEqual([newest]);
      const flowA = made
        .filter((run) => run.flow_name === 'a')
        .reverse()
        .map((run) => run.id);
      expect(await ids({ flow: 'a' }, 2)).toEqual([flowA.slice(0, 2), flowA.slice(2)]);
      const queuedB = made
        .filter((run) => run.flow_name === 'b' && run.status === 'queued')
        .reverse()
        .map((run) => run.id);
      expect(queuedB).toHaveLength(3);
      expect(await ids({ flow: 'b', status: 'queued' }, 1)).toEqual(queuedB.map((id) => [id]));
      expect(await ids({ status: 'failed' }, 5)).toEqual([[]]);
    });

    it('refuses a cursor it did not make', async () => {
      const ws = await workspace();
      await expect(
        ctx.store.runs.list(ws, {}, 5, Buffer.from('\u0000bad').toString('base64url')),
      ).rejects.toMatchObject({
        code: 'USAGE',
      });
    });
  });
});

await describeStores('the run queue', (kind) => {
  let place: StorePlace | undefined;
  afterEach(async () => {
    await place?.cleanup();
    place = undefined;
  });
  const open = async () => {
    const fresh = await freshStore(kind);
    place = fresh.place;
    const ws = (await fresh.store.workspaces.ensure('queue')).id;
    return { store: fresh.store, ws };
  };

  it('due lists queued runs whose time has come, oldest first; nextDue names the earliest', async () => {
    const { store, ws } = await open();
    expect(await store.runs.nextDue()).toBeUndefined();
    expect(await store.runs.due(10_000, 10)).toEqual([]);
    const at = (queued: number, available: number, status: RunRow['status'] = 'queued') =>
      runRow(ws, { queued_at: queued, available_at: available, status });
    const late = at(1, 9000);
    const early = at(2, 3000);
    const sameTimeA = at(3, 5000);
    const sameTimeB = at(4, 5000);
    const future = at(5, 20_000);
    const running = at(6, 1000, 'running');
    for (const run of [late, early, sameTimeA, sameTimeB, future, running])
      await store.runs.insert(store.db, run, undefined);
    expect((await store.runs.due(10_000, 10)).map((r) => r.id)).toEqual([
      early.id,
      sameTimeA.id,
      sameTimeB.id,
      late.id,
    ]);
    expect(await store.runs.due(10_000, 2)).toEqual([
      { id: early.id, workspace_id: ws },
      { id: sameTimeA.id, workspace_id: ws },
    ]);
    expect((await store.runs.due(4999, 10)).map((r) => r.id)).toEqual([early.id]);
    expect(await store.runs.nextDue()).toBe(3000);
    await store.runs.claim(early.id, 1);
    expect(await store.runs.nextDue()).toBe(5000);
    expect(await store.runs.countByStatus()).toEqual({ queued: 4, running: 2 });
  });

  it('recover re-queues interrupted runs with attempts left and dead-letters the rest', async () => {
    const { store, ws } = await open();
    const runs = {
      retryable: runRow(ws, { max_attempts: 3 }),
      lastAttempt: runRow(ws, { max_attempts: 2 }),
      queued: runRow(ws),
      done: runRow(ws),
    };
    for (const run of Object.values(runs)) await store.runs.insert(store.db, run, input);
    await store.runs.claim(runs.retryable.id, 100);
    await store.runs.claim(runs.lastAttempt.id, 100);
    await store.runs.requeue(store.db, runs.lastAttempt.id, 100);
    await store.runs.claim(runs.lastAttempt.id, 200);
    const done = (await store.runs.claim(runs.done.id, 100))!;
    await store.runs.finish(store.db, done, outcome('succeeded'));

    expect(await store.runs.recover(50_000)).toEqual({ requeued: 1, deadLettered: 1 });
    expect(await store.runs.get(runs.retryable.id)).toMatchObject({
      status: 'queued',
      attempt: 1,
      available_at: 50_000,
      started_at: null,
    });
    expect(await store.runs.get(runs.lastAttempt.id)).toMatchObject({
      status: 'incomplete',
      attempt: 2,
      finished_at: 50_000,
      error_code: 'INTERRUPTED',
    });
    // Its input stays for a retry from the dead-letter queue.
    expect(await store.runs.input(runs.lastAttempt.id)).toEqual(input);
    expect(await store.runs.get(runs.queued.id)).toEqual(runs.queued);
    expect((await store.runs.get(runs.done.id))?.status).toBe('succeeded');
    expect(await store.runs.recover(60_000)).toEqual({ requeued: 0, deadLettered: 0 });
    expect(await store.runs.countByStatus()).toEqual({ queued: 2, incomplete: 1, succeeded: 1 });
  });
});
