/**
 * Master key versions and rotation (security issue, item 7): the versioned key file and
 * LETHE_MASTER_KEY, re-wrapping keystore entries and data keys under a new version while vaults
 * keep decrypting, retiring the old version only when nothing needs it, finishing an
 * interrupted rotation, the status numbers, sealed and destroyed workspaces, and processes that
 * have not seen the new version yet. On SQLite and PostgreSQL.
 */
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import client from 'prom-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { LetheError } from '../../src/errors/index.js';
import { KeyRotation, registerKeyGauges } from '../../src/security/key-rotation.js';
import { Keystore, openKeystore } from '../../src/security/keystore.js';
import {
  addMasterKeyVersion,
  fingerprint,
  loadMasterKey,
  loadMasterKeys,
  MasterKeyRing,
  parseMasterKeys,
  retireMasterKeyVersions,
  type MasterKeys,
  type MasterKeyVersion,
} from '../../src/security/master-key.js';
import { Vault, WRAPPED_KEY_PREFIX } from '../../src/security/vault.js';
import type { Store } from '../../src/store/index.js';
import type { WorkspaceKeyRepository, WorkspaceKeyRow } from '../../src/store/records.js';
import { describeStores, newPlace, uniqueName, type StoreKind, type StorePlace } from '../store/support.js';
import { keyForms } from './key-rotation-support.js';

function sealWith(key: Buffer, plaintext: Buffer, aad: string): string {
  const nonce = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(Buffer.from(aad, 'utf8'));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([nonce, body, cipher.getAuthTag()]).toString('base64');
}

function openWith(key: Buffer, sealed: string, aad: string): Buffer {
  const bytes = Buffer.from(sealed, 'base64');
  const decipher = createDecipheriv('aes-256-gcm', key, bytes.subarray(0, 12));
  decipher.setAAD(Buffer.from(aad, 'utf8'));
  decipher.setAuthTag(bytes.subarray(bytes.length - 16));
  return Buffer.concat([decipher.update(bytes.subarray(12, bytes.length - 16)), decipher.final()]);
}

async function rejection(promise: Promise<unknown>): Promise<LetheError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(LetheError);
  return error as LetheError;
}

interface Secret {
  ws: string;
  ciphertext: string;
  plaintext: string;
}

/** One store, its data dir's key file and keystore, a vault and a rotation over them. */
async function world(kind: StoreKind) {
  const place: StorePlace = await newPlace(kind);
  const store: Store = await place.open();
  const dataDir = place.dataDir;
  const masterKeys = loadMasterKeys(dataDir, {});
  const keystore = openKeystore(dataDir, {});
  const vault = new Vault(store.workspaceKeys, masterKeys, keystore);
  const rotation = new KeyRotation({
    places: [{ name: 'default', keys: store.workspaceKeys }],
    masterKeys,
    keystore,
  });
  /** Another process starting now: its own key ring and keystore objects, nothing cached. */
  const restarted = () =>
    new Vault(store.workspaceKeys, loadMasterKeys(dataDir, {}), new Keystore(keystore.path));
  /** A vault that holds exactly these versions (to prove which ones are needed). */
  const only = (...versions: MasterKeyVersion[]) =>
    new Vault(
      store.workspaceKeys,
      new MasterKeyRing({ kind: 'fixed' }, versions),
      new Keystore(keystore.path),
    );
  const workspace = async () => (await store.workspaces.ensure(uniqueName())).id;
  const secret = async (ws?: string, using: Vault = vault): Promise<Secret> => {
    const id = ws ?? (await workspace());
    const plaintext = `secret-${randomBytes(6).toString('hex')}`;
    return { ws: id, plaintext, ciphertext: await using.encrypt(id, 'api', 'token', plaintext) };
  };
  /** A workspace whose data key was wrapped by the master key alone (before the keystore). */
  const legacy = async (): Promise<Secret> => {
    const ws = await workspace();
    const dataKey = randomBytes(32);
    const v1 = masterKeys.current();
    await store.workspaceKeys.insert({
      workspace_id: ws,
      version: 1,
      wrapped_key: sealWith(v1.key, dataKey, `lethe/workspace-key/v1/${ws}/1`),
      master_key_id: v1.id,
      created_at: 1,
    });
    const plaintext = `legacy-${randomBytes(6).toString('hex')}`;
    const sealed = sealWith(
      dataKey,
      Buffer.from(plaintext),
      `lethe/secret/v1/${JSON.stringify([ws, 'api', 'token'])}`,
    );
    return { ws, plaintext, ciphertext: `v1.1.${sealed}` };
  };
  const rows = async (): Promise<WorkspaceKeyRow[]> =>
    store.db.selectFrom('workspace_keys').selectAll().orderBy('workspace_id').execute();
  const keystoreFile = () =>
    JSON.parse(readFileSync(keystore.path, 'utf8')) as {
      workspaces: Record<string, { state: string; masterKeyId?: string; secret?: string }>;
    };
  return {
    place,
    store,
    dataDir,
    masterKeys,
    keystore,
    vault,
    rotation,
    restarted,
    only,
    workspace,
    secret,
    legacy,
    rows,
    keystoreFile,
    keyFile: join(dataDir, 'master.key'),
  };
}
type World = Awaited<ReturnType<typeof world>>;

async function expectDecrypts(vault: Vault, secrets: readonly Secret[]): Promise<void> {
  for (const s of secrets) expect(await vault.decrypt(s.ws, 'api', 'token', s.ciphertext)).toBe(s.plaintext);
}

describe('master key versions', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'lethe-master-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const k1 = randomBytes(32);
  const k2 = randomBytes(32);

  it('LETHE_MASTER_KEY lists versions, current first; one bare key is version 1 with the id it always had', () => {
    const bare = loadMasterKeys(dir, { LETHE_MASTER_KEY: k1.toString('hex') });
    expect(bare.versions()).toEqual([{ version: 1, id: fingerprint(k1), key: k1 }]);
    expect(bare.current().id).toBe(loadMasterKey(dir, { LETHE_MASTER_KEY: k1.toString('base64') }).id);
    for (const text of [
      `v2:${k2.toString('base64')},v1:${k1.toString('hex')}`,
      ` v2:${k2.toString('base64url')} ,\n v1:${k1.toString('base64')}\n`,
      `# rotated in June\nv2:${k2.toString('hex')}\nv1:${k1.toString('hex')}\n`,
    ]) {
      const ring = loadMasterKeys(dir, { LETHE_MASTER_KEY: text });
      expect(ring.source).toEqual({ kind: 'env', variable: 'LETHE_MASTER_KEY' });
      expect(ring.current()).toMatchObject({ version: 2, id: fingerprint(k2) });
      expect(ring.byId(fingerprint(k1))?.key.equals(k1)).toBe(true);
      expect(ring.byId('0000000000000000')).toBeUndefined();
    }
    // The order says which is current, not the number: v1 first stays current (a rollout's first step).
    expect(
      loadMasterKeys(dir, { LETHE_MASTER_KEY: `v1:${k1.toString('hex')},v2:${k2.toString('hex')}` }).current()
        .version,
    ).toBe(1);
  });

  it.each([
    ['a version twice', () => `v1:${k1.toString('hex')},v1:${k2.toString('hex')}`, /lists v1 twice/],
    [
      'a key twice',
      () => `v2:${k1.toString('hex')},v1:${k1.toString('base64')}`,
      /one key under two versions/,
    ],
    ['an entry without a version', () => `v2:${k2.toString('hex')},${k1.toString('hex')}`, /entry 2 is not/],
    ['version 0', () => `v0:${k1.toString('hex')}`, /entry 1 is not/],
    ['a short key', () => `v2:${k2.toString('hex').slice(2)}`, /\(v2\) must hold a 256-bit key/],
  ])('refuses %s, without repeating a key', (_, text, message) => {
    const value = text();
    let error: unknown;
    try {
      parseMasterKeys(value, 'LETHE_MASTER_KEY');
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(LetheError);
    expect((error as LetheError).message).toMatch(message);
    const shown = `${(error as LetheError).message} ${(error as LetheError).details.hint ?? ''}`;
    for (const form of [...keyForms(k1), ...keyForms(k2)]) expect(shown).not.toContain(form.slice(0, 16));
  });

  it('the key file gains versions atomically with mode 0600, under its lock, and other processes see them', async () => {
    const dataDir = mkdtempSync(join(dir, 'file-'));
    const ring = loadMasterKeys(dataDir, {});
    const v1 = ring.current();
    const file = join(dataDir, 'master.key');
    // Made as before versions existed: one bare key.
    expect(readFileSync(file, 'utf8')).toBe(`${v1.key.toString('base64')}\n`);
    const other = loadMasterKeys(dataDir, {}); // another process, loaded before the rotation
    // A temporary file a writer left when it died (it may hold a key) is removed.
    writeFileSync(join(dataDir, 'master.key.4242.deadbeef.tmp'), 'x', { mode: 0o600 });
    const v2 = (await addMasterKeyVersion(ring, { onlyIfSingle: true }))!;
    expect(v2.version).toBe(2);
    expect(readdirSync(dataDir).sort()).toEqual(['master.key']);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const text = readFileSync(file, 'utf8');
    expect(text.split('\n').filter((line) => !line.startsWith('#'))).toEqual([
      `v2:${v2.key.toString('base64')}`,
      `v1:${v1.key.toString('base64')}`,
      '',
    ]);
    expect(ring.current().id).toBe(v2.id);
    // The other process learns of v2 on its next use, without a restart.
    expect(other.current().id).toBe(v2.id);
    expect(other.byId(v1.id)?.key.equals(v1.key)).toBe(true);
    // An unfinished rotation is not stacked upon.
    expect(await addMasterKeyVersion(ring, { onlyIfSingle: true })).toBeUndefined();
    // Retiring asks which older versions are unused, and never offers the current one.
    const offered: number[][] = [];
    expect(
      await retireMasterKeyVersions(ring, async (candidates) => {
        offered.push(candidates.map((c) => c.version));
        return [];
      }),
    ).toEqual([]);
    expect(ring.versions()).toHaveLength(2);
    const retired = await retireMasterKeyVersions(ring, async (candidates) => candidates);
    expect(offered).toEqual([[1]]);
    expect(retired.map((v) => v.version)).toEqual([1]);
    expect(other.versions().map((v) => v.version)).toEqual([2]);
    const after = readFileSync(file, 'utf8');
    for (const form of keyForms(v1.key)) expect(after).not.toContain(form);
    expect(readdirSync(dataDir)).toEqual(['master.key']);
    // LETHE_MASTER_KEY_FILE points elsewhere (a file shared by several servers).
    const shared = join(dir, `shared-${randomBytes(3).toString('hex')}.key`);
    const fromShared = loadMasterKeys(dataDir, { LETHE_MASTER_KEY_FILE: shared });
    expect(fromShared.source).toEqual({ kind: 'file', path: shared });
    expect(statSync(shared).mode & 0o777).toBe(0o600);
  });

  it('a version in LETHE_MASTER_KEY is the operator’s: Lethe does not add one, and says how', async () => {
    const ring = loadMasterKeys(dir, { LETHE_MASTER_KEY: k1.toString('hex') });
    const error = await rejection(addMasterKeyVersion(ring, { onlyIfSingle: true }));
    expect(error.code).toBe('USAGE');
    expect(error.message).toMatch(/LETHE_MASTER_KEY, which Lethe cannot change/);
    expect(error.details.hint).toMatch(/v2:<new>,v1:<old>/);
  });
});

await describeStores('key rotation', (kind) => {
  const worlds: World[] = [];
  const open = async () => {
    const w = await world(kind);
    worlds.push(w);
    return w;
  };
  afterEach(async () => {
    for (const w of worlds.splice(0)) await w.place.cleanup();
  });

  it('makes a new current version, re-wraps everything under it, and retires the old one', async () => {
    const w = await open();
    const secrets = [await w.secret(), await w.secret(), await w.secret(), await w.legacy()];
    const v1 = w.masterKeys.current();
    const running = w.restarted();
    await expectDecrypts(running, secrets); // a running server, its data keys cached
    const rowsBefore = await w.rows();

    const report = await w.rotation.rotate();
    const v2 = w.masterKeys.current();
    expect(report.made).toEqual({ version: 2, id: v2.id });
    expect(report.target).toEqual({ version: 2, id: v2.id });
    expect(report.keystore).toEqual({ rewrapped: 3, blocked: [] });
    expect(report.dataKeys).toEqual({ rewrapped: 4, shredded: 0, blocked: [] });
    expect(report.retired).toEqual([{ version: 1, id: v1.id }]);
    expect(report.kept).toEqual([]);
    expect(w.masterKeys.versions().map((v) => v.version)).toEqual([2]);

    // Nothing references v1: every key row and keystore entry names v2.
    const rowsAfter = await w.rows();
    expect(rowsAfter.map((row) => row.master_key_id)).toEqual(rowsAfter.map(() => v2.id));
    expect(Object.values(w.keystoreFile().workspaces).map((e) => e.masterKeyId)).toEqual([
      v2.id,
      v2.id,
      v2.id,
    ]);
    // Re-wrapped, not replaced: the same versions, in the same form (the legacy one stays legacy).
    expect(rowsAfter.map((row) => [row.workspace_id, row.version])).toEqual(
      rowsBefore.map((row) => [row.workspace_id, row.version]),
    );
    expect(rowsAfter.map((row) => row.wrapped_key.startsWith(WRAPPED_KEY_PREFIX))).toEqual(
      rowsBefore.map((row) => row.wrapped_key.startsWith(WRAPPED_KEY_PREFIX)),
    );
    for (const [i, row] of rowsAfter.entries()) expect(row.wrapped_key).not.toBe(rowsBefore[i]!.wrapped_key);

    // v1 is gone from the key file; the file is still 0600 and nothing was left beside it.
    const text = readFileSync(w.keyFile, 'utf8');
    for (const form of keyForms(v1.key)) expect(text).not.toContain(form);
    expect(statSync(w.keyFile).mode & 0o777).toBe(0o600);
    expect(readdirSync(w.dataDir).filter((name) => /\.(tmp|lock)$/.test(name))).toEqual([]);

    // Everything decrypts: in the running process, after a restart, and with v2 alone; v1 alone no longer can.
    await expectDecrypts(running, secrets);
    await expectDecrypts(w.restarted(), secrets);
    await expectDecrypts(w.only(v2), secrets);
    for (const s of secrets)
      await expect(w.only(v1).decrypt(s.ws, 'api', 'token', s.ciphertext)).rejects.toThrow(
        /another master key/,
      );
    // New secrets use the same data keys (no new data key versions).
    const again = await w.secret(secrets[0]!.ws);
    expect(again.ciphertext.startsWith('v1.1.')).toBe(true);
    expect(await w.only(v2).decrypt(again.ws, 'api', 'token', again.ciphertext)).toBe(again.plaintext);
  });

  it('old items decrypt while the re-wrap is under way, and new ones are made under the new version', async () => {
    const w = await open();
    const secrets = await Promise.all(Array.from({ length: 6 }, () => w.secret()));
    const v1 = w.masterKeys.current();
    const running = w.restarted();
    await expectDecrypts(running, secrets);
    let checked = 0;
    let made: Secret | undefined;
    await w.rotation.rotate({
      batchSize: 2,
      onProgress: async (progress) => {
        if (progress.phase !== 'data keys' || progress.done !== 2 || made) return;
        const v2 = w.masterKeys.current();
        // Midway: some rows under v2, the rest still under v1, both versions held.
        const ids = (await w.rows()).map((row) => row.master_key_id);
        expect(ids.filter((id) => id === v2.id)).toHaveLength(2);
        expect(ids.filter((id) => id === v1.id)).toHaveLength(4);
        const status = await w.rotation.status();
        expect(status).toMatchObject({ total: 12, done: 8, remaining: 4, blocked: 0 });
        // A process starting now (nothing cached) and a running one both decrypt everything.
        await expectDecrypts(w.restarted(), secrets);
        await expectDecrypts(running, secrets);
        // A workspace made now gets its keystore entry and data key under v2.
        made = await w.secret(undefined, running);
        const [row] = await w.store.workspaceKeys.all(made.ws);
        expect(row!.master_key_id).toBe(v2.id);
        expect(w.keystoreFile().workspaces[made.ws]!.masterKeyId).toBe(v2.id);
        checked++;
      },
    });
    expect(checked).toBe(1);
    const v2 = w.masterKeys.current();
    expect(w.masterKeys.versions()).toHaveLength(1);
    await expectDecrypts(w.only(v2), [...secrets, made!]);
  });

  it('a sealed workspace stays sealed, and reopens under the new version alone', async () => {
    const w = await open();
    const sealed = await w.secret();
    const open_ = await w.secret();
    expect(await w.vault.sealWorkspace(sealed.ws)).toBe('active');
    await w.rotation.rotate();
    const v2 = w.masterKeys.current();
    expect(w.keystore.state(sealed.ws)).toBe('sealed');
    const entry = w.keystoreFile().workspaces[sealed.ws]!;
    expect(entry).toMatchObject({ state: 'sealed', masterKeyId: v2.id });
    const [row] = await w.store.workspaceKeys.all(sealed.ws);
    expect(row!.master_key_id).toBe(v2.id);
    for (const vault of [w.vault, w.restarted(), w.only(v2)]) {
      await expect(vault.decrypt(sealed.ws, 'api', 'token', sealed.ciphertext)).rejects.toThrow(
        /closed \(in passive storage\)/,
      );
      await expect(vault.encrypt(sealed.ws, 'api', 'other', 'x')).rejects.toThrow(/passive storage/);
    }
    // The re-sealed entry cannot be passed off as active by editing the file.
    const file = w.keystoreFile();
    file.workspaces[sealed.ws]!.state = 'active';
    const forged = join(w.dataDir, 'forged.json');
    writeFileSync(forged, JSON.stringify({ format: 'lethe-keystore', version: 1, ...file }), { mode: 0o600 });
    await expect(
      new Vault(w.store.workspaceKeys, w.only(v2).masterKeys, new Keystore(forged)).decrypt(
        sealed.ws,
        'api',
        'token',
        sealed.ciphertext,
      ),
    ).rejects.toThrow(/cannot be opened/);
    // Reopened with v2 alone, it decrypts.
    const onlyV2 = w.only(v2);
    expect(await onlyV2.reopenWorkspace(sealed.ws)).toBe('sealed');
    await expectDecrypts(onlyV2, [sealed, open_]);
  });

  it('a destroyed workspace stays unreadable: its keys are not re-wrapped and do not hold the old version back', async () => {
    const w = await open();
    const destroyed = await w.secret();
    const destroyedLegacy = await w.legacy();
    const kept = await w.secret();
    const v1 = w.masterKeys.current();
    const [legacyRow] = await w.store.workspaceKeys.all(destroyedLegacy.ws);
    // Before: a data key wrapped by the master key alone opens with v1 (it could not be shredded).
    expect(
      openWith(v1.key, legacyRow!.wrapped_key, `lethe/workspace-key/v1/${destroyedLegacy.ws}/1`),
    ).toHaveLength(32);
    await w.vault.destroyWorkspace(destroyed.ws);
    await w.vault.destroyWorkspace(destroyedLegacy.ws);

    const report = await w.rotation.rotate();
    const v2 = w.masterKeys.current();
    expect(report.dataKeys).toMatchObject({ rewrapped: 1, shredded: 2, blocked: [] });
    expect(report.retired.map((v) => v.version)).toEqual([1]);
    const status = await w.rotation.status();
    expect(status).toMatchObject({ total: 2, done: 2, remaining: 0, blocked: 0, shredded: 2 });
    // Their rows were left under v1, which no longer exists anywhere.
    for (const ws of [destroyed.ws, destroyedLegacy.ws])
      expect((await w.store.workspaceKeys.all(ws)).map((row) => row.master_key_id)).toEqual([v1.id]);
    const text = readFileSync(w.keyFile, 'utf8');
    for (const form of keyForms(v1.key)) expect(text).not.toContain(form);
    // The new version does not open the legacy row either: retiring v1 shredded it.
    expect(() =>
      openWith(v2.key, legacyRow!.wrapped_key, `lethe/workspace-key/v1/${destroyedLegacy.ws}/1`),
    ).toThrow();
    for (const vault of [w.vault, w.restarted(), w.only(v2)]) {
      for (const s of [destroyed, destroyedLegacy])
        await expect(vault.decrypt(s.ws, 'api', 'token', s.ciphertext)).rejects.toThrow(/crypto-shredded/);
    }
    await expectDecrypts(w.only(v2), [kept]);
  });

  it('a rotation cut short is finished by running it again, without a third version', async () => {
    const w = await open();
    const secrets = await Promise.all(Array.from({ length: 6 }, () => w.secret()));
    const v1 = w.masterKeys.current();
    const controller = new AbortController();
    const error = await rejection(
      w.rotation.rotate({
        batchSize: 1,
        signal: controller.signal,
        onProgress: (progress) => {
          if (progress.phase === 'data keys' && progress.done >= 2) controller.abort();
        },
      }),
    );
    expect(error.code).toBe('CANCELLED');
    expect(error.details.hint).toMatch(/run lethe keys rotate again/);
    const v2 = w.masterKeys.current();
    expect(w.masterKeys.versions().map((v) => v.id)).toEqual([v2.id, v1.id]);
    const midway = await w.rotation.status();
    expect(midway).toMatchObject({ total: 12, done: 8, remaining: 4, blocked: 0 });
    expect(midway.versions.map((v) => [v.version, v.keystoreEntries, v.dataKeys, v.retirable])).toEqual([
      [2, 6, 2, false],
      [1, 0, 4, false],
    ]);
    // Half done is a working state: a new process decrypts everything.
    await expectDecrypts(w.restarted(), secrets);

    const resumed = await w.rotation.rotate();
    expect(resumed.made).toBeUndefined();
    expect(resumed.target).toEqual({ version: 2, id: v2.id });
    expect(resumed.dataKeys.rewrapped).toBe(4);
    expect(resumed.retired).toEqual([{ version: 1, id: v1.id }]);
    expect(w.masterKeys.versions().map((v) => v.version)).toEqual([2]);
    await expectDecrypts(w.only(v2), secrets);
    // Once finished, rotating again is a new rotation.
    const next = await w.rotation.rotate();
    expect(next.made?.version).toBe(3);
    expect(next.retired.map((v) => v.version)).toEqual([2]);
    await expectDecrypts(w.only(w.masterKeys.current()), secrets);
  });

  it('status counts what each version protects, and a version still needed is kept', async () => {
    const w = await open();
    await Promise.all([w.secret(), w.secret(), w.secret()]);
    const sealed = await w.secret();
    await w.vault.sealWorkspace(sealed.ws);
    const destroyed = await w.secret();
    await w.vault.destroyWorkspace(destroyed.ws);
    await w.legacy(); // a legacy data key: no keystore entry needed
    // A data key under the keystore whose workspace has no entry (a keystore lost or mixed up).
    const [copied] = await w.store.workspaceKeys.all(sealed.ws);
    await w.store.workspaceKeys.insert({ ...copied!, workspace_id: 'orphan' });
    // A data key wrapped by a master key this deployment does not hold.
    await w.store.workspaceKeys.insert({
      ...copied!,
      workspace_id: 'stranger',
      master_key_id: 'feedfacefeedface',
    });
    const v1 = w.masterKeys.current();

    expect(await w.rotation.status()).toEqual({
      source: 'file',
      path: w.keyFile,
      current: { version: 1, id: v1.id },
      versions: [
        {
          version: 1,
          id: v1.id,
          current: true,
          keystoreEntries: 4,
          dataKeys: 6,
          shredded: 1,
          retirable: false,
        },
      ],
      unknown: [{ id: 'feedfacefeedface', keystoreEntries: 0, dataKeys: 1 }],
      total: 11,
      done: 10,
      remaining: 0,
      blocked: 1,
      shredded: 1,
    });

    const v2 = (await addMasterKeyVersion(w.masterKeys, { onlyIfSingle: true }))!;
    const begun = await w.rotation.status();
    expect(begun).toMatchObject({ current: { version: 2 }, total: 11, done: 0, remaining: 9, blocked: 2 });
    expect(begun.versions.map((v) => [v.version, v.keystoreEntries, v.dataKeys, v.shredded])).toEqual([
      [2, 0, 0, 0],
      [1, 4, 6, 1],
    ]);
    const registry = new client.Registry();
    registerKeyGauges(registry, () => w.rotation.status());
    const metrics = await registry.metrics();
    expect(metrics).toContain('lethe_master_key_current_version 2');
    expect(metrics).toContain('lethe_master_key_versions 2');
    expect(metrics).toContain('lethe_master_key_items{wrapped="current"} 0');
    expect(metrics).toContain('lethe_master_key_items{wrapped="old"} 9');
    expect(metrics).toContain('lethe_master_key_items{wrapped="blocked"} 2');

    const report = await w.rotation.rotate();
    expect(report.made).toBeUndefined();
    expect(report.dataKeys.rewrapped).toBe(5);
    expect(report.dataKeys.blocked.map((b) => [b.workspaceId, b.reason]).sort()).toEqual([
      ['orphan', 'no keystore entry'],
      ['stranger', 'unknown master key'],
    ]);
    // v1 still wraps the orphan's key: it is kept, not retired.
    expect(report.retired).toEqual([]);
    expect(report.kept).toEqual([{ version: 1, id: v1.id, retirable: false }]);
    expect(report.status).toMatchObject({ total: 11, done: 9, remaining: 0, blocked: 2 });
    expect(w.masterKeys.versions().map((v) => v.version)).toEqual([2, 1]);
    const after = new client.Registry();
    registerKeyGauges(after, () => w.rotation.status());
    expect(await after.metrics()).toContain('lethe_master_key_items{wrapped="current"} 9');

    // Once the operator deals with them, running again retires v1.
    await w.store.db
      .deleteFrom('workspace_keys')
      .where('workspace_id', 'in', ['orphan', 'stranger'])
      .execute();
    const finished = await w.rotation.rotate();
    expect(finished.made).toBeUndefined();
    expect(finished.retired).toEqual([{ version: 1, id: v1.id }]);
    expect(finished.status).toMatchObject({ total: 9, done: 9, remaining: 0, blocked: 0 });
    expect(w.masterKeys.versions().map((v) => v.id)).toEqual([v2.id]);
  });

  it('a process that has not seen the new version yet cannot leave a key behind', async () => {
    const w = await open();
    const secrets = [await w.secret(), await w.secret()];
    const v1 = w.masterKeys.current();
    const v2 = (await addMasterKeyVersion(w.masterKeys, { onlyIfSingle: true }))!;

    // (a) A vault that read "v1 is current" just before the rotation began, and inserts its new
    // data key after the sweep passed: it sees v2 once the row is in, and re-wraps it itself.
    let lag = true;
    const lagging: MasterKeys = {
      current: () => (lag ? v1 : w.masterKeys.current()),
      byId: (id) => w.masterKeys.byId(id),
      versions: () => w.masterKeys.versions(),
    };
    const keys = w.store.workspaceKeys;
    const lateKeys = new Proxy(keys, {
      get(target, property) {
        if (property === 'insert') {
          return async (row: WorkspaceKeyRow) => {
            const inserted = await target.insert(row);
            lag = false;
            return inserted;
          };
        }
        const value = Reflect.get(target, property, target) as unknown;
        return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
      },
    }) as WorkspaceKeyRepository;
    const late = await w.secret(undefined, new Vault(lateKeys, lagging, new Keystore(w.keystore.path)));
    expect((await keys.all(late.ws)).map((row) => row.master_key_id)).toEqual([v2.id]);
    // Its keystore entry was sealed while it still saw v1: the rotation re-seals it.
    expect(w.keystoreFile().workspaces[late.ws]!.masterKeyId).toBe(v1.id);

    // (b) A process that only knows v1 makes keys while the rotation runs: swept before retiring.
    let during: Secret | undefined;
    const report = await w.rotation.rotate({
      batchSize: 1,
      onProgress: async (progress) => {
        if (progress.phase === 'data keys' && !during) during = await w.secret(undefined, w.only(v1));
      },
    });
    expect(during).toBeDefined();
    expect((await keys.all(during!.ws)).map((row) => row.master_key_id)).toEqual([v2.id]);
    expect(report.retired).toEqual([{ version: 1, id: v1.id }]);
    expect(report.status).toMatchObject({ remaining: 0, blocked: 0 });
    await expectDecrypts(w.only(v2), [...secrets, late, during!]);
  });

  it('a re-wrap is a compare-and-set: it never overwrites a row that changed since it was read', async () => {
    const w = await open();
    const s = await w.secret();
    const [read] = await w.store.workspaceKeys.all(s.ws);
    const v2 = (await addMasterKeyVersion(w.masterKeys, { onlyIfSingle: true }))!;
    // Someone else re-wraps it first (another rotation).
    await w.rotation.rewrap();
    const [now] = await w.store.workspaceKeys.all(s.ws);
    expect(now!.master_key_id).toBe(v2.id);
    // A writer still holding the old row loses, and changes nothing.
    expect(
      await w.store.workspaceKeys.replaceWrapping(read!, { wrapped_key: 'k2.stale', master_key_id: v2.id }),
    ).toBe(false);
    expect(await w.store.workspaceKeys.all(s.ws)).toEqual([now]);
    expect(await w.store.workspaceKeys.replaceWrapping(now!, { ...now! })).toBe(true);
    await expectDecrypts(w.only(v2), [s]);
  });

  it('rotating with LETHE_MASTER_KEY re-wraps to the first version listed and leaves removing the old one to the operator', async () => {
    const w = await open();
    const k1 = randomBytes(32);
    const k2 = randomBytes(32);
    const env = (text: string) => loadMasterKeys(w.dataDir, { LETHE_MASTER_KEY: text });
    const rotationWith = (masterKeys: MasterKeyRing) =>
      new KeyRotation({
        places: [{ name: 'default', keys: w.store.workspaceKeys }],
        masterKeys,
        keystore: w.keystore,
      });
    const first = env(k1.toString('hex'));
    const secrets = [
      await w.secret(undefined, new Vault(w.store.workspaceKeys, first, w.keystore)),
      await w.secret(undefined, new Vault(w.store.workspaceKeys, first, w.keystore)),
    ];
    // One version, everything under it: nothing to rotate to.
    const nothing = await rejection(rotationWith(first).rotate());
    expect(nothing.code).toBe('USAGE');
    expect(nothing.details.hint).toMatch(/LETHE_MASTER_KEY=v2:<new key>,v1:<old key>/);

    const both = env(`v2:${k2.toString('hex')},v1:${k1.toString('hex')}`);
    const report = await rotationWith(both).rotate();
    expect(report.made).toBeUndefined();
    expect(report.target.version).toBe(2);
    expect(report.retired).toEqual([]);
    expect(report.kept).toEqual([{ version: 1, id: fingerprint(k1), retirable: true }]);
    expect(report.status).toMatchObject({ total: 4, done: 4, remaining: 0 });
    const alone = env(`v2:${k2.toString('hex')}`);
    await expectDecrypts(new Vault(w.store.workspaceKeys, alone, new Keystore(w.keystore.path)), secrets);
    expect((await rotationWith(alone).status()).versions).toHaveLength(1);
  });
});
