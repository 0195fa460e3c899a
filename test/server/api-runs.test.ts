import { describe, expect, it } from 'vitest';
import {
  call,
  describeStores,
  expectError,
  putFlow,
  startRun,
  useServer,
  waitForRun,
  workspaceFile,
  WS,
} from './api-support.js';

const HELLO = `version: 1
name: hello
params:
  n: { type: integer }
  who: { type: string, default: world }
steps:
  - id: values
    input: { values: [{ a: 1 }, { a: 2 }, { a: 3 }] }
  - id: more
    compute: { from: values, columns: { b: 'a * $params.n', who: '$params.who' } }
  - id: big
    filter: { from: more, where: 'b > 2' }
`;

const SECRET_FLOW = `version: 1
name: hush
privacy: confidential
params:
  n: { type: integer, default: 1 }
steps:
  - id: values
    input: { values: [{ a: 1 }] }
`;

const MISSING_FILE = `version: 1
name: broken
steps:
  - id: read
    input: { file: nowhere.csv }
`;

await describeStores('runs API', (store) => {
  const server = useServer(store);

  describe('starting a manual run', () => {
    it('answers 202 with the run id, runs it and records what happened', async () => {
      const t = server();
      await putFlow(t, 'hello', HELLO);
      const reply = await call<{ runId: string; status: string }>(t, 'POST', `${WS}/flows/hello/runs`, {
        body: { params: { n: '2', who: 'there' } },
      });
      expect(reply.status, reply.text).toBe(202);
      expect(reply.body.status).toBe('queued');
      expect(reply.headers.get('location')).toBe(`${WS}/runs/${reply.body.runId}`);
      const detail = await waitForRun(t, reply.body.runId);
      expect(detail.run).toMatchObject({
        id: reply.body.runId,
        flow: 'hello',
        version: 1,
        trigger: 'manual',
        privacy: 'standard',
        status: 'succeeded',
        attempt: 1,
        maxAttempts: 1,
        rowsRead: 3,
        errorCode: null,
        inputKept: true,
      });
      for (const field of ['queuedAt', 'startedAt', 'finishedAt'])
        expect(new Date(detail.run[field] as string).toISOString()).toBe(detail.run[field]);
      expect(typeof detail.run.durationMs).toBe('number');
      // Execution details: per step counts and a sample of rows (standard flow).
      const steps = detail.details!.steps;
      expect(steps.map((s) => [s.id, s.status, s.rowsIn, s.rowsOut])).toEqual([
        ['values', 'succeeded', 0, 3],
        ['more', 'succeeded', 3, 3],
        ['big', 'succeeded', 3, 2],
      ]);
      expect(steps[2]!.sample).toEqual({
        columns: ['a', 'b', 'who'],
        rows: [
          [2, 4, 'there'],
          [3, 6, 'there'],
        ],
      });
      expect(detail.details!.errorMessage).toBeNull();
      // A run that succeeded no longer needs its input.
      expect(detail.input).toEqual({ kept: true, stored: false });
    });

    it('takes an empty body as no params', async () => {
      const t = server();
      await putFlow(t, 'hush', SECRET_FLOW);
      const response = await t.api(`${WS}/flows/hush/runs`, { method: 'POST' });
      expect(response.status).toBe(202);
      const { runId } = (await response.json()) as { runId: string };
      const detail = await waitForRun(t, runId);
      expect(detail.run.status).toBe('succeeded');
      // Confidential: nothing kept, and it says so.
      expect(detail.run.inputKept).toBe(false);
      expect(detail.input.kept).toBe(false);
      expect(detail.input.note).toMatch(/not kept.*confidential/);
      expect(detail.details).toBeNull();
    });

    it('returns the same run for the same Idempotency-Key', async () => {
      const t = server();
      await putFlow(t, 'hello', HELLO);
      const headers = { 'idempotency-key': `key-${store}` };
      const first = await call<{ runId: string; duplicate?: boolean }>(t, 'POST', `${WS}/flows/hello/runs`, {
        body: { params: { n: 1 } },
        headers,
      });
      const second = await call<{ runId: string; duplicate?: boolean }>(t, 'POST', `${WS}/flows/hello/runs`, {
        body: { params: { n: 1 } },
        headers,
      });
      expect(first.status).toBe(202);
      expect(first.body.duplicate).toBeUndefined();
      expect(second.status).toBe(202);
      expect(second.body).toMatchObject({ runId: first.body.runId, duplicate: true });
      const other = await call<{ runId: string }>(t, 'POST', `${WS}/flows/hello/runs`, {
        body: { params: { n: 1 } },
        headers: { 'idempotency-key': `other-${store}` },
      });
      expect(other.body.runId).not.toBe(first.body.runId);
      // The same key for another flow is a mistake, not a duplicate.
      await putFlow(t, 'hush', SECRET_FLOW);
      const reused = await call(t, 'POST', `${WS}/flows/hush/runs`, { body: {}, headers });
      expect(expectError(reused, 409, 'CONFLICT').message).toMatch(/flow "hello"/);
      await waitForRun(t, first.body.runId);
      await waitForRun(t, other.body.runId);
    });

    it('rejects invalid params with the message, and starts nothing', async () => {
      const t = server();
      await putFlow(t, 'hello', HELLO);
      const before = await call<{ items: unknown[] }>(t, 'GET', `${WS}/runs?flow=hello&limit=500`);
      const missing = await call(t, 'POST', `${WS}/flows/hello/runs`, { body: { params: {} } });
      expect(expectError(missing, 400, 'PARAM_INVALID').message).toMatch(/missing parameter "n"/);
      const wrong = await call(t, 'POST', `${WS}/flows/hello/runs`, {
        body: { params: { n: 'many', nn: 1 } },
      });
      const error = expectError(wrong, 400, 'PARAM_INVALID') as { message: string; errors?: unknown[] };
      expect(error.message).toMatch(/unknown parameter "nn"/);
      expect(error.message).toMatch(/parameter "n"/);
      expect(error.errors).toHaveLength(2);
      const after = await call<{ items: unknown[] }>(t, 'GET', `${WS}/runs?flow=hello&limit=500`);
      expect(after.body.items.length).toBe(before.body.items.length);
    });

    it('rejects bodies that are not { params }', async () => {
      const t = server();
      await putFlow(t, 'hello', HELLO);
      expectError(await call(t, 'POST', `${WS}/flows/hello/runs`, { body: { parms: { n: 1 } } }), 400);
      expectError(await call(t, 'POST', `${WS}/flows/hello/runs`, { body: { params: [1] } }), 400);
      expectError(
        await call(t, 'POST', `${WS}/flows/hello/runs`, { body: '{"params": ' }),
        400,
        'INVALID_JSON',
      );
      expectError(
        await call(t, 'POST', `${WS}/flows/hello/runs`, {
          body: 'n=1',
          headers: { 'content-type': 'text/csv' },
        }),
        415,
      );
      expectError(
        await call(t, 'POST', `${WS}/flows/hello/runs`, {
          body: { params: { n: 1 } },
          headers: { 'idempotency-key': 'k'.repeat(201) },
        }),
        400,
      );
    });

    it('answers 404 for an unknown flow', async () => {
      const t = server();
      const reply = await call(t, 'POST', `${WS}/flows/nope/runs`, { body: { params: {} } });
      expect(expectError(reply, 404, 'NOT_FOUND').message).toBe('flow "nope" not found');
    });
  });

  describe('the activity stream', () => {
    it('lists runs newest first, filters, and pages with limit and cursor', async () => {
      const t = server();
      await putFlow(t, 'hello', HELLO);
      await putFlow(t, 'hush', SECRET_FLOW);
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) ids.push(await startRun(t, 'hello', { n: i }));
      await startRun(t, 'hush');
      for (const id of ids) await waitForRun(t, id);

      const seen: string[] = [];
      let cursor: string | null = null;
      let pages = 0;
      do {
        const query: string = `flow=hello&limit=2${cursor ? `&cursor=${cursor}` : ''}`;
        const page = await call<{ items: { id: string; flow: string }[]; next: string | null }>(
          t,
          'GET',
          `${WS}/runs?${query}`,
        );
        expect(page.status, page.text).toBe(200);
        expect(page.body.items.length).toBeLessThanOrEqual(2);
        for (const item of page.body.items) expect(item.flow).toBe('hello');
        seen.push(...page.body.items.map((item) => item.id));
        cursor = page.body.next;
        pages++;
      } while (cursor !== null && pages < 50);
      expect(cursor).toBeNull();
      // Newest first, each once, ours among them.
      expect([...seen].sort().reverse()).toEqual(seen);
      expect(new Set(seen).size).toBe(seen.length);
      for (const id of ids) expect(seen).toContain(id);

      const succeeded = await call<{ items: { status: string }[] }>(t, 'GET', `${WS}/runs?status=succeeded`);
      expect(succeeded.body.items.length).toBeGreaterThan(0);
      for (const item of succeeded.body.items) expect(item.status).toBe('succeeded');
      // The stream keeps no values: no params, no rows.
      const all = await call(t, 'GET', `${WS}/runs?limit=500`);
      expect(all.text).not.toMatch(/there|"params"|"rows"/);
    });

    it('rejects a bad status, limit or cursor with 400', async () => {
      const t = server();
      expectError(await call(t, 'GET', `${WS}/runs?status=done`), 400);
      expectError(await call(t, 'GET', `${WS}/runs?limit=0`), 400);
      expectError(await call(t, 'GET', `${WS}/runs?limit=501`), 400);
      expectError(await call(t, 'GET', `${WS}/runs?limit=many`), 400);
      expectError(await call(t, 'GET', `${WS}/runs?cursor=%00%01`), 400);
    });

    it('answers 404 for an unknown run', async () => {
      expectError(await call(server(), 'GET', `${WS}/runs/0000000000000000000000000000`), 404);
    });
  });

  describe('failures and cancellation', () => {
    it('records a failed run with its error class and message', async () => {
      const t = server();
      await putFlow(t, 'broken', MISSING_FILE);
      const id = await startRun(t, 'broken');
      const detail = await waitForRun(t, id);
      expect(detail.run).toMatchObject({
        status: 'incomplete',
        errorCode: 'SOURCE_ERROR',
        errorStep: 'read',
      });
      expect(detail.details!.errorMessage).toMatch(/nowhere\.csv/);
      // Incomplete: the input stays, for a retry.
      expect(detail.input).toEqual({ kept: true, stored: true });
      const stream = await call<{ items: { id: string; errorCode: string }[] }>(
        t,
        'GET',
        `${WS}/runs?status=incomplete`,
      );
      expect(stream.body.items.find((item) => item.id === id)?.errorCode).toBe('SOURCE_ERROR');
      // The stream never carries the message.
      expect(stream.text).not.toMatch(/nowhere/);
    });

    it('answers 409 when cancelling a run that is not running', async () => {
      const t = server();
      await putFlow(t, 'hello', HELLO);
      const id = await startRun(t, 'hello', { n: 1 });
      await waitForRun(t, id);
      const reply = await call(t, 'POST', `${WS}/runs/${id}/cancel`);
      expect(expectError(reply, 409, 'NOT_RUNNING').message).toMatch(/succeeded/);
      expectError(await call(t, 'POST', `${WS}/runs/0000000000000000000000000000/cancel`), 404);
    });

    it('reads files from the workspace folder only', async () => {
      const t = server();
      workspaceFile(t, 'in/rows.csv', 'a\n1\n2\n');
      await putFlow(
        t,
        'files',
        `version: 1
name: files
steps:
  - id: read
    input: { file: in/rows.csv, types: { a: integer } }
`,
      );
      const detail = await waitForRun(t, await startRun(t, 'files'));
      expect(detail.run).toMatchObject({ status: 'succeeded', rowsRead: 2 });
    });
  });
});
