import { randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { LetheError } from '../../src/errors/index.js';
import { redactUrl } from '../../src/store/database.js';
import { Store } from '../../src/store/index.js';
import { pgUrl } from '../helpers/services.js';
import { describeStores, freshStore, newPlace } from './support.js';

describe('opening the store', () => {
  it('an unreachable PostgreSQL fails clearly, without the password', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'lethe-store-'));
    try {
      const error = await Store.open({ url: 'postgres://lethe:hunter2@127.0.0.1:1/lethe', dataDir }).catch(
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(LetheError);
      expect((error as LetheError).code).toBe('CONNECTION_ERROR');
      expect((error as LetheError).message).toMatch(
        /^cannot reach the store at postgres:\/\/lethe:\*\*\*@127\.0\.0\.1:1\/lethe: .*ECONNREFUSED/,
      );
      expect((error as LetheError).message).not.toContain('hunter2');
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('redactUrl hides the password and never echoes what it cannot parse', () => {
    expect(redactUrl('postgres://u:p%40ss@h:5432/d?sslmode=require')).toBe(
      'postgres://u:***@h:5432/d?sslmode=require',
    );
    expect(redactUrl('postgres://u@h/d')).toBe('postgres://u@h/d');
    expect(redactUrl('not a url with secret')).toBe('an invalid URL');
  });

  it('SQLite files are readable by their owner only, even in a data dir open to others', async () => {
    const parent = mkdtempSync(join(tmpdir(), 'lethe-store-'));
    try {
      const shared = join(parent, 'shared');
      mkdirSync(shared, { mode: 0o755 });
      chmodSync(shared, 0o755);
      const store = await Store.open({ dataDir: shared });
      await store.workspaces.ensure('w');
      const files = readdirSync(shared).sort();
      expect(files).toEqual(['lethe.db', 'lethe.db-shm', 'lethe.db-wal']);
      for (const file of files)
        expect((statSync(join(shared, file)).mode & 0o777).toString(8), file).toBe('600');
      await store.close();
      const made = join(parent, 'made', 'here');
      await (await Store.open({ dataDir: made })).close();
      expect((statSync(made).mode & 0o777).toString(8)).toBe('700');
    } finally {
      rmSync(parent, { recursive: true, force: true });
    }
  });

  it('SQLite transactions take the write lock when they begin, so another process cannot slip a write in', async () => {
    const { store, place } = await freshStore('sqlite');
    const { default: Sqlite } = await import('better-sqlite3');
    // Another process on the same file, which will not wait for the lock.
    const other = new Sqlite(join(place.dataDir, 'lethe.db'), { timeout: 0 });
    try {
      await store.db.transaction().execute(async (trx) => {
        // A deferred transaction would hold no lock until its first write: a read, then another
        // process's commit, then our write would fail at once with SQLITE_BUSY.
        await trx.selectFrom('workspaces').select('id').execute();
        expect(() => other.exec('begin immediate')).toThrow(/locked|busy/i);
      });
      other.exec('begin immediate');
      other.exec('rollback');
    } finally {
      other.close();
      await place.cleanup();
    }
  });

  it('SQLite lives in the data dir, in WAL mode', async () => {
    const { store, place } = await freshStore('sqlite');
    try {
      expect(store.location).toBe(join(place.dataDir, 'lethe.db'));
      const mode = await sql<{ journal_mode: string }>`pragma journal_mode`.execute(store.db);
      expect(mode.rows[0]?.journal_mode).toBe('wal');
    } finally {
      await place.cleanup();
    }
  });
});

await describeStores('the store handle', (kind) => {
  it('ping answers while open and not after close', async () => {
    const { store, place } = await freshStore(kind);
    try {
      expect(await store.ping()).toBe(true);
      await store.close();
      expect(await store.ping()).toBe(false);
    } finally {
      await place.cleanup();
    }
  });

  if (kind === 'postgres') {
    it('survives the server ending its idle connections', async () => {
      const place = await newPlace(kind);
      try {
        const name = `lethe-test-${randomBytes(4).toString('hex')}`;
        const url = new URL(place.url!);
        url.searchParams.set('application_name', name);
        const store = await Store.open({ url: url.toString(), dataDir: place.dataDir });
        try {
          await Promise.all(Array.from({ length: 3 }, () => store.ping()));
          // The server (a restart, an idle timeout, an operator) ends the pooled connections.
          const admin = new pg.Client({ connectionString: pgUrl() });
          await admin.connect();
          const ended = await admin.query(
            'select pg_terminate_backend(pid) from pg_stat_activity where application_name = $1',
            [name],
          );
          await admin.end();
          expect(ended.rowCount).toBeGreaterThan(0);
          await new Promise((resolve) => setTimeout(resolve, 200));
          // No crash (an unhandled 'error' event would end the process); new connections serve.
          expect(await store.ping()).toBe(true);
          expect((await store.workspaces.ensure('after')).name).toBe('after');
        } finally {
          await store.close();
        }
      } finally {
        await place.cleanup();
      }
    });
  }
});
