import { describe, expect, it } from 'vitest';
import type { TestServer } from '../helpers/server.js';
import {
  call,
  describeStores,
  expectError,
  putFlow,
  startRun,
  useServer,
  waitForRun,
  WS,
  type JsonReply,
} from './api-support.js';

interface Page<T> {
  items: T[];
  next: string | null;
}

/** Every item of a list route, following `next` (bounded). */
async function all<T>(t: TestServer, path: string, limit: number, token?: string): Promise<T[]> {
  const items: T[] = [];
  let cursor: string | null = null;
  for (let i = 0; i < 100; i++) {
    const separator = path.includes('?') ? '&' : '?';
    const page: JsonReply<Page<T>> = await call(
      t,
      'GET',
      `${path}${separator}limit=${limit}${cursor ? `&cursor=${cursor}` : ''}`,
      { token },
    );
    expect(page.status, page.text).toBe(200);
    expect(page.body.items.length).toBeLessThanOrEqual(limit);
    items.push(...page.body.items);
    cursor = page.body.next;
    if (cursor === null) return items;
  }
  throw new Error('too many pages');
}

const webhookFlow = (name: string, privacy: string) => `version: 1
name: ${name}
privacy: ${privacy}
trigger: { webhook: { path: ${name}, respond: accepted } }
steps:
  - id: in
    input: { trigger: true }
`;

interface Notification {
  id: string;
  kind: string;
  runId: string | null;
  flow: string | null;
  readAt: string | null;
}

interface Token {
  id: string;
  role: string;
  name: string;
  expiresAt: string | null;
  revokedAt: string | null;
  current: boolean;
}

await describeStores('notifications, gateway log and tokens API', (store) => {
  const server = useServer(store);

  describe('notifications', () => {
    it('tells of runs that went to the dead-letter queue, and marks them read', async () => {
      const t = server();
      await putFlow(
        t,
        'fails',
        `version: 1
name: fails
steps:
  - id: read
    input: { file: missing.csv }
`,
      );
      const ids = [await startRun(t, 'fails'), await startRun(t, 'fails')];
      for (const id of ids) await waitForRun(t, id);
      const items = await all<Notification>(t, `${WS}/notifications`, 1);
      const ours = items.filter((item) => item.runId !== null && ids.includes(item.runId));
      expect(ours).toHaveLength(2);
      for (const item of ours) expect(item).toMatchObject({ kind: 'dlq.added', flow: 'fails', readAt: null });
      expect(ours.map((item) => item.runId)).toEqual([ids[1], ids[0]]);

      const read = await call<{ id: string; readAt: string }>(
        t,
        'POST',
        `${WS}/notifications/${ours[0]!.id}/read`,
        { token: await t.token('viewer') },
      );
      expect(read.status, read.text).toBe(200);
      expect(read.body.id).toBe(ours[0]!.id);
      const after = await all<Notification>(t, `${WS}/notifications`, 50);
      expect(after.find((item) => item.id === ours[0]!.id)!.readAt).toBe(read.body.readAt);
      expect(after.find((item) => item.id === ours[1]!.id)!.readAt).toBeNull();
      expectError(await call(t, 'POST', `${WS}/notifications/0000000000000000000000000000/read`), 404);
      // Another workspace cannot mark ours.
      const other = await t.token('owner', 'other');
      expectError(
        await call(t, 'POST', `/api/v1/workspaces/other/notifications/${ours[1]!.id}/read`, { token: other }),
        404,
      );
    });
  });

  describe('gateway log', () => {
    it('records webhooks received, with the body only for standard flows', async () => {
      const t = server();
      await putFlow(t, 'open', webhookFlow('open', 'standard'));
      await putFlow(t, 'closed', webhookFlow('closed', 'confidential'));
      const secret = 'body-of-a-confidential-webhook';
      const sent: string[] = [];
      for (const [path, value] of [
        ['open', 'visible-1'],
        ['closed', secret],
        ['open', 'visible-2'],
      ] as const) {
        const response = await fetch(`${t.url}/hooks/default/${path}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ value }),
        });
        expect(response.status).toBe(202);
        sent.push(((await response.json()) as { runId: string }).runId);
      }
      for (const id of sent) await waitForRun(t, id);
      const entries = await all<Record<string, unknown>>(t, `${WS}/gateway-log`, 2);
      const ours = entries.filter((entry) => sent.includes(entry.runId as string));
      expect(ours).toHaveLength(3);
      expect(ours.map((entry) => entry.runId)).toEqual([...sent].reverse());
      const [second, closed, first] = ours;
      expect(first).toMatchObject({
        path: 'open',
        flow: 'open',
        method: 'POST',
        contentType: 'application/json',
        size: JSON.stringify({ value: 'visible-1' }).length,
        status: 202,
        body: JSON.stringify({ value: 'visible-1' }),
      });
      expect(new Date(first!.receivedAt as string).toISOString()).toBe(first!.receivedAt);
      expect(second!.body).toBe(JSON.stringify({ value: 'visible-2' }));
      expect(closed).toMatchObject({ path: 'closed', flow: 'closed', status: 202 });
      expect(closed).not.toHaveProperty('body');
      const text = (await call(t, 'GET', `${WS}/gateway-log?limit=500`)).text;
      expect(text).not.toContain(secret);
    });
  });

  describe('tokens', () => {
    it('makes a token shown once, lists tokens without secrets, and revokes', async () => {
      const t = server();
      const made = await call<{ id: string; token: string; role: string; name: string; expiresAt: string }>(
        t,
        'POST',
        `${WS}/tokens`,
        { body: { role: 'viewer', name: 'dashboard', expiresInDays: 7 } },
      );
      expect(made.status, made.text).toBe(201);
      expect(made.body.token).toMatch(/^lethe_/);
      expect(made.body).toMatchObject({ role: 'viewer', name: 'dashboard' });
      const days = (Date.parse(made.body.expiresAt) - Date.now()) / 86_400_000;
      expect(days).toBeGreaterThan(6.9);
      expect(days).toBeLessThanOrEqual(7);

      // It works, with its role.
      expect((await call(t, 'GET', `${WS}/flows`, { token: made.body.token })).status).toBe(200);
      expectError(await call(t, 'GET', `${WS}/tokens`, { token: made.body.token }), 403);

      const list = await call<Page<Token>>(t, 'GET', `${WS}/tokens`);
      expect(list.status).toBe(200);
      expect(list.text).not.toContain(made.body.token);
      expect(list.text).not.toMatch(/hash/i);
      const entry = list.body.items.find((item) => item.id === made.body.id)!;
      expect(entry).toMatchObject({ role: 'viewer', name: 'dashboard', revokedAt: null, current: false });
      expect(list.body.items.filter((item) => item.current)).toHaveLength(1);
      const paged = await all<Token>(t, `${WS}/tokens`, 1);
      expect(paged.map((item) => item.id)).toEqual(list.body.items.map((item) => item.id));

      const revoke = await call(t, 'DELETE', `${WS}/tokens/${made.body.id}`);
      expect(revoke.status, revoke.text).toBe(204);
      expectError(await call(t, 'GET', `${WS}/flows`, { token: made.body.token }), 401, 'UNAUTHENTICATED');
      expect((await call(t, 'DELETE', `${WS}/tokens/${made.body.id}`)).status).toBe(204);
      const revoked = await call<Page<Token>>(t, 'GET', `${WS}/tokens`);
      expect(revoked.body.items.find((item) => item.id === made.body.id)!.revokedAt).not.toBeNull();
      expectError(await call(t, 'DELETE', `${WS}/tokens/0000000000000000000000000000`), 404);
    });

    it('never makes or revokes a token above the caller’s role', async () => {
      const t = server();
      const admin = await t.token('admin');
      const owner = await t.token('owner');
      const refused = await call(t, 'POST', `${WS}/tokens`, {
        token: admin,
        body: { role: 'owner', name: 'x' },
      });
      expect(expectError(refused, 403, 'FORBIDDEN').message).toMatch(/higher role "owner"/);
      const ownerMade = await call<{ id: string }>(t, 'POST', `${WS}/tokens`, {
        token: owner,
        body: { role: 'owner', name: 'second owner' },
      });
      expect(ownerMade.status).toBe(201);
      expectError(await call(t, 'DELETE', `${WS}/tokens/${ownerMade.body.id}`, { token: admin }), 403);
      expect((await call(t, 'DELETE', `${WS}/tokens/${ownerMade.body.id}`, { token: owner })).status).toBe(
        204,
      );
      expect(
        (await call(t, 'POST', `${WS}/tokens`, { token: admin, body: { role: 'admin', name: 'peer' } }))
          .status,
      ).toBe(201);
    });

    it('rejects bad token requests with 400', async () => {
      const t = server();
      for (const body of [
        { role: 'god', name: 'x' },
        { role: 'viewer' },
        { role: 'viewer', name: '' },
        { role: 'viewer', name: 'x', expiresInDays: 0 },
        { role: 'viewer', name: 'x', expiresInDays: 'soon' },
        { role: 'viewer', name: 'x', scope: 'all' },
      ]) {
        expectError(await call(t, 'POST', `${WS}/tokens`, { body }), 400);
      }
    });
  });
});
