/**
 * Erasure survives a restart: a request interrupted mid-way (its progress committed batch by
 * batch) is picked up when the server starts again and completes with exact counts, on SQLite
 * and on PostgreSQL (the same schema across both starts).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { AuditLog } from '../../src/privacy/audit.js';
import { createErasureRequest, processErasure, type ErasureView } from '../../src/privacy/erasure.js';
import { pgSchemaUrl, startTestServer, type TestServer } from '../helpers/server.js';
import { call, describeStores } from '../server/api-support.js';
import { api, canary, scan, waitForErasure, waitForRun } from './erasure-support.js';

await describeStores('erasure after a restart', (store) => {
  it('resumes an interrupted request on start and completes it with exact counts', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'lethe-erasure-'));
    const schema = store === 'postgres' ? await pgSchemaUrl() : undefined;
    const start = () => startTestServer({ dataDir, config: schema ? { databaseUrl: schema.url } : {} });
    let t: TestServer | undefined;
    try {
      t = await start();
      const subject = canary();
      const token = await t.token('admin');
      const flow = `version: 1
name: people
steps:
  - id: people
    input: { values: [{ email: ${subject} }] }
`;
      const put = await call(t, 'PUT', `${api('default')}/flows/people`, {
        body: flow,
        headers: { 'content-type': 'application/yaml' },
      });
      expect(put.status, put.text).toBe(201);
      for (let i = 0; i < 3; i++) {
        const run = await call<{ runId: string }>(t, 'POST', `${api('default')}/flows/people/runs`, {
          body: {},
        });
        expect((await waitForRun(t, 'default', run.body.runId, token)).run.status).toBe('succeeded');
      }
      expect(
        (await scan(t.server.context.store, [subject])).filter((table) => table === 'run_details'),
      ).toHaveLength(3);

      // A request processed one row per batch, stopped after its second batch (as by a shutdown):
      // the flow version and one of three run details are done.
      const { request } = await createErasureRequest(t.server.context, {
        workspaceId: (await t.server.context.store.workspaces.byName('default'))!.id,
        subject: `email:${subject}`,
        requestedBy: 'test',
      });
      const stop = new AbortController();
      let batches = 0;
      const partial = await processErasure(t.server.context, request.id, {
        batchSize: 1,
        signal: stop.signal,
        onBatch: () => {
          if (++batches === 2) stop.abort(new Error('stopping'));
        },
      });
      expect(partial.outcome).toBe('aborted');
      const open = await call<ErasureView>(t, 'GET', `${api('default')}/erasure-requests/${request.id}`);
      expect(open.body.status).toBe('open');
      const soFar = Object.fromEntries(open.body.progress!.tables.map((entry) => [entry.table, entry.found]));
      expect(soFar).toMatchObject({ flow_versions: 1, run_details: 1 });
      expect(await scan(t.server.context.store, [subject])).toContain('run_details');
      await t.close();

      // The next start picks it up.
      t = await start();
      const done = await waitForErasure(t, 'default', request.id, await t.token('admin'));
      const byClass = Object.fromEntries(done.report!.classes.map((entry) => [entry.dataClass, entry]));
      expect(byClass.execution_detail).toMatchObject({ found: 3, deleted: 3 });
      expect(byClass.config).toMatchObject({ found: 1, pseudonymised: 1 });
      expect(await scan(t.server.context.store, [subject])).toEqual([]);
      expect(await new AuditLog(t.server.context.store.db).verify()).toMatchObject({ ok: true });
    } finally {
      await t?.close();
      await schema?.drop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
