/**
 * Connections for `lethe run`: connections.yaml beside the flow or `--connections FILE`, with
 * `${VAR}` and `${VAR:-default}` from the environment (a missing variable is exit 2 naming it
 * with file:line:col); a SQLite connection written with upsert + create and read back.
 */
import Database from 'better-sqlite3';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { expectNoStackTrace, files, inTempDir, lethe, lines, runJson } from './support.js';

const save = `version: 1
name: save
steps:
  - id: rows
    input: { file: items.csv, types: { id: integer } }
  - id: save
    output: { from: rows, connection: db, table: items, mode: upsert, key: id, create: true }
`;

const readBack = `version: 1
name: read-back
steps:
  - id: rows
    input: { connection: db, sql: "select id, name, price from items order by id" }
  - id: out
    output: { from: rows, respond: true }
`;

const sqliteAt = (path: string) => `# the test database
db:
  type: sqlite
  path: ${path}
  create: true
`;

/** Rows of a SQLite file, read directly. */
function sqliteRows(file: string, sql: string): unknown[] {
  const db = new Database(file, { readonly: true });
  try {
    return db.prepare(sql).all();
  } finally {
    db.close();
  }
}

describe.concurrent('SQLite through connections.yaml', () => {
  it('upsert with create: true makes the table, a second run updates by key, and a flow reads it back', async () => {
    await inTempDir(async (dir) => {
      files(dir, {
        'save.yaml': save,
        'read.yaml': readBack,
        'connections.yaml': sqliteAt('data/shop.db'),
        'items.csv': 'id,name,price\n1,apple,1.5\n2,pear,\n',
      });
      const first = await lethe(['run', 'save.yaml', '--no-progress'], { cwd: dir });
      expect(first.stderr).toBe('');
      expect(first.code).toBe(0);
      // the database path resolves against the connections file's folder
      expect(existsSync(join(dir, 'data', 'shop.db'))).toBe(true);

      files(dir, { 'items.csv': 'id,name,price\n2,Pear,2.25\n3,fig,\n' });
      const second = await lethe(['run', 'save.yaml', '--no-progress'], { cwd: dir });
      expect(second.code).toBe(0);

      const read = await lethe(['run', 'read.yaml', '--json'], { cwd: dir });
      expect(read.code).toBe(0);
      expect(runJson(read).response).toEqual([
        { id: 1, name: 'apple', price: 1.5 },
        { id: 2, name: 'Pear', price: 2.25 },
        { id: 3, name: 'fig', price: null },
      ]);
      expect(sqliteRows(join(dir, 'data', 'shop.db'), 'select id, name from items order by id')).toEqual([
        { id: 1, name: 'apple' },
        { id: 2, name: 'Pear' },
        { id: 3, name: 'fig' },
      ]);
    });
  });

  it('${VAR} takes the value from the environment', async () => {
    await inTempDir(async (dir) => {
      files(dir, {
        'save.yaml': save,
        'connections.yaml': sqliteAt('${LETHE_TEST_DB}'),
        'items.csv': 'id,name,price\n1,apple,1.5\n',
      });
      const result = await lethe(['run', 'save.yaml', '--no-progress'], {
        cwd: dir,
        env: { LETHE_TEST_DB: join(dir, 'from-env.db') },
      });
      expect(result.code).toBe(0);
      expect(sqliteRows(join(dir, 'from-env.db'), 'select id, name, price from items')).toEqual([
        { id: 1, name: 'apple', price: 1.5 },
      ]);
    });
  });

  it('${VAR:-default} uses the default when the variable is not set, the variable when it is', async () => {
    await inTempDir(async (dir) => {
      files(dir, {
        'save.yaml': save,
        'connections.yaml': sqliteAt('${LETHE_TEST_UNSET_DB:-default.db}'),
        'items.csv': 'id,name,price\n1,apple,1.5\n',
      });
      const unset = await lethe(['run', 'save.yaml', '--no-progress'], {
        cwd: dir,
        env: { LETHE_TEST_UNSET_DB: undefined },
      });
      expect(unset.code).toBe(0);
      expect(existsSync(join(dir, 'default.db'))).toBe(true);
      const set = await lethe(['run', 'save.yaml', '--no-progress'], {
        cwd: dir,
        env: { LETHE_TEST_UNSET_DB: 'chosen.db' },
      });
      expect(set.code).toBe(0);
      expect(existsSync(join(dir, 'chosen.db'))).toBe(true);
    });
  });

  it('a variable that is not set exits 2, naming it with file:line:col', async () => {
    await inTempDir(async (dir) => {
      files(dir, {
        'save.yaml': save,
        'connections.yaml': sqliteAt('${LETHE_TEST_MISSING_VAR}'),
        'items.csv': 'id,name,price\n1,apple,1.5\n',
      });
      const result = await lethe(['run', 'save.yaml'], {
        cwd: dir,
        env: { LETHE_TEST_MISSING_VAR: undefined },
      });
      expect(result.code).toBe(2);
      const first = lines(result.stderr)[0];
      expect(first).toBe(
        'connections.yaml:4:9: db.path: environment variable LETHE_TEST_MISSING_VAR is not set',
      );
      expect(result.stderr).toContain('hint: set it, or give a default: ${LETHE_TEST_MISSING_VAR:-value}');
      expect(result.stdout).toBe('');
      expectNoStackTrace(result);
    });
  });

  it('$${ is a literal ${', async () => {
    await inTempDir(async (dir) => {
      files(dir, {
        'save.yaml': save,
        'connections.yaml': sqliteAt('"$${odd}.db"'),
        'items.csv': 'id,name,price\n1,apple,1.5\n',
      });
      const result = await lethe(['run', 'save.yaml', '--no-progress'], { cwd: dir });
      expect(result.code).toBe(0);
      expect(existsSync(join(dir, '${odd}.db'))).toBe(true);
    });
  });
});

describe.concurrent('--connections FILE', () => {
  it('is used instead of connections.yaml beside the flow; relative paths follow that file', async () => {
    await inTempDir(async (dir) => {
      files(dir, {
        'flow/save.yaml': save,
        'flow/items.csv': 'id,name,price\n7,plum,0.5\n',
        'flow/connections.yaml': sqliteAt('beside.db'),
        'conf/other.yaml': sqliteAt('given.db'),
      });
      const result = await lethe(
        ['run', 'flow/save.yaml', '--connections', 'conf/other.yaml', '--no-progress'],
        {
          cwd: dir,
        },
      );
      expect(result.code).toBe(0);
      expect(existsSync(join(dir, 'conf', 'given.db'))).toBe(true);
      expect(existsSync(join(dir, 'flow', 'beside.db'))).toBe(false);
      expect(sqliteRows(join(dir, 'conf', 'given.db'), 'select id, name from items')).toEqual([
        { id: 7, name: 'plum' },
      ]);
    });
  });

  it('a missing file exits 2', async () => {
    await inTempDir(async (dir) => {
      files(dir, { 'save.yaml': save, 'items.csv': 'id,name,price\n1,a,1\n' });
      const result = await lethe(['run', 'save.yaml', '--connections', 'nope.yaml'], { cwd: dir });
      expect(result.code).toBe(2);
      expect(result.stderr).toBe('no such connections file: nope.yaml\n');
    });
  });

  it('an unknown connection type exits 2 with file:line:col', async () => {
    await inTempDir(async (dir) => {
      files(dir, {
        'save.yaml': save,
        'items.csv': 'id,name,price\n1,a,1\n',
        'connections.yaml': 'db:\n  type: sqlit\n  path: x.db\n',
      });
      const result = await lethe(['run', 'save.yaml'], { cwd: dir });
      expect(result.code).toBe(2);
      expect(lines(result.stderr)[0]).toMatch(
        /^connections\.yaml:2:9: db\.type: unknown connection type "sqlit"/,
      );
      expectNoStackTrace(result);
    });
  });

  it('a flow naming a connection that is not defined fails the run, naming it', async () => {
    await inTempDir(async (dir) => {
      files(dir, {
        'save.yaml': save.replace('connection: db', 'connection: dbb'),
        'items.csv': 'id,name,price\n1,a,1\n',
        'connections.yaml': sqliteAt('x.db'),
      });
      const result = await lethe(['run', 'save.yaml'], { cwd: dir });
      expect(result.code).toBe(1);
      expect(result.stderr).toContain('no connection "dbb" (did you mean "db"?)');
      expectNoStackTrace(result);
    });
  });
});
