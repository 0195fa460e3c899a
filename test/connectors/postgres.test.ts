import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type {
  ConnectionConfig,
  ConnectorSession,
  IoContext,
  WriteRequest,
} from '../../src/connectors/connector.js';
import { postgresConnector } from '../../src/connectors/postgres/index.js';
import { resolveEndpoint, tlsOptions } from '../../src/connectors/postgres/settings.js';
import { LetheError } from '../../src/errors/index.js';
import type { Row, Table, Value } from '../../src/table/index.js';
import { describeWithPostgres, pgUrl } from '../helpers/services.js';

/** One schema per test file, so files running in parallel never meet. */
const schema = `lethe_test_${randomBytes(6).toString('hex')}`;
const q = (table: string) => `${schema}.${table}`;

function connection(settings: Record<string, unknown> = { url: pgUrl() }): ConnectionConfig {
  return { name: 'crm', type: 'postgres', settings, baseDir: process.cwd() };
}

interface TestContext extends IoContext {
  calls: [number, number | undefined][];
  controller: AbortController;
}

function context(onProgress?: (done: number, controller: AbortController) => void): TestContext {
  const controller = new AbortController();
  const calls: [number, number | undefined][] = [];
  return {
    signal: controller.signal,
    controller,
    calls,
    progress(done, total) {
      calls.push([done, total]);
      onProgress?.(done, controller);
    },
  };
}

async function failure(promise: Promise<unknown>): Promise<LetheError> {
  try {
    await promise;
  } catch (error) {
    expect(error).toBeInstanceOf(LetheError);
    return error as LetheError;
  }
  throw new Error('expected a failure');
}

describe('postgres connector: settings (no server needed)', () => {
  it('never prints the password of a url', async () => {
    const error = await failure(
      postgresConnector.open(connection({ url: 'postgres://someone:s3cret-pw@127.0.0.1:1/db' })),
    );
    expect(error.code).toBe('CONNECTION_ERROR');
    expect(error.message).toContain('PostgreSQL connection "crm" at 127.0.0.1:1/db');
    expect(error.message).not.toContain('s3cret-pw');
    expect(error.details.hint).toContain('is PostgreSQL running');
  });

  it('refuses url parameters it does not understand, without echoing the url', async () => {
    const error = await failure(
      postgresConnector.open(connection({ url: 'postgres://u:pw-secret@h/db?sslmode=prefer' })),
    );
    expect(error.message).toContain('sslmode=prefer');
    expect(error.message).not.toContain('pw-secret');
    const other = await failure(
      postgresConnector.open(connection({ url: 'postgres://u@h/db?target_session_attrs=any' })),
    );
    expect(other.message).toContain('"target_session_attrs"');
    expect(other.details.hint).toContain('sslmode, sslrootcert, application_name, host');
  });

  it('needs a url, or host, database and user', async () => {
    const error = await failure(postgresConnector.open(connection({ host: 'localhost' })));
    expect(error.message).toBe('PostgreSQL connection "crm" needs database, user');
    const invalid = await failure(postgresConnector.open(connection({ url: 'not a url' })));
    expect(invalid.message).toBe('the url of PostgreSQL connection "crm" is not a valid URL');
  });

  it('refuses sslRootCert where no certificate is checked', async () => {
    const error = await failure(
      postgresConnector.open(connection({ url: pgUrl(), ssl: 'require', sslRootCert: 'ca.pem' })),
    );
    expect(error.message).toContain('sslRootCert');
    expect(error.details.hint).toContain('verify-full');
  });

  it('maps TLS modes to node-postgres options as libpq means them', async () => {
    const config = connection();
    const options = (settings: Record<string, unknown>) =>
      tlsOptions(
        resolveEndpoint({ host: 'db.example', database: 'd', user: 'u', ...settings }, 'x'),
        config,
        'x',
      );
    expect(await options({})).toBe(false);
    expect(await options({ ssl: 'disable' })).toBe(false);
    expect(await options({ ssl: 'require' })).toEqual({ rejectUnauthorized: false });
    const full = await options({ ssl: 'verify-full' });
    expect(full).toEqual({ rejectUnauthorized: true });
    const ca = await options({ ssl: 'verify-ca' });
    expect(ca && ca.rejectUnauthorized).toBe(true);
    // verify-ca checks the chain but not the host name.
    expect(ca && ca.checkServerIdentity?.('other.example', {} as never)).toBeUndefined();
    const missing = await failure(options({ ssl: 'verify-full', sslRootCert: 'no-such-ca.pem' }));
    expect(missing.message).toContain('cannot read sslRootCert "no-such-ca.pem"');
  });

  it('takes sslmode from the url, and lets settings override the url', () => {
    const endpoint = resolveEndpoint(
      {
        url: 'postgresql://u:p%40ss@[::1]:6543/my%20db?sslmode=verify-full&application_name=etl',
        port: 7000,
      },
      'x',
    );
    expect(endpoint).toEqual({
      host: '::1',
      port: 7000,
      database: 'my db',
      user: 'u',
      password: 'p@ss',
      ssl: 'verify-full',
      sslRootCert: undefined,
      applicationName: 'etl',
      statementTimeoutMs: undefined,
    });
  });

  it('declares its secret settings', () => {
    expect(postgresConnector.secretSettings).toEqual(['password', 'url']);
  });
});

let admin: pg.Client;
let session: ConnectorSession;

function read(sql: string, ...parameters: Value[]): Promise<Table> {
  return session.read({ kind: 'query', sql, parameters }, context());
}

function write(request: Partial<WriteRequest> & { table: string }, table: Table, ctx: IoContext = context()) {
  return session.write({ mode: 'insert', key: [], ...request, table: q(request.table) }, table, ctx);
}

async function rowsOf(sql: string): Promise<unknown[][]> {
  return (await admin.query({ text: sql, rowMode: 'array' })).rows as unknown[][];
}

await describeWithPostgres('postgres connector', () => {
  beforeAll(async () => {
    admin = new pg.Client({ connectionString: pgUrl() });
    await admin.connect();
    await admin.query(`create schema ${schema}`);
    await admin.query(`set search_path = ${schema}`);
    session = await postgresConnector.open(connection());
  });

  afterAll(async () => {
    await session?.close();
    await admin?.query(`drop schema if exists ${schema} cascade`);
    await admin?.end();
  });

  beforeEach(async () => {
    await admin.query(`
      drop table if exists orders, kinds, events, tags, "__proto__";
      create table orders (id integer primary key, name text not null, amount numeric, code text, note text);
      create table kinds (
        i2 int2, i4 int4, i8 int8, num numeric, f4 float4, f8 float8, b bool, d date,
        ts timestamp, tstz timestamptz, j json, jb jsonb, by bytea, t text, u uuid, arr int4[]);
      create table events (tenant text, seq integer, label text);
      create table tags (id integer primary key, tags text[], doc jsonb, flag boolean);
      create table "__proto__" ("__proto__" text, "constructor" text, "toString" integer primary key);
    `);
  });

  describe('reading', () => {
    it('converts each type as documented, with per-pool parsers only', async () => {
      await admin.query(`insert into kinds values (
        -7, 2147483647, 9007199254740993, 123.4500, 1.5, 0.1, true, '2024-02-29',
        '2024-01-02 03:04:05.123456', '2024-01-02 03:04:05.678+09', '{"a": [1, "x"], "__proto__": {"p": 1}}', '{"b": null}',
        '\\x6869', '日本語 😀', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{1,2,3}')`);
      await admin.query(`insert into kinds (i8, num, f8) values (42, 12345678901234567890.5, 'NaN')`);
      await admin.query(`insert into kinds (i8) values (null)`);
      const table = await session.read({ kind: 'table', table: q('kinds') }, context());
      expect(table.columns).toEqual([
        'i2',
        'i4',
        'i8',
        'num',
        'f4',
        'f8',
        'b',
        'd',
        'ts',
        'tstz',
        'j',
        'jb',
        'by',
        't',
        'u',
        'arr',
      ]);
      const [first, second, third] = table.rows;
      expect(first).toEqual([
        -7,
        2147483647,
        '9007199254740993',
        123.45,
        1.5,
        0.1,
        true,
        '2024-02-29',
        '2024-01-02T03:04:05.123456',
        '2024-01-01T18:04:05.678Z',
        { a: [1, 'x'], ['__proto__']: { p: 1 } },
        { b: null },
        Buffer.from('hi').toString('base64'),
        '日本語 😀',
        'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11',
        '{1,2,3}',
      ]);
      expect(second!.slice(2, 6)).toEqual([42, '12345678901234567890.5', null, 'NaN']);
      expect(third!.every((value) => value === null)).toBe(true);
      expect(({} as Record<string, unknown>).p).toBeUndefined();
      // node-postgres's global parsers are untouched: int8 is still text, timestamptz a Date.
      expect(pg.types.getTypeParser(20, 'text')('1')).toBe('1');
      expect(pg.types.getTypeParser(1184, 'text')('2024-01-02 03:04:05+00')).toBeInstanceOf(Date);
    });

    it('converts timestamptz to UTC whatever the session time zone', async () => {
      // set_config(…, true) lasts for the read's own transaction only.
      const table = await read(
        `select set_config('TimeZone', 'Asia/Kolkata', true) as zone, timestamptz '2024-01-02 03:04:05.678+09' as at, timestamptz '0044-03-15 12:00:00+00' as ides`,
      );
      expect(table.rows[0]!.slice(1)).toEqual(['2024-01-01T18:04:05.678Z', '0044-03-15T12:00:00.000Z']);
      expect((await read(`select current_setting('TimeZone') as zone`)).rows).not.toEqual([['Asia/Kolkata']]);
    });

    it('keeps the columns of an empty table and of a query with no rows', async () => {
      expect(await session.read({ kind: 'table', table: q('orders') }, context())).toEqual({
        columns: ['id', 'name', 'amount', 'code', 'note'],
        rows: [],
      });
      expect(await read(`select id, name as who from ${q('orders')} where false`)).toEqual({
        columns: ['id', 'who'],
        rows: [],
      });
    });

    it('binds parameters instead of splicing them', async () => {
      await admin.query(`insert into orders (id, name, code) values (1, 'a', '00123')`);
      const hostile = "x'); drop table orders; --";
      expect(
        await read(`select $1::text as v, count(*)::int as n from ${q('orders')} where name = $1`, hostile),
      ).toEqual({
        columns: ['v', 'n'],
        rows: [[hostile, 0]],
      });
      expect(await read(`select code from ${q('orders')} where id = any($1)`, [1, 2])).toEqual({
        columns: ['code'],
        rows: [['00123']],
      });
      expect((await read(`select $1::jsonb -> 'k' as k, $2::bool as b`, { k: [1] }, true)).rows).toEqual([
        [[1], true],
      ]);
    });

    it('names the missing table and suggests a close one', async () => {
      const error = await failure(session.read({ kind: 'table', table: q('ordrs') }, context()));
      expect(error.code).toBe('SOURCE_ERROR');
      expect(error.message).toBe(
        `no table "${q('ordrs')}" in PostgreSQL connection "crm" (did you mean "${q('orders')}"?)`,
      );
    });

    it('reports syntax errors with the database message and position', async () => {
      const error = await failure(read('select 1,\n  2 fromm x'));
      expect(error.code).toBe('SOURCE_ERROR');
      expect(error.message).toBe(
        'query on PostgreSQL connection "crm" failed: syntax error at or near "x" (at line 2, column 11)',
      );
    });

    it('keeps parameter values out of error messages', async () => {
      const error = await failure(read('select $1::int as n', 'not-a-number-secret'));
      expect(error.message).toContain('invalid input syntax for type integer');
      expect(error.message).not.toContain('not-a-number-secret');
    });

    it('refuses a statement that returns no rows, and rolls it back', async () => {
      await admin.query(`insert into orders (id, name) values (1, 'a')`);
      const error = await failure(read(`update ${q('orders')} set name = 'changed'`));
      expect(error.message).toContain('returns no rows (it is a UPDATE)');
      expect(await rowsOf(`select name from orders`)).toEqual([['a']]);
      expect((await read(`update ${q('orders')} set name = 'b' returning id, name`)).rows).toEqual([
        [1, 'b'],
      ]);
    });

    it('refuses several statements in one query', async () => {
      const error = await failure(read('select 1; select 2'));
      expect(error.message).toContain('cannot insert multiple commands');
    });

    it('refuses results with two columns of the same name', async () => {
      const error = await failure(read('select 1 as a, 2 as a'));
      expect(error.message).toContain('two columns named "a"');
    });

    it('stops a running statement when the run is cancelled', async () => {
      const ctx = context();
      setTimeout(() => ctx.controller.abort(), 200);
      const started = Date.now();
      const sleep = `select pg_sleep(10) as ${schema}`;
      const error = await failure(session.read({ kind: 'query', sql: sleep, parameters: [] }, ctx));
      expect(error.code).toBe('CANCELLED');
      expect(Date.now() - started).toBeLessThan(5000);
      // The server stops the statement too, rather than sleeping on for a client that left.
      const stillRunning = async () =>
        (await admin.query(`select count(*)::int as n from pg_stat_activity where query = $1`, [sleep]))
          .rows[0].n;
      for (let tries = 0; tries < 40 && (await stillRunning()) > 0; tries++)
        await new Promise((done) => setTimeout(done, 50));
      expect(await stillRunning()).toBe(0);
      expect((await read('select 1 as still_working')).rows).toEqual([[1]]);
    });

    it('says so when TLS is asked of a server that does not offer it', async () => {
      const tls = await admin.query(`select current_setting('ssl') = 'on' as on`);
      if (tls.rows[0].on) return; // this server offers TLS: nothing to refuse
      const error = await failure(postgresConnector.open(connection({ url: pgUrl(), ssl: 'require' })));
      expect(error.code).toBe('CONNECTION_ERROR');
      expect(error.details.hint).toContain('does not offer TLS');
    });

    it('applies statementTimeoutMs', async () => {
      const limited = await postgresConnector.open(connection({ url: pgUrl(), statementTimeoutMs: 100 }));
      const error = await failure(
        limited.read({ kind: 'query', sql: 'select pg_sleep(2)', parameters: [] }, context()),
      );
      expect(error.code).toBe('SOURCE_ERROR');
      expect(error.message).toContain('statement timeout');
      expect(error.details.hint).toContain('statementTimeoutMs');
      await limited.close();
    });

    it('sets DateStyle ISO on every connection, whatever the role’s default', async () => {
      const role = `${schema}_dmy`;
      await admin.query(`create role ${role} login`);
      try {
        await admin.query(`alter role ${role} set datestyle = 'SQL, DMY'`);
        await admin.query(`grant usage on schema ${schema} to ${role}`);
        const url = new URL(pgUrl());
        url.username = role;
        url.password = '';
        const other = await postgresConnector.open(connection({ url: url.toString() }));
        const table = await other.read(
          {
            kind: 'query',
            sql: `select date '2024-02-29' as d, timestamp '2024-02-29 10:00:00' as ts, current_setting('DateStyle') as style`,
            parameters: [],
          },
          context(),
        );
        await other.close();
        expect(table.rows).toEqual([['2024-02-29', '2024-02-29T10:00:00', 'ISO, DMY']]);
      } finally {
        await admin.query(`drop owned by ${role}`);
        await admin.query(`drop role ${role}`);
      }
    });
  });

  describe('writing', () => {
    const orders: Table = {
      columns: ['id', 'name', 'amount', 'code', 'note'],
      rows: [
        [1, 'Ann', 10.5, '00123', null],
        [2, '日本語 😀', 3, 'x', "x'); drop table orders; --"],
      ],
    };

    it('creates a missing table with create: true, typed from the data, the key as primary key', async () => {
      const items: Table = {
        columns: ['sku', 'price', 'stock', 'active', 'meta'],
        rows: [
          ['00017', 34.9, 12, true, { tags: ['kitchen'] }],
          ['00042', 4.5, null, false, null],
        ],
      };
      await write({ table: 'items', mode: 'upsert', key: ['sku'], create: true }, items);
      const columns = await admin.query(
        `select column_name, data_type from information_schema.columns where table_schema = $1 and table_name = 'items' order by ordinal_position`,
        [schema],
      );
      expect(columns.rows.map((r) => [r.column_name, r.data_type])).toEqual([
        ['sku', 'text'],
        ['price', 'double precision'],
        ['stock', 'bigint'],
        ['active', 'boolean'],
        ['meta', 'jsonb'],
      ]);
      await write(
        { table: 'items', mode: 'upsert', key: ['sku'], create: true },
        { columns: ['sku', 'price', 'stock', 'active', 'meta'], rows: [['00017', 30, 11, true, null]] },
      );
      const stored = await admin.query(`select sku, price, stock from ${q('items')} order by sku`);
      expect(stored.rows).toEqual([
        { sku: '00017', price: 30, stock: '11' },
        { sku: '00042', price: 4.5, stock: null },
      ]);
    });

    it('inserts every row and reports the count', async () => {
      expect(await write({ table: 'orders' }, orders)).toEqual({ affected: 2 });
      expect((await session.read({ kind: 'table', table: q('orders') }, context())).rows).toEqual(
        orders.rows,
      );
    });

    it('binds booleans natively, arrays into array columns, other nested values as JSON', async () => {
      await write(
        { table: 'tags' },
        {
          columns: ['id', 'tags', 'doc', 'flag'],
          rows: [
            [1, ['a', 'b,c', '"q"'], { list: [1, 2], nested: { x: null } }, true],
            [2, null, [1, 'two'], false],
          ],
        },
      );
      expect(await rowsOf(`select id, tags, doc, flag from tags order by id`)).toEqual([
        [1, ['a', 'b,c', '"q"'], { list: [1, 2], nested: { x: null } }, true],
        [2, null, [1, 'two'], false],
      ]);
    });

    it('upserts by key: updates matches, inserts the rest, the last duplicate wins', async () => {
      await admin.query(`insert into orders (id, name, amount) values (1, 'old', 1), (5, 'keep', 5)`);
      const result = await write(
        { table: 'orders', mode: 'upsert', key: ['id'] },
        {
          columns: ['id', 'name', 'amount'],
          rows: [
            [1, 'new', 2],
            [2, 'two', 2],
            [2, 'two again', 3],
          ],
        },
      );
      expect(result.affected).toBe(3);
      expect(await rowsOf(`select id, name, amount::float8 from orders order by id`)).toEqual([
        [1, 'new', 2],
        [2, 'two again', 3],
        [5, 'keep', 5],
      ]);
    });

    it('upsert without a unique constraint on the key fails clearly', async () => {
      const error = await failure(
        write(
          { table: 'events', mode: 'upsert', key: ['tenant', 'seq'] },
          { columns: ['tenant', 'seq', 'label'], rows: [['a', 1, 'x']] },
        ),
      );
      expect(error.code).toBe('SINK_ERROR');
      expect(error.message).toBe(
        `upsert into table "${q('events')}" of PostgreSQL connection "crm" needs a primary key or unique index on ("tenant", "seq")`,
      );
      expect(error.details.hint).toBe(
        `add one, e.g. CREATE UNIQUE INDEX ON "${schema}"."events" ("tenant", "seq")`,
      );
    });

    it('updates the rows whose key matches; a null key matches nothing', async () => {
      await admin.query(
        `insert into events values ('a', 1, 'one'), ('a', 2, 'two'), ('b', 1, 'other'), (null, 3, 'no tenant')`,
      );
      const result = await write(
        { table: 'events', mode: 'update', key: ['tenant', 'seq'] },
        {
          columns: ['tenant', 'seq', 'label'],
          rows: [
            ['a', 1, 'ONE'],
            ['b', 1, 'OTHER'],
            [null, 3, 'changed'],
            ['z', 9, 'none'],
          ],
        },
      );
      expect(result.affected).toBe(2);
      expect(await rowsOf(`select tenant, seq, label from events order by seq, tenant nulls last`)).toEqual([
        ['a', 1, 'ONE'],
        ['b', 1, 'OTHER'],
        ['a', 2, 'two'],
        [null, 3, 'no tenant'],
      ]);
    });

    it('deletes the rows whose key matches', async () => {
      await admin.query(`insert into events values ('a', 1, 'one'), ('a', 2, 'two'), ('b', 1, 'other')`);
      const result = await write(
        { table: 'events', mode: 'delete', key: ['tenant', 'seq'] },
        {
          columns: ['seq', 'tenant'],
          rows: [
            [1, 'a'],
            [1, 'b'],
            [7, 'a'],
          ],
        },
      );
      expect(result.affected).toBe(2);
      expect(await rowsOf(`select tenant, seq from events`)).toEqual([['a', 2]]);
    });

    it('replaces every row, counting deleted and inserted rows', async () => {
      await admin.query(`insert into events values ('a', 1, 'one'), ('a', 2, 'two'), ('b', 1, 'other')`);
      const result = await write(
        { table: 'events', mode: 'replace' },
        { columns: ['tenant', 'seq'], rows: [['new', 1]] },
      );
      expect(result.affected).toBe(4);
      expect(await rowsOf(`select tenant, seq, label from events`)).toEqual([['new', 1, null]]);
    });

    it('is all or nothing: a batch failing half way leaves the table unchanged', async () => {
      await admin.query(`insert into orders (id, name) values (100000, 'before')`);
      const rows: Row[] = Array.from({ length: 2500 }, (_, i) => [
        i + 1,
        i === 2299 ? null : `name ${i + 1}`,
      ]);
      const error = await failure(write({ table: 'orders' }, { columns: ['id', 'name'], rows }));
      expect(error.code).toBe('SINK_ERROR');
      expect(error.message).toContain('violates not-null constraint');
      expect(error.message).toContain('input rows 2001–2500');
      expect(await rowsOf(`select id, name from orders`)).toEqual([[100000, 'before']]);

      await failure(write({ table: 'orders', mode: 'replace' }, { columns: ['id', 'name'], rows }));
      expect(await rowsOf(`select id, name from orders`)).toEqual([[100000, 'before']]);
    });

    it('keeps values out of write errors', async () => {
      const error = await failure(
        write({ table: 'orders' }, { columns: ['id', 'name'], rows: [['secret-id-value', 'n']] }),
      );
      expect(error.message).toContain('invalid input syntax for type integer');
      expect(error.message).not.toContain('secret-id-value');
      expect(error.message).toContain('input row 1');
    });

    it('batches under the parameter limit and reports progress between batches', async () => {
      const columns = Array.from({ length: 100 }, (_, i) => `c${i}`);
      await admin.query(`create table wide (${columns.map((c) => `${c} int`).join(', ')})`);
      const rows: Row[] = Array.from({ length: 1500 }, (_, r) => columns.map((_, c) => r + c));
      const ctx = context();
      expect((await write({ table: 'wide' }, { columns, rows }, ctx)).affected).toBe(1500);
      // 65535 parameters / 100 columns = 655 rows per statement.
      expect(ctx.calls).toEqual([
        [655, 1500],
        [1310, 1500],
        [1500, 1500],
      ]);
      expect(await rowsOf(`select count(*)::int from wide`)).toEqual([[1500]]);
      await admin.query('drop table wide');
    });

    it('names columns the target lacks, with a suggestion', async () => {
      const error = await failure(write({ table: 'orders' }, { columns: ['id', 'nmae'], rows: [[1, 'a']] }));
      expect(error.message).toBe(
        `table "${q('orders')}" of PostgreSQL connection "crm" has no column "nmae" (did you mean "name"?)`,
      );
      // Quoted identifiers: case matters.
      const cased = await failure(write({ table: 'orders' }, { columns: ['ID'], rows: [[1]] }));
      expect(cased.message).toContain('has no column "ID" (did you mean "id"?)');
    });

    it('names a missing table with a suggestion', async () => {
      const error = await failure(write({ table: 'ordrs' }, orders));
      expect(error.message).toBe(
        `no table "${q('ordrs')}" in PostgreSQL connection "crm" (did you mean "${q('orders')}"?)`,
      );
    });

    it('rolls back when cancelled between batches', async () => {
      const rows: Row[] = Array.from({ length: 3000 }, (_, i) => [i + 1, 'n']);
      const ctx = context((_done, controller) => controller.abort());
      const error = await failure(write({ table: 'orders' }, { columns: ['id', 'name'], rows }, ctx));
      expect(error.code).toBe('CANCELLED');
      expect(await rowsOf(`select count(*)::int from orders`)).toEqual([[0]]);
    });

    it('keeps __proto__ and constructor ordinary column names', async () => {
      const polluting = JSON.parse('{"polluted": "yes"}') as Value;
      const table: Table = { columns: ['__proto__', 'constructor', 'toString'], rows: [[polluting, 'c', 1]] };
      await write({ table: '__proto__' }, table);
      await write(
        { table: '__proto__', mode: 'upsert', key: ['toString'] },
        { columns: ['toString', 'constructor'], rows: [[1, 'k']] },
      );
      const read = await session.read({ kind: 'table', table: q('__proto__') }, context());
      expect(read).toEqual({
        columns: ['__proto__', 'constructor', 'toString'],
        rows: [['{"polluted":"yes"}', 'k', 1]],
      });
      expect(({} as Record<string, unknown>).polluted).toBeUndefined();
      expect(Object.getPrototypeOf({})).toBe(Object.prototype);
    });

    it('runs concurrent writes of one session on separate connections', async () => {
      const many: Row[] = Array.from({ length: 2000 }, (_, i) => [i + 1, 'n']);
      const results = await Promise.all([
        write({ table: 'orders' }, { columns: ['id', 'name'], rows: many }),
        write({ table: 'events' }, { columns: ['tenant'], rows: [['a']] }),
        read(`select count(*)::int as n from ${q('tags')}`),
      ]);
      expect(results.slice(0, 2)).toEqual([{ affected: 2000 }, { affected: 1 }]);
    });
  });
});
