/**
 * The operator's commands, run as a separate process against a running server's data dir:
 * lethe workspace list|close|reopen|purge-closed and lethe report inventory. The server's vault
 * sees the keystore change the CLI makes (it reads the file on every use).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { expectNoStackTrace, lethe } from '../cli/support.js';
import { call, expectError } from '../server/api-support.js';

describe('lethe workspace and lethe report inventory (SQLite, beside a running server)', () => {
  let t: TestServer;
  beforeAll(async () => {
    t = await startTestServer({ store: 'sqlite' });
  });
  afterAll(async () => {
    await t?.close();
  });
  const cli = (...args: string[]) => lethe([...args, '--data-dir', t.dataDir]);

  it('closes, reports, reopens and deletes a workspace', async () => {
    const name = `cli-${randomBytes(3).toString('hex')}`;
    const owner = await t.token('owner', name);
    const secret = `pw-${randomBytes(10).toString('hex')}`;
    const put = await call(t, 'PUT', `/api/v1/workspaces/${name}/connections/db`, {
      token: owner,
      body: { type: 'postgres', settings: { host: 'h', database: 'd' }, secrets: { password: secret } },
    });
    expect(put.status, put.text).toBeLessThan(300);
    const { store, vault } = t.server.context;
    const id = (await store.workspaces.byName(name))!.id;
    const decrypt = async () => {
      const row = (await store.connections.get(id, 'db'))!;
      return vault.decrypt(id, 'db', 'password', (JSON.parse(row.secrets) as { password: string }).password);
    };
    expect(await decrypt()).toBe(secret);

    const closed = await cli('workspace', 'close', name);
    expect(closed.code, closed.stderr).toBe(0);
    expect(closed.stdout).toMatch(
      new RegExp(`workspace "${name}" closed: sealed in passive storage until \\d{4}-`),
    );
    expectError(
      await call(t, 'GET', `/api/v1/workspaces/${name}/flows`, { token: owner }),
      410,
      'WORKSPACE_CLOSED',
    );
    // The running server's vault refuses the key the CLI sealed.
    await expect(decrypt()).rejects.toThrow(/passive storage/);

    const list = await cli('workspace', 'list');
    expect(list.stdout).toMatch(
      new RegExp(`^${name}  region default  sealed  closed .*, purged after `, 'm'),
    );
    const report = await cli('report', 'inventory', '--workspace', name, '--format', 'json');
    expect(report.code, report.stderr).toBe(0);
    const inventory = JSON.parse(report.stdout) as {
      workspaces: { name: string; status: string; key: { state: string } }[];
    };
    expect(inventory.workspaces).toEqual([
      expect.objectContaining({ name, status: 'sealed', key: expect.objectContaining({ state: 'sealed' }) }),
    ]);
    expect(report.stdout).not.toContain(secret);
    const file = join(t.dataDir, 'report.html');
    expect((await cli('report', 'inventory', '--format', 'html', '-o', file)).code).toBe(0);
    expect(readFileSync(file, 'utf8')).toContain(`Workspace ${name}`);
    expect((await cli('report', 'inventory')).stdout).toMatch(/^# Lethe inventory report/);

    const reopened = await cli('workspace', 'reopen', name);
    expect(reopened.code, reopened.stderr).toBe(0);
    expect(reopened.stdout).toMatch(/reopened: 0 flows resumed/);
    expect((await call(t, 'GET', `/api/v1/workspaces/${name}/flows`, { token: owner })).status).toBe(200);
    expect(await decrypt()).toBe(secret);

    const gone = await cli('workspace', 'close', name, '--now');
    expect(gone.code, gone.stderr).toBe(0);
    expect(gone.stdout).toMatch(/purged: its key destroyed \(crypto-shredded\), \d+ records deleted/);
    expect(await store.workspaces.byName(name)).toBeUndefined();
    await expect(decrypt()).rejects.toThrow();
    expect((await cli('workspace', 'purge-closed')).stdout).toBe('no closed workspace is due\n');
  });

  it('says what is wrong, without a stack trace', async () => {
    for (const [args, message] of [
      [['workspace', 'close', 'nosuch'], /no workspace "nosuch"/],
      [['workspace', 'reopen', 'default'], /workspace "default" is not closed/],
      [['report', 'inventory', '--format', 'pdf'], /--format must be md, html or json/],
      [['report', 'inventory', '--workspace', 'nosuch'], /no workspace "nosuch"/],
    ] as const) {
      const result = await cli(...args);
      expect(result.code).toBe(2);
      expect(result.stderr).toMatch(message);
      expectNoStackTrace(result);
    }
  });
});
