import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { LetheError } from '../../src/errors/index.js';
import { Keystore, openKeystore } from '../../src/security/keystore.js';
import {
  loadMasterKey,
  parseKey,
  Vault,
  workspaceKek,
  WRAPPED_KEY_PREFIX,
  type MasterKey,
} from '../../src/security/vault.js';
import type { Store } from '../../src/store/index.js';
import { STORED_TABLES } from '../../src/store/tables.js';
import { describeStores, newPlace, uniqueName, useStore, type StorePlace } from '../store/support.js';

const master = (): MasterKey =>
  loadMasterKey('/nonexistent', { LETHE_MASTER_KEY: randomBytes(32).toString('hex') });

/** Decode a vault ciphertext `v1.<version>.<base64>` into its parts. */
function partsOf(ciphertext: string) {
  const [prefix, version, body] = ciphertext.split('.');
  const bytes = Buffer.from(body!, 'base64');
  return { prefix, version: Number(version), bytes };
}

/** Flip one bit of the sealed bytes at `index`, keeping the format. */
function tamper(ciphertext: string, index: number): string {
  const { prefix, version, bytes } = partsOf(ciphertext);
  const copy = Buffer.from(bytes);
  const at = (index + copy.length) % copy.length;
  copy[at] = copy[at]! ^ 0x01;
  return `${prefix}.${version}.${copy.toString('base64')}`;
}

/** AES-256-GCM open of nonce ‖ ciphertext ‖ tag, done here independently of the vault. */
function openSealed(key: Buffer, sealed: Buffer, aad: string): Buffer {
  const decipher = createDecipheriv('aes-256-gcm', key, sealed.subarray(0, 12));
  decipher.setAAD(Buffer.from(aad, 'utf8'));
  decipher.setAuthTag(sealed.subarray(sealed.length - 16));
  return Buffer.concat([decipher.update(sealed.subarray(12, sealed.length - 16)), decipher.final()]);
}

async function expectVaultError(promise: Promise<unknown>, message: RegExp): Promise<void> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(LetheError);
  expect((error as LetheError).code).toBe('CONNECTION_ERROR');
  expect((error as LetheError).message).toMatch(message);
}

/** Every stored row of every table, as text (PostgreSQL). */
async function everyRowAsText(store: Store): Promise<string> {
  const texts: string[] = [];
  for (const table of Object.keys(STORED_TABLES)) {
    const rows = await sql<{ row: string }>`select t::text as row from ${sql.table(table)} t`.execute(
      store.db,
    );
    texts.push(...rows.rows.map((row) => row.row));
  }
  return texts.join('\n');
}

/** The forms a key could take if it leaked: raw bytes, hex, base64, base64url. */
const forms = (key: Buffer) => [key, key.toString('hex'), key.toString('base64'), key.toString('base64url')];

describe('master key', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'lethe-vault-'));
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('is created in the data dir with mode 0600 on first load, and reused after', () => {
    const dataDir = join(dir, 'fresh');
    mkdirSync(dataDir);
    const first = loadMasterKey(dataDir, {});
    const file = join(dataDir, 'master.key');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(first.key).toHaveLength(32);
    expect(first.id).toMatch(/^[0-9a-f]{16}$/);
    expect(first.id).not.toContain(first.key.toString('hex').slice(0, 16));
    expect(readFileSync(file, 'utf8')).toBe(`${first.key.toString('base64')}\n`);
    const again = loadMasterKey(dataDir, { LETHE_MASTER_KEY: '' });
    expect(again.key.equals(first.key)).toBe(true);
    expect(again.id).toBe(first.id);
    // A key file left readable by others is closed again.
    chmodSync(file, 0o644);
    expect(loadMasterKey(dataDir, {}).id).toBe(first.id);
    expect(statSync(file).mode & 0o777).toBe(0o600);
  });

  it('another data dir gets another key', () => {
    const a = mkdtempSync(join(dir, 'a-'));
    const b = mkdtempSync(join(dir, 'b-'));
    expect(loadMasterKey(a, {}).key.equals(loadMasterKey(b, {}).key)).toBe(false);
  });

  it('LETHE_MASTER_KEY in hex or base64 is the same key, used instead of the file', () => {
    const key = randomBytes(32);
    const dataDir = mkdtempSync(join(dir, 'env-'));
    const hex = loadMasterKey(dataDir, { LETHE_MASTER_KEY: key.toString('hex') });
    const upperHex = loadMasterKey(dataDir, { LETHE_MASTER_KEY: key.toString('hex').toUpperCase() });
    const base64 = loadMasterKey(dataDir, { LETHE_MASTER_KEY: ` ${key.toString('base64')}\n` });
    const base64url = loadMasterKey(dataDir, { LETHE_MASTER_KEY: key.toString('base64url') });
    for (const loaded of [hex, upperHex, base64, base64url]) {
      expect(loaded.key.equals(key)).toBe(true);
      expect(loaded.id).toBe(hex.id);
    }
    expect(existsSync(join(dataDir, 'master.key'))).toBe(false);
    expect(readdirSync(dataDir)).toEqual([]);
  });

  it.each([
    ['too short (hex)', randomBytes(16).toString('hex')],
    ['too long (hex)', randomBytes(33).toString('hex')],
    ['too short (base64)', randomBytes(31).toString('base64')],
    ['too long (base64)', randomBytes(48).toString('base64')],
    ['not base64', `${'!'.repeat(4)}${randomBytes(32).toString('base64')}`],
    ['a passphrase', 'correct horse battery staple and then some more words'],
    [
      'base64 with a stray character',
      (() => {
        const b = randomBytes(32).toString('base64');
        return `${b.slice(0, 20)}#${b.slice(20)}`;
      })(),
    ],
  ])('LETHE_MASTER_KEY %s is refused', (_, value) => {
    expect(() => loadMasterKey(dir, { LETHE_MASTER_KEY: value })).toThrow(
      new LetheError(
        'USAGE',
        'LETHE_MASTER_KEY must hold a 256-bit key as 64 hex digits or 44 base64 characters',
      ),
    );
  });

  it('a key file that holds no key is refused with its path', () => {
    const dataDir = mkdtempSync(join(dir, 'bad-'));
    writeFileSync(join(dataDir, 'master.key'), 'short\n', { mode: 0o600 });
    expect(() => loadMasterKey(dataDir, {})).toThrow(/master\.key must hold a 256-bit key/);
    expect(parseKey(`${'ab'.repeat(32)}\n`, 'x')).toEqual(Buffer.from('ab'.repeat(32), 'hex'));
  });
});

await describeStores('vault', (kind) => {
  const ctx = useStore(kind);
  let key: MasterKey;
  let vault: Vault;
  let keystore: Keystore;
  beforeAll(() => {
    key = master();
    keystore = openKeystore(ctx.place.dataDir, {});
    vault = new Vault(ctx.store.workspaceKeys, key, keystore);
  });
  const workspace = async () => (await ctx.store.workspaces.ensure(uniqueName())).id;

  it('encrypts and decrypts, each time with a fresh nonce', async () => {
    const ws = await workspace();
    for (const plaintext of ['s3cret', '', 'パスワード😀', 'x'.repeat(10_000)]) {
      const sealed = await vault.encrypt(ws, 'db', 'password', plaintext);
      expect(sealed).toMatch(/^v1\.1\.[A-Za-z0-9+/]+=*$/);
      expect(sealed).not.toContain(Buffer.from(plaintext).toString('base64') || '\u0000');
      expect(await vault.decrypt(ws, 'db', 'password', sealed)).toBe(plaintext);
    }
    const a = await vault.encrypt(ws, 'db', 'password', 'same');
    const b = await vault.encrypt(ws, 'db', 'password', 'same');
    expect(a).not.toBe(b);
    const [na, nb] = [partsOf(a).bytes.subarray(0, 12), partsOf(b).bytes.subarray(0, 12)];
    expect(na.equals(nb)).toBe(false);
    // nonce (12) ‖ ciphertext (as long as the plaintext) ‖ tag (16)
    expect(partsOf(a).bytes).toHaveLength(12 + 4 + 16);
    // Another Vault with the same master key (a restarted server) reads it.
    expect(await new Vault(ctx.store.workspaceKeys, key, keystore).decrypt(ws, 'db', 'password', a)).toBe(
      'same',
    );
  });

  it('binds a ciphertext to its workspace, connection and field', async () => {
    const ws = await workspace();
    const other = await workspace();
    await vault.encrypt(other, 'db', 'password', 'gives the other workspace a key');
    const keyless = await workspace();
    const sealed = await vault.encrypt(ws, 'db', 'password', 'hunter2');
    await expectVaultError(vault.decrypt(other, 'db', 'password', sealed), /cannot be decrypted/);
    await expectVaultError(
      vault.decrypt(keyless, 'db', 'password', sealed),
      /workspace key that no longer exists/,
    );
    await expectVaultError(
      vault.decrypt(ws, 'db2', 'password', sealed),
      /the secret "password" of connection "db2" cannot be decrypted/,
    );
    await expectVaultError(
      vault.decrypt(ws, 'db', 'token', sealed),
      /the secret "token" of connection "db" cannot be decrypted/,
    );
    // The parts stay apart: "a/b" + "c" is not "a" + "b/c".
    const slashed = await vault.encrypt(ws, 'a/b', 'c', 'x');
    await expectVaultError(vault.decrypt(ws, 'a', 'b/c', slashed), /cannot be decrypted/);
    expect(await vault.decrypt(ws, 'db', 'password', sealed)).toBe('hunter2');
  });

  it('refuses a ciphertext with any byte changed, or in an unknown format', async () => {
    const ws = await workspace();
    const sealed = await vault.encrypt(ws, 'db', 'password', 'hunter2');
    const length = partsOf(sealed).bytes.length;
    for (const index of [0, 11, 12, 12 + 6, length - 16, length - 1]) {
      await expectVaultError(
        vault.decrypt(ws, 'db', 'password', tamper(sealed, index)),
        /cannot be decrypted/,
      );
    }
    await expectVaultError(
      vault.decrypt(ws, 'db', 'password', `v1.1.${partsOf(sealed).bytes.subarray(0, 20).toString('base64')}`),
      /cannot be decrypted/,
    );
    await expectVaultError(
      vault.decrypt(ws, 'db', 'password', sealed.replace(/^v1\.1\./, 'v1.2.')),
      /no longer exists/,
    );
    for (const garbage of ['', 'hunter2', 'v2.1.AAAA', 'v1.x.AAAA']) {
      await expectVaultError(vault.decrypt(ws, 'db', 'password', garbage), /not in a known format/);
    }
  });

  it('makes one data key per workspace, even when two vaults race', async () => {
    const ws = await workspace();
    const other = await ctx.place.open();
    // Three vaults, each with a Keystore object of its own on the same file, as three processes.
    const racers = [
      vault,
      new Vault(ctx.store.workspaceKeys, key, new Keystore(keystore.path)),
      new Vault(other.workspaceKeys, key, new Keystore(keystore.path)),
    ];
    const sealed = await Promise.all(
      Array.from({ length: 12 }, (_, i) => racers[i % 3]!.encrypt(ws, 'db', `f${i}`, `value ${i}`)),
    );
    expect(await ctx.store.workspaceKeys.all(ws)).toHaveLength(1);
    for (const [i, ciphertext] of sealed.entries()) {
      expect(ciphertext.startsWith('v1.1.')).toBe(true);
      for (const racer of racers)
        expect(await racer.decrypt(ws, 'db', `f${i}`, ciphertext)).toBe(`value ${i}`);
    }
    // Each workspace has a key of its own.
    const second = await workspace();
    await vault.encrypt(second, 'db', 'password', 'x');
    const [first] = await ctx.store.workspaceKeys.all(ws);
    const [secondKey] = await ctx.store.workspaceKeys.all(second);
    expect(secondKey!.wrapped_key).not.toBe(first!.wrapped_key);
  });

  it('refuses to work under another master key', async () => {
    const ws = await workspace();
    const sealed = await vault.encrypt(ws, 'db', 'password', 'hunter2');
    const wrong = new Vault(ctx.store.workspaceKeys, master(), keystore);
    const error = await wrong.decrypt(ws, 'db', 'password', sealed).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(LetheError);
    expect(error).toMatchObject({
      code: 'CONNECTION_ERROR',
      message: 'the workspace key was wrapped by another master key',
      details: { hint: expect.stringContaining('LETHE_MASTER_KEY') },
    });
    // Encrypting under the wrong key fails too, rather than making a second data key.
    await expect(wrong.encrypt(ws, 'db', 'other', 'x')).rejects.toThrow('wrapped by another master key');
    // A master key that claims the right id but is not the key cannot unwrap it.
    const impostor = new Vault(ctx.store.workspaceKeys, { id: key.id, key: randomBytes(32) }, keystore);
    await expectVaultError(
      impostor.decrypt(ws, 'db', 'password', sealed),
      /keystore entry cannot be opened with this master key/,
    );
    expect(await ctx.store.workspaceKeys.all(ws)).toHaveLength(1);
  });

  it('stores the data key only wrapped, under master key + keystore secret, and neither key in the database', async () => {
    const ws = await workspace();
    const secret = `canary-${randomBytes(8).toString('hex')}`;
    const sealed = await vault.encrypt(ws, 'db', 'password', secret);
    await ctx.store.connections.put({
      workspace_id: ws,
      name: 'db',
      type: 'postgres',
      settings: '{}',
      secrets: JSON.stringify({ password: sealed }),
      created_at: 1,
      updated_at: 1,
      updated_by: 't',
    });
    const [row] = await ctx.store.workspaceKeys.all(ws);
    expect(row).toMatchObject({ version: 1, master_key_id: key.id });
    expect(row!.wrapped_key.startsWith(WRAPPED_KEY_PREFIX)).toBe(true);
    const wrapped = Buffer.from(row!.wrapped_key.slice(WRAPPED_KEY_PREFIX.length), 'base64');
    // Unwrap it here, independently: the keystore entry opens with the master key, HKDF-SHA256
    // over master ‖ secret gives the key-encryption key, which opens the data key, which opens
    // the stored secret.
    const file = JSON.parse(readFileSync(keystore.path, 'utf8')) as {
      workspaces: Record<string, { state: string; secret: string; masterKeyId: string }>;
    };
    const entry = file.workspaces[ws]!;
    expect(entry).toMatchObject({ state: 'active', masterKeyId: key.id });
    const wsSecret = openSealed(
      key.key,
      Buffer.from(entry.secret, 'base64'),
      `lethe/keystore/v1/${JSON.stringify([ws, 'active'])}`,
    );
    expect(wsSecret).toHaveLength(32);
    const kek = Buffer.from(
      hkdfSync(
        'sha256',
        Buffer.concat([key.key, wsSecret]),
        'lethe/workspace-kek/v2',
        JSON.stringify(['lethe/workspace-kek/v2', ws]),
        32,
      ),
    );
    expect(kek.equals(workspaceKek(key.key, wsSecret, ws))).toBe(true);
    const dataKey = openSealed(kek, wrapped, `lethe/workspace-key/v2/${JSON.stringify([ws, 1])}`);
    expect(dataKey).toHaveLength(32);
    // The master key alone does not open it (that is what makes shredding survive backups).
    expect(() => openSealed(key.key, wrapped, `lethe/workspace-key/v2/${JSON.stringify([ws, 1])}`)).toThrow();
    expect(() => openSealed(key.key, wrapped, `lethe/workspace-key/v1/${ws}/1`)).toThrow();
    expect(wrapped.includes(dataKey)).toBe(false);
    expect(row!.wrapped_key).not.toContain(dataKey.toString('base64'));
    const secretAad = `lethe/secret/v1/${JSON.stringify([ws, 'db', 'password'])}`;
    expect(openSealed(dataKey, partsOf(sealed).bytes, secretAad).toString()).toBe(secret);

    // The keystore holds its secrets only sealed, and never the master key or a data key.
    const keystoreBytes = readFileSync(keystore.path);
    for (const leak of [...forms(key.key), ...forms(wsSecret), ...forms(kek), ...forms(dataKey), secret])
      expect(keystoreBytes.includes(leak), `keystore holds ${String(leak)}`).toBe(false);

    const leaks = [...forms(key.key), ...forms(wsSecret), ...forms(kek), ...forms(dataKey), secret];
    if (ctx.store.dialect === 'sqlite') {
      const files = readdirSync(ctx.place.dataDir).filter((name) => name.startsWith('lethe.db'));
      expect(files).toContain('lethe.db');
      for (const file of files) {
        const bytes = readFileSync(join(ctx.place.dataDir, file));
        for (const leak of leaks) expect(bytes.includes(leak), `${file} holds ${String(leak)}`).toBe(false);
      }
      // The scan does find what is there: the wrapped key and the ciphertext.
      const all = Buffer.concat(files.map((file) => readFileSync(join(ctx.place.dataDir, file))));
      expect(all.includes(row!.wrapped_key)).toBe(true);
    } else {
      const text = await everyRowAsText(ctx.store);
      for (const leak of leaks) expect(text.includes(leak.toString()), String(leak)).toBe(false);
      expect(text).toContain(row!.wrapped_key);
    }
  });

  it('a sealed workspace is refused until reopened, by every vault on the keystore', async () => {
    const ws = await workspace();
    const sealed = await vault.encrypt(ws, 'db', 'password', 'hunter2');
    // Another process: its own Vault and Keystore objects on the same file, with the key cached.
    const elsewhere = new Vault(ctx.store.workspaceKeys, key, new Keystore(keystore.path));
    expect(await elsewhere.decrypt(ws, 'db', 'password', sealed)).toBe('hunter2');
    expect(await vault.sealWorkspace(ws)).toBe('active');
    expect(keystore.state(ws)).toBe('sealed');
    for (const v of [vault, elsewhere]) {
      await expectVaultError(v.decrypt(ws, 'db', 'password', sealed), /closed \(in passive storage\)/);
      await expectVaultError(v.encrypt(ws, 'db', 'other', 'x'), /closed \(in passive storage\)/);
    }
    // Sealing again changes nothing; the sealed secret cannot be passed off as active.
    expect(await vault.sealWorkspace(ws)).toBe('sealed');
    const text = JSON.parse(readFileSync(keystore.path, 'utf8')) as {
      workspaces: Record<string, { state: string }>;
    };
    text.workspaces[ws]!.state = 'active';
    const forged = join(ctx.place.dataDir, 'forged-keystore.json');
    writeFileSync(forged, JSON.stringify(text), { mode: 0o600 });
    await expectVaultError(
      new Vault(ctx.store.workspaceKeys, key, new Keystore(forged)).decrypt(ws, 'db', 'password', sealed),
      /cannot be opened/,
    );
    expect(await vault.reopenWorkspace(ws)).toBe('sealed');
    expect(await elsewhere.decrypt(ws, 'db', 'password', sealed)).toBe('hunter2');
    expect(await vault.decrypt(ws, 'db', 'password', sealed)).toBe('hunter2');
    expect(await ctx.store.workspaceKeys.all(ws)).toHaveLength(1);
  });

  it('destroying the keystore entry shreds the workspace: no vault decrypts it or makes it a new key', async () => {
    const ws = await workspace();
    const kept = await workspace();
    const sealed = await vault.encrypt(ws, 'db', 'password', 'hunter2');
    const other = await vault.encrypt(kept, 'db', 'password', 'still here');
    expect(await vault.destroyWorkspace(ws)).toBe('active');
    for (const v of [vault, new Vault(ctx.store.workspaceKeys, key, new Keystore(keystore.path))]) {
      await expectVaultError(v.decrypt(ws, 'db', 'password', sealed), /crypto-shredded/);
      await expectVaultError(v.encrypt(ws, 'db', 'password', 'new'), /crypto-shredded/);
    }
    await expect(vault.reopenWorkspace(ws)).rejects.toThrow(/cannot be reopened/);
    expect(await ctx.store.workspaceKeys.all(ws)).toHaveLength(1);
    // Only a tombstone is left: no secret, just when.
    const entry = (JSON.parse(readFileSync(keystore.path, 'utf8')) as { workspaces: Record<string, object> })
      .workspaces[ws];
    expect(Object.keys(entry!).sort()).toEqual(['createdAt', 'destroyedAt', 'state']);
    expect(await vault.decrypt(kept, 'db', 'password', other)).toBe('still here');
  });

  it('a restored copy of the key rows decrypts until the keystore entry is destroyed, then never', async () => {
    const ws = await workspace();
    const kept = await workspace();
    const secret = await vault.encrypt(ws, 'db', 'password', 'hunter2');
    const keptSecret = await vault.encrypt(kept, 'db', 'password', 'still here');
    // The backup: another database holding copies of the key rows (as a restore would give).
    const backupPlace = await newPlace(ctx.store.dialect);
    try {
      const backup = await backupPlace.open();
      for (const row of [
        ...(await ctx.store.workspaceKeys.all(ws)),
        ...(await ctx.store.workspaceKeys.all(kept)),
      ])
        await backup.workspaceKeys.insert(row);
      const restored = () => new Vault(backup.workspaceKeys, key, new Keystore(keystore.path));
      // Before closing, the copy decrypts: the test can pass.
      expect(await restored().decrypt(ws, 'db', 'password', secret)).toBe('hunter2');
      await vault.destroyWorkspace(ws);
      await expectVaultError(restored().decrypt(ws, 'db', 'password', secret), /crypto-shredded/);
      // Even with the keystore left out, the master key alone does not unwrap the copied key.
      const [copied] = await backup.workspaceKeys.all(ws);
      const wrapped = Buffer.from(copied!.wrapped_key.slice(WRAPPED_KEY_PREFIX.length), 'base64');
      for (const aad of [
        `lethe/workspace-key/v1/${ws}/1`,
        `lethe/workspace-key/v2/${JSON.stringify([ws, 1])}`,
      ])
        expect(() => openSealed(key.key, wrapped, aad)).toThrow();
      expect(await restored().decrypt(kept, 'db', 'password', keptSecret)).toBe('still here');
    } finally {
      await backupPlace.cleanup();
    }
  });

  it('reads data keys wrapped by the master key alone (before the keystore), and moves on from them', async () => {
    const ws = await workspace();
    // A key row and a secret as the earlier vault made them.
    const legacyKey = randomBytes(32);
    const legacyWrapped = (() => {
      const nonce = randomBytes(12);
      const cipher = createCipheriv('aes-256-gcm', key.key, nonce);
      cipher.setAAD(Buffer.from(`lethe/workspace-key/v1/${ws}/1`));
      const body = Buffer.concat([cipher.update(legacyKey), cipher.final()]);
      return Buffer.concat([nonce, body, cipher.getAuthTag()]).toString('base64');
    })();
    await ctx.store.workspaceKeys.insert({
      workspace_id: ws,
      version: 1,
      wrapped_key: legacyWrapped,
      master_key_id: key.id,
      created_at: 1,
    });
    const nonce = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', legacyKey, nonce);
    cipher.setAAD(Buffer.from(`lethe/secret/v1/${JSON.stringify([ws, 'db', 'password'])}`));
    const body = Buffer.concat([cipher.update('old secret'), cipher.final()]);
    const old = `v1.1.${Buffer.concat([nonce, body, cipher.getAuthTag()]).toString('base64')}`;
    expect(keystore.state(ws)).toBe('missing');
    expect(await vault.decrypt(ws, 'db', 'password', old)).toBe('old secret');
    // The next secret goes under a new key version, wrapped under the keystore.
    const fresh = await vault.encrypt(ws, 'db', 'token', 'new secret');
    expect(fresh.startsWith('v1.2.')).toBe(true);
    const rows = await ctx.store.workspaceKeys.all(ws);
    expect(rows.map((row) => row.wrapped_key.startsWith(WRAPPED_KEY_PREFIX))).toEqual([false, true]);
    expect(keystore.state(ws)).toBe('active');
    expect(await vault.decrypt(ws, 'db', 'token', fresh)).toBe('new secret');
    // Closing refuses the old key too.
    await vault.destroyWorkspace(ws);
    await expectVaultError(vault.decrypt(ws, 'db', 'password', old), /crypto-shredded/);
  });

  it('does not make a new keystore secret for a workspace whose entry is gone', async () => {
    const ws = await workspace();
    const sealed = await vault.encrypt(ws, 'db', 'password', 'hunter2');
    const elsewhere = join(ctx.place.dataDir, `other-${randomBytes(4).toString('hex')}.json`);
    const lost = new Vault(ctx.store.workspaceKeys, key, new Keystore(elsewhere));
    await expectVaultError(lost.decrypt(ws, 'db', 'password', sealed), /holds no key for this workspace/);
    await expectVaultError(lost.encrypt(ws, 'db', 'password', 'x'), /holds no key for this workspace/);
    expect(existsSync(elsewhere)).toBe(false);
  });
});

describe('vault (SQLite, a restored copy after the key is lost)', () => {
  let place: StorePlace | undefined;
  afterEach(async () => {
    await place?.cleanup();
  });

  it('a copy of the database is unreadable without its master key file', async () => {
    place = await newPlace('sqlite');
    const store = await place.open();
    const ws = (await store.workspaces.ensure('w')).id;
    const keystore = openKeystore(place.dataDir, {});
    const sealed = await new Vault(store.workspaceKeys, loadMasterKey(place.dataDir, {}), keystore).encrypt(
      ws,
      'c',
      'f',
      'v',
    );
    rmSync(join(place.dataDir, 'master.key'));
    const fresh = loadMasterKey(place.dataDir, {});
    await expect(
      new Vault(store.workspaceKeys, fresh, keystore).decrypt(ws, 'c', 'f', sealed),
    ).rejects.toThrow('the workspace key was wrapped by another master key');
  });
});
