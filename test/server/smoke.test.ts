import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/server.js';

const FLOW = `version: 1
name: echo
trigger: { webhook: { path: echo, respond: result } }
steps:
  - id: in
    input: { trigger: true }
  - id: out
    output: { from: in, respond: true }
`;

describe('server smoke', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer();
  });
  afterAll(async () => {
    await t?.close();
  });

  it('stores a flow and answers its webhook with the result', async () => {
    const put = await t.api('/api/v1/workspaces/default/flows/echo', {
      method: 'PUT',
      headers: { 'content-type': 'application/yaml' },
      body: FLOW,
    });
    expect(put.status).toBe(201);
    const hook = await fetch(`${t.url}/hooks/default/echo`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ a: 1, b: 'x' }),
    });
    expect(hook.status).toBe(200);
    expect(await hook.json()).toEqual({ a: 1, b: 'x' });
  });
});
