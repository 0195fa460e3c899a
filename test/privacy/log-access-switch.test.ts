/**
 * Switching a workspace to `logAccess: deny` deletes what it stored before an operator could
 * read — execution details (samples, error messages) and webhook bodies — in the settings
 * change's own transaction, with purge receipts; other workspaces keep theirs; inputs of
 * dead-lettered runs stay for their retry; a legal hold keeps everything until it is lifted.
 */
import { expect, it } from 'vitest';
import { call, describeStores, postHook, putFlow, useServer, waitForRun, WS } from '../server/api-support.js';

const HOOKED = `version: 1
name: hooked
trigger: { webhook: { path: hooked, respond: accepted } }
steps:
  - id: in
    input: { trigger: true }
  - id: tagged
    compute: { from: in, columns: { tag: "'seen'" } }
`;

const FAILING = `version: 1
name: failing
steps:
  - id: read
    input: { file: never-there.csv }
`;

await describeStores('switching log access to deny', (store) => {
  const server = useServer(store);

  it('deletes stored execution details and webhook bodies of that workspace alone, with receipts; DLQ inputs stay; a legal hold defers it', async () => {
    const t = server();
    const { db } = t.server.context.store;
    const owner = await t.token('owner');
    await call(t, 'PUT', `${WS}/settings/privacy`, { token: owner, body: {} });
    await putFlow(t, 'hooked', HOOKED);
    await putFlow(t, 'failing', FAILING);
    // Another workspace with the same flow: its records must stay.
    const other = await t.token('owner', 'other-ws');
    const put = await t.api('/api/v1/workspaces/other-ws/flows/hooked', {
      method: 'PUT',
      token: other,
      headers: { 'content-type': 'application/yaml' },
      body: HOOKED,
    });
    expect(put.status, await put.text()).toBeLessThan(300);

    const hooked = await postHook(t, 'hooked', { v: 'default-body-4471' });
    expect((await waitForRun(t, hooked)).run.status).toBe('succeeded');
    const started = await call<{ runId: string }>(t, 'POST', `${WS}/flows/failing/runs`, { body: {} });
    const failed = started.body.runId;
    expect((await waitForRun(t, failed)).run.status).toBe('incomplete');
    const otherRun = await postHook(t, 'hooked', { v: 'other-body-9134' }, 'other-ws');
    const ws = (await t.server.context.store.workspaces.byName('default'))!;
    const otherWs = (await t.server.context.store.workspaces.byName('other-ws'))!;
    for (let i = 0; i < 200; i++) {
      const run = await t.server.context.store.runs.inWorkspace(otherWs.id, otherRun);
      if (run?.status === 'succeeded') break;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }

    const stored = async (workspaceId: string) => ({
      details: (
        await db.selectFrom('run_details').select('run_id').where('workspace_id', '=', workspaceId).execute()
      ).length,
      bodies: (
        await db
          .selectFrom('gateway_log')
          .select('id')
          .where('workspace_id', '=', workspaceId)
          .where('body', 'is not', null)
          .execute()
      ).length,
      inputs: (
        await db.selectFrom('run_inputs').select('run_id').where('workspace_id', '=', workspaceId).execute()
      ).map((row) => row.run_id),
    });
    const before = await stored(ws.id);
    expect(before).toEqual({ details: 2, bodies: 1, inputs: [failed] });
    const otherBefore = await stored(otherWs.id);
    expect(otherBefore).toMatchObject({ details: 1, bodies: 1 });
    const receipts = async () =>
      db
        .selectFrom('audit_log')
        .select(['data_class', 'count', 'reason'])
        .where('workspace_id', '=', ws.id)
        .where('action', '=', 'purge')
        .where('reason', '=', 'log access denied')
        .orderBy('seq')
        .execute();

    const purgedMetric = async (dataClass: string) => {
      const text = await (await t.api('/metrics')).text();
      return Number(
        new RegExp(`lethe_purged_records_total\\{data_class="${dataClass}"\\} (\\d+)`).exec(text)?.[1] ?? 0,
      );
    };
    const metricBefore = [await purgedMetric('execution_detail'), await purgedMetric('gateway_log')];

    // Under a legal hold nothing goes.
    const held = await call(t, 'PUT', `${WS}/settings/privacy`, {
      token: owner,
      body: { logAccess: 'deny', legalHold: true },
    });
    expect(held.status, held.text).toBe(200);
    expect(await stored(ws.id)).toEqual(before);
    // The hold lifted, log access still denied: the payloads go, the DLQ input stays.
    const lifted = await call(t, 'PUT', `${WS}/settings/privacy`, {
      token: owner,
      body: { logAccess: 'deny' },
    });
    expect(lifted.status, lifted.text).toBe(200);
    expect(await stored(ws.id)).toEqual({ details: 0, bodies: 0, inputs: [failed] });
    expect(await stored(otherWs.id)).toEqual(otherBefore);
    expect((await receipts()).map((row) => [row.data_class, Number(row.count)])).toEqual([
      ['execution_detail', 2],
      ['gateway_log', 1],
    ]);
    // Counted in the metrics as purges are.
    expect([await purgedMetric('execution_detail'), await purgedMetric('gateway_log')]).toEqual([
      metricBefore[0]! + 2,
      metricBefore[1]! + 1,
    ]);
    // The run summaries stay, and the DLQ run can still be retried.
    const detail = await waitForRun(t, hooked);
    expect(detail.run.status).toBe('succeeded');
    expect(detail.details).toBeNull();
    expect((await call(t, 'GET', `${WS}/dlq/${failed}/input`)).status).toBe(200);
    // Saying it again changes nothing.
    await call(t, 'PUT', `${WS}/settings/privacy`, { token: owner, body: { logAccess: 'deny' } });
    expect(await receipts()).toHaveLength(2);
    await call(t, 'PUT', `${WS}/settings/privacy`, { token: owner, body: {} });
  });
});
