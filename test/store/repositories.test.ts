import { describe, expect, it } from 'vitest';
import { LetheError } from '../../src/errors/index.js';
import { decodeCursor } from '../../src/store/ids.js';
import { newId } from '../../src/store/ids.js';
import type { ConnectionRow } from '../../src/store/records.js';
import { describeStores, flowOf, flowYaml, uniqueName, useStore } from './support.js';

/** Drain a paged list: every page's items, in order. */
async function allPages<T>(page: (cursor?: string) => Promise<{ items: T[]; next: string | null }>) {
  const pages: T[][] = [];
  let cursor: string | undefined;
  for (;;) {
    const result = await page(cursor);
    pages.push(result.items);
    if (result.next === null) return pages;
    cursor = result.next;
  }
}

await describeStores('repositories', (kind) => {
  const ctx = useStore(kind);

  describe('workspaces', () => {
    it('ensure makes a workspace once and returns it again', async () => {
      const name = uniqueName();
      const first = await ctx.store.workspaces.ensure(name);
      expect(first.name).toBe(name);
      expect(first.id).toMatch(/^[0-9a-f]{28}$/);
      expect(first.settings).toBe('{}');
      expect(await ctx.store.workspaces.ensure(name)).toEqual(first);
      expect(await ctx.store.workspaces.byId(first.id)).toEqual(first);
      expect(await ctx.store.workspaces.byName(name)).toEqual(first);
    });

    it('concurrent ensure calls agree on one workspace', async () => {
      const name = uniqueName();
      const results = await Promise.all(Array.from({ length: 20 }, () => ctx.store.workspaces.ensure(name)));
      expect(new Set(results.map((ws) => ws.id)).size).toBe(1);
      const listed = (await ctx.store.workspaces.list()).filter((ws) => ws.name === name);
      expect(listed).toEqual([results[0]]);
    });

    it('concurrent ensure calls from two stores agree on one workspace', async () => {
      const other = await ctx.place.open();
      const name = uniqueName();
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, i) => (i % 2 ? other : ctx.store).workspaces.ensure(name)),
      );
      expect(new Set(results.map((ws) => ws.id)).size).toBe(1);
    });

    it('refuses an invalid name', async () => {
      for (const name of ['', 'Upper', 'has space', '-lead', 'a/b', 'x'.repeat(64)]) {
        await expect(ctx.store.workspaces.ensure(name), name).rejects.toMatchObject({
          name: 'LetheError',
          code: 'USAGE',
        });
      }
      expect(await ctx.store.workspaces.byName('Upper')).toBeUndefined();
    });

    it('lists by name', async () => {
      const names = [uniqueName('zz'), uniqueName('aa'), uniqueName('mm')];
      for (const name of names) await ctx.store.workspaces.ensure(name);
      const listed = (await ctx.store.workspaces.list())
        .map((ws) => ws.name)
        .filter((n) => names.includes(n));
      expect(listed).toEqual([...names].sort());
    });
  });

  describe('flows', () => {
    const put = (workspaceId: string, yaml: string, author = 'tester') =>
      ctx.store.flows.put({ workspaceId, flow: flowOf(yaml), source: yaml, format: 'yaml', author });

    it('versions a flow only when its text changes', async () => {
      const ws = await ctx.store.workspaces.ensure(uniqueName());
      const v1 = flowYaml('orders');
      const first = await put(ws.id, v1, 'alice');
      expect(first).toMatchObject({
        created: true,
        changed: true,
        flow: { version: 1, trigger_kind: 'manual' },
      });
      const same = await put(ws.id, v1, 'bob');
      expect(same).toMatchObject({ created: false, changed: false, flow: { version: 1 } });
      const v2 = flowYaml('orders', undefined, '\n    # changed');
      const second = await put(ws.id, v2, 'bob');
      expect(second).toMatchObject({ created: false, changed: true, flow: { version: 2 } });
      expect((await ctx.store.flows.get(ws.id, 'orders'))?.version).toBe(2);
      expect((await ctx.store.flows.get(ws.id, 'orders'))?.created_at).toBe(first.flow.created_at);
      const versions = await ctx.store.flows.versions(ws.id, 'orders');
      expect(versions.map((v) => [v.version, v.author, v.format])).toEqual([
        [2, 'bob', 'yaml'],
        [1, 'alice', 'yaml'],
      ]);
      expect((await ctx.store.flows.version(ws.id, 'orders', 1))?.source).toBe(v1);
      expect((await ctx.store.flows.version(ws.id, 'orders', 2))?.source).toBe(v2);
      expect(await ctx.store.flows.version(ws.id, 'orders', 3)).toBeUndefined();
    });

    it('records the trigger kind and webhook path (the flow name by default)', async () => {
      const ws = await ctx.store.workspaces.ensure(uniqueName());
      await put(ws.id, flowYaml('hook', '{ webhook: {} }'));
      await put(ws.id, flowYaml('hook2', '{ webhook: { path: in/orders } }'));
      await put(ws.id, flowYaml('tick', '{ schedule: { cron: "0 * * * *" } }'));
      expect((await ctx.store.flows.get(ws.id, 'hook'))?.webhook_path).toBe('hook');
      expect((await ctx.store.flows.byWebhookPath(ws.id, 'in/orders'))?.name).toBe('hook2');
      expect(await ctx.store.flows.get(ws.id, 'tick')).toMatchObject({
        trigger_kind: 'schedule',
        webhook_path: null,
      });
      const scheduled = (await ctx.store.flows.withTrigger('schedule')).filter(
        (f) => f.workspace_id === ws.id,
      );
      expect(scheduled.map((f) => f.name)).toEqual(['tick']);
    });

    it('keeps webhook paths unique within a workspace, with a clear error', async () => {
      const ws = await ctx.store.workspaces.ensure(uniqueName());
      const other = await ctx.store.workspaces.ensure(uniqueName());
      await put(ws.id, flowYaml('a', '{ webhook: { path: shared } }'));
      const error = await put(ws.id, flowYaml('b', '{ webhook: { path: shared } }')).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(LetheError);
      expect(error).toMatchObject({
        code: 'FLOW_INVALID',
        message: 'the webhook path "shared" is already used by flow "a"',
      });
      expect(await ctx.store.flows.get(ws.id, 'b')).toBeUndefined();
      expect(await ctx.store.flows.versions(ws.id, 'b')).toEqual([]);
      // Another workspace may use the same path.
      expect((await put(other.id, flowYaml('b', '{ webhook: { path: shared } }'))).created).toBe(true);
      // Once a moves away, b may take the path.
      await put(ws.id, flowYaml('a', '{ webhook: { path: moved } }'));
      expect((await put(ws.id, flowYaml('b', '{ webhook: { path: shared } }'))).created).toBe(true);
      expect((await ctx.store.flows.byWebhookPath(ws.id, 'shared'))?.name).toBe('b');
    });

    it('concurrent puts of one path: one flow gets it, the other a clear error', async () => {
      const ws = await ctx.store.workspaces.ensure(uniqueName());
      const results = await Promise.allSettled(
        ['p', 'q', 'r', 's'].map((name) => put(ws.id, flowYaml(name, '{ webhook: { path: race } }'))),
      );
      const won = results.filter((r) => r.status === 'fulfilled');
      const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      expect(won).toHaveLength(1);
      expect(lost).toHaveLength(3);
      for (const failure of lost) {
        expect(failure.reason).toBeInstanceOf(LetheError);
        expect((failure.reason as LetheError).code).toBe('FLOW_INVALID');
      }
      const holder = await ctx.store.flows.byWebhookPath(ws.id, 'race');
      expect((await ctx.store.flows.list(ws.id, 10)).items.map((f) => f.name)).toEqual([holder!.name]);
    });

    it('concurrent puts of one new flow make consecutive versions, none lost', async () => {
      const ws = await ctx.store.workspaces.ensure(uniqueName());
      const texts = Array.from({ length: 5 }, (_, i) => flowYaml('same', undefined, `\n    # ${i}`));
      const results = await Promise.all(texts.map((text) => put(ws.id, text)));
      expect(results.filter((r) => r.created)).toHaveLength(1);
      expect(results.map((r) => r.flow.version).sort()).toEqual([1, 2, 3, 4, 5]);
      const versions = await ctx.store.flows.versions(ws.id, 'same');
      expect(versions.map((v) => v.version)).toEqual([5, 4, 3, 2, 1]);
    });

    it('delete removes the flow, its versions and its trigger state, and nothing else', async () => {
      const ws = await ctx.store.workspaces.ensure(uniqueName());
      await put(ws.id, flowYaml('gone', '{ webhook: { path: gone } }'));
      await put(ws.id, flowYaml('gone', '{ webhook: { path: gone } }', '\n    # v2'));
      await put(ws.id, flowYaml('kept'));
      for (const name of ['gone', 'kept']) {
        await ctx.store.triggerState.set(ctx.store.db, ws.id, name, 'poll', { cursor: 5 }, 1);
        await ctx.store.triggerState.remember(ctx.store.db, ws.id, name, 'k1', 'r1', 1);
      }
      expect(await ctx.store.flows.delete(ws.id, 'gone')).toEqual({
        queuedFailed: [],
        removed: {
          flow_versions: 2,
          trigger_state: 1,
          poll_seen: 1,
          webhook_events_seen: 0,
          gateway_log: 0,
          notifications: 0,
          run_inputs: 0,
          run_details: 0,
        },
      });
      expect(await ctx.store.flows.get(ws.id, 'gone')).toBeUndefined();
      expect(await ctx.store.flows.versions(ws.id, 'gone')).toEqual([]);
      expect(await ctx.store.flows.byWebhookPath(ws.id, 'gone')).toBeUndefined();
      expect(await ctx.store.triggerState.get(ws.id, 'gone', 'poll')).toBeUndefined();
      expect(await ctx.store.triggerState.seen(ws.id, 'gone', ['k1'])).toEqual(new Map());
      expect(await ctx.store.flows.delete(ws.id, 'gone')).toBeUndefined();
      expect((await ctx.store.flows.get(ws.id, 'kept'))?.version).toBe(1);
      expect(await ctx.store.triggerState.get(ws.id, 'kept', 'poll')).toEqual({ cursor: 5 });
      expect(await ctx.store.triggerState.seen(ws.id, 'kept', ['k1'])).toEqual(new Map([['k1', 'r1']]));
      // A new flow of the same name starts again at version 1.
      expect((await put(ws.id, flowYaml('gone'))).flow.version).toBe(1);
    });

    it('lists flows by name, page by page', async () => {
      const ws = await ctx.store.workspaces.ensure(uniqueName());
      const names = ['e', 'a', 'd', 'c', 'b'];
      for (const name of names) await put(ws.id, flowYaml(name));
      const pages = await allPages((cursor) => ctx.store.flows.list(ws.id, 2, cursor));
      expect(pages.map((page) => page.map((f) => f.name))).toEqual([['a', 'b'], ['c', 'd'], ['e']]);
    });
  });

  describe('connections', () => {
    const row = (
      workspaceId: string,
      name: string,
      overrides: Partial<ConnectionRow> = {},
    ): ConnectionRow => ({
      workspace_id: workspaceId,
      name,
      type: 'postgres',
      settings: JSON.stringify({ host: 'db', port: 5432 }),
      secrets: JSON.stringify({ password: 'v1.1.cipher' }),
      created_at: 1000,
      updated_at: 1000,
      updated_by: 'alice',
      ...overrides,
    });

    it('put creates, then updates keeping created_at; get, all, delete', async () => {
      const ws = await ctx.store.workspaces.ensure(uniqueName());
      const other = await ctx.store.workspaces.ensure(uniqueName());
      expect(await ctx.store.connections.put(row(ws.id, 'db'))).toEqual({ created: true });
      expect(await ctx.store.connections.put(row(other.id, 'db', { type: 'sqlite' }))).toEqual({
        created: true,
      });
      expect(
        await ctx.store.connections.put(
          row(ws.id, 'db', {
            secrets: '{"password":"v1.1.new"}',
            created_at: 2000,
            updated_at: 2000,
            updated_by: 'bob',
          }),
        ),
      ).toEqual({ created: false });
      expect(await ctx.store.connections.get(ws.id, 'db')).toEqual(
        row(ws.id, 'db', {
          secrets: '{"password":"v1.1.new"}',
          created_at: 1000,
          updated_at: 2000,
          updated_by: 'bob',
        }),
      );
      expect((await ctx.store.connections.get(other.id, 'db'))?.type).toBe('sqlite');
      await ctx.store.connections.put(row(ws.id, 'api'));
      expect((await ctx.store.connections.all(ws.id)).map((c) => c.name)).toEqual(['api', 'db']);
      expect(await ctx.store.connections.delete(ws.id, 'db')).toBe(true);
      expect(await ctx.store.connections.delete(ws.id, 'db')).toBe(false);
      expect(await ctx.store.connections.get(ws.id, 'db')).toBeUndefined();
      expect((await ctx.store.connections.get(other.id, 'db'))?.name).toBe('db');
    });

    it('lists connections by name, page by page', async () => {
      const ws = await ctx.store.workspaces.ensure(uniqueName());
      for (const name of ['c', 'a', 'b']) await ctx.store.connections.put(row(ws.id, name));
      const pages = await allPages((cursor) => ctx.store.connections.list(ws.id, 2, cursor));
      expect(pages.map((page) => page.map((c) => c.name))).toEqual([['a', 'b'], ['c']]);
    });
  });

  describe('tokens', () => {
    it('insert, byHash, touch, list without hashes, revoke once and only in its workspace', async () => {
      const ws = await ctx.store.workspaces.ensure(uniqueName());
      const other = await ctx.store.workspaces.ensure(uniqueName());
      const hash = newId() + 'hash';
      const token = {
        id: newId(),
        workspace_id: ws.id,
        role: 'editor',
        name: 'ci',
        token_hash: hash,
        created_at: 10,
        expires_at: null,
        last_used_at: null,
        revoked_at: null,
      };
      await ctx.store.tokens.insert(token);
      expect(await ctx.store.tokens.byHash(hash)).toEqual(token);
      expect(await ctx.store.tokens.byHash('nope')).toBeUndefined();
      await ctx.store.tokens.touch(token.id, 20);
      const { token_hash: _hash, ...listed } = { ...token, last_used_at: 20 };
      expect(await ctx.store.tokens.list(ws.id)).toEqual([listed]);
      expect(await ctx.store.tokens.list(other.id)).toEqual([]);
      expect(await ctx.store.tokens.revoke(other.id, token.id, 30)).toBe(false);
      expect(await ctx.store.tokens.revoke(ws.id, token.id, 30)).toBe(true);
      expect(await ctx.store.tokens.revoke(ws.id, token.id, 40)).toBe(false);
      expect((await ctx.store.tokens.byHash(hash))?.revoked_at).toBe(30);
      // A hash is unique.
      await expect(ctx.store.tokens.insert({ ...token, id: newId() })).rejects.toThrow();
    });
  });

  describe('workspace keys', () => {
    it('insert refuses a version that exists, and all lists by version', async () => {
      const ws = await ctx.store.workspaces.ensure(uniqueName());
      const key = (version: number, wrapped: string) => ({
        workspace_id: ws.id,
        version,
        wrapped_key: wrapped,
        master_key_id: 'm1',
        created_at: version,
      });
      expect(await ctx.store.workspaceKeys.insert(key(2, 'two'))).toBe(true);
      expect(await ctx.store.workspaceKeys.insert(key(1, 'one'))).toBe(true);
      expect(await ctx.store.workspaceKeys.insert(key(1, 'other'))).toBe(false);
      expect(await ctx.store.workspaceKeys.all(ws.id)).toEqual([key(1, 'one'), key(2, 'two')]);
    });
  });

  describe('gateway log and notifications', () => {
    it('gateway log: newest first, page by page, per workspace', async () => {
      const ws = await ctx.store.workspaces.ensure(uniqueName());
      const other = await ctx.store.workspaces.ensure(uniqueName());
      const ids: string[] = [];
      for (let i = 0; i < 5; i++) {
        const id = newId(1_700_000_000_000 + i);
        ids.push(id);
        await ctx.store.gatewayLog.insert(ctx.store.db, {
          id,
          workspace_id: ws.id,
          path: 'p',
          flow_name: 'f',
          received_at: 1_700_000_000_000 + i,
          method: 'POST',
          content_type: 'application/json',
          size: 10 + i,
          status: 202,
          run_id: null,
          body: i === 0 ? '{"a":1}' : null,
        });
      }
      const pages = await allPages((cursor) => ctx.store.gatewayLog.list(ws.id, 2, cursor));
      expect(pages.map((page) => page.map((row) => row.id))).toEqual([
        [ids[4], ids[3]],
        [ids[2], ids[1]],
        [ids[0]],
      ]);
      expect(pages[2]![0]).toMatchObject({
        body: '{"a":1}',
        size: 10,
        status: 202,
        received_at: 1_700_000_000_000,
      });
      expect(await ctx.store.gatewayLog.list(other.id, 10)).toEqual({ items: [], next: null });
      const first = await ctx.store.gatewayLog.list(ws.id, 2);
      expect(decodeCursor(first.next!)).toBe(ids[3]);
    });

    it('notifications: newest first, page by page, marked read only in their workspace', async () => {
      const ws = await ctx.store.workspaces.ensure(uniqueName());
      const other = await ctx.store.workspaces.ensure(uniqueName());
      const ids = [newId(1000), newId(2000), newId(3000)];
      for (const id of ids) {
        await ctx.store.notifications.insert(ctx.store.db, {
          id,
          workspace_id: ws.id,
          kind: 'run_failed',
          run_id: 'r',
          flow_name: 'f',
          created_at: 1,
          read_at: null,
        });
      }
      const pages = await allPages((cursor) => ctx.store.notifications.list(ws.id, 2, cursor));
      expect(pages.map((page) => page.map((row) => row.id))).toEqual([[ids[2], ids[1]], [ids[0]]]);
      expect(await ctx.store.notifications.markRead(other.id, ids[0]!, 5)).toBe(false);
      expect(await ctx.store.notifications.markRead(ws.id, ids[0]!, 5)).toBe(true);
      const read = (await ctx.store.notifications.list(ws.id, 10)).items.map((row) => row.read_at);
      expect(read).toEqual([null, null, 5]);
    });
  });

  describe('trigger state', () => {
    it('keeps one JSON state per flow and kind, overwritten by set', async () => {
      const ws = await ctx.store.workspaces.ensure(uniqueName());
      expect(await ctx.store.triggerState.get(ws.id, 'f', 'schedule')).toBeUndefined();
      await ctx.store.triggerState.set(ctx.store.db, ws.id, 'f', 'schedule', { last: 1 }, 1);
      await ctx.store.triggerState.set(ctx.store.db, ws.id, 'f', 'poll', { cursor: 'x' }, 1);
      await ctx.store.triggerState.set(
        ctx.store.db,
        ws.id,
        'f',
        'schedule',
        { last: 2, tz: 'Asia/Tokyo' },
        2,
      );
      expect(await ctx.store.triggerState.get(ws.id, 'f', 'schedule')).toEqual({ last: 2, tz: 'Asia/Tokyo' });
      expect(await ctx.store.triggerState.get(ws.id, 'f', 'poll')).toEqual({ cursor: 'x' });
      expect(await ctx.store.triggerState.get(ws.id, 'g', 'poll')).toBeUndefined();
    });

    it('remembers seen rows by key hash, across more keys than one query takes', async () => {
      const ws = await ctx.store.workspaces.ensure(uniqueName());
      const keys = Array.from({ length: 1201 }, (_, i) => `k${i}`);
      await ctx.store.db.transaction().execute(async (trx) => {
        for (const key of keys)
          await ctx.store.triggerState.remember(trx, ws.id, 'poller', key, `r-${key}`, 1);
      });
      await ctx.store.triggerState.remember(ctx.store.db, ws.id, 'poller', 'k7', 'changed', 2);
      const seen = await ctx.store.triggerState.seen(ws.id, 'poller', [...keys, 'unknown']);
      expect(seen.size).toBe(1201);
      expect(seen.get('k0')).toBe('r-k0');
      expect(seen.get('k1200')).toBe('r-k1200');
      expect(seen.get('k7')).toBe('changed');
      expect(seen.has('unknown')).toBe(false);
      expect(await ctx.store.triggerState.seen(ws.id, 'other-flow', keys.slice(0, 3))).toEqual(new Map());
    });
  });
});
