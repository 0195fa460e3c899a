/**
 * security — the vault: connection secrets encrypted with AES-256-GCM (Node's crypto; nothing
 * hand-rolled) under envelope encryption.
 *
 * - A master key lives outside the database, in versions (./master-key.ts): LETHE_MASTER_KEY,
 *   or a key file made with mode 0600 in the data dir on first start. Everything it protects
 *   records the id of the version that wrapped it and is opened with that version; everything
 *   new is wrapped with the current one.
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
 * - Rotating the master key re-wraps data keys (`rewrapDataKey`, driven by ./key-rotation.ts):
 *   the data keys themselves, and so every ciphertext made with them, stay as they are.
 * - Data keys made before the keystore existed (wrapped by the master key alone, without the
 *   `k2.` prefix) are still read; a workspace that has one gets a new key version under the
 *   keystore on its next encryption. Copies of such an old key cannot be shredded (see
 *   docs/privacy.md) until the master key version that wrapped them is retired.
 */
import { hkdfSync, randomBytes } from 'node:crypto';
import { LetheError } from '../errors/index.js';
import type { WorkspaceKeyRepository, WorkspaceKeyRow } from '../store/records.js';
import { open, seal } from './aead.js';
import { openKeystore, type Keystore, type KeystoreState } from './keystore.js';
import {
  loadMasterKeys,
  MasterKeyRing,
  type MasterKey,
  type MasterKeys,
  type MasterKeyVersion,
} from './master-key.js';

export {
  loadMasterKey,
  loadMasterKeys,
  parseKey,
  type MasterKey,
  type MasterKeys,
  type MasterKeyVersion,
} from './master-key.js';

const KEY_BYTES = 32;

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

const isLegacy = (row: Pick<WorkspaceKeyRow, 'wrapped_key'>) =>
  !row.wrapped_key.startsWith(WRAPPED_KEY_PREFIX);

/** Whether a data key row is wrapped by the master key alone (made before the keystore). */
export const isLegacyKeyRow = isLegacy;

function wrapDataKey(
  key: Buffer,
  workspaceId: string,
  version: number,
  wrapping: { legacy: true; master: Buffer } | { legacy: false; kek: Buffer },
): string {
  return wrapping.legacy
    ? seal(wrapping.master, key, legacyKeyAad(workspaceId, version))
    : `${WRAPPED_KEY_PREFIX}${seal(wrapping.kek, key, workspaceKeyAad(workspaceId, version))}`;
}

function unwrapDataKey(row: WorkspaceKeyRow, master: Buffer, workspaceSecret: Buffer | undefined): Buffer {
  if (isLegacy(row)) return open(master, row.wrapped_key, legacyKeyAad(row.workspace_id, row.version));
  if (!workspaceSecret) throw new Error('a data key under the keystore needs the workspace secret');
  return open(
    workspaceKek(master, workspaceSecret, row.workspace_id),
    row.wrapped_key.slice(WRAPPED_KEY_PREFIX.length),
    workspaceKeyAad(row.workspace_id, row.version),
  );
}

/** Why a data key row cannot be re-wrapped (it stays under its version, which then stays too). */
export type RewrapBlock = 'unknown master key' | 'no keystore entry' | 'does not open';

/**
 * A data key row wrapped again under `target` (the current master key version): the data key is
 * unwrapped with the version that wrapped it (and the workspace's keystore secret, active or
 * sealed) and wrapped again in the same form. The caller stores it with a compare-and-set.
 * Returns why not when it cannot be.
 */
export function rewrapDataKey(
  row: WorkspaceKeyRow,
  masterKeys: MasterKeys,
  keystore: Keystore,
  target: MasterKeyVersion,
): { wrapped: string } | { blocked: RewrapBlock } {
  const from = masterKeys.byId(row.master_key_id);
  if (!from) return { blocked: 'unknown master key' };
  const legacy = isLegacy(row);
  let secret: Buffer | undefined;
  try {
    secret = legacy ? undefined : keystore.secretForRewrap(row.workspace_id, masterKeys);
  } catch {
    return { blocked: 'does not open' };
  }
  if (!legacy && !secret) return { blocked: 'no keystore entry' };
  let key: Buffer;
  try {
    key = unwrapDataKey(row, from.key, secret);
  } catch {
    return { blocked: 'does not open' };
  }
  return {
    wrapped: wrapDataKey(
      key,
      row.workspace_id,
      row.version,
      legacy
        ? { legacy: true, master: target.key }
        : { legacy: false, kek: workspaceKek(target.key, secret!, row.workspace_id) },
    ),
  };
}

/**
 * The vault of a data dir, as `lethe serve` and the CLI commands open it: the master key
 * versions (LETHE_MASTER_KEY, LETHE_MASTER_KEY_FILE or `<dataDir>/master.key`) and the keystore
 * (LETHE_KEYSTORE or `<dataDir>/keystore.json`).
 */
export function openVault(
  keys: WorkspaceKeyRepository,
  dataDir: string,
  env: Readonly<Record<string, string | undefined>> = process.env,
): Vault {
  return new Vault(keys, loadMasterKeys(dataDir, env), openKeystore(dataDir, env));
}

export class Vault {
  /** Unwrapped data keys by workspace and version (they never leave memory). */
  private readonly dataKeys = new Map<string, Buffer>();
  /** The master key versions (a file-backed ring notices new versions by itself). */
  readonly masterKeys: MasterKeys;

  constructor(
    private readonly keys: WorkspaceKeyRepository,
    master: MasterKey | MasterKeys,
    /** Where the workspaces' secrets live, outside the database. */
    readonly keystore: Keystore,
  ) {
    this.masterKeys = 'current' in master ? master : MasterKeyRing.of(master);
  }

  /** The state of a workspace's key in the keystore (active, sealed, destroyed or missing). */
  keyState(workspaceId: string): KeystoreState {
    return this.keystore.state(workspaceId);
  }

  /** Closing a workspace into passive storage: its key is sealed and the vault refuses it. */
  async sealWorkspace(workspaceId: string, now = Date.now()): Promise<KeystoreState> {
    this.forget(workspaceId);
    return this.keystore.seal(workspaceId, this.masterKeys, now);
  }

  /** Reopening a sealed workspace: its key becomes usable again. */
  async reopenWorkspace(workspaceId: string): Promise<KeystoreState> {
    this.forget(workspaceId);
    return this.keystore.unseal(workspaceId, this.masterKeys);
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

  /** The workspace's keystore secret (refused when its keystore entry is not active). */
  private secret(workspaceId: string, create: boolean): Promise<Buffer> {
    return this.keystore.secret(workspaceId, this.masterKeys, { create });
  }

  /** The workspace's current data key and its version, made on first use. */
  private async currentKey(workspaceId: string): Promise<{ version: number; key: Buffer }> {
    let rows = await this.keys.all(workspaceId);
    const latest = rows[rows.length - 1];
    if (!latest || isLegacy(latest)) {
      // A first key, or the first one under the keystore: the keystore entry is made (or found)
      // under its lock before any key row, so racing processes wrap under one secret.
      if (latest && !this.masterKeys.byId(latest.master_key_id)) this.wrongMaster();
      const version = (latest?.version ?? 0) + 1;
      // Only a workspace with no key under the keystore yet may get a keystore entry made here.
      const secret = await this.secret(workspaceId, rows.every(isLegacy));
      const master = this.masterKeys.current();
      const key = randomBytes(KEY_BYTES);
      const row: WorkspaceKeyRow = {
        workspace_id: workspaceId,
        version,
        wrapped_key: wrapDataKey(key, workspaceId, version, {
          legacy: false,
          kek: workspaceKek(master.key, secret, workspaceId),
        }),
        master_key_id: master.id,
        created_at: Date.now(),
      };
      if (await this.keys.insert(row)) {
        // A rotation that swept the key rows between reading the current version and this
        // insert would miss this row: wrap it again now with whatever is current (compare-and-set).
        const now = this.masterKeys.current();
        if (now.id !== master.id) {
          await this.keys.replaceWrapping(row, {
            wrapped_key: wrapDataKey(key, workspaceId, version, {
              legacy: false,
              kek: workspaceKek(now.key, secret, workspaceId),
            }),
            master_key_id: now.id,
          });
        }
      }
      // Another process may have made this version first: use whatever is stored.
      rows = await this.keys.all(workspaceId);
    }
    const current = rows[rows.length - 1]!;
    return { version: current.version, key: await this.dataKey(workspaceId, current.version) };
  }

  private wrongMaster(): never {
    throw new LetheError('CONNECTION_ERROR', 'the workspace key was wrapped by another master key', {
      hint: 'start the server with the master key it was created with (LETHE_MASTER_KEY or the data dir’s master.key), with every version not yet retired',
    });
  }

  private async dataKey(workspaceId: string, version: number): Promise<Buffer> {
    // Checked on every use, cached key or not: another process may have sealed or destroyed it.
    const state = this.keystore.state(workspaceId);
    if (state === 'sealed' || state === 'destroyed') {
      this.forget(workspaceId);
      await this.secret(workspaceId, false); // throws the keystore's message for the state
    }
    const cacheKey = `${workspaceId}/${version}`;
    const cached = this.dataKeys.get(cacheKey);
    if (cached) return cached;
    const find = async () =>
      (await this.keys.all(workspaceId)).find((candidate) => candidate.version === version);
    let row = await find();
    if (!row)
      throw new LetheError('CONNECTION_ERROR', 'a secret refers to a workspace key that no longer exists');
    let master = this.masterKeys.byId(row.master_key_id);
    if (!master) {
      // A rotation may have re-wrapped the row and retired its version since it was read.
      row = await find();
      master = row && this.masterKeys.byId(row.master_key_id);
      if (!row || !master) this.wrongMaster();
    }
    const legacy = isLegacy(row);
    const secret = legacy ? undefined : await this.secret(workspaceId, false);
    let key: Buffer;
    try {
      key = unwrapDataKey(row, master.key, secret);
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
