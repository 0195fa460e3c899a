/**
 * security — the vault: connection secrets encrypted with AES-256-GCM (Node's crypto; nothing
 * hand-rolled) under envelope encryption.
 *
 * - A master key lives outside the database: LETHE_MASTER_KEY, or a key file made with mode
 *   0600 in the data dir on first start.
 * - Each workspace has a random 256-bit secret in the keystore (./keystore.ts), also outside the
 *   database. The workspace's key-encryption key is derived from both (HKDF-SHA256 over master
 *   key ‖ workspace secret, bound to the workspace id).
 * - Each workspace has its own data keys (random 256 bits, versioned), stored in the database
 *   only wrapped (encrypted) by that key-encryption key. Destroying the workspace's keystore
 *   entry therefore makes its wrapped data keys — and so its secrets — undecryptable in every
 *   copy of the database, backups included (crypto-shredding); sealing the entry makes the
 *   vault refuse the workspace until it is reopened.
 * - Each secret is encrypted with the workspace's data key and a random 96-bit nonce; the
 *   additional authenticated data binds it to workspace, connection and field, so a
 *   ciphertext copied to another place does not decrypt. Wrapped data keys are bound to their
 *   workspace and version the same way.
 * - Data keys made before the keystore existed (wrapped by the master key alone, without the
 *   `k2.` prefix) are still read; a workspace that has one gets a new key version under the
 *   keystore on its next encryption. Copies of such an old key cannot be shredded (see
 *   docs/privacy.md).
 */
import { createCipheriv, createDecipheriv, createHash, hkdfSync, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, linkSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LetheError } from '../errors/index.js';
import type { WorkspaceKeyRepository, WorkspaceKeyRow } from '../store/records.js';
import { openKeystore, type Keystore, type KeystoreState } from './keystore.js';

const KEY_BYTES = 32;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;

export interface MasterKey {
  /** A short fingerprint naming the key (never the key). */
  id: string;
  key: Buffer;
}

function fingerprint(key: Buffer): string {
  return createHash('sha256').update('lethe/master-key-id/v1').update(key).digest('hex').slice(0, 16);
}

/** Parse a 256-bit key given as base64 or hex. */
export function parseKey(text: string, where: string): Buffer {
  const trimmed = text.trim();
  // Node's base64 decoder skips characters it does not know, so check the alphabet first: a
  // passphrase that happened to decode to 32 bytes must not pass for a key.
  const key = /^[0-9a-fA-F]{64}$/.test(trimmed)
    ? Buffer.from(trimmed, 'hex')
    : /^[A-Za-z0-9+/]{43}=?$|^[A-Za-z0-9_-]{43}$/.test(trimmed)
      ? Buffer.from(trimmed, 'base64')
      : Buffer.alloc(0);
  if (key.length !== KEY_BYTES) {
    throw new LetheError(
      'USAGE',
      `${where} must hold a 256-bit key as 64 hex digits or 44 base64 characters`,
    );
  }
  return key;
}

/**
 * The master key: from LETHE_MASTER_KEY when set, otherwise from `<dataDir>/master.key`,
 * which is created (mode 0600) when it does not exist.
 */
export function loadMasterKey(
  dataDir: string,
  env: Readonly<Record<string, string | undefined>> = process.env,
): MasterKey {
  const fromEnv = env.LETHE_MASTER_KEY;
  if (fromEnv !== undefined && fromEnv !== '') {
    const key = parseKey(fromEnv, 'LETHE_MASTER_KEY');
    return { id: fingerprint(key), key };
  }
  const file = join(dataDir, 'master.key');
  if (!existsSync(file)) {
    // Written whole to a temporary file, then linked into place: link fails if another
    // process made the key first, and nobody ever reads a half-written key.
    const temporary = `${file}.${process.pid}.${randomBytes(4).toString('hex')}`;
    writeFileSync(temporary, `${randomBytes(KEY_BYTES).toString('base64')}\n`, { mode: 0o600 });
    try {
      linkSync(temporary, file);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    } finally {
      unlinkSync(temporary);
    }
  }
  chmodSync(file, 0o600);
  const key = parseKey(readFileSync(file, 'utf8'), file);
  return { id: fingerprint(key), key };
}

function seal(key: Buffer, plaintext: Buffer, aad: string): string {
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(Buffer.from(aad, 'utf8'));
  const body = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([nonce, body, cipher.getAuthTag()]).toString('base64');
}

function open(key: Buffer, sealed: string, aad: string): Buffer {
  const bytes = Buffer.from(sealed, 'base64');
  if (bytes.length < NONCE_BYTES + TAG_BYTES) throw new Error('ciphertext too short');
  const decipher = createDecipheriv('aes-256-gcm', key, bytes.subarray(0, NONCE_BYTES));
  decipher.setAAD(Buffer.from(aad, 'utf8'));
  decipher.setAuthTag(bytes.subarray(bytes.length - TAG_BYTES));
  return Buffer.concat([
    decipher.update(bytes.subarray(NONCE_BYTES, bytes.length - TAG_BYTES)),
    decipher.final(),
  ]);
}

/** The additional data of a data key wrapped by the master key alone (before the keystore). */
const legacyKeyAad = (workspaceId: string, version: number) =>
  `lethe/workspace-key/v1/${workspaceId}/${version}`;
/** The additional data of a data key wrapped by the workspace's key-encryption key. */
const workspaceKeyAad = (workspaceId: string, version: number) =>
  `lethe/workspace-key/v2/${JSON.stringify([workspaceId, version])}`;
// JSON keeps the parts apart: with plain "/" joins, connection "a/b" + field "c" and connection
// "a" + field "b/c" would bind to the same data.
const secretAad = (workspaceId: string, connection: string, field: string) =>
  `lethe/secret/v1/${JSON.stringify([workspaceId, connection, field])}`;

/** How a data key wrapped by the workspace's key-encryption key is marked in `wrapped_key`. */
export const WRAPPED_KEY_PREFIX = 'k2.';

/**
 * The key-encryption key of a workspace: HKDF-SHA256 over the master key and the workspace's
 * keystore secret, bound to the workspace id. Exported for tests that check the construction.
 */
export function workspaceKek(masterKey: Buffer, workspaceSecret: Buffer, workspaceId: string): Buffer {
  return Buffer.from(
    hkdfSync(
      'sha256',
      Buffer.concat([masterKey, workspaceSecret]),
      Buffer.from('lethe/workspace-kek/v2', 'utf8'),
      Buffer.from(JSON.stringify(['lethe/workspace-kek/v2', workspaceId]), 'utf8'),
      KEY_BYTES,
    ),
  );
}

const isLegacy = (row: WorkspaceKeyRow) => !row.wrapped_key.startsWith(WRAPPED_KEY_PREFIX);

/**
 * The vault of a data dir, as `lethe serve` and the CLI commands open it: the master key
 * (LETHE_MASTER_KEY or `<dataDir>/master.key`) and the keystore (LETHE_KEYSTORE or
 * `<dataDir>/keystore.json`).
 */
export function openVault(
  keys: WorkspaceKeyRepository,
  dataDir: string,
  env: Readonly<Record<string, string | undefined>> = process.env,
): Vault {
  return new Vault(keys, loadMasterKey(dataDir, env), openKeystore(dataDir, env));
}

export class Vault {
  /** Unwrapped data keys by workspace and version (they never leave memory). */
  private readonly dataKeys = new Map<string, Buffer>();

  constructor(
    private readonly keys: WorkspaceKeyRepository,
    private readonly master: MasterKey,
    /** Where the workspaces' secrets live, outside the database. */
    readonly keystore: Keystore,
  ) {}

  /** The state of a workspace's key in the keystore (active, sealed, destroyed or missing). */
  keyState(workspaceId: string): KeystoreState {
    return this.keystore.state(workspaceId);
  }

  /** Closing a workspace into passive storage: its key is sealed and the vault refuses it. */
  async sealWorkspace(workspaceId: string, now = Date.now()): Promise<KeystoreState> {
    this.forget(workspaceId);
    return this.keystore.seal(workspaceId, this.master, now);
  }

  /** Reopening a sealed workspace: its key becomes usable again. */
  async reopenWorkspace(workspaceId: string): Promise<KeystoreState> {
    this.forget(workspaceId);
    return this.keystore.unseal(workspaceId, this.master);
  }

  /** Crypto-shredding: the workspace's keystore secret is destroyed, so are its data keys everywhere. */
  async destroyWorkspace(workspaceId: string, now = Date.now()): Promise<KeystoreState> {
    this.forget(workspaceId);
    return this.keystore.destroy(workspaceId, now);
  }

  /** Drop a workspace's unwrapped data keys from memory. */
  private forget(workspaceId: string): void {
    for (const cacheKey of [...this.dataKeys.keys()]) {
      if (cacheKey.startsWith(`${workspaceId}/`)) this.dataKeys.delete(cacheKey);
    }
  }

  /** The workspace's key-encryption key (refused when its keystore entry is not active). */
  private async kek(workspaceId: string, create: boolean): Promise<Buffer> {
    const secret = await this.keystore.secret(workspaceId, this.master, { create });
    return workspaceKek(this.master.key, secret, workspaceId);
  }

  /** The workspace's current data key and its version, made on first use. */
  private async currentKey(workspaceId: string): Promise<{ version: number; key: Buffer }> {
    let rows = await this.keys.all(workspaceId);
    const latest = rows[rows.length - 1];
    if (!latest || isLegacy(latest)) {
      // A first key, or the first one under the keystore: the keystore entry is made (or found)
      // under its lock before any key row, so racing processes wrap under one secret.
      if (latest && latest.master_key_id !== this.master.id) this.wrongMaster();
      const version = (latest?.version ?? 0) + 1;
      // Only a workspace with no key under the keystore yet may get a keystore entry made here.
      const kek = await this.kek(workspaceId, rows.every(isLegacy));
      const key = randomBytes(KEY_BYTES);
      await this.keys.insert({
        workspace_id: workspaceId,
        version,
        wrapped_key: `${WRAPPED_KEY_PREFIX}${seal(kek, key, workspaceKeyAad(workspaceId, version))}`,
        master_key_id: this.master.id,
        created_at: Date.now(),
      });
      // Another process may have made this version first: use whatever is stored.
      rows = await this.keys.all(workspaceId);
    }
    const current = rows[rows.length - 1]!;
    return { version: current.version, key: await this.dataKey(workspaceId, current.version) };
  }

  private wrongMaster(): never {
    throw new LetheError('CONNECTION_ERROR', 'the workspace key was wrapped by another master key', {
      hint: 'start the server with the master key it was created with (LETHE_MASTER_KEY or the data dir’s master.key)',
    });
  }

  private async dataKey(workspaceId: string, version: number): Promise<Buffer> {
    // Checked on every use, cached key or not: another process may have sealed or destroyed it.
    const state = this.keystore.state(workspaceId);
    if (state === 'sealed' || state === 'destroyed') {
      this.forget(workspaceId);
      await this.kek(workspaceId, false); // throws the keystore's message for the state
    }
    const cacheKey = `${workspaceId}/${version}`;
    const cached = this.dataKeys.get(cacheKey);
    if (cached) return cached;
    const row = (await this.keys.all(workspaceId)).find((candidate) => candidate.version === version);
    if (!row)
      throw new LetheError('CONNECTION_ERROR', 'a secret refers to a workspace key that no longer exists');
    if (row.master_key_id !== this.master.id) this.wrongMaster();
    const legacy = isLegacy(row);
    const wrappingKey = legacy ? this.master.key : await this.kek(workspaceId, false);
    let key: Buffer;
    try {
      key = legacy
        ? open(wrappingKey, row.wrapped_key, legacyKeyAad(workspaceId, version))
        : open(
            wrappingKey,
            row.wrapped_key.slice(WRAPPED_KEY_PREFIX.length),
            workspaceKeyAad(workspaceId, version),
          );
    } catch (error) {
      throw new LetheError(
        'CONNECTION_ERROR',
        legacy
          ? 'the workspace key cannot be unwrapped with this master key'
          : 'the workspace key cannot be unwrapped with this master key and keystore',
        { cause: error },
      );
    }
    this.dataKeys.set(cacheKey, key);
    return key;
  }

  async encrypt(workspaceId: string, connection: string, field: string, plaintext: string): Promise<string> {
    const { version, key } = await this.currentKey(workspaceId);
    return `v1.${version}.${seal(key, Buffer.from(plaintext, 'utf8'), secretAad(workspaceId, connection, field))}`;
  }

  async decrypt(workspaceId: string, connection: string, field: string, ciphertext: string): Promise<string> {
    const match = /^v1\.(\d+)\.(.+)$/.exec(ciphertext);
    if (!match)
      throw new LetheError(
        'CONNECTION_ERROR',
        `the secret "${field}" of connection "${connection}" is not in a known format`,
      );
    const key = await this.dataKey(workspaceId, Number(match[1]));
    try {
      return open(key, match[2]!, secretAad(workspaceId, connection, field)).toString('utf8');
    } catch (error) {
      throw new LetheError(
        'CONNECTION_ERROR',
        `the secret "${field}" of connection "${connection}" cannot be decrypted`,
        {
          hint: 'it was altered, moved from another connection, or encrypted under another key',
          cause: error,
        },
      );
    }
  }
}
