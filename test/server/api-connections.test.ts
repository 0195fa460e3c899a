import { randomBytes } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import { pgUrl } from '../helpers/services.js';
import {
  call,
  describeStores,
  expectError,
  itWithPostgres,
  putFlow,
  startRun,
  useServer,
  waitForRun,
  WS,
  type JsonReply,
} from './api-support.js';

interface ConnectionView {
  name: string;
  type: string;
  settings: Record<string, unknown>;
  secrets: string[];
  createdAt: string;
  updatedAt: string;
  updatedBy: string;
}

const secretValue = () => `s3cret-${randomBytes(8).toString('hex')}`;

function errorsOf(reply: JsonReply): { message: string; path?: string }[] {
  return (reply.body as { error: { errors?: { message: string; path?: string }[] } }).error.errors ?? [];
}

await describeStores('connections API', (store) => {
  const server = useServer(store);

  describe('writing and reading', () => {
    it('creates, reads, lists, replaces and deletes a connection', async () => {
      const t = server();
      const put = await call<{ connection: ConnectionView }>(t, 'PUT', `${WS}/connections/local`, {
        body: { type: 'sqlite', settings: { path: 'db/local.db', create: true } },
      });
      expect(put.status, put.text).toBe(201);
      expect(put.body.connection).toMatchObject({
        name: 'local',
        type: 'sqlite',
        settings: { path: 'db/local.db', create: true },
        secrets: [],
      });
      expect(put.body.connection.updatedBy).toMatch(/^token:/);
      const again = await call<{ connection: ConnectionView }>(t, 'PUT', `${WS}/connections/local`, {
        body: { type: 'sqlite', settings: { path: 'db/other.db' } },
      });
      expect(again.status).toBe(200);
      expect(again.body.connection.createdAt).toBe(put.body.connection.createdAt);
      const read = await call<{ connection: ConnectionView }>(t, 'GET', `${WS}/connections/local`);
      expect(read.body.connection.settings).toEqual({ path: 'db/other.db' });

      expect((await call(t, 'DELETE', `${WS}/connections/local`)).status).toBe(204);
      expectError(await call(t, 'GET', `${WS}/connections/local`), 404, 'NOT_FOUND');
      expectError(await call(t, 'DELETE', `${WS}/connections/local`), 404, 'NOT_FOUND');
    });

    it('refuses to delete a connection that flows name (steps or webhook signature), saying which, unless forced', async () => {
      const t = server();
      for (const [name, body] of [
        ['store', { type: 'sqlite', settings: { path: 'db/in-use.db', create: true } }],
        ['signing', { type: 'webhook-secret', secrets: { secret: 'a-signing-secret-value' } }],
        ['spare', { type: 'sqlite', settings: { path: 'db/spare.db', create: true } }],
      ] as const) {
        expect((await call(t, 'PUT', `${WS}/connections/${name}`, { body })).status).toBe(201);
      }
      await putFlow(
        t,
        'writer',
        `version: 1
name: writer
steps:
  - id: rows
    input: { values: [{ a: 1 }] }
  - id: out
    output: { from: rows, connection: store, table: t, create: true }
`,
      );
      await putFlow(
        t,
        'signed',
        `version: 1
name: signed
trigger: { webhook: { path: signed, signature: { scheme: generic, connection: signing } } }
steps:
  - id: in
    input: { trigger: true }
`,
      );
      const refused = expectError(
        await call(t, 'DELETE', `${WS}/connections/store`),
        409,
        'CONNECTION_IN_USE',
      );
      expect(refused.message).toBe('connection "store" is named by flow "writer"');
      expect(
        expectError(await call(t, 'DELETE', `${WS}/connections/signing`), 409, 'CONNECTION_IN_USE').message,
      ).toMatch(/flow "signed"/);
      expect((await call(t, 'GET', `${WS}/connections/store`)).status).toBe(200);
      // Nobody names it: gone at once. Forced: gone.
      expect((await call(t, 'DELETE', `${WS}/connections/spare`)).status).toBe(204);
      expect((await call(t, 'DELETE', `${WS}/connections/store?force=true`)).status).toBe(204);
      expectError(await call(t, 'GET', `${WS}/connections/store`), 404, 'NOT_FOUND');
    });

    it('never returns a secret, and never stores one in plain text', async () => {
      const t = server();
      const password = secretValue();
      const urlSecret = secretValue();
      const url = `postgres://app:${urlSecret}@db.example:5432/shop`;
      const put = await call<{ connection: ConnectionView }>(t, 'PUT', `${WS}/connections/pg`, {
        body: {
          type: 'postgres',
          settings: { host: 'db.example', database: 'shop', user: 'app' },
          secrets: { password, url },
        },
      });
      expect(put.status, put.text).toBe(201);
      expect(put.body.connection.secrets).toEqual(['password', 'url']);
      const reads = [
        put,
        await call(t, 'GET', `${WS}/connections/pg`),
        await call(t, 'GET', `${WS}/connections`),
        await call(t, 'GET', `${WS}/connections?limit=1`),
      ];
      // Settings change without resending the secrets: the stored ones are kept.
      const update = await call<{ connection: ConnectionView }>(t, 'PUT', `${WS}/connections/pg`, {
        body: { type: 'postgres', settings: { host: 'db2.example', database: 'shop', user: 'app' } },
      });
      expect(update.status, update.text).toBe(200);
      expect(update.body.connection.secrets).toEqual(['password', 'url']);
      reads.push(update, await call(t, 'GET', `${WS}/connections/pg`));
      for (const reply of reads) {
        expect(reply.status).toBeLessThan(300);
        expect(reply.text).not.toContain(password);
        expect(reply.text).not.toContain(urlSecret);
      }
      // In the store: ciphertexts only.
      const rows = await t.server.context.store.db.selectFrom('connections').selectAll().execute();
      const stored = JSON.stringify(rows);
      expect(stored).not.toContain(password);
      expect(stored).not.toContain(urlSecret);
      const row = rows.find((r) => r.name === 'pg')!;
      const sealed = JSON.parse(row.secrets) as Record<string, string>;
      expect(Object.keys(sealed).sort()).toEqual(['password', 'url']);
      const workspace = (await t.server.context.store.workspaces.byName('default'))!;
      expect(await t.server.context.vault.decrypt(workspace.id, 'pg', 'password', sealed.password!)).toBe(
        password,
      );

      // Secrets given replace the stored ones; another type drops them.
      const replaced = await call<{ connection: ConnectionView }>(t, 'PUT', `${WS}/connections/pg`, {
        body: { type: 'postgres', settings: { host: 'h', database: 'd', user: 'u' }, secrets: { password } },
      });
      expect(replaced.body.connection.secrets).toEqual(['password']);
      const retyped = await call<{ connection: ConnectionView }>(t, 'PUT', `${WS}/connections/pg`, {
        body: { type: 'sqlite', settings: { path: 'x.db' } },
      });
      expect(retyped.status, retyped.text).toBe(200);
      expect(retyped.body.connection.secrets).toEqual([]);
    });

    it('pages the list with limit and cursor', async () => {
      const t = server();
      for (const name of ['page-a', 'page-b', 'page-c'])
        await call(t, 'PUT', `${WS}/connections/${name}`, {
          body: { type: 'sqlite', settings: { path: `${name}.db` } },
        });
      const names: string[] = [];
      let cursor: string | null = null;
      for (let i = 0; i < 20; i++) {
        const page: JsonReply<{ items: ConnectionView[]; next: string | null }> = await call(
          t,
          'GET',
          `${WS}/connections?limit=2${cursor ? `&cursor=${cursor}` : ''}`,
        );
        expect(page.body.items.length).toBeLessThanOrEqual(2);
        names.push(...page.body.items.map((item) => item.name));
        cursor = page.body.next;
        if (cursor === null) break;
      }
      expect(cursor).toBeNull();
      expect(names).toEqual([...names].sort());
      expect(names).toEqual(expect.arrayContaining(['page-a', 'page-b', 'page-c']));
    });
  });

  describe('bad input', () => {
    it('rejects an unknown type with the known ones', async () => {
      const reply = await call(server(), 'PUT', `${WS}/connections/x`, {
        body: { type: 'sqlit', settings: { path: 'a.db' } },
      });
      const error = expectError(reply, 400, 'CONNECTIONS_INVALID') as { message: string; hint?: string };
      expect(error.message).toBe('unknown connection type "sqlit" (did you mean "sqlite"?)');
      expect(error.hint).toMatch(/sqlite, postgres/);
    });

    it('wants secrets in "secrets", and only secrets there', async () => {
      const t = server();
      const password = secretValue();
      const inSettings = await call(t, 'PUT', `${WS}/connections/misplaced`, {
        body: { type: 'postgres', settings: { host: 'h', database: 'd', user: 'u', password } },
      });
      expectError(inSettings, 400, 'CONNECTIONS_INVALID');
      expect(errorsOf(inSettings)).toEqual([
        expect.objectContaining({ path: 'settings.password', message: expect.stringMatching(/is a secret/) }),
      ]);
      // The error repeats the field's name, never its value.
      expect(inSettings.text).not.toContain(password);
      const notSecret = await call(t, 'PUT', `${WS}/connections/misplaced`, {
        body: { type: 'postgres', settings: { database: 'd', user: 'u' }, secrets: { host: 'h' } },
      });
      expectError(notSecret, 400);
      expect(errorsOf(notSecret)[0]).toMatchObject({ path: 'secrets.host' });
      expect(errorsOf(notSecret)[0]!.message).toMatch(/not a secret setting.*password, url/);
      expectError(await call(t, 'GET', `${WS}/connections/misplaced`), 404);
    });

    it('says what is missing', async () => {
      const reply = await call(server(), 'PUT', `${WS}/connections/empty`, { body: { type: 'sqlite' } });
      expectError(reply, 400, 'CONNECTIONS_INVALID');
      expect(errorsOf(reply)).toEqual([
        expect.objectContaining({ path: 'settings', message: 'settings: missing required field "path"' }),
      ]);
      expect((reply.body as { error: { message: string } }).error.message).toBe(
        'settings: missing required field "path"',
      );
    });

    it('reports every settings problem with where it is', async () => {
      const reply = await call(server(), 'PUT', `${WS}/connections/bad`, {
        body: { type: 'sqlite', settings: { wal: 'yes', busyTimeoutMs: -1, pth: 'a.db' } },
      });
      expectError(reply, 400, 'CONNECTIONS_INVALID');
      const errors = errorsOf(reply);
      // A misspelt required field is one mistake ("pth"), not also a missing "path".
      expect(errors.map((e) => e.path).sort()).toEqual([
        'settings.busyTimeoutMs',
        'settings.pth',
        'settings.wal',
      ]);
      expect(errors.find((e) => e.path === 'settings.pth')!.message).toMatch(/did you mean "path"/);
      expect(errors.find((e) => e.path === 'settings.wal')!.message).toMatch(/true or false/);
    });

    it('keeps file paths inside the workspace folder', async () => {
      const t = server();
      for (const path of ['../../lethe.db', '/etc/passwd', 'a/../../b.db']) {
        const reply = await call(t, 'PUT', `${WS}/connections/escape`, {
          body: { type: 'sqlite', settings: { path } },
        });
        expectError(reply, 400, 'CONNECTIONS_INVALID');
        expect(errorsOf(reply)[0]!.message).toMatch(/outside the workspace's files folder/);
      }
      const memory = await call(t, 'PUT', `${WS}/connections/mem`, {
        body: { type: 'sqlite', settings: { path: ':memory:' } },
      });
      expect(memory.status).toBe(201);
    });

    it('rejects bad names and bodies', async () => {
      const t = server();
      expectError(
        await call(t, 'PUT', `${WS}/connections/${encodeURIComponent('a/b')}`, {
          body: { type: 'sqlite', settings: { path: 'a.db' } },
        }),
        400,
        'INVALID_NAME',
      );
      expectError(await call(t, 'PUT', `${WS}/connections/x`, { body: { settings: {} } }), 400);
      expectError(
        await call(t, 'PUT', `${WS}/connections/x`, { body: { type: 'postgres', secrets: { password: 1 } } }),
        400,
      );
      expectError(await call(t, 'PUT', `${WS}/connections/x`, { body: { type: 'sqlite', extra: 1 } }), 400);
      expectError(await call(t, 'PUT', `${WS}/connections/x`, { body: '{"type":' }), 400, 'INVALID_JSON');
    });

    it('lets viewers read but only admins write', async () => {
      const t = server();
      const body = { type: 'sqlite', settings: { path: 'a.db' } };
      for (const role of ['viewer', 'editor'] as const) {
        const token = await t.token(role);
        expectError(await call(t, 'PUT', `${WS}/connections/roles`, { body, token }), 403, 'FORBIDDEN');
        expect((await call(t, 'GET', `${WS}/connections`, { token })).status).toBe(200);
      }
      expect(
        (await call(t, 'PUT', `${WS}/connections/roles`, { body, token: await t.token('admin') })).status,
      ).toBe(201);
      expectError(
        await call(t, 'DELETE', `${WS}/connections/roles`, { token: await t.token('editor') }),
        403,
      );
    });
  });

  describe('used by runs', () => {
    it('reads and writes a SQLite connection made through the API', async () => {
      const t = server();
      const folder = join(t.dataDir, 'files', 'default', 'shop');
      mkdirSync(folder, { recursive: true });
      const db = new Database(join(folder, 'shop.db'));
      db.exec(
        "create table items (sku text primary key, qty integer); insert into items values ('a', 1), ('b', 5)",
      );
      db.close();
      const put = await call(t, 'PUT', `${WS}/connections/shop`, {
        body: { type: 'sqlite', settings: { path: 'shop/shop.db' } },
      });
      expect(put.status, put.text).toBe(201);
      await putFlow(
        t,
        'restock',
        `version: 1
name: restock
steps:
  - id: low
    input: { connection: shop, sql: 'select sku, qty from items where qty < 3' }
  - id: more
    compute: { from: low, columns: { qty: 'qty + 10' } }
  - id: save
    output: { from: more, connection: shop, table: items, mode: upsert, key: sku }
`,
      );
      const detail = await waitForRun(t, await startRun(t, 'restock'));
      expect(detail.run, JSON.stringify(detail)).toMatchObject({
        status: 'succeeded',
        rowsRead: 1,
        rowsWritten: 1,
      });
      expect(detail.details!.steps[0]!.sample).toEqual({ columns: ['sku', 'qty'], rows: [['a', 1]] });
      const check = new Database(join(folder, 'shop.db'), { readonly: true });
      expect(check.prepare('select qty from items order by sku').all()).toEqual([{ qty: 11 }, { qty: 5 }]);
      check.close();
    });

    itWithPostgres(
      'decrypts a PostgreSQL connection’s secret for a run, and cancels a running one',
      async () => {
        const t = server();
        const put = await call(t, 'PUT', `${WS}/connections/warehouse`, {
          body: {
            type: 'postgres',
            settings: { applicationName: 'lethe-api-test' },
            secrets: { url: pgUrl() },
          },
        });
        expect(put.status, put.text).toBe(201);
        expect(put.text).not.toContain(pgUrl());
        await putFlow(
          t,
          'answer',
          `version: 1
name: answer
steps:
  - id: q
    input: { connection: warehouse, sql: 'select 42 as answer' }
`,
        );
        const detail = await waitForRun(t, await startRun(t, 'answer'));
        expect(detail.run, JSON.stringify(detail)).toMatchObject({ status: 'succeeded', rowsRead: 1 });
        expect(detail.details!.steps[0]!.sample).toEqual({ columns: ['answer'], rows: [[42]] });

        await putFlow(
          t,
          'sleepy',
          `version: 1
name: sleepy
steps:
  - id: q
    input: { connection: warehouse, sql: 'select pg_sleep(30) as slept' }
`,
        );
        const id = await startRun(t, 'sleepy');
        await waitForRun(t, id, (d) => d.run.status !== 'queued');
        const cancel = await call(t, 'POST', `${WS}/runs/${id}/cancel`);
        expect(cancel.status, cancel.text).toBe(202);
        expect(cancel.body).toEqual({ runId: id, status: 'cancelling' });
        const ended = await waitForRun(t, id);
        expect(ended.run).toMatchObject({ status: 'failed', errorCode: 'CANCELLED' });
        expectError(await call(t, 'POST', `${WS}/runs/${id}/cancel`), 409, 'NOT_RUNNING');
      },
    );
  });
});
