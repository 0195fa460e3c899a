/**
 * Enabling and disabling a flow over the API: a disabled flow's webhook answers 404 at once (the
 * webhook cache is forgotten), manual runs are refused with FLOW_DISABLED, its text and versions
 * are untouched; enabling it brings both back. Each switch is audited once (none when nothing
 * changed); viewers may not switch; an unknown flow is a 404. That the scheduler and poller skip
 * a disabled flow is tested in test/triggers.
 */
import { expect, it } from 'vitest';
import type { TestServer } from '../helpers/server.js';
import {
  auditEntriesAfter,
  call,
  describeStores,
  expectError,
  lastAuditSeq,
  putFlow,
  useServer,
  WS,
} from './api-support.js';

const FLOW = `version: 1
name: orders-in
trigger: { webhook: { path: orders-in, respond: accepted } }
steps:
  - id: order
    input: { trigger: true }
`;

interface Switched {
  flow: { name: string; version: number; enabled: boolean };
  changed: boolean;
}

const hook = (t: TestServer) =>
  fetch(`${t.url}/hooks/default/orders-in`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ id: 1 }),
  });

await describeStores('enabling and disabling flows', (store) => {
  const server = useServer(store);

  it('a disabled flow takes no webhook and no manual run; enabling it brings both back; each switch audited once', async () => {
    const t = server();
    const editor = await t.token('editor');
    await putFlow(t, 'orders-in', FLOW);
    const before = await hook(t);
    expect(before.status, await before.text()).toBe(202);
    const seq = await lastAuditSeq(t);

    const disabled = await call<Switched>(t, 'POST', `${WS}/flows/orders-in/disable`, { token: editor });
    expect(disabled.status, disabled.text).toBe(200);
    expect(disabled.body).toMatchObject({
      flow: { name: 'orders-in', version: 1, enabled: false },
      changed: true,
    });
    // At once: the webhook cache does not keep serving it.
    const refused = await hook(t);
    expect(refused.status).toBe(404);
    await refused.text();
    expectError(
      await call(t, 'POST', `${WS}/flows/orders-in/runs`, { body: { params: {} } }),
      409,
      'FLOW_DISABLED',
    );
    const read = await call<{ flow: { enabled: boolean; version: number } }>(
      t,
      'GET',
      `${WS}/flows/orders-in`,
    );
    expect(read.body.flow).toMatchObject({ enabled: false, version: 1 });

    // Disabling again changes nothing and records nothing.
    const again = await call<Switched>(t, 'POST', `${WS}/flows/orders-in/disable`, { token: editor });
    expect(again.body.changed).toBe(false);

    const enabled = await call<Switched>(t, 'POST', `${WS}/flows/orders-in/enable`, { token: editor });
    expect(enabled.body).toMatchObject({ flow: { enabled: true, version: 1 }, changed: true });
    const back = await hook(t);
    expect(back.status, await back.text()).toBe(202);
    expect((await auditEntriesAfter(t, seq)).map((entry) => entry.action)).toEqual([
      'flow.disabled',
      'flow.enabled',
    ]);
  });

  it('viewers may not switch a flow; an unknown flow is a 404', async () => {
    const t = server();
    await putFlow(t, 'orders-in', FLOW);
    const viewer = await t.token('viewer');
    expectError(await call(t, 'POST', `${WS}/flows/orders-in/disable`, { token: viewer }), 403);
    expectError(await call(t, 'POST', `${WS}/flows/nope/disable`), 404, 'NOT_FOUND');
    const read = await call<{ flow: { enabled: boolean } }>(t, 'GET', `${WS}/flows/orders-in`);
    expect(read.body.flow.enabled).toBe(true);
  });
});
