/** Webhooks in: body decoding, respond modes, the direct path of `respond: result`, errors. */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/server.js';

const flows: Record<string, string> = {
  echo: `version: 1
name: echo
trigger: { webhook: { path: echo, respond: result } }
steps:
  - id: in
    input: { trigger: true }
  - id: out
    output: { from: in, respond: true }
`,
  sum: `version: 1
name: sum
trigger: { webhook: { path: sum, respond: result } }
steps:
  - id: in
    input: { trigger: true, types: { n: number } }
  - id: total
    group: { from: in, by: [], aggregate: { total: sum(n), rows: count() } }
  - id: out
    output: { from: total, respond: true }
`,
  slow: `version: 1
name: slow
trigger: { webhook: { path: slow, respond: result, timeout: 50ms } }
steps:
  - id: in
    input: { trigger: true }
  - id: work
    compute: { from: in, columns: { big: "$count($filter([1..4000], function($v){ $v % 7 = 0 }))" } }
  - id: out
    output: { from: work, respond: true }
`,
  broken: `version: 1
name: broken
trigger: { webhook: { path: broken, respond: result } }
steps:
  - id: in
    input: { trigger: true }
  - id: bad
    filter: { from: in, where: "v > 1" }
  - id: out
    output: { from: bad, respond: true }
`,
  secret: `version: 1
name: secret
privacy: confidential
trigger: { webhook: { path: secret, respond: accepted } }
steps:
  - id: in
    input: { trigger: true }
`,
};

describe('webhooks', () => {
  let t: TestServer;
  const post = (
    path: string,
    body: string,
    headers: Record<string, string> = { 'content-type': 'application/json' },
  ) => fetch(`${t.url}/hooks/default/${path}`, { method: 'POST', headers, body });

  async function runOf(id: string) {
    for (let i = 0; i < 200; i++) {
      const response = await t.api(`/api/v1/workspaces/default/runs/${id}`);
      if (response.status === 200) {
        const run = (await response.json()) as { run: { status: string } };
        if (run.run.status !== 'running' && run.run.status !== 'queued') return run;
      }
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    throw new Error(`run ${id} did not end`);
  }

  beforeAll(async () => {
    t = await startTestServer({ config: { bodyLimit: 4096 } });
    for (const [name, text] of Object.entries(flows)) {
      const put = await t.api(`/api/v1/workspaces/default/flows/${name}`, {
        method: 'PUT',
        headers: { 'content-type': 'application/yaml' },
        body: text,
      });
      expect(put.status).toBe(201);
    }
  });
  afterAll(async () => {
    await t?.close();
  });

  it('answers a result webhook with the flow output and records the run once it has ended', async () => {
    const response = await post('sum', JSON.stringify([{ n: 1 }, { n: 2.5 }, { n: 3 }]));
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ total: 6.5, rows: 3 });
    const page = (await (await t.api('/api/v1/workspaces/default/runs?flow=sum')).json()) as {
      items: { id: string; status: string; trigger: string }[];
    };
    expect(page.items).toHaveLength(1);
    expect(page.items[0]).toMatchObject({ status: 'succeeded', trigger: 'webhook' });
    const log = (await (await t.api('/api/v1/workspaces/default/gateway-log')).json()) as {
      items: { runId: string | null; flow: string | null }[];
    };
    expect(log.items.some((entry) => entry.runId === page.items[0]!.id)).toBe(true);
  });

  it('decodes form, text and JSON-array bodies into records', async () => {
    const form = await post('echo', 'a=1&b=x%20y&a=2', {
      'content-type': 'application/x-www-form-urlencoded',
    });
    expect(await form.json()).toEqual({ a: ['1', '2'], b: 'x y' });
    const text = await post('echo', 'hello', { 'content-type': 'text/plain' });
    expect(await text.json()).toEqual({ body: 'hello', content_type: 'text/plain' });
    const array = await post('echo', JSON.stringify([{ a: 1 }, { a: 2 }]));
    expect(await array.json()).toEqual([{ a: 1 }, { a: 2 }]);
    const scalar = await post('echo', '42');
    expect(await scalar.json()).toEqual({ value: 42 });
  });

  it('answers 202 with the run id when the run outlasts the timeout, and the run is readable', async () => {
    // Many rows of small work: the run outlasts 50 ms while no row nears the 1 s expression limit.
    const response = await post('slow', JSON.stringify(Array.from({ length: 40 }, (_, i) => ({ i }))));
    expect(response.status).toBe(202);
    const body = (await response.json()) as { runId: string; status: string };
    expect(body.status).toBe('running');
    expect(response.headers.get('location')).toBe(`/api/v1/workspaces/default/runs/${body.runId}`);
    const run = await runOf(body.runId);
    expect(run.run.status).toBe('succeeded');
  });

  it('answers 502 with the error class when the run fails, and keeps the run in the dead-letter queue', async () => {
    const response = await post('broken', JSON.stringify({ v: 'text' }));
    expect(response.status).toBe(502);
    const body = (await response.json()) as { runId: string; status: string; error: { code: string } };
    expect(body).toMatchObject({ status: 'incomplete', error: { code: 'EXPRESSION_ERROR' } });
    const dlq = (await (await t.api('/api/v1/workspaces/default/dlq')).json()) as { items: { id: string }[] };
    expect(dlq.items.map((item) => item.id)).toContain(body.runId);
  });

  it('with an Idempotency-Key a result webhook is queued durably and deduplicated', async () => {
    const first = await post('echo', '{"k":1}', {
      'content-type': 'application/json',
      'idempotency-key': 'echo-1',
    });
    expect(first.status).toBe(200);
    const again = await post('echo', '{"k":1}', {
      'content-type': 'application/json',
      'idempotency-key': 'echo-1',
    });
    expect(again.status).toBe(202);
    expect(await again.json()).toMatchObject({ duplicate: true });
  });

  it('refuses bad requests with clear errors', async () => {
    const malformed = await post('echo', '{"a":');
    expect(malformed.status).toBe(400);
    expect(((await malformed.json()) as { error: { code: string } }).error.code).toBe('INVALID_JSON');
    const large = await post('echo', JSON.stringify({ big: 'x'.repeat(8000) }));
    expect(large.status).toBe(413);
    const unknown = await post('nope', '{}');
    expect(unknown.status).toBe(404);
    const foreign = await fetch(`${t.url}/hooks/elsewhere/echo`, {
      method: 'POST',
      body: '{}',
      headers: { 'content-type': 'application/json' },
    });
    expect(foreign.status).toBe(404);
  });

  it('keeps neither the body nor the input of a confidential flow', async () => {
    const response = await post('secret', JSON.stringify({ card: 'CANARY-4111' }));
    expect(response.status).toBe(202);
    const { runId } = (await response.json()) as { runId: string };
    await runOf(runId);
    const store = t.server.context.store;
    const run = await store.runs.get(runId);
    expect(run?.input_kept).toBe(0);
    expect(await store.runs.input(runId)).toBeUndefined();
    const log = await store.db
      .selectFrom('gateway_log')
      .select(['body', 'run_id'])
      .where('run_id', '=', runId)
      .execute();
    expect(log).toEqual([{ body: null, run_id: runId }]);
  });
});

describe('routes open without a token', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer();
  });
  afterAll(async () => {
    await t?.close();
  });

  it('are only the health checks and the webhooks; metrics need a token', async () => {
    expect((await fetch(`${t.url}/healthz`)).status).toBe(200);
    expect((await fetch(`${t.url}/readyz`)).status).toBe(200);
    expect((await fetch(`${t.url}/metrics`)).status).toBe(401);
    const metrics = await t.api('/metrics', { token: await t.token('viewer') });
    expect(metrics.status).toBe(200);
    const text = await metrics.text();
    for (const name of [
      'lethe_runs_total',
      'lethe_queue_depth',
      'lethe_webhooks_total',
      'lethe_step_duration_seconds',
    ]) {
      expect(text).toContain(name);
    }
  });
});
