/**
 * Rotation under load (security issue, acceptance): a server answers webhooks whose runs call an
 * HTTP API with a bearer token kept as a connection secret, while the built CLI runs
 * `lethe keys rotate` on the same data dir and store. Every run succeeds during and after the
 * rotation — runs of workspaces whose data keys were cached, of ones first used mid-rotation
 * (their key rows half re-wrapped), and of ones created mid-rotation; the API checks the exact
 * token, so a run succeeds only if its secret decrypted. At the end the old version is retired,
 * /metrics says so, nothing logged or printed holds key material, and a restarted server (with
 * the new version alone) still decrypts everything. On SQLite and PostgreSQL.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect, it } from 'vitest';
import { KeyRotation, type KeyStatus } from '../../src/security/key-rotation.js';
import { openKeystore } from '../../src/security/keystore.js';
import { loadMasterKeys } from '../../src/security/master-key.js';
import { bin } from '../cli/support.js';
import { json, startHttpServer, type TestHttpServer } from '../egress/support.js';
import { pgSchemaUrl, startTestServer, type TestServer } from '../helpers/server.js';
import { describeStores } from '../store/support.js';
import { keyForms } from './key-rotation-support.js';

const FLOW = `version: 1
name: check
trigger: { webhook: { path: check, respond: result } }
steps:
  - id: remote
    input: { connection: api, request: { path: /check } }
  - id: out
    output: { from: remote, respond: true }
`;

interface Call {
  workspace: string;
  status: number;
  body: string;
  at: number;
}

/** Poll `check` until it returns something, at most `ms`. */
async function until<T>(what: string, check: () => Promise<T | undefined>, ms = 20_000): Promise<T> {
  const deadline = Date.now() + ms;
  for (;;) {
    const value = await check();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

await describeStores('rotation under load', (kind) => {
  it('runs keep decrypting their connections during and after lethe keys rotate, and after a restart', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'lethe-rotate-load-'));
    const schema = kind === 'postgres' ? await pgSchemaUrl() : undefined;
    const tokens = new Map<string, string>(); // bearer token → workspace
    let api: TestHttpServer | undefined;
    let server: TestServer | undefined;
    let stopped = false;
    let load: Promise<unknown> = Promise.resolve();
    const start = () => startTestServer({ dataDir, config: { databaseUrl: schema?.url } });
    try {
      api = await startHttpServer((request, response) => {
        const workspace = tokens.get((request.headers.authorization ?? '').replace(/^Bearer /, ''));
        if (!workspace) return json(response, 401, { error: 'wrong token' });
        return json(response, 200, [{ workspace, ok: 1 }]);
      });
      server = await start();
      const s = server;

      const setUp = async (workspace: string) => {
        const admin = await s.token('admin', workspace);
        const token = `tok-${randomBytes(12).toString('hex')}`;
        tokens.set(token, workspace);
        const connection = await s.api(`/api/v1/workspaces/${workspace}/connections/api`, {
          token: admin,
          method: 'PUT',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            type: 'http',
            settings: { baseUrl: api!.url, auth: 'bearer' },
            secrets: { token },
          }),
        });
        expect(connection.status, await connection.clone().text()).toBeLessThan(300);
        const flow = await s.api(`/api/v1/workspaces/${workspace}/flows/check`, {
          token: admin,
          method: 'PUT',
          headers: { 'content-type': 'application/yaml' },
          body: FLOW,
        });
        expect(flow.status, await flow.clone().text()).toBeLessThan(300);
      };
      const calls: Call[] = [];
      const fire = async (target: TestServer, workspace: string): Promise<Call> => {
        let call: Call;
        try {
          const response = await fetch(`${target.url}/hooks/${workspace}/check`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: '{}',
          });
          call = { workspace, status: response.status, body: await response.text(), at: Date.now() };
        } catch (error) {
          call = { workspace, status: -1, body: String(error), at: Date.now() };
        }
        calls.push(call);
        return call;
      };
      const expectOk = (call: Call) => {
        expect(call.status, `${call.workspace}: ${call.body}`).toBe(200);
        expect(JSON.parse(call.body)).toEqual({ workspace: call.workspace, ok: 1 });
      };

      const warm = Array.from({ length: 6 }, (_, i) => `warm-${i}`);
      const cold = Array.from({ length: 6 }, (_, i) => `cold-${i}`);
      const fresh = Array.from({ length: 3 }, (_, i) => `fresh-${i}`);
      for (const workspace of [...warm, ...cold]) await setUp(workspace);
      for (const workspace of warm) expectOk(await fire(s, workspace));
      const v1 = loadMasterKeys(dataDir, {}).current();
      const watcher = new KeyRotation({
        places: [{ name: 'default', keys: s.server.context.store.workspaceKeys }],
        masterKeys: loadMasterKeys(dataDir, {}),
        keystore: openKeystore(dataDir, {}),
      });

      // The CLI, as an operator runs it, on the running server's data dir and store.
      const cli = spawn(
        process.execPath,
        [bin, 'keys', 'rotate', '--data-dir', dataDir, '--batch', '1', '--pause-ms', '500'],
        {
          env: {
            ...process.env,
            LETHE_DATABASE_URL: schema?.url ?? '',
            LETHE_MASTER_KEY: '',
            LETHE_KEYSTORE: '',
            NO_COLOR: '1',
          },
          stdio: ['ignore', 'pipe', 'pipe'],
        },
      );
      const cliStarted = Date.now();
      let cliOutput = '';
      cli.stdout.on('data', (chunk: Buffer) => (cliOutput += chunk.toString()));
      cli.stderr.on('data', (chunk: Buffer) => (cliOutput += chunk.toString()));
      let cliEnded: number | undefined;
      const cliExit = new Promise<number | null>((resolve) =>
        cli.on('close', (code) => {
          cliEnded = Date.now();
          resolve(code);
        }),
      );

      // Load: webhooks to the warm workspaces, without pause, until the CLI has finished.
      load = Promise.all(
        Array.from({ length: 6 }, async (_, worker) => {
          for (let i = worker; cliEnded === undefined && !stopped; i++) await fire(s, warm[i % warm.length]!);
        }),
      );

      // Midway (some key rows under the new version, some still under the old one): workspaces
      // used for the first time, and new ones.
      const midway: KeyStatus = await until('the rotation to be midway', async () => {
        const status = await watcher.status();
        const keystoreEntries = status.versions[0]!.keystoreEntries;
        return status.versions.length === 2 && status.done > keystoreEntries && status.remaining > 0
          ? status
          : undefined;
      });
      expect(midway.current.version).toBe(2);
      const midwayCalls: Call[] = [];
      for (const workspace of cold) midwayCalls.push(await fire(s, workspace));
      for (const workspace of fresh) {
        await setUp(workspace);
        midwayCalls.push(await fire(s, workspace));
      }
      const metricsMidway = await (await s.api('/metrics')).text();
      const stillRotating = cliEnded === undefined;
      expect(stillRotating, 'the rotation ended before the midway checks: give it more to do').toBe(true);
      expect(metricsMidway).toContain('lethe_master_key_versions 2');
      expect(metricsMidway).toContain('lethe_master_key_current_version 2');

      const code = await cliExit;
      await load;
      expect(code, cliOutput).toBe(0);
      const v2 = loadMasterKeys(dataDir, {}).current();
      expect(cliOutput).toContain(`made master key v2 (id ${v2.id})`);
      expect(cliOutput).toContain(`retired v1 (id ${v1.id}): nothing needs it any more`);

      // Every run succeeded, during the rotation too.
      for (const call of [...calls, ...midwayCalls]) expectOk(call);
      const during = calls.filter((call) => call.at > cliStarted && call.at < cliEnded!);
      expect(during.length).toBeGreaterThanOrEqual(10);

      // The old version is retired: the key file holds v2 alone, nothing is wrapped under v1.
      const file = readFileSync(join(dataDir, 'master.key'), 'utf8');
      for (const form of keyForms(v1.key)) expect(file).not.toContain(form);
      const after = await watcher.status();
      expect(after).toMatchObject({ current: { version: 2 }, remaining: 0, blocked: 0 });
      expect(after.done).toBe(after.total);
      expect(after.versions.map((v) => v.version)).toEqual([2]);
      const rows = await s.server.context.store.db
        .selectFrom('workspace_keys')
        .select('master_key_id')
        .execute();
      expect(rows.length).toBeGreaterThanOrEqual(warm.length + cold.length + fresh.length);
      expect(new Set(rows.map((row) => row.master_key_id))).toEqual(new Set([v2.id]));
      await until('/metrics to show the rotation finished', async () => {
        const text = await (await s.api('/metrics')).text();
        return text.includes('lethe_master_key_versions 1') &&
          text.includes('lethe_master_key_items{wrapped="old"} 0')
          ? true
          : undefined;
      });
      for (const workspace of [...warm, ...cold, ...fresh]) expectOk(await fire(s, workspace));

      // Key material appears in no log line and nothing the CLI printed.
      const printed = `${s.logs.join('\n')}\n${cliOutput}`;
      expect(s.logs.length).toBeGreaterThan(0);
      for (const key of [v1.key, v2.key])
        for (const form of keyForms(key)) expect(printed).not.toContain(form);

      // A restarted server, with v2 alone, decrypts every workspace's secret (nothing cached).
      await s.close();
      server = await start();
      for (const workspace of [...warm, ...cold, ...fresh]) expectOk(await fire(server, workspace));
      expect(server.server.context.vault.masterKeys.versions().map((v) => v.version)).toEqual([2]);
    } finally {
      stopped = true;
      await load;
      await server?.close();
      await api?.close();
      await schema?.drop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
