/**
 * SPEC §2 "logs hold only the account ID; log access can be disabled" (the Atlassian app):
 *
 * - a workspace with `logAccess: deny` keeps nothing an operator (whoever has the database or
 *   the data dir) could read of its runs: no inputs, no execution-detail samples or error
 *   messages, no webhook bodies — every flow is treated as confidential for what is stored;
 * - the server's log output carries ids only: during a mix of runs (webhooks in both respond
 *   modes, manual runs with parameters, failures, a stored connection's secret, credentials
 *   given at run time, in both kinds of workspace) no canary, e-mail address or secret shows up
 *   in it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { pgSchemaUrl, startTestServer, type TestServer } from '../helpers/server.js';
import { describeWithPostgres } from '../helpers/services.js';
import {
  canary,
  canaryEmail,
  changedTempFiles,
  expectNowhere,
  expectSomewhere,
  folderBlobs,
  postgresBlobs,
  snapshotTemp,
  textBlob,
  type Blob,
} from './confidential-scan.js';

const flows = {
  accepted: `version: 1
name: accepted
trigger: { webhook: { path: accepted } }
steps:
  - id: in
    input: { trigger: true }
  - id: tagged
    compute: { from: in, columns: { tag: "'seen'" } }
`,
  result: `version: 1
name: result
trigger: { webhook: { path: result, respond: result } }
steps:
  - id: in
    input: { trigger: true }
  - id: out
    output: { from: in, respond: true }
`,
  failing: `version: 1
name: failing
trigger: { webhook: { path: failing, respond: result } }
steps:
  - id: in
    input: { trigger: true, types: { v: number } }
  - id: out
    output: { from: in, respond: true }
`,
  manual: `version: 1
name: manual
params: { email: { type: string }, n: { type: integer, default: 1 } }
steps:
  - id: values
    input: { values: [{ a: 1 }] }
  - id: tagged
    compute: { from: values, columns: { email: "$params.email" } }
`,
  warehouse: `version: 1
name: warehouse
steps:
  - id: rows
    input: { connection: wh, sql: "select 1 as one" }
`,
};

interface RunDetail {
  run: { id: string; status: string; errorCode: string | null; inputKept: boolean };
  input: { kept: boolean; stored: boolean; note?: string };
  details: { errorMessage: string | null } | null;
}

async function scenario(kind: 'sqlite' | 'postgres'): Promise<void> {
  const tempBefore = snapshotTemp();
  const dataDir = mkdtempSync(join(tmpdir(), 'lethe-log-access-'));
  const schema = kind === 'postgres' ? await pgSchemaUrl() : undefined;
  let t: TestServer | undefined = await startTestServer({ dataDir, config: { databaseUrl: schema?.url } });
  const open = t;
  try {
    // The workspace "sealed" denies log access; "default" allows it.
    const sealed = await open.server.context.store.workspaces.ensure('sealed');
    await open.server.context.store.db
      .updateTable('workspaces')
      .set({ settings: JSON.stringify({ logAccess: 'deny' }) })
      .where('id', '=', sealed.id)
      .execute();
    const tokens = { default: await open.token('admin'), sealed: await open.token('admin', 'sealed') };
    const answers: string[] = [];
    const api = async (
      ws: 'default' | 'sealed',
      method: string,
      path: string,
      body?: unknown,
      headers = {},
    ) => {
      const response = await open.api(`/api/v1/workspaces/${ws}${path}`, {
        method,
        token: tokens[ws],
        headers: {
          ...(body === undefined
            ? {}
            : { 'content-type': typeof body === 'string' ? 'application/yaml' : 'application/json' }),
          ...headers,
        },
        body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
      });
      const text = await response.text();
      answers.push(text);
      return {
        status: response.status,
        text,
        body: (text === '' ? {} : JSON.parse(text)) as Record<string, unknown>,
      };
    };
    const wait = async (ws: 'default' | 'sealed', id: string): Promise<RunDetail> => {
      for (let i = 0; i < 400; i++) {
        const reply = await api(ws, 'GET', `/runs/${id}`);
        const detail = reply.body as unknown as RunDetail;
        if (['succeeded', 'failed', 'incomplete'].includes(detail.run.status)) return detail;
        await new Promise((resolve) => setTimeout(resolve, 25));
      }
      throw new Error(`run ${id} did not end`);
    };

    const values: Record<string, Record<string, string>> = { default: {}, sealed: {} };
    const connectionSecret = canary('connectionSecret');
    const runtimeSecret = canary('runtimeSecret');
    for (const ws of ['default', 'sealed'] as const) {
      const v = values[ws]!;
      for (const [name, yaml] of Object.entries(flows)) {
        const reply = await api(ws, 'PUT', `/flows/${name}`, yaml);
        expect(reply.status, reply.text).toBeLessThan(300);
      }
      const stored = await api(ws, 'PUT', '/connections/wh', {
        type: 'postgres',
        settings: { host: '127.0.0.1', port: 1, database: 'nothing', user: 'nobody' },
        secrets: { password: connectionSecret },
      });
      expect(stored.status, stored.text).toBe(201);
      const runs: string[] = [];
      const hook = async (path: string, body: unknown, headers: Record<string, string> = {}) => {
        const response = await fetch(`${open.url}/hooks/${ws}/${path}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', ...headers },
          body: JSON.stringify(body),
        });
        const text = await response.text();
        if (response.status !== 200) answers.push(text); // a 200 is the flow's answer to its caller
        return { status: response.status, text };
      };
      v.accepted = canary(`${ws}Accepted`);
      v.acceptedEmail = canaryEmail();
      const accepted = await hook(
        'accepted',
        { v: v.accepted, email: v.acceptedEmail },
        { 'idempotency-key': v.acceptedEmail },
      );
      expect(accepted.status, accepted.text).toBe(202);
      runs.push((JSON.parse(accepted.text) as { runId: string }).runId);
      v.result = canary(`${ws}Result`);
      v.resultEmail = canaryEmail();
      const result = await hook('result', { v: v.result, email: v.resultEmail });
      expect(result.status, result.text).toBe(200);
      expect(result.text).toContain(v.result);
      v.failing = canary(`${ws}Failing`);
      const failing = await hook('failing', { v: v.failing });
      expect(failing.status).toBe(502);
      expect(JSON.parse(failing.text)).toMatchObject({ error: { code: 'TYPE_CONVERSION' } });
      runs.push((JSON.parse(failing.text) as { runId: string }).runId);
      v.manualEmail = canaryEmail();
      const manual = await api(ws, 'POST', '/flows/manual/runs', { params: { email: v.manualEmail } });
      expect(manual.status, manual.text).toBe(202);
      runs.push(manual.body.runId as string);
      v.badParam = canary(`${ws}BadParam`);
      const bad = await api(ws, 'POST', '/flows/manual/runs', { params: { email: 'x', n: v.badParam } });
      expect(bad.status).toBe(400);
      const warehouse = await api(ws, 'POST', '/flows/warehouse/runs', {
        credentials: { wh: { secrets: { password: runtimeSecret } } },
      });
      expect(warehouse.status, warehouse.text).toBe(202);
      runs.push(warehouse.body.runId as string);
      const stored2 = await api(ws, 'POST', '/flows/warehouse/runs', {});
      runs.push(stored2.body.runId as string);
      const list = await api(ws, 'GET', '/runs?flow=result');
      runs.push(...(list.body.items as { id: string }[]).map((item) => item.id));
      for (const id of runs) await wait(ws, id);
    }

    // The sealed workspace: nothing but summaries, and the API says why.
    const { db } = open.server.context.store;
    expect(
      await db.selectFrom('run_inputs').select('run_id').where('workspace_id', '=', sealed.id).execute(),
    ).toEqual([]);
    expect(
      await db.selectFrom('run_details').select('run_id').where('workspace_id', '=', sealed.id).execute(),
    ).toEqual([]);
    const bodies = await db
      .selectFrom('gateway_log')
      .select('body')
      .where('workspace_id', '=', sealed.id)
      .execute();
    expect(bodies.length).toBe(3);
    for (const row of bodies) expect(row.body).toBeNull();
    const runs = await api('sealed', 'GET', '/runs?limit=100');
    for (const item of runs.body.items as { id: string; inputKept: boolean; privacy: string }[]) {
      expect(item).toMatchObject({ inputKept: false, privacy: 'standard' });
      const detail = await wait('sealed', item.id);
      expect(detail.details).toBeNull();
      expect(detail.input.note).toMatch(/workspace denies log access/);
    }
    const dlq = await api('sealed', 'GET', '/dlq');
    const failed = (dlq.body.items as { id: string; flow: string }[]).find(
      (item) => item.flow === 'warehouse',
    );
    expect(failed).toBeDefined();
    const retry = await api('sealed', 'POST', `/dlq/${failed!.id}/retry`);
    expect(retry.status).toBe(409);
    // The default workspace keeps what standard flows keep (the scan must find it there).
    const kept = await db
      .selectFrom('run_details')
      .select('error_message')
      .where('error_message', 'is not', null)
      .execute();
    expect(kept.some((row) => row.error_message!.includes(values.default!.failing!))).toBe(true);
    // Neither the stored secret nor the one given at run time reached a stored error message.
    for (const row of kept) {
      expect(row.error_message).not.toContain(connectionSecret);
      expect(row.error_message).not.toContain(runtimeSecret);
    }

    const store = async (): Promise<Blob[]> =>
      schema ? await postgresBlobs(schema.url) : folderBlobs(dataDir);
    const whileOpen = await store();
    const logs = [...open.logs];
    await open.close();
    t = undefined;
    const after = await store();
    expect(logs.length).toBeGreaterThan(20);
    const logBlob = [textBlob('server logs', logs)];

    // Logs: ids only — none of the values of either workspace, no e-mail, no secret.
    for (const ws of ['default', 'sealed'] as const) {
      for (const [label, value] of Object.entries(values[ws]!))
        expectNowhere(logBlob, value, `${ws} ${label}`);
    }
    expect(logs.join('\n')).not.toMatch(/@example\.com/);
    expectNowhere(logBlob, connectionSecret, 'stored connection secret');
    expectNowhere(logBlob, runtimeSecret, 'run-time secret');

    // The sealed workspace's values are nowhere at all; the default one's are in the store.
    const everything: Blob[] = [
      ...whileOpen,
      ...after,
      ...folderBlobs(dataDir),
      ...logBlob,
      textBlob('API answers', answers),
      ...changedTempFiles(tempBefore, [dataDir]),
    ];
    for (const [label, value] of Object.entries(values.sealed!))
      expectNowhere(everything, value, `sealed ${label}`);
    expectNowhere(everything, connectionSecret, 'stored connection secret');
    expectNowhere(everything, runtimeSecret, 'run-time secret');
    for (const label of ['accepted', 'failing', 'manualEmail']) {
      expectSomewhere([...whileOpen, ...after], values.default![label]!, `default ${label}`);
    }
  } finally {
    await t?.close();
    await schema?.drop();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

describe('log access and logs [sqlite]', () => {
  it('a workspace that denies log access stores no payloads; logs carry ids only', async () => {
    await scenario('sqlite');
  });
});

await describeWithPostgres('log access and logs [postgres]', () => {
  it('a workspace that denies log access stores no payloads in any table; logs carry ids only', async () => {
    await scenario('postgres');
  });
});
