import { sql, type Migration } from 'kysely';
import { afterEach, describe, expect, it } from 'vitest';
import { DATA_CLASSES } from '../../src/privacy/data-classes.js';
import { migrate } from '../../src/store/database.js';
import { Store } from '../../src/store/index.js';
import { MIGRATIONS } from '../../src/store/migrations.js';
import { STORED_TABLES } from '../../src/store/tables.js';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { pgSchemaUrl } from '../helpers/server.js';
import { describeWithPostgres, pgUrl } from '../helpers/services.js';
import { columnNames, describeStores, newPlace, tableNames, type StorePlace } from './support.js';

const registered = Object.keys(STORED_TABLES).sort();

describe('the table registry', () => {
  it('names a known data class for every table', () => {
    for (const [table, entry] of Object.entries(STORED_TABLES)) {
      expect(DATA_CLASSES[entry.dataClass]?.name, table).toBe(entry.dataClass);
    }
  });

  it('lists personal columns only in classes that may hold personal data', () => {
    const offenders = Object.entries(STORED_TABLES)
      .filter(([, entry]) => entry.personalColumns.length > 0)
      .filter(([, entry]) => !DATA_CLASSES[entry.dataClass].mayHoldPersonalData)
      .map(([table]) => table);
    expect(offenders).toEqual([]);
  });

  it('dates the records of exactly the tables whose class has a retention period', () => {
    const mismatched = Object.entries(STORED_TABLES)
      .filter(
        ([, entry]) =>
          (entry.agedBy !== undefined) !== (DATA_CLASSES[entry.dataClass].retentionDays !== undefined),
      )
      .map(([table]) => table);
    expect(mismatched).toEqual([]);
  });

  it('keeps the seed retention defaults', () => {
    const days = Object.fromEntries(Object.values(DATA_CLASSES).map((c) => [c.name, c.retentionDays]));
    expect(days).toEqual({
      gateway_log: 30,
      dlq: 30,
      notification: 7,
      activity: 30,
      execution_detail: 60,
      audit: 365,
      directory: undefined,
      data_store: undefined,
      config: undefined,
      credential: undefined,
      counter: undefined,
    });
  });
});

await describeStores('migrations', (kind) => {
  let place: StorePlace | undefined;
  afterEach(async () => {
    await place?.cleanup();
    place = undefined;
  });

  it('create exactly the registered tables on an empty database', async () => {
    place = await newPlace(kind);
    const store = await place.open();
    expect(store.dialect).toBe(kind);
    // A table that no data class claims (or a claim on a table that does not exist) fails here.
    expect(await tableNames(store)).toEqual(registered);
  });

  it('give every agedBy column and every personal column a home in its table', async () => {
    place = await newPlace(kind);
    const store = await place.open();
    const missing: string[] = [];
    for (const [table, entry] of Object.entries(STORED_TABLES)) {
      const columns = await columnNames(store, table);
      expect(columns.length, table).toBeGreaterThan(0);
      for (const column of [...(entry.agedBy ? [entry.agedBy] : []), ...entry.personalColumns]) {
        if (!columns.includes(column)) missing.push(`${table}.${column}`);
      }
    }
    expect(missing).toEqual([]);
  });

  it('apply once when several stores open an empty database at the same time', async () => {
    place = await newPlace(kind);
    const stores = await Promise.all([place.open(), place.open(), place.open()]);
    expect(await tableNames(stores[2]!)).toEqual(registered);
    const applied = await sql<{ name: string }>`select name from kysely_migration`.execute(stores[0]!.db);
    expect(applied.rows.map((row) => row.name)).toEqual(Object.keys(MIGRATIONS));
    const made = await Promise.all(stores.map((store) => store.workspaces.ensure('one')));
    expect(new Set(made.map((ws) => ws.id)).size).toBe(1);
  });

  it('apply a failing migration not at all, and a later fixed one fully', async () => {
    place = await newPlace(kind);
    const store = await place.open();
    const table = (fail: boolean): Migration => ({
      async up(db) {
        await db.schema.createTable('unclaimed').addColumn('id', 'text').execute();
        if (fail) throw new Error('broken on purpose');
      },
    });
    await expect(
      migrate(store.db, store.dialect, { ...MIGRATIONS, '0002_test': table(true) }),
    ).rejects.toMatchObject({
      name: 'LetheError',
      code: 'INTERNAL',
      message: 'the store could not be migrated (migration 0002_test): broken on purpose',
    });
    expect(await tableNames(store)).toEqual(registered);
    await migrate(store.db, store.dialect, { ...MIGRATIONS, '0002_test': table(false) });
    // The check of the first test catches a table no data class claims.
    expect(await tableNames(store)).toEqual([...registered, 'unclaimed'].sort());
    expect(await tableNames(store)).not.toEqual(registered);
  });

  it('refuse a database migrated by a newer Lethe', async () => {
    place = await newPlace(kind);
    const store = await place.open();
    await sql`insert into kysely_migration (name, timestamp) values ('9999_future', 'x')`.execute(store.db);
    await expect(place.open()).rejects.toMatchObject({
      code: 'INTERNAL',
      message:
        'the store was migrated by a newer Lethe (migration 9999_future): run that version or a later one',
    });
  });

  it('are idempotent: a second open applies nothing and keeps the data', async () => {
    place = await newPlace(kind);
    const first = await place.open();
    const workspace = await first.workspaces.ensure('kept');
    await first.close();
    const second = await place.open();
    const third = await place.open();
    expect(await tableNames(third)).toEqual(registered);
    const applied = await sql<{ name: string }>`select name from kysely_migration order by name`.execute(
      second.db,
    );
    expect(applied.rows.map((row) => row.name)).toEqual(Object.keys(MIGRATIONS).sort());
    expect(await second.workspaces.byName('kept')).toEqual(workspace);
    expect(await third.ping()).toBe(true);
  });
});

await describeWithPostgres('migrations (PostgreSQL, other schemas)', () => {
  it('are not disturbed by other schemas changing meanwhile', async () => {
    // Another app's DDL in the same database while Lethe starts (before: "schema … does not exist").
    const place = await newPlace('postgres');
    const churner = new pg.Client({ connectionString: pgUrl() });
    await churner.connect();
    const prefix = `churn_${randomBytes(4).toString('hex')}`;
    let stop = false;
    const churn = (async () => {
      for (let i = 0; !stop; i++) {
        const schema = `${prefix}_${i % 3}`;
        await churner.query(
          `create schema ${schema}; create table ${schema}.t (id serial primary key, a text)`,
        );
        await churner.query(`drop schema ${schema} cascade`);
      }
    })();
    try {
      const failures: string[] = [];
      for (let i = 0; i < 25; i++) {
        try {
          await place.open();
        } catch (error) {
          failures.push((error as Error).message);
        }
      }
      expect(failures).toEqual([]);
    } finally {
      stop = true;
      await churn;
      await churner.end();
      await place.cleanup();
    }
  });

  it("are not fooled by another schema's migration tables", async () => {
    // Another app (or another Lethe) keeps Kysely's migration tables in a schema of its own,
    // with our migration names recorded as applied. Our schema is still empty and must be migrated.
    const decoy = await pgSchemaUrl();
    const place = await newPlace('postgres');
    try {
      const client = new pg.Client({ connectionString: decoy.url });
      await client.connect();
      await client.query(
        'create table kysely_migration (name varchar(255) primary key, timestamp varchar(255) not null)',
      );
      await client.query(
        'create table kysely_migration_lock (id varchar(255) primary key, is_locked integer not null default 0)',
      );
      await client.query(`insert into kysely_migration values ('0001_initial', '2020-01-01T00:00:00.000Z')`);
      await client.end();
      const store = await place.open();
      expect(await tableNames(store)).toEqual(registered);
      expect((await store.workspaces.ensure('here')).name).toBe('here');
      // Also when the decoy is a later schema of our search path.
      const fresh = await pgSchemaUrl();
      try {
        const both = new URL(fresh.url);
        const decoySchema = new URL(decoy.url).searchParams.get('options')!.replace('-c search_path=', '');
        both.searchParams.set('options', `${both.searchParams.get('options')!},${decoySchema}`);
        const second = await Store.open({ url: both.toString(), dataDir: place.dataDir });
        try {
          expect(await tableNames(second)).toEqual(registered);
          expect((await second.workspaces.ensure('there')).name).toBe('there');
        } finally {
          await second.close();
        }
      } finally {
        await fresh.drop();
      }
    } finally {
      await place.cleanup();
      await decoy.drop();
    }
  });
});
