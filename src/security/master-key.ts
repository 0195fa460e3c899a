/**
 * security — the master key, in versions. Everything the master key protects (the keystore's
 * entries, the data keys in the database) records the id of the version that wrapped it, so a
 * deployment can hold several versions at once: the current one wraps everything new, older
 * ones only open what has not been re-wrapped yet (`lethe keys rotate`, ./key-rotation.ts), and
 * are then retired (removed).
 *
 * Where the versions live (the first listed is the current one):
 *
 * - `LETHE_MASTER_KEY`: `v2:<key>,v1:<key>` (commas or newlines between versions), or one bare
 *   key, which is version 1 (as before versions existed). The operator writes new versions in.
 * - otherwise the key file: `LETHE_MASTER_KEY_FILE`, or `<dataDir>/master.key`, made (mode 0600)
 *   with one bare key on first start. `lethe keys rotate` rewrites it as one `v<N>:<key>` line per
 *   version, under a lock file, atomically, mode 0600.
 *
 * A key is 256 bits, as 64 hex digits or base64. A version's id is a fingerprint of its key
 * (never the key): the id of an unversioned key is what it always was, so data written before
 * versions existed is version 1's. A process reading the key file notices when it is replaced
 * (its inode changes) and reads it again, so running servers learn of a new version as soon as
 * `lethe keys rotate` writes it; an id it does not know makes it read the file again too.
 */
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, linkSync, readFileSync, statSync, unlinkSync, writeFileSync } from 'node:fs';
import { isAbsolute, join, resolve } from 'node:path';
import { LetheError } from '../errors/index.js';
import { fileStamp, lockFile, removeLeftovers, writeSecretFile } from './secret-file.js';

const KEY_BYTES = 32;

type Environment = Readonly<Record<string, string | undefined>>;

export interface MasterKey {
  /** A short fingerprint naming the key (never the key). */
  id: string;
  key: Buffer;
}

export interface MasterKeyVersion extends MasterKey {
  /** The version's number, for people (v1, v2…); what is stored is the id. */
  version: number;
}

/** The master key versions a vault and the keystore use. */
export interface MasterKeys {
  /** The version everything new is wrapped with. */
  current(): MasterKeyVersion;
  /** The version with this id, when the deployment still has it. */
  byId(id: string): MasterKeyVersion | undefined;
  /** Every version, the current one first. */
  versions(): readonly MasterKeyVersion[];
}

export function fingerprint(key: Buffer): string {
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
 * Parse master key versions: one bare key (version 1), or `v<N>:<key>` entries separated by
 * commas or newlines, the current one first; lines starting with `#` are comments. Messages
 * never repeat a key.
 */
export function parseMasterKeys(text: string, where: string): MasterKeyVersion[] {
  const entries = text
    .split('\n')
    .filter((line) => !line.trim().startsWith('#'))
    .join('\n')
    .split(/[,\n]/)
    .map((entry) => entry.trim())
    .filter(Boolean);
  if (entries.length === 0) return [versionOf(1, parseKey('', where))];
  if (entries.length === 1 && !entries[0]!.includes(':')) return [versionOf(1, parseKey(entries[0]!, where))];
  const versions: MasterKeyVersion[] = [];
  for (const [index, entry] of entries.entries()) {
    const match = /^v([1-9]\d{0,8}):(.*)$/.exec(entry);
    if (!match) {
      throw new LetheError('USAGE', `${where}: entry ${index + 1} is not "v<number>:<key>"`, {
        hint: 'list the versions current first, e.g. v2:<new key>,v1:<old key> (see docs/security.md#key-management)',
      });
    }
    const version = Number(match[1]);
    const made = versionOf(version, parseKey(match[2]!, `${where} (v${version})`));
    if (versions.some((other) => other.version === version))
      throw new LetheError('USAGE', `${where} lists v${version} twice`);
    if (versions.some((other) => other.id === made.id))
      throw new LetheError('USAGE', `${where} lists one key under two versions (v${version})`);
    versions.push(made);
  }
  return versions;
}

function versionOf(version: number, key: Buffer): MasterKeyVersion {
  return { version, id: fingerprint(key), key };
}

/** How a ring's versions are written to a key file. */
function formatKeyFile(versions: readonly MasterKeyVersion[]): string {
  return [
    '# Lethe master key versions, the current one first (docs/security.md#key-management).',
    '# Written by lethe keys rotate. Keep it secret, and out of the database backups.',
    ...versions.map((v) => `v${v.version}:${v.key.toString('base64')}`),
    '',
  ].join('\n');
}

export type MasterKeySource =
  { kind: 'env'; variable: string } | { kind: 'file'; path: string } | { kind: 'fixed' };

/** Master key versions from LETHE_MASTER_KEY, a key file (re-read when replaced), or given. */
export class MasterKeyRing implements MasterKeys {
  private loaded: readonly MasterKeyVersion[];
  private stamp: string | undefined;

  constructor(
    readonly source: MasterKeySource,
    versions: readonly MasterKeyVersion[],
    stamp?: string,
  ) {
    if (versions.length === 0) throw new Error('a master key ring needs a version');
    this.loaded = versions;
    this.stamp = stamp;
  }

  /** One key, as version 1 (tests, and callers that have one key). */
  static of(key: MasterKey): MasterKeyRing {
    return new MasterKeyRing({ kind: 'fixed' }, [{ version: 1, ...key }]);
  }

  current(): MasterKeyVersion {
    this.refresh(false);
    return this.loaded[0]!;
  }

  byId(id: string): MasterKeyVersion | undefined {
    this.refresh(false);
    const found = this.loaded.find((version) => version.id === id);
    if (found || this.source.kind !== 'file') return found;
    // A version this process has not seen yet: read the file again whatever its stamp says.
    this.refresh(true);
    return this.loaded.find((version) => version.id === id);
  }

  versions(): readonly MasterKeyVersion[] {
    this.refresh(false);
    return this.loaded;
  }

  /** Read the key file again if it was replaced (or always, with `force`). */
  refresh(force: boolean): void {
    if (this.source.kind !== 'file') return;
    const path = this.source.path;
    const stamp = fileStamp(path);
    // A key file removed under a running process: keep the versions it has.
    if (stamp === undefined || (!force && stamp === this.stamp)) return;
    const versions = parseMasterKeys(readFileSync(path, 'utf8'), path);
    this.stamp = stamp;
    this.loaded = versions;
  }
}

/** Where the master key file is: LETHE_MASTER_KEY_FILE (relative to the working directory), else the data dir. */
export function masterKeyPath(dataDir: string, env: Environment = process.env): string {
  const fromEnv = env.LETHE_MASTER_KEY_FILE;
  if (fromEnv !== undefined && fromEnv !== '') return isAbsolute(fromEnv) ? fromEnv : resolve(fromEnv);
  return join(dataDir, 'master.key');
}

/**
 * The master key versions: from LETHE_MASTER_KEY when set, otherwise from the key file
 * (LETHE_MASTER_KEY_FILE or `<dataDir>/master.key`), which is created (mode 0600, one key) when
 * it does not exist.
 */
export function loadMasterKeys(dataDir: string, env: Environment = process.env): MasterKeyRing {
  const fromEnv = env.LETHE_MASTER_KEY;
  if (fromEnv !== undefined && fromEnv !== '') {
    return new MasterKeyRing(
      { kind: 'env', variable: 'LETHE_MASTER_KEY' },
      parseMasterKeys(fromEnv, 'LETHE_MASTER_KEY'),
    );
  }
  const file = masterKeyPath(dataDir, env);
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
  if ((statSync(file).mode & 0o077) !== 0) chmodSync(file, 0o600);
  const stamp = fileStamp(file);
  return new MasterKeyRing(
    { kind: 'file', path: file },
    parseMasterKeys(readFileSync(file, 'utf8'), file),
    stamp,
  );
}

/** The current master key version (LETHE_MASTER_KEY or the key file, as loadMasterKeys). */
export function loadMasterKey(dataDir: string, env: Environment = process.env): MasterKeyVersion {
  return loadMasterKeys(dataDir, env).current();
}

const LOCK = {
  timeoutMs: 10_000,
  staleMs: 30_000,
  what: 'master key file',
  missingFolderHint: 'create it, or point LETHE_MASTER_KEY_FILE at a file in an existing folder',
};

function fileOf(ring: MasterKeyRing, doing: string): string {
  if (ring.source.kind === 'file') return ring.source.path;
  throw new LetheError(
    'USAGE',
    ring.source.kind === 'env'
      ? `the master key comes from ${ring.source.variable}, which Lethe cannot change: ${doing} is the operator's`
      : `this master key cannot be changed: ${doing} needs a key file`,
    {
      hint: 'see docs/security.md#key-management: put the new version first in LETHE_MASTER_KEY (v2:<new>,v1:<old>) on every process, then run lethe keys rotate',
    },
  );
}

/**
 * Add a new version (random 256 bits) as the current one, unless the file already holds more
 * than one version and `onlyIfSingle` is set (an earlier rotation has not finished). Under the
 * key file's lock; the file is replaced atomically with mode 0600. Returns the version made.
 */
export async function addMasterKeyVersion(
  ring: MasterKeyRing,
  options: { onlyIfSingle: boolean },
): Promise<MasterKeyVersion | undefined> {
  const path = fileOf(ring, 'adding a version');
  const release = await lockFile(path, LOCK);
  try {
    removeLeftovers(path);
    const versions = parseMasterKeys(readFileSync(path, 'utf8'), path);
    if (options.onlyIfSingle && versions.length > 1) return undefined;
    const made = versionOf(Math.max(...versions.map((v) => v.version)) + 1, randomBytes(KEY_BYTES));
    writeSecretFile(path, formatKeyFile([made, ...versions]));
    ring.refresh(true);
    return made;
  } finally {
    release();
  }
}

/**
 * Remove the versions other than the current one that `unused` confirms nothing references any
 * more; `unused` runs under the key file's lock, so no rotation adds or removes a version
 * meanwhile. Returns the versions removed.
 */
export async function retireMasterKeyVersions(
  ring: MasterKeyRing,
  unused: (candidates: readonly MasterKeyVersion[]) => Promise<readonly MasterKeyVersion[]>,
): Promise<MasterKeyVersion[]> {
  const path = fileOf(ring, 'retiring a version');
  const release = await lockFile(path, LOCK);
  try {
    removeLeftovers(path);
    const versions = parseMasterKeys(readFileSync(path, 'utf8'), path);
    const candidates = versions.slice(1);
    if (candidates.length === 0) return [];
    const retired = new Set((await unused(candidates)).map((v) => v.id));
    const removed = candidates.filter((v) => retired.has(v.id));
    if (removed.length > 0) {
      writeSecretFile(path, formatKeyFile(versions.filter((v) => !retired.has(v.id))));
      ring.refresh(true);
    }
    return removed;
  } finally {
    release();
  }
}
