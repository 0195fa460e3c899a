import Database from 'better-sqlite3';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type {
  ConnectionConfig,
  ConnectorSession,
  IoContext,
  WriteRequest,
} from '../../src/connectors/connector.js';
import { sqliteConnector } from '../../src/connectors/sqlite/index.js';
import { LetheError } from '../../src/errors/index.js';
import type { Row, Table } from '../../src/table/index.js';

let dir: string;
let file: string;
let fixture: Database.Database;
let session: ConnectorSession;

function connection(settings: Record<string, unknown> = { path: 'app.db' }): ConnectionConfig {
  return { name: 'app', type: 'sqlite', settings, baseDir: dir };
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

function query(sql: string, ...parameters: Table['rows'][number]): Promise<Table> {
  return session.read({ kind: 'query', sql, parameters }, context());
}

function write(request: Partial<WriteRequest> & { table: string }, table: Table, ctx: IoContext = context()) {
  return session.write({ mode: 'insert', key: [], ...request }, table, ctx);
}

function rowsOf(sql: string): unknown[][] {
  return fixture.prepare(sql).raw(true).all() as unknown[][];
}

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'lethe-sqlite-'));
  file = join(dir, 'app.db');
});

afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

beforeEach(async () => {
  rmSync(file, { force: true });
  fixture = new Database(file);
  fixture.exec(`
    create table orders (id integer primary key, name text not null, amount real, code text, note text);
    create table kinds (i integer, r real, t text, b blob, n numeric, anything);
    create table events (tenant text, seq integer, label text);
    create table "__proto__" ("__proto__" text, "constructor" text, "toString" integer);
  `);
  session = await sqliteConnector.open(connection());
});

afterEach(async () => {
  await session.close();
  fixture.close();
});

describe('sqlite connector: opening', () => {
  it('fails clearly when the file does not exist, and does not create it', async () => {
    const error = await failure(sqliteConnector.open(connection({ path: 'missing.db' })));
    expect(error.code).toBe('CONNECTION_ERROR');
    expect(error.message).toContain('"missing.db"');
    expect(error.message).toContain('SQLite connection "app"');
    expect(error.details.hint).toContain(join(dir, 'missing.db'));
  });

  it('rejects invalid settings, naming the field', async () => {
    const error = await failure(sqliteConnector.open(connection({ path: 'app.db', busyTimeoutMs: 'soon' })));
    expect(error.code).toBe('CONNECTION_ERROR');
    expect(error.message).toContain('busyTimeoutMs');
  });

  it('fails at open on a file that is not a database', async () => {
    fixture.close();
    rmSync(file);
    writeFileSync(file, 'this is not a database, just text long enough to have a header of sorts......');
    const error = await failure(sqliteConnector.open(connection()));
    expect(error.code).toBe('CONNECTION_ERROR');
    expect(error.details.hint).toContain('SQLite database');
    fixture = new Database(':memory:'); // for afterEach to close
  });

  it("keeps the file's journal mode unless wal: true", async () => {
    // A connection that was open before a switch still reports its old mode: ask a new one.
    const mode = () => {
      const fresh = new Database(file, { readonly: true });
      const journal = fresh.pragma('journal_mode', { simple: true });
      fresh.close();
      return journal;
    };
    expect(mode()).toBe('delete');
    const wal = await sqliteConnector.open(connection({ path: 'app.db', wal: true }));
    await wal.close();
    expect(mode()).toBe('wal');
  });

  it('creates a missing database file (and its folder) only with create: true', async () => {
    const missing = await failure(sqliteConnector.open(connection({ path: 'new/fresh.db' })));
    expect(missing.details.hint).toContain('create: true');
    const created = await sqliteConnector.open(connection({ path: 'new/fresh.db', create: true }));
    await created.close();
    expect(existsSync(join(dir, 'new', 'fresh.db'))).toBe(true);
  });

  it('opens :memory: databases', async () => {
    const memory = await sqliteConnector.open(connection({ path: ':memory:' }));
    const table = await memory.read({ kind: 'query', sql: 'select 1 as one', parameters: [] }, context());
    expect(table).toEqual({ columns: ['one'], rows: [[1]] });
    await memory.close();
  });
});

describe('sqlite connector: reading', () => {
  it('reads each storage class as the right value', async () => {
    fixture
      .prepare('insert into kinds values (?, ?, ?, ?, ?, ?)')
      .run(42n, 2.5, '00123', Buffer.from('hi there'), 10n, null);
    fixture
      .prepare('insert into kinds values (?, ?, ?, ?, ?, ?)')
      .run(9007199254740993n, -0.125, '日本語 😀', null, 1.5, 'x');
    const table = await session.read({ kind: 'table', table: 'kinds' }, context());
    expect(table.columns).toEqual(['i', 'r', 't', 'b', 'n', 'anything']);
    expect(table.rows).toEqual([
      [42, 2.5, '00123', Buffer.from('hi there').toString('base64'), 10, null],
      ['9007199254740993', -0.125, '日本語 😀', null, 1.5, 'x'],
    ]);
  });

  it('keeps the columns of an empty table and of a query with no rows', async () => {
    expect(await session.read({ kind: 'table', table: 'orders' }, context())).toEqual({
      columns: ['id', 'name', 'amount', 'code', 'note'],
      rows: [],
    });
    expect(await query('select id, name as who from orders where 0')).toEqual({
      columns: ['id', 'who'],
      rows: [],
    });
  });

  it('binds parameters instead of splicing them', async () => {
    fixture.exec(`insert into orders (id, name) values (1, 'a')`);
    const hostile = "x'); drop table orders; --";
    expect(await query('select ? as v, count(*) as n from orders where name = ?', hostile, hostile)).toEqual({
      columns: ['v', 'n'],
      rows: [[hostile, 0]],
    });
    expect(rowsOf('select count(*) from orders')).toEqual([[1]]);
  });

  it('binds booleans as 1/0, integers as integers and nested values as JSON text', async () => {
    const table = await query('select ? as yes, ? as no, typeof(?) as kind, ? as nested', true, false, 3, {
      a: [1, 'b'],
    });
    expect(table.rows).toEqual([[1, 0, 'integer', '{"a":[1,"b"]}']]);
  });

  it('names the missing table and suggests a close one', async () => {
    const error = await failure(session.read({ kind: 'table', table: 'ordrs' }, context()));
    expect(error.code).toBe('SOURCE_ERROR');
    expect(error.message).toBe('no table "ordrs" in SQLite connection "app" (did you mean "orders"?)');
    expect(error.details.hint).toContain('orders');
  });

  it('reads a table whose name needs quoting', async () => {
    fixture.exec(`create table "odd ""name""" (v text); insert into "odd ""name""" values ('ok')`);
    expect((await session.read({ kind: 'table', table: 'odd "name"' }, context())).rows).toEqual([['ok']]);
  });

  it('reports syntax errors with the database message', async () => {
    const error = await failure(query('selct * from orders'));
    expect(error.code).toBe('SOURCE_ERROR');
    expect(error.message).toContain('query on SQLite connection "app" failed');
    expect(error.message).toContain('syntax error');
  });

  it('refuses a statement that returns no rows, before running it', async () => {
    const error = await failure(query(`insert into orders (id, name) values (7, 'x')`));
    expect(error.message).toContain('returns no rows');
    expect(rowsOf('select count(*) from orders')).toEqual([[0]]);
  });

  it('refuses results with two columns of the same name', async () => {
    const error = await failure(query('select 1 as a, 2 as a'));
    expect(error.message).toContain('two columns named "a"');
  });

  it('reports progress on big reads and stops when cancelled', async () => {
    fixture.exec(`with recursive n(i) as (select 1 union all select i + 1 from n where i < 12000)
      insert into orders (id, name) select i, 'n' || i from n`);
    const full = context();
    const table = await session.read({ kind: 'table', table: 'orders' }, full);
    expect(table.rows).toHaveLength(12000);
    expect(full.calls.map(([done]) => done)).toEqual([5000, 10000, 12000]);

    const cancelling = context((_done, controller) => controller.abort());
    const error = await failure(session.read({ kind: 'table', table: 'orders' }, cancelling));
    expect(error.code).toBe('CANCELLED');
    // The session is still usable afterwards.
    expect((await query('select count(*) as n from orders')).rows).toEqual([[12000]]);
  });
});

describe('sqlite connector: writing', () => {
  const orders: Table = {
    columns: ['id', 'name', 'amount', 'code', 'note'],
    rows: [
      [1, 'Ann', 10.5, '00123', null],
      [2, '日本語 😀', 3, 'x', 'y'],
    ],
  };

  it('creates a missing table with create: true, typed from the data, the key as primary key', async () => {
    const items: Table = {
      columns: ['sku', 'name', 'price', 'stock', 'active', 'tags'],
      rows: [
        ['00017', 'Kettle', 34.9, 12, true, ['kitchen']],
        ['00042', 'Notebook', 4.5, null, false, null],
      ],
    };
    expect(await write({ table: 'items', mode: 'upsert', key: ['sku'], create: true }, items)).toEqual({
      affected: 2,
    });
    const columns = rowsOf(`select name, type, pk from pragma_table_info('items') order by cid`);
    expect(columns).toEqual([
      ['sku', 'TEXT', 1],
      ['name', 'TEXT', 0],
      ['price', 'REAL', 0],
      ['stock', 'INTEGER', 0],
      ['active', 'INTEGER', 0],
      ['tags', 'TEXT', 0],
    ]);
    // The primary key makes the next upsert update rather than fail.
    const again: Table = { columns: items.columns, rows: [['00017', 'Tea kettle', 30, 11, true, null]] };
    await write({ table: 'items', mode: 'upsert', key: ['sku'], create: true }, again);
    expect(rowsOf('select sku, name, price, stock from items order by sku')).toEqual([
      ['00017', 'Tea kettle', 30, 11],
      ['00042', 'Notebook', 4.5, null],
    ]);
  });

  it('without create: true, a missing table is an error and nothing is created', async () => {
    const error = await failure(write({ table: 'itemz', mode: 'insert' }, orders));
    expect(error.message).toContain('itemz');
    expect(rowsOf(`select count(*) from sqlite_master where name = 'itemz'`)).toEqual([[0]]);
  });

  it('inserts every row and reports the count', async () => {
    expect(await write({ table: 'orders' }, orders)).toEqual({ affected: 2 });
    expect(rowsOf('select id, name, amount, code, note from orders order by id')).toEqual(orders.rows);
  });

  it('writes integers as integers, booleans as 1/0 and nested values as JSON text', async () => {
    const table: Table = {
      columns: ['i', 'r', 't', 'n', 'anything'],
      rows: [
        [3, 3, 3, 3, true],
        [2 ** 53, 0.5, false, { a: [1, null] }, [1, 'two']],
      ],
    };
    await write({ table: 'kinds' }, table);
    expect(
      rowsOf('select typeof(i), i, typeof(t), t, typeof(anything), anything from kinds where rowid = 1'),
    ).toEqual([['integer', 3, 'text', '3', 'integer', 1]]);
    const read = await session.read(
      { kind: 'query', sql: 'select i, r, t, n, anything from kinds where rowid = 2', parameters: [] },
      context(),
    );
    // 2^53 is beyond the safe integers: it is stored exactly and read back as text, not rounded.
    expect(read.rows).toEqual([['9007199254740992', 0.5, '0', '{"a":[1,null]}', '[1,"two"]']]);
  });

  it('stores hostile text literally', async () => {
    const hostile = "x'); drop table orders; --";
    await write({ table: 'orders' }, { columns: ['id', 'name'], rows: [[1, hostile]] });
    expect(rowsOf('select name from orders')).toEqual([[hostile]]);
  });

  it('matches column and table names without regard to ASCII case, as SQLite does', async () => {
    await write({ table: 'ORDERS' }, { columns: ['ID', 'Name'], rows: [[1, 'a']] });
    expect(rowsOf('select id, name from orders')).toEqual([[1, 'a']]);
  });

  it('upserts by key: updates matches, inserts the rest, the last duplicate wins', async () => {
    fixture.exec(`insert into orders (id, name, amount) values (1, 'old', 1), (5, 'keep', 5)`);
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
    expect(rowsOf('select id, name, amount from orders order by id')).toEqual([
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
      'upsert into table "events" of SQLite connection "app" needs a primary key or unique index on ("tenant", "seq")',
    );
    expect(error.details.hint).toContain('CREATE UNIQUE INDEX');
    expect(rowsOf('select count(*) from events')).toEqual([[0]]);
  });

  it('updates the rows whose key matches; a null key matches nothing', async () => {
    fixture.exec(
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
    expect(rowsOf('select tenant, seq, label from events order by rowid')).toEqual([
      ['a', 1, 'ONE'],
      ['a', 2, 'two'],
      ['b', 1, 'OTHER'],
      [null, 3, 'no tenant'],
    ]);
  });

  it('update needs a column besides the key', async () => {
    const error = await failure(
      write({ table: 'events', mode: 'update', key: ['tenant'] }, { columns: ['tenant'], rows: [['a']] }),
    );
    expect(error.message).toContain('needs a column to set besides the key');
  });

  it('deletes the rows whose key matches', async () => {
    fixture.exec(`insert into events values ('a', 1, 'one'), ('a', 2, 'two'), ('b', 1, 'other')`);
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
    expect(rowsOf('select tenant, seq from events')).toEqual([['a', 2]]);
  });

  it('replaces every row, counting deleted and inserted rows', async () => {
    fixture.exec(`insert into events values ('a', 1, 'one'), ('a', 2, 'two'), ('b', 1, 'other')`);
    const result = await write(
      { table: 'events', mode: 'replace' },
      { columns: ['tenant', 'seq'], rows: [['new', 1]] },
    );
    expect(result.affected).toBe(4);
    expect(rowsOf('select tenant, seq, label from events')).toEqual([['new', 1, null]]);
    expect(
      (await write({ table: 'events', mode: 'replace' }, { columns: ['tenant'], rows: [] })).affected,
    ).toBe(1);
    expect(rowsOf('select count(*) from events')).toEqual([[0]]);
  });

  it('is all or nothing: a batch failing half way leaves the table unchanged', async () => {
    fixture.exec(`insert into orders (id, name) values (100000, 'before')`);
    const rows: Row[] = Array.from({ length: 2500 }, (_, i) => [i + 1, i === 1799 ? null : `name ${i + 1}`]);
    const error = await failure(write({ table: 'orders' }, { columns: ['id', 'name'], rows }));
    expect(error.code).toBe('SINK_ERROR');
    expect(error.message).toContain('NOT NULL constraint failed');
    expect(error.message).toContain('input rows 1001–2000');
    expect(error.message).not.toContain('name 1');
    expect(rowsOf('select id, name from orders')).toEqual([[100000, 'before']]);

    // The same with replace: the old rows survive the failed write.
    await failure(write({ table: 'orders', mode: 'replace' }, { columns: ['id', 'name'], rows }));
    expect(rowsOf('select id, name from orders')).toEqual([[100000, 'before']]);
  });

  it('batches under the parameter limit and reports progress between batches', async () => {
    const columns = Array.from({ length: 40 }, (_, i) => `c${i}`);
    fixture.exec(`create table wide (${columns.join(', ')})`);
    const rows: Row[] = Array.from({ length: 2000 }, (_, r) => columns.map((_, c) => r * 100 + c));
    const ctx = context();
    expect((await write({ table: 'wide' }, { columns, rows }, ctx)).affected).toBe(2000);
    // 32766 parameters / 40 columns = 819 rows per statement.
    expect(ctx.calls).toEqual([
      [819, 2000],
      [1638, 2000],
      [2000, 2000],
    ]);
    expect(rowsOf('select count(*), sum(c39) from wide')).toEqual([
      [2000, rows.reduce((sum, row) => sum + (row[39] as number), 0)],
    ]);
  });

  it('rolls back when cancelled between batches', async () => {
    const rows: Row[] = Array.from({ length: 3000 }, (_, i) => [i + 1, 'n']);
    const ctx = context((_done, controller) => controller.abort());
    const error = await failure(write({ table: 'orders' }, { columns: ['id', 'name'], rows }, ctx));
    expect(error.code).toBe('CANCELLED');
    expect(rowsOf('select count(*) from orders')).toEqual([[0]]);
  });

  it('names columns the target lacks, with a suggestion, before writing anything', async () => {
    const error = await failure(write({ table: 'orders' }, { columns: ['id', 'nmae'], rows: [[1, 'a']] }));
    expect(error.code).toBe('SINK_ERROR');
    expect(error.message).toBe(
      'table "orders" of SQLite connection "app" has no column "nmae" (did you mean "name"?)',
    );
    expect(error.details.hint).toContain('id, name, amount, code, note');
    const several = await failure(write({ table: 'orders' }, { columns: ['id', 'x', 'y'], rows: [] }));
    expect(several.message).toContain('has no columns "x", "y"');
  });

  it('names a missing table with a suggestion', async () => {
    const error = await failure(write({ table: 'ordrs' }, orders));
    expect(error.message).toBe('no table "ordrs" in SQLite connection "app" (did you mean "orders"?)');
  });

  it('fails on a readonly connection, saying why', async () => {
    const readonly = await sqliteConnector.open(connection({ path: 'app.db', readonly: true }));
    const error = await failure(
      readonly.write({ table: 'orders', mode: 'insert', key: [] }, orders, context()),
    );
    expect(error.code).toBe('SINK_ERROR');
    expect(error.details.hint).toContain('readonly: true');
    await readonly.close();
  });

  it('keeps __proto__ and constructor ordinary column names', async () => {
    const table: Table = {
      columns: ['__proto__', 'constructor', 'toString'],
      rows: [[JSON.parse('{"polluted": "yes"}') as Table['rows'][number][number], 'c', 1]],
    };
    await write({ table: '__proto__', mode: 'insert' }, table);
    await write(
      { table: '__proto__', mode: 'update', key: ['toString'] },
      { columns: ['toString', 'constructor'], rows: [[1, 'k']] },
    );
    const read = await session.read({ kind: 'table', table: '__proto__' }, context());
    expect(read).toEqual({
      columns: ['__proto__', 'constructor', 'toString'],
      rows: [['{"polluted":"yes"}', 'k', 1]],
    });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
    expect(Object.getPrototypeOf({})).toBe(Object.prototype);
  });

  it('runs concurrent reads and writes of one session one at a time', async () => {
    const rows: Row[] = Array.from({ length: 3000 }, (_, i) => [i + 1, 'n']);
    const [written, counted] = await Promise.all([
      write({ table: 'orders' }, { columns: ['id', 'name'], rows }),
      query('select count(*) as n from orders'),
      write({ table: 'events' }, { columns: ['tenant'], rows: [['a']] }),
    ]);
    expect(written.affected).toBe(3000);
    expect(counted.rows).toEqual([[3000]]);
  });
});
