/**
 * `lethe keys status` and `lethe keys rotate`, the built CLI on a data dir: with the key file and
 * with LETHE_MASTER_KEY, a rotation killed mid-way and run again, refusals — and nothing it
 * prints, in text or JSON, is key material.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { KeyRotation, type KeyStatus, type RotationReport } from '../../src/security/key-rotation.js';
import { Keystore, openKeystore } from '../../src/security/keystore.js';
import { loadMasterKeys, MasterKeyRing } from '../../src/security/master-key.js';
import { Vault } from '../../src/security/vault.js';
import { Store } from '../../src/store/index.js';
import { bin, expectNoStackTrace, lethe, useTempDir, type CliResult } from '../cli/support.js';
import { keyForms } from './key-rotation-support.js';

interface Secret {
  ws: string;
  ciphertext: string;
  plaintext: string;
}

/** A data dir with a store, a key file and `count` workspaces that each have a secret. */
async function seeded(
  dataDir: string,
  count: number,
  env: Record<string, string> = {},
): Promise<{ store: Store; secrets: Secret[] }> {
  const store = await Store.open({ dataDir });
  const vault = new Vault(store.workspaceKeys, loadMasterKeys(dataDir, env), openKeystore(dataDir, env));
  const secrets: Secret[] = [];
  for (let i = 0; i < count; i++) {
    const ws = (await store.workspaces.ensure(`ws-${i}`)).id;
    const plaintext = `secret-${randomBytes(6).toString('hex')}`;
    secrets.push({ ws, plaintext, ciphertext: await vault.encrypt(ws, 'api', 'token', plaintext) });
  }
  return { store, secrets };
}

async function expectDecrypts(vault: Vault, secrets: readonly Secret[]): Promise<void> {
  for (const s of secrets) expect(await vault.decrypt(s.ws, 'api', 'token', s.ciphertext)).toBe(s.plaintext);
}

/** Nothing the CLI printed holds any form of these keys. */
function expectNoKeys(results: readonly CliResult[], keys: readonly Buffer[]): void {
  const printed = results.map((r) => `${r.stdout}\n${r.stderr}`).join('\n');
  expect(printed.length).toBeGreaterThan(0);
  for (const key of keys) for (const form of keyForms(key)) expect(printed).not.toContain(form);
}

const env = { LETHE_MASTER_KEY: undefined, LETHE_MASTER_KEY_FILE: undefined, LETHE_KEYSTORE: undefined };

describe('lethe keys', () => {
  const tmp = useTempDir();

  it('status and rotate with the key file: a new version, everything re-wrapped, the old one retired', async () => {
    const dataDir = tmp();
    const { store, secrets } = await seeded(dataDir, 3);
    try {
      const v1 = loadMasterKeys(dataDir, {}).current();
      const printed: CliResult[] = [];
      const run = async (...args: string[]) => {
        const result = await lethe(['keys', ...args, '--data-dir', dataDir], { env });
        printed.push(result);
        expectNoStackTrace(result);
        return result;
      };

      const before = await run('status');
      expect(before.code, before.stderr).toBe(0);
      expect(before.stdout).toContain(`from the key file ${join(dataDir, 'master.key')}`);
      expect(before.stdout).toMatch(new RegExp(`v1  id ${v1.id}  current +3 keystore entries, 3 data keys`));
      expect(before.stdout).toContain('under the current version v1: 6 of 6 items (100%)');

      const rotated = await run('rotate');
      expect(rotated.code, rotated.stdout + rotated.stderr).toBe(0);
      const v2 = loadMasterKeys(dataDir, {}).current();
      expect(v2.version).toBe(2);
      expect(rotated.stdout).toContain(`made master key v2 (id ${v2.id}): everything new is wrapped with it`);
      expect(rotated.stdout).toContain('keystore: 3 entries re-sealed');
      expect(rotated.stdout).toContain('data keys: 3 re-wrapped');
      expect(rotated.stdout).toContain(`retired v1 (id ${v1.id}): nothing needs it any more`);
      expect(rotated.stdout).toContain('under the current version v2: 6 of 6 items');

      const json = await run('status', '--json');
      const status = JSON.parse(json.stdout) as KeyStatus;
      expect(status).toMatchObject({
        source: 'file',
        current: { version: 2, id: v2.id },
        total: 6,
        done: 6,
        remaining: 0,
        blocked: 0,
      });
      expect(status.versions.map((v) => v.version)).toEqual([2]);
      const again = await run('rotate', '--json');
      const report = JSON.parse(again.stdout) as RotationReport;
      expect(report.made?.version).toBe(3);
      expect(report.retired.map((v) => v.version)).toEqual([2]);
      const v3 = loadMasterKeys(dataDir, {}).current();

      expectNoKeys(printed, [v1.key, v2.key, v3.key]);
      const file = readFileSync(join(dataDir, 'master.key'), 'utf8');
      for (const old of [v1.key, v2.key]) for (const form of keyForms(old)) expect(file).not.toContain(form);
      await expectDecrypts(
        new Vault(store.workspaceKeys, MasterKeyRing.of(v3), new Keystore(join(dataDir, 'keystore.json'))),
        secrets,
      );
    } finally {
      await store.close();
    }
  });

  it('with LETHE_MASTER_KEY the operator adds the new version first, and removes the old one after', async () => {
    const dataDir = tmp();
    const k1 = randomBytes(32);
    const k2 = randomBytes(32);
    const old = { ...env, LETHE_MASTER_KEY: k1.toString('base64') };
    const both = { ...env, LETHE_MASTER_KEY: `v2:${k2.toString('base64')},v1:${k1.toString('base64')}` };
    const { store, secrets } = await seeded(dataDir, 2, { LETHE_MASTER_KEY: old.LETHE_MASTER_KEY });
    try {
      const printed: CliResult[] = [];
      const run = async (environment: Record<string, string | undefined>, ...args: string[]) => {
        const result = await lethe(['keys', ...args, '--data-dir', dataDir], { env: environment });
        printed.push(result);
        expectNoStackTrace(result);
        return result;
      };
      const nothing = await run(old, 'rotate');
      expect(nothing.code).toBe(2);
      expect(nothing.stderr).toContain(
        'LETHE_MASTER_KEY holds one version, and everything is wrapped with it',
      );
      expect(nothing.stderr).toContain('LETHE_MASTER_KEY=v2:<new key>,v1:<old key>');

      const rotated = await run(both, 'rotate');
      expect(rotated.code, rotated.stdout + rotated.stderr).toBe(0);
      const v1 = loadMasterKeys(dataDir, old).current();
      expect(rotated.stdout).toContain('re-wrapping with master key v2');
      expect(rotated.stdout).toContain(
        `v1 (id ${v1.id}) is no longer needed: remove it from LETHE_MASTER_KEY on every process`,
      );
      const status = await run(both, 'status');
      expect(status.stdout).toContain('from LETHE_MASTER_KEY');
      expect(status.stdout).toMatch(
        /v1 {2}id [0-9a-f]{16} +0 keystore entries, 0 data keys — no longer needed/,
      );

      const alone = { LETHE_MASTER_KEY: `v2:${k2.toString('base64')}` };
      const after = await run({ ...env, ...alone }, 'status', '--json');
      expect(JSON.parse(after.stdout)).toMatchObject({ total: 4, done: 4, remaining: 0, blocked: 0 });
      await expectDecrypts(
        new Vault(store.workspaceKeys, loadMasterKeys(dataDir, alone), openKeystore(dataDir, {})),
        secrets,
      );
      expectNoKeys(printed, [k1, k2]);
      // LETHE_MASTER_KEY was the key: no key file was ever made.
      expect(existsSync(join(dataDir, 'master.key'))).toBe(false);
    } finally {
      await store.close();
    }
  });

  it('a rotation killed mid-way leaves everything readable, and running it again finishes it', async () => {
    const dataDir = tmp();
    const { store, secrets } = await seeded(dataDir, 24);
    try {
      const masterKeys = loadMasterKeys(dataDir, {});
      const v1 = masterKeys.current();
      const keystore = openKeystore(dataDir, {});
      const rotation = new KeyRotation({
        places: [{ name: 'default', keys: store.workspaceKeys }],
        masterKeys,
        keystore,
      });
      const child = spawn(
        process.execPath,
        [bin, 'keys', 'rotate', '--data-dir', dataDir, '--batch', '1', '--pause-ms', '150'],
        { env: { ...process.env, LETHE_MASTER_KEY: '', NO_COLOR: '1' }, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
      const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
      // Wait (bounded) until some data keys are under v2, then kill it without warning.
      let midway: KeyStatus | undefined;
      const deadline = Date.now() + 20_000;
      while (Date.now() < deadline) {
        const status = await rotation.status();
        if (status.versions.length === 2 && status.done > 24 + 2) {
          midway = status;
          break;
        }
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      child.kill('SIGKILL');
      await exited;
      expect(midway, `the rotation never got midway: ${output}`).toBeDefined();
      const left = await rotation.status();
      expect(left.versions.map((v) => v.version)).toEqual([2, 1]);
      expect(left.remaining).toBeGreaterThan(0);
      expect(left.done).toBeLessThan(left.total);
      await expectDecrypts(
        new Vault(store.workspaceKeys, loadMasterKeys(dataDir, {}), new Keystore(keystore.path)),
        secrets,
      );

      const finished = await lethe(['keys', 'rotate', '--data-dir', dataDir], { env });
      expect(finished.code, finished.stdout + finished.stderr).toBe(0);
      const v2 = masterKeys.current();
      expect(finished.stdout).toContain(
        `re-wrapping with master key v2 (id ${v2.id}) (finishing what an earlier rotation began)`,
      );
      expect(finished.stdout).toContain(`retired v1 (id ${v1.id})`);
      expect(masterKeys.versions().map((v) => v.version)).toEqual([2]);
      expect((await rotation.status()).remaining).toBe(0);
      await expectDecrypts(
        new Vault(store.workspaceKeys, MasterKeyRing.of(v2), new Keystore(keystore.path)),
        secrets,
      );
      expectNoKeys([finished, { code: 0, signal: null, stdout: output, stderr: '' }], [v1.key, v2.key]);
      // A killed writer leaves no temporary key file behind once the next one has run.
      expect(readdirSync(dataDir).filter((name) => name.endsWith('.tmp'))).toEqual([]);
    } finally {
      await store.close();
    }
  });

  it('refuses a data dir without a store or a master key, and makes neither', async () => {
    const empty = tmp();
    for (const command of ['status', 'rotate']) {
      const result = await lethe(['keys', command, '--data-dir', empty], { env });
      expect(result.code).toBe(2);
      expectNoStackTrace(result);
      expect(result.stderr).toContain(`there is no master key: ${join(empty, 'master.key')} does not exist`);
    }
    const withKey = join(empty, 'k');
    mkdirSync(withKey);
    loadMasterKeys(withKey, {}); // makes the key file only
    const noStore = await lethe(['keys', 'status', '--data-dir', withKey], { env });
    expect(noStore.code).toBe(2);
    expect(noStore.stderr).toContain(`there is no Lethe store in ${withKey}`);
    expect(readdirSync(empty)).toEqual(['k']);
    expect(readdirSync(withKey)).toEqual(['master.key']);
  });
});
