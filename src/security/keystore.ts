/**
 * security — the keystore: per workspace, a random 256-bit secret kept OUTSIDE the database,
 * so that destroying it crypto-shreds the workspace in every copy of the database, backups
 * included.
 *
 * - The file is `<data-dir>/keystore.json` (or LETHE_KEYSTORE, so several servers can share
 *   one), mode 0600, always replaced whole: written to a temporary file, synced, renamed over
 *   the old one. Writers take a lock file first, so two processes never lose each other's
 *   entries.
 * - Each secret is itself encrypted with the master key (AES-256-GCM); the additional data
 *   binds it to its workspace and its state, so a sealed secret cannot be passed off as an
 *   active one by editing the file.
 * - The vault derives a workspace's key-encryption key from the master key and this secret
 *   (HKDF-SHA256): the data keys in the database are wrapped by it. Destroying the entry
 *   (closing a workspace) leaves a tombstone with the time only; sealing it (passive storage)
 *   makes the vault refuse the workspace until it is reopened.
 * - Each entry records the master key version that sealed it (`masterKeyId`) and is opened with
 *   that version; a new or changed entry is sealed with the current one. `rewrap` re-seals
 *   every entry still under an older version (key rotation, ./key-rotation.ts), in its own
 *   state: a sealed entry stays sealed, a destroyed one has nothing left to re-seal.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, readFileSync, statSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { LetheError } from '../errors/index.js';
import { open, seal } from './aead.js';
import { MasterKeyRing, type MasterKeys } from './master-key.js';
import { fileStamp, lockFile, writeSecretFile } from './secret-file.js';

export const SECRET_BYTES = 32;

/** What the keystore knows of a workspace. `missing`: no entry (never used the vault). */
export type KeystoreState = 'active' | 'sealed' | 'destroyed' | 'missing';

/** The master key as the keystore needs it (see vault.ts). */
export interface KeystoreMasterKey {
  id: string;
  key: Buffer;
}

/** One master key, or the deployment's versions of it (./master-key.ts). */
export type KeystoreMasterKeys = KeystoreMasterKey | MasterKeys;

function ringOf(master: KeystoreMasterKeys): MasterKeys {
  return 'current' in master ? master : MasterKeyRing.of(master);
}

/** An entry as `entries()` lists it: no secret. */
export interface KeystoreEntryInfo {
  workspaceId: string;
  state: Exclude<KeystoreState, 'missing'>;
  /** The master key version that sealed it (none once destroyed). */
  masterKeyId: string | undefined;
}

/** What `rewrap` did. */
export interface KeystoreRewrap {
  /** Entries re-sealed with the current master key version. */
  rewrapped: number;
  /** Entries that could not be re-sealed (their version is unknown, or they do not open), by workspace. */
  blocked: { workspaceId: string; masterKeyId: string | undefined; reason: string }[];
}

interface Entry {
  state: 'active' | 'sealed' | 'destroyed';
  /** The secret, sealed by the master key (base64 nonce ‖ ciphertext ‖ tag); gone once destroyed. */
  secret?: string;
  /** Which master key sealed it. */
  masterKeyId?: string;
  createdAt: number;
  sealedAt?: number;
  destroyedAt?: number;
}

interface KeystoreFile {
  format: 'lethe-keystore';
  version: 1;
  workspaces: Record<string, Entry>;
}

export interface KeystoreOptions {
  /** How long a writer waits for another's lock before giving up (default 10 s). */
  lockTimeoutMs?: number;
  /** A lock file older than this was left by a process that died; it is removed (default 30 s). */
  staleLockMs?: number;
}

const secretAad = (workspaceId: string, state: 'active' | 'sealed') =>
  `lethe/keystore/v1/${JSON.stringify([workspaceId, state])}`;

function isEntry(value: unknown): value is Entry {
  if (value === null || typeof value !== 'object') return false;
  const entry = value as Record<string, unknown>;
  return (
    (entry.state === 'active' || entry.state === 'sealed' || entry.state === 'destroyed') &&
    typeof entry.createdAt === 'number' &&
    (entry.state === 'destroyed' ? entry.secret === undefined : typeof entry.secret === 'string')
  );
}

/** Where the keystore lives: LETHE_KEYSTORE when set (relative to the working directory), else the data dir. */
export function keystorePath(
  dataDir: string,
  env: Readonly<Record<string, string | undefined>> = process.env,
): string {
  const fromEnv = env.LETHE_KEYSTORE;
  if (fromEnv !== undefined && fromEnv !== '') return isAbsolute(fromEnv) ? fromEnv : resolve(fromEnv);
  return join(dataDir, 'keystore.json');
}

/** The keystore of a data dir (or LETHE_KEYSTORE). Nothing is written until a secret is made. */
export function openKeystore(
  dataDir: string,
  env: Readonly<Record<string, string | undefined>> = process.env,
  options: KeystoreOptions = {},
): Keystore {
  return new Keystore(keystorePath(dataDir, env), options);
}

export class Keystore {
  private cached: { stamp: string; file: KeystoreFile } | undefined;
  private readonly lockTimeoutMs: number;
  private readonly staleLockMs: number;

  constructor(
    readonly path: string,
    options: KeystoreOptions = {},
  ) {
    this.lockTimeoutMs = options.lockTimeoutMs ?? 10_000;
    this.staleLockMs = options.staleLockMs ?? 30_000;
  }

  /** The state of a workspace's entry (read from the file, which other processes may change). */
  state(workspaceId: string): KeystoreState {
    return this.read().workspaces[workspaceId]?.state ?? 'missing';
  }

  /** Every entry's state, by workspace id (no secrets). */
  states(): Map<string, Exclude<KeystoreState, 'missing'>> {
    return new Map(Object.entries(this.read().workspaces).map(([id, entry]) => [id, entry.state]));
  }

  /**
   * The active secret of a workspace, for the vault. With `create`, a workspace without an entry
   * gets one (under the lock, so racing processes agree on one secret). A sealed, destroyed or
   * missing entry is refused with a message that says which.
   */
  async secret(
    workspaceId: string,
    master: KeystoreMasterKeys,
    options: { create: boolean },
  ): Promise<Buffer> {
    const ring = ringOf(master);
    let entry = this.read().workspaces[workspaceId];
    if (entry?.masterKeyId !== undefined && !ring.byId(entry.masterKeyId)) {
      // Re-sealed by a rotation (whose old version is retired) since this file was read: read again.
      this.cached = undefined;
      entry = this.read().workspaces[workspaceId];
    }
    if (!entry && options.create) {
      entry = await this.update((file) => {
        const existing = file.workspaces[workspaceId];
        if (existing) return existing;
        // Under the lock, with the key file read again: a rotation that began before this
        // entry was made re-seals it, one that begins after sees it.
        const current = ring.current();
        const made: Entry = {
          state: 'active',
          secret: seal(current.key, randomBytes(SECRET_BYTES), secretAad(workspaceId, 'active')),
          masterKeyId: current.id,
          createdAt: Date.now(),
        };
        file.workspaces[workspaceId] = made;
        return made;
      });
    }
    return this.openActive(workspaceId, entry, ring);
  }

  /**
   * The secret of an active or sealed entry, for re-wrapping the workspace's data keys under a
   * new master key version only: a sealed workspace's keys must move too, or reopening it would
   * need the retired version. The vault never uses it to decrypt (it checks the state first).
   */
  secretForRewrap(workspaceId: string, master: KeystoreMasterKeys): Buffer | undefined {
    const ring = ringOf(master);
    const entry = this.read().workspaces[workspaceId];
    if (!entry || entry.state === 'destroyed') return undefined;
    return this.openEntry(workspaceId, entry, entry.state, ring);
  }

  /** Every entry's state and sealing master key version, by workspace (no secrets). */
  entries(): KeystoreEntryInfo[] {
    return Object.entries(this.read().workspaces).map(([workspaceId, entry]) => ({
      workspaceId,
      state: entry.state,
      masterKeyId: entry.state === 'destroyed' ? undefined : entry.masterKeyId,
    }));
  }

  /**
   * Re-seal every active or sealed entry that an older master key version sealed with the
   * current one, in its own state (a sealed secret stays sealed), in one locked write.
   */
  async rewrap(master: KeystoreMasterKeys): Promise<KeystoreRewrap> {
    const ring = ringOf(master);
    return this.update((file) => {
      const current = ring.current();
      const result: KeystoreRewrap = { rewrapped: 0, blocked: [] };
      for (const [workspaceId, entry] of Object.entries(file.workspaces)) {
        if (entry.state === 'destroyed' || entry.masterKeyId === current.id) continue;
        let secret: Buffer;
        try {
          secret = this.openEntry(workspaceId, entry, entry.state, ring);
        } catch (error) {
          result.blocked.push({
            workspaceId,
            masterKeyId: entry.masterKeyId,
            reason: error instanceof Error ? error.message : String(error),
          });
          continue;
        }
        file.workspaces[workspaceId] = {
          ...entry,
          secret: seal(current.key, secret, secretAad(workspaceId, entry.state)),
          masterKeyId: current.id,
        };
        result.rewrapped++;
      }
      return result;
    });
  }

  private openActive(workspaceId: string, entry: Entry | undefined, master: MasterKeys): Buffer {
    if (!entry) {
      throw new LetheError(
        'CONNECTION_ERROR',
        `the keystore ${this.path} holds no key for this workspace: its secrets cannot be decrypted`,
        {
          hint:
            'point LETHE_KEYSTORE at the keystore the workspace was created with; if the workspace was ' +
            'closed, its keys were destroyed on purpose',
        },
      );
    }
    if (entry.state === 'destroyed') {
      throw new LetheError(
        'CONNECTION_ERROR',
        'the workspace was closed and its key destroyed (crypto-shredded): its secrets can never be decrypted again',
      );
    }
    if (entry.state === 'sealed') {
      throw new LetheError(
        'CONNECTION_ERROR',
        'the workspace is closed (in passive storage): its key is sealed and its secrets cannot be used',
        { hint: 'an operator can reopen it with lethe workspace reopen before its purge date' },
      );
    }
    return this.openEntry(workspaceId, entry, 'active', master);
  }

  private openEntry(
    workspaceId: string,
    entry: Entry,
    state: 'active' | 'sealed',
    master: MasterKeys,
  ): Buffer {
    const version = entry.masterKeyId === undefined ? undefined : master.byId(entry.masterKeyId);
    if (!version) {
      throw new LetheError(
        'CONNECTION_ERROR',
        'the workspace’s keystore entry was sealed by another master key',
        {
          hint: 'start with the master key it was created with (LETHE_MASTER_KEY or the data dir’s master.key)',
        },
      );
    }
    try {
      const secret = open(version.key, entry.secret ?? '', secretAad(workspaceId, state));
      if (secret.length !== SECRET_BYTES) throw new Error('wrong length');
      return secret;
    } catch (error) {
      throw new LetheError(
        'CONNECTION_ERROR',
        `the workspace’s keystore entry cannot be opened with this master key (it was altered?)`,
        { cause: error },
      );
    }
  }

  /**
   * Seal a workspace's secret (passive storage): re-encrypted for the sealed state, so the vault
   * cannot use it until `unseal`. A workspace without an entry gets a sealed one, so nothing can
   * make it a fresh active key meanwhile. Returns the state before.
   */
  async seal(workspaceId: string, master: KeystoreMasterKeys, now = Date.now()): Promise<KeystoreState> {
    const ring = ringOf(master);
    return this.update((file) => {
      const entry = file.workspaces[workspaceId];
      const current = ring.current();
      if (!entry) {
        file.workspaces[workspaceId] = {
          state: 'sealed',
          secret: seal(current.key, randomBytes(SECRET_BYTES), secretAad(workspaceId, 'sealed')),
          masterKeyId: current.id,
          createdAt: now,
          sealedAt: now,
        };
        return 'missing';
      }
      if (entry.state !== 'active') return entry.state;
      const secret = this.openEntry(workspaceId, entry, 'active', ring);
      file.workspaces[workspaceId] = {
        ...entry,
        state: 'sealed',
        secret: seal(current.key, secret, secretAad(workspaceId, 'sealed')),
        masterKeyId: current.id,
        sealedAt: now,
      };
      return 'active';
    });
  }

  /** Make a sealed secret usable again (reopening). Returns the state before. */
  async unseal(workspaceId: string, master: KeystoreMasterKeys): Promise<KeystoreState> {
    const ring = ringOf(master);
    return this.update((file) => {
      const entry = file.workspaces[workspaceId];
      if (!entry) return 'missing';
      if (entry.state === 'destroyed') {
        throw new LetheError(
          'CONFLICT',
          'the workspace’s key was destroyed (crypto-shredded): it cannot be reopened',
        );
      }
      if (entry.state === 'active') return 'active';
      const secret = this.openEntry(workspaceId, entry, 'sealed', ring);
      const current = ring.current();
      const { sealedAt: _sealedAt, ...rest } = entry;
      file.workspaces[workspaceId] = {
        ...rest,
        state: 'active',
        secret: seal(current.key, secret, secretAad(workspaceId, 'active')),
        masterKeyId: current.id,
      };
      return 'sealed';
    });
  }

  /**
   * Destroy a workspace's secret for good: every data key wrapped under it, in every copy of the
   * database, becomes undecryptable. A tombstone (state and time, no secret) stays, so the
   * vault can say what happened and never makes a new key for the workspace. Returns the state
   * before.
   */
  async destroy(workspaceId: string, now = Date.now()): Promise<KeystoreState> {
    return this.update((file) => {
      const entry = file.workspaces[workspaceId];
      if (entry?.state === 'destroyed') return 'destroyed';
      file.workspaces[workspaceId] = {
        state: 'destroyed',
        createdAt: entry?.createdAt ?? now,
        destroyedAt: now,
      };
      return entry?.state ?? 'missing';
    });
  }

  // --- the file ---------------------------------------------------------------------------

  private stamp(): string | undefined {
    return fileStamp(this.path);
  }

  /** The file's content, re-read whenever it changed (every write replaces it: a new inode). */
  private read(): KeystoreFile {
    const stamp = this.stamp();
    if (stamp === undefined) return { format: 'lethe-keystore', version: 1, workspaces: {} };
    if (this.cached?.stamp === stamp) return this.cached.file;
    let text: string;
    try {
      text = readFileSync(this.path, 'utf8');
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT')
        return { format: 'lethe-keystore', version: 1, workspaces: {} };
      throw error;
    }
    const file = this.parse(text);
    // Readable by its owner only, whatever made it otherwise (best effort: it may be another user's).
    try {
      if ((statSync(this.path).mode & 0o077) !== 0) chmodSync(this.path, 0o600);
    } catch {
      // Not ours to change: it is still read.
    }
    this.cached = { stamp, file };
    return file;
  }

  private parse(text: string): KeystoreFile {
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch {
      parsed = undefined;
    }
    const candidate = parsed as Partial<KeystoreFile> | undefined;
    if (
      !candidate ||
      candidate.format !== 'lethe-keystore' ||
      candidate.version !== 1 ||
      candidate.workspaces === null ||
      typeof candidate.workspaces !== 'object'
    ) {
      throw new LetheError('USAGE', `${this.path} is not a Lethe keystore (or is damaged)`, {
        hint: 'restore it, or point LETHE_KEYSTORE at the right file; it is never overwritten while unreadable',
      });
    }
    const workspaces: Record<string, Entry> = Object.create(null) as Record<string, Entry>;
    for (const [id, entry] of Object.entries(candidate.workspaces)) {
      if (!isEntry(entry)) {
        throw new LetheError('USAGE', `${this.path}: the entry of workspace ${id} is damaged`);
      }
      workspaces[id] = entry;
    }
    return { format: 'lethe-keystore', version: 1, workspaces };
  }

  /**
   * Change the file under the lock: read it fresh, let `change` edit it, write it whole to a
   * temporary file, sync, rename over the old one, sync the folder. `change` runs without any
   * await, so it sees and writes one consistent state.
   */
  private async update<T>(change: (file: KeystoreFile) => T): Promise<T> {
    const release = await this.lock();
    try {
      this.cached = undefined;
      const file = this.read();
      const before = JSON.stringify(file);
      const result = change(file);
      const text = `${JSON.stringify(file, null, 2)}\n`;
      if (JSON.stringify(file) !== before) this.write(text);
      return result;
    } finally {
      release();
    }
  }

  private write(text: string): void {
    writeSecretFile(this.path, text);
    this.cached = undefined;
  }

  /** Take the lock file (made exclusively); a lock older than staleLockMs is taken over. */
  private lock(): Promise<() => void> {
    return lockFile(this.path, {
      timeoutMs: this.lockTimeoutMs,
      staleMs: this.staleLockMs,
      what: 'keystore',
      missingFolderHint: 'create it, or point LETHE_KEYSTORE at a file in an existing folder',
    });
  }
}
