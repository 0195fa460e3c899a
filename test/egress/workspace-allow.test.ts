/**
 * A workspace's egress allow-list: only its owner may change it, bad entries are refused with
 * a message naming them, the change is audited — and it opens a destination for that
 * workspace's runs only. 127.0.0.2 stands in for a private address: the deployment the tests
 * configure allows 127.0.0.1 (test/helpers/services.ts), not 127.0.0.2.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { call, describeStores, expectError, useServer } from '../server/api-support.js';

let api: Server;
let port = 0;
let hits = 0;

beforeAll(async () => {
  api = createServer((_request, response) => {
    hits++;
    response.setHeader('content-type', 'application/json');
    response.end(JSON.stringify([{ id: 1, name: 'reached' }]));
  });
  await new Promise<void>((resolve) => api.listen(0, '127.0.0.2', resolve));
  port = (api.address() as AddressInfo).port;
});

afterAll(async () => {
  await new Promise((resolve) => api.close(resolve));
});

const flow = `version: 1
name: fetch
steps:
  - id: items
    input: { connection: inner, request: { path: /items } }
  - id: out
    output: { from: items, respond: true }
`;

await describeStores('workspace egress allow-list', (store) => {
  const server = useServer(store);
  const base = (ws: string) => `/api/v1/workspaces/${ws}`;

  async function workspace(name: string): Promise<string> {
    const t = server();
    const owner = await t.token('owner', name);
    const put = await call(t, 'PUT', `${base(name)}/connections/inner`, {
      token: owner,
      body: { type: 'http', settings: { baseUrl: `http://127.0.0.2:${port}` } },
    });
    expect(put.status, put.text).toBeLessThan(300);
    const flowPut = await call(t, 'PUT', `${base(name)}/flows/fetch`, {
      token: owner,
      body: flow,
      headers: { 'content-type': 'application/yaml' },
    });
    expect(flowPut.status, flowPut.text).toBeLessThan(300);
    return owner;
  }

  async function run(name: string, token: string) {
    const started = await call<{ runId: string }>(t(), 'POST', `${base(name)}/flows/fetch/runs`, {
      token,
      body: {},
    });
    expect(started.status, started.text).toBe(202);
    for (let i = 0; i < 400; i++) {
      const reply = await call<{ run: { status: string; errorCode?: string | null } }>(
        t(),
        'GET',
        `${base(name)}/runs/${started.body.runId}`,
        { token },
      );
      if (['succeeded', 'failed', 'incomplete'].includes(reply.body.run.status)) return reply;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    throw new Error('the run did not end');
  }
  const t = () => server();

  it('is the owner’s to change, checked entry by entry, audited; it opens the destination for its workspace only', async () => {
    const opened = `egress-open-${store}`;
    const closed = `egress-closed-${store}`;
    const owner = await workspace(opened);
    const other = await workspace(closed);

    expect((await call(t(), 'GET', `${base(opened)}/settings/egress`, { token: owner })).body).toEqual({
      allow: [],
    });
    for (const role of ['viewer', 'editor', 'admin'] as const) {
      expectError(
        await call(t(), 'PUT', `${base(opened)}/settings/egress`, {
          token: await t().token(role, opened),
          body: { allow: ['127.0.0.2'] },
        }),
        403,
      );
    }
    const bad = expectError(
      await call(t(), 'PUT', `${base(opened)}/settings/egress`, {
        token: owner,
        body: { allow: ['10.0.0.0/33'] },
      }),
      400,
    );
    expect(bad.message).toContain('10.0.0.0/33');
    expectError(
      await call(t(), 'PUT', `${base(opened)}/settings/egress`, {
        token: owner,
        body: { allow: ['/var/run/docker.sock'] },
      }),
      400,
    );

    // Closed by default: the run fails with a refusal that says how to open it.
    hits = 0;
    const refused = await run(opened, owner);
    // A failed manual run waits in the dead-letter queue.
    expect(refused.body.run.status).toBe('incomplete');
    expect(refused.text).toMatch(/refused to connect to .*127\.0\.0\.2.*loopback/);
    expect(hits).toBe(0);

    const saved = await call(t(), 'PUT', `${base(opened)}/settings/egress`, {
      token: owner,
      body: { allow: [`127.0.0.2:${port}`] },
    });
    expect(saved.status, saved.text).toBe(200);
    expect(saved.body).toEqual({ allow: [`127.0.0.2:${port}`] });

    const reached = await run(opened, owner);
    expect(reached.body.run.status, reached.text).toBe('succeeded');
    expect(hits).toBe(1);
    // The other workspace's runs are still refused.
    expect((await run(closed, other)).body.run.status).toBe('incomplete');
    expect(hits).toBe(1);

    const { store: db } = t().server.context;
    const id = (await db.workspaces.byName(opened))!.id;
    const entries = await db.db
      .selectFrom('audit_log')
      .selectAll()
      .where('workspace_id', '=', id)
      .where('action', '=', 'settings.egress.changed')
      .execute();
    expect(entries).toHaveLength(1);
    // Counts only: the entries themselves stay out of the audit log.
    expect(JSON.stringify(entries)).not.toContain('127.0.0.2');
  });
});
