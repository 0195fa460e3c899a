import { expect, it } from 'vitest';
import {
  auditEntriesAfter,
  call,
  describeStores,
  expectError,
  lastAuditSeq,
  putFlow,
  startRun,
  useServer,
  waitForRun,
  workspaceFile,
  WS,
} from './api-support.js';

const flowReading = (name: string, file: string, privacy = 'standard') => `version: 1
name: ${name}
privacy: ${privacy}
steps:
  - id: read
    input: { file: ${file}, types: { a: integer } }
`;

interface DlqItem {
  id: string;
  flow: string;
  status: string;
  inputKept: boolean;
  errorCode: string;
  note?: string;
}

const UNKNOWN = '0000000000000000000000000000';

await describeStores('dead-letter queue API', (store) => {
  const server = useServer(store);

  it('lists incomplete runs and retries one, which then succeeds', async () => {
    const t = server();
    await putFlow(t, 'late', flowReading('late', 'late.csv'));
    const id = await startRun(t, 'late');
    expect((await waitForRun(t, id)).run.status).toBe('incomplete');

    const list = await call<{ items: DlqItem[]; next: string | null }>(t, 'GET', `${WS}/dlq`);
    expect(list.status).toBe(200);
    const item = list.body.items.find((entry) => entry.id === id);
    expect(item).toMatchObject({
      flow: 'late',
      status: 'incomplete',
      inputKept: true,
      errorCode: 'SOURCE_ERROR',
    });
    expect(item!.note).toBeUndefined();
    for (const entry of list.body.items) expect(entry.status).toBe('incomplete');

    // The missing file arrives; the retry finds it.
    workspaceFile(t, 'late.csv', 'a\n1\n');
    const retry = await call(t, 'POST', `${WS}/dlq/${id}/retry`);
    expect(retry.status, retry.text).toBe(202);
    expect(retry.body).toEqual({ runId: id, status: 'queued' });
    const detail = await waitForRun(t, id, (d) => d.run.status === 'succeeded' || d.run.status === 'failed');
    expect(detail.run).toMatchObject({ status: 'succeeded', attempt: 1, errorCode: null, rowsRead: 1 });
    expect(detail.input.stored).toBe(false);

    // No longer in the queue: a second retry is a conflict.
    expect(expectError(await call(t, 'POST', `${WS}/dlq/${id}/retry`), 409, 'NOT_IN_DLQ').message).toMatch(
      /succeeded/,
    );
    const after = await call<{ items: DlqItem[] }>(t, 'GET', `${WS}/dlq?flow=late`);
    expect(after.body.items.map((entry) => entry.id)).not.toContain(id);
  });

  it('discards an incomplete run: failed, DISCARDED, input deleted', async () => {
    const t = server();
    await putFlow(t, 'gone', flowReading('gone', 'never.csv'));
    const id = await startRun(t, 'gone');
    const before = await waitForRun(t, id);
    expect(before.run.status).toBe('incomplete');
    expect(before.input).toEqual({ kept: true, stored: true });

    const discard = await call(t, 'DELETE', `${WS}/dlq/${id}`);
    expect(discard.status, discard.text).toBe(204);
    expect(discard.text).toBe('');
    const detail = await waitForRun(t, id);
    expect(detail.run).toMatchObject({ status: 'failed', errorCode: 'DISCARDED' });
    expect(detail.input).toEqual({ kept: true, stored: false });

    expectError(await call(t, 'DELETE', `${WS}/dlq/${id}`), 409, 'NOT_IN_DLQ');
    expectError(await call(t, 'DELETE', `${WS}/dlq/${UNKNOWN}`), 404, 'NOT_FOUND');
    expectError(await call(t, 'POST', `${WS}/dlq/${UNKNOWN}/retry`), 404, 'NOT_FOUND');
  });

  it('says that a confidential run’s input was not kept', async () => {
    const t = server();
    await putFlow(t, 'quiet', flowReading('quiet', 'absent.csv', 'confidential'));
    const id = await startRun(t, 'quiet');
    expect((await waitForRun(t, id)).run.status).toBe('incomplete');
    const list = await call<{ items: DlqItem[] }>(t, 'GET', `${WS}/dlq?flow=quiet`);
    expect(list.body.items).toHaveLength(1);
    expect(list.body.items[0]).toMatchObject({ id, inputKept: false });
    expect(list.body.items[0]!.note).toMatch(/not kept.*confidential/);
    // Its details hold nothing either.
    const detail = await waitForRun(t, id);
    expect(detail.details).toBeNull();
    expect(detail.input).toMatchObject({ kept: false, stored: false });
    // Nor can its input be read: the answer says why.
    expect(expectError(await call(t, 'GET', `${WS}/dlq/${id}/input`), 409, 'INPUT_NOT_KEPT').message).toMatch(
      /not kept.*confidential/,
    );
  });

  it('shows an incomplete run’s kept input to a viewer, audited as a data reveal', async () => {
    const t = server();
    await putFlow(
      t,
      'held',
      flowReading('held', 'held-missing.csv').replace(
        'steps:',
        'params: { region: { type: string } }\nsteps:',
      ),
    );
    const id = await startRun(t, 'held', { region: 'north-7731' });
    expect((await waitForRun(t, id)).run.status).toBe('incomplete');
    const viewer = await t.token('viewer');
    const seq = await lastAuditSeq(t);
    const input = await call<{ runId: string; params: Record<string, unknown>; payload: unknown }>(
      t,
      'GET',
      `${WS}/dlq/${id}/input`,
      { token: viewer },
    );
    expect(input.status, input.text).toBe(200);
    expect(input.body).toEqual({ runId: id, params: { region: 'north-7731' }, payload: null });
    const entries = await auditEntriesAfter(t, seq);
    expect(entries.map((entry) => [entry.action, JSON.parse(entry.details)])).toEqual([
      ['dlq.input.read', { runId: id }],
    ]);
    expect(JSON.stringify(entries)).not.toContain('north-7731');
    // Out of the queue, it is no longer there to read.
    expect((await call(t, 'DELETE', `${WS}/dlq/${id}`)).status).toBe(204);
    expectError(await call(t, 'GET', `${WS}/dlq/${id}/input`), 409, 'NOT_IN_DLQ');
    expectError(await call(t, 'GET', `${WS}/dlq/${UNKNOWN}/input`), 404, 'NOT_FOUND');
  });

  it('pages with limit and cursor', async () => {
    const t = server();
    await putFlow(t, 'pages', flowReading('pages', 'missing-page.csv'));
    const ids: string[] = [];
    for (let i = 0; i < 3; i++) ids.push(await startRun(t, 'pages'));
    for (const id of ids) await waitForRun(t, id);
    const first = await call<{ items: DlqItem[]; next: string | null }>(
      t,
      'GET',
      `${WS}/dlq?flow=pages&limit=2`,
    );
    expect(first.body.items.map((item) => item.id)).toEqual([ids[2], ids[1]]);
    expect(first.body.next).not.toBeNull();
    const second = await call<{ items: DlqItem[]; next: string | null }>(
      t,
      'GET',
      `${WS}/dlq?flow=pages&limit=2&cursor=${first.body.next}`,
    );
    expect(second.body.items.map((item) => item.id)).toEqual([ids[0]]);
    expect(second.body.next).toBeNull();
  });

  it('lets a viewer read the queue but not change it', async () => {
    const t = server();
    const viewer = await t.token('viewer');
    expect((await call(t, 'GET', `${WS}/dlq`, { token: viewer })).status).toBe(200);
    expectError(await call(t, 'POST', `${WS}/dlq/${UNKNOWN}/retry`, { token: viewer }), 403, 'FORBIDDEN');
    expectError(await call(t, 'DELETE', `${WS}/dlq/${UNKNOWN}`, { token: viewer }), 403, 'FORBIDDEN');
  });
});
