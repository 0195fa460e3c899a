/**
 * security — master key rotation: a new master key version becomes current, everything the old
 * versions protect is re-wrapped with it while servers keep running, and the old versions are
 * retired once nothing needs them.
 *
 * What the master key protects, and how each is moved:
 *
 * - keystore entries (each workspace's secret, sealed by a master key version): re-sealed in
 *   one locked write of the keystore, each in its own state — a sealed entry stays sealed;
 *   a destroyed one (a tombstone) has nothing to re-seal.
 * - data keys in the database (`workspace_keys`, wrapped by HKDF(master ‖ workspace secret), or
 *   by the master key alone before the keystore): unwrapped with the version that wrapped them
 *   and wrapped again with the current one, row by row, each stored with a compare-and-set on
 *   the old wrapping, in batches. Rows of destroyed workspaces are left as they are: nothing
 *   can open them, and retiring their version makes even an old master-key-only wrapping
 *   unreadable.
 *
 * Every item names the version that wrapped it, and readers open it with that version, so
 * servers decrypt throughout: an item is readable under its old version until its
 * compare-and-set lands and under the new one after. A rotation cut short (a crash, Ctrl-C) is
 * finished by running it again: the sweep picks whatever is still under an older version. An
 * old version is removed from the key file only when a count taken under the key file's lock
 * finds nothing left under it (rows of destroyed workspaces aside).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import client from 'prom-client';
import { LetheError } from '../errors/index.js';
import type { WorkspaceKeyRepository } from '../store/records.js';
import type { Keystore, KeystoreRewrap } from './keystore.js';
import {
  addMasterKeyVersion,
  retireMasterKeyVersions,
  type MasterKeyRing,
  type MasterKeys,
  type MasterKeyVersion,
} from './master-key.js';
import { rewrapDataKey, type RewrapBlock } from './vault.js';

/** Where data keys are stored: a store's key rows (one per region). */
export interface KeyPlace {
  /** For messages: the region's name. */
  name: string;
  keys: WorkspaceKeyRepository;
}

export interface KeyRotationSources {
  places: readonly KeyPlace[];
  masterKeys: MasterKeyRing | MasterKeys;
  keystore: Keystore;
}

/** A version's share of the items (ids only, never a key). */
export interface VersionStatus {
  version: number;
  id: string;
  current: boolean;
  /** Active and sealed keystore entries it sealed. */
  keystoreEntries: number;
  /** Data key rows it wrapped, of workspaces not destroyed. */
  dataKeys: number;
  /** Data key rows it wrapped of destroyed workspaces (unreadable; they never hold a version back). */
  shredded: number;
  /** Not current, and nothing needs it: the next rotation step removes it. */
  retirable: boolean;
}

export interface KeyStatus {
  /** Where the versions come from: the key file, LETHE_MASTER_KEY, or given in code. */
  source: 'file' | 'env' | 'fixed';
  /** The key file (file source only). */
  path?: string;
  current: { version: number; id: string };
  /** Every version held, the current one first. */
  versions: VersionStatus[];
  /** Items wrapped under ids this deployment does not hold (a key lost, or another deployment's). */
  unknown: { id: string; keystoreEntries: number; dataKeys: number }[];
  /** Items that must stay readable: keystore entries, and data keys of workspaces not destroyed. */
  total: number;
  /** Of those, under the current version. */
  done: number;
  /** Under an older version the deployment holds: what a rotation re-wraps. */
  remaining: number;
  /** Under an older version but cannot be re-wrapped (an unknown version, a data key without its keystore entry). */
  blocked: number;
  /** Data keys of destroyed workspaces, left as they are. */
  shredded: number;
}

export interface RotationProgress {
  phase: 'keystore' | 'data keys';
  /** Items handled so far in this phase. */
  done: number;
  /** Items under older versions when the rotation began. */
  total: number;
}

export interface RotationOptions {
  /** Key rows read and re-wrapped per batch (default 100). */
  batchSize?: number;
  /** Pause between batches, to spare a busy database (default 0). */
  pauseMs?: number;
  /** Told after the keystore and after every batch of data keys; the rotation waits for it. */
  onProgress?: (progress: RotationProgress) => void | Promise<void>;
  /** Stops between two items (what is done stays done; running again finishes). */
  signal?: AbortSignal;
}

export interface BlockedKey {
  place: string;
  workspaceId: string;
  version: number;
  masterKeyId: string;
  reason: RewrapBlock;
}

export interface RotationReport {
  /** The version this rotation made (file source), or none when it finished an earlier one. */
  made?: { version: number; id: string };
  /** The version everything is now wrapped with. */
  target: { version: number; id: string };
  keystore: KeystoreRewrap;
  dataKeys: { rewrapped: number; shredded: number; blocked: BlockedKey[] };
  /** Versions removed from the key file. */
  retired: { version: number; id: string }[];
  /** Older versions still held: needed by blocked items, or (LETHE_MASTER_KEY) for the operator to remove. */
  kept: { version: number; id: string; retirable: boolean }[];
  status: KeyStatus;
}

const label = (v: { version: number; id: string }) => ({ version: v.version, id: v.id });

function sourceOf(masterKeys: MasterKeyRing | MasterKeys): { source: KeyStatus['source']; path?: string } {
  if (!('source' in masterKeys)) return { source: 'fixed' };
  const source = masterKeys.source;
  return source.kind === 'file' ? { source: 'file', path: source.path } : { source: source.kind };
}

/** Which versions protect what, now: counted from the keystore and every place's key rows. */
export async function keyStatus(sources: KeyRotationSources): Promise<KeyStatus> {
  const versions = sources.masterKeys.versions();
  const current = versions[0]!;
  const known = new Set(versions.map((v) => v.id));
  const counts = new Map<string, { keystoreEntries: number; dataKeys: number; shredded: number }>();
  const countOf = (id: string) => {
    let count = counts.get(id);
    if (!count) counts.set(id, (count = { keystoreEntries: 0, dataKeys: 0, shredded: 0 }));
    return count;
  };
  let blocked = 0;
  const states = new Map<string, string>();
  for (const entry of sources.keystore.entries()) {
    states.set(entry.workspaceId, entry.state);
    if (entry.state === 'destroyed') continue;
    const id = entry.masterKeyId ?? '(none)';
    countOf(id).keystoreEntries++;
    if (!known.has(id)) blocked++;
  }
  for (const place of sources.places) {
    for (const row of await place.keys.countByMasterKey()) {
      const state = states.get(row.workspace_id) ?? 'missing';
      const count = countOf(row.master_key_id);
      if (state === 'destroyed') {
        count.shredded += row.count;
        continue;
      }
      count.dataKeys += row.count;
      if (row.master_key_id === current.id) continue;
      // A data key under the keystore cannot be re-wrapped without its workspace's entry.
      if (!known.has(row.master_key_id) || (!row.legacy && state === 'missing')) blocked += row.count;
    }
  }
  let total = 0;
  for (const count of counts.values()) total += count.keystoreEntries + count.dataKeys;
  const here = counts.get(current.id);
  const done = here ? here.keystoreEntries + here.dataKeys : 0;
  return {
    ...sourceOf(sources.masterKeys),
    current: label(current),
    versions: versions.map((v) => {
      const count = counts.get(v.id) ?? { keystoreEntries: 0, dataKeys: 0, shredded: 0 };
      return {
        ...label(v),
        current: v.id === current.id,
        ...count,
        retirable: v.id !== current.id && count.keystoreEntries === 0 && count.dataKeys === 0,
      };
    }),
    unknown: [...counts.entries()]
      .filter(([id, count]) => !known.has(id) && count.keystoreEntries + count.dataKeys > 0)
      .map(([id, count]) => ({ id, keystoreEntries: count.keystoreEntries, dataKeys: count.dataKeys })),
    total,
    done,
    remaining: total - done - blocked,
    blocked,
    shredded: [...counts.values()].reduce((sum, count) => sum + count.shredded, 0),
  };
}

function checkAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) {
    throw new LetheError('CANCELLED', 'the key rotation was stopped before it finished', {
      hint: 'what was re-wrapped stays re-wrapped: run lethe keys rotate again to finish',
    });
  }
}

export class KeyRotation {
  constructor(private readonly sources: KeyRotationSources) {}

  status(): Promise<KeyStatus> {
    return keyStatus(this.sources);
  }

  /**
   * Rotate: with a key file, make a new current version — unless the file still holds older
   * versions, in which case an earlier rotation did not finish and this one finishes it — then
   * re-wrap everything and retire what nothing needs any more. With LETHE_MASTER_KEY the
   * operator has put the new version first; this re-wraps to it and says which versions can go.
   */
  async rotate(options: RotationOptions = {}): Promise<RotationReport> {
    const masterKeys = this.sources.masterKeys;
    let made: MasterKeyVersion | undefined;
    if ('source' in masterKeys && masterKeys.source.kind === 'file') {
      made = await addMasterKeyVersion(masterKeys, { onlyIfSingle: true });
    } else {
      const before = await this.status();
      if (before.versions.length === 1 && before.remaining + before.blocked === 0) {
        throw new LetheError(
          'USAGE',
          'LETHE_MASTER_KEY holds one version, and everything is wrapped with it',
          {
            hint: 'to rotate, put a new key first on every process: LETHE_MASTER_KEY=v2:<new key>,v1:<old key> (see docs/security.md#key-management)',
          },
        );
      }
    }
    const swept = await this.rewrap(options);
    const retired = await this.retire();
    const status = await this.status();
    return {
      ...(made ? { made: label(made) } : {}),
      target: status.current,
      ...swept,
      retired: retired.map(label),
      kept: status.versions.filter((v) => !v.current).map((v) => ({ ...label(v), retirable: v.retirable })),
      status,
    };
  }

  /**
   * Re-wrap everything under an older version with the current one: the keystore's entries, then
   * every place's key rows. Idempotent; a second pass catches rows a lagging process made under
   * an older version meanwhile.
   */
  async rewrap(options: RotationOptions = {}): Promise<Pick<RotationReport, 'keystore' | 'dataKeys'>> {
    const batchSize = options.batchSize ?? 100;
    const { masterKeys, keystore } = this.sources;
    const before = await this.status();
    const older = [...before.versions.filter((v) => !v.current), ...before.unknown];
    const keystoreTotal = older.reduce((sum, v) => sum + v.keystoreEntries, 0);
    const dataKeyTotal = older.reduce((sum, v) => sum + v.dataKeys, 0);
    const keystoreResult: KeystoreRewrap = { rewrapped: 0, blocked: [] };
    const dataKeys = { rewrapped: 0, shredded: 0, blocked: [] as BlockedKey[] };
    let handled = 0;
    for (let pass = 0; pass < 3; pass++) {
      checkAborted(options.signal);
      const sealed = await keystore.rewrap(masterKeys);
      keystoreResult.rewrapped += sealed.rewrapped;
      keystoreResult.blocked = sealed.blocked;
      await options.onProgress?.({ phase: 'keystore', done: keystoreResult.rewrapped, total: keystoreTotal });
      const blockedThisPass: BlockedKey[] = [];
      let changed = sealed.rewrapped;
      for (const place of this.sources.places) {
        let after: { workspace_id: string; version: number } | undefined;
        for (;;) {
          checkAborted(options.signal);
          const target = masterKeys.current();
          const rows = await place.keys.notUnder(target.id, after, batchSize);
          if (rows.length === 0) break;
          for (const row of rows) {
            checkAborted(options.signal);
            after = row;
            if (keystore.state(row.workspace_id) === 'destroyed') {
              if (pass === 0) dataKeys.shredded++;
              continue;
            }
            const result = rewrapDataKey(row, masterKeys, keystore, target);
            if ('blocked' in result) {
              blockedThisPass.push({
                place: place.name,
                workspaceId: row.workspace_id,
                version: row.version,
                masterKeyId: row.master_key_id,
                reason: result.blocked,
              });
              continue;
            }
            // Compare-and-set: a row changed meanwhile (another rotation) is left to the next pass.
            if (
              await place.keys.replaceWrapping(row, { wrapped_key: result.wrapped, master_key_id: target.id })
            ) {
              dataKeys.rewrapped++;
              changed++;
            }
            handled++;
          }
          await options.onProgress?.({ phase: 'data keys', done: handled, total: dataKeyTotal });
          if (options.pauseMs) await sleep(options.pauseMs);
        }
      }
      dataKeys.blocked = blockedThisPass;
      // Another pass only for items made under an older version meanwhile (a process that had
      // not seen the new version yet), or left by a compare-and-set that lost.
      const status = await this.status();
      if (status.remaining === 0 || (changed === 0 && pass > 0)) break;
    }
    return { keystore: keystoreResult, dataKeys };
  }

  /**
   * Remove from the key file every older version nothing needs any more, counted under the key
   * file's lock. With LETHE_MASTER_KEY nothing is removed (the operator does it): see `kept`.
   */
  async retire(): Promise<MasterKeyVersion[]> {
    const masterKeys = this.sources.masterKeys;
    if (!('source' in masterKeys) || masterKeys.source.kind !== 'file') return [];
    return retireMasterKeyVersions(masterKeys, async (candidates) => {
      // Items made under an older version by a process that had not yet seen the new one are
      // swept once more before counting.
      const status = await this.status();
      if (status.remaining > 0) await this.rewrap();
      const after = await this.status();
      return candidates.filter((candidate) =>
        after.versions.some((v) => v.id === candidate.id && v.retirable),
      );
    });
  }
}

/**
 * Gauges for /metrics: the current version's number, how many versions are held, and items by
 * where they are wrapped (current, old: still to re-wrap, blocked). One count per scrape.
 */
export function registerKeyGauges(registry: client.Registry, status: () => Promise<KeyStatus>): void {
  let last: { at: number; value: Promise<KeyStatus> } | undefined;
  const read = () => {
    if (!last || Date.now() - last.at > 1000) last = { at: Date.now(), value: status() };
    return last.value;
  };
  new client.Gauge({
    name: 'lethe_master_key_current_version',
    help: 'The number of the master key version everything new is wrapped with',
    registers: [registry],
    async collect() {
      this.set((await read()).current.version);
    },
  });
  new client.Gauge({
    name: 'lethe_master_key_versions',
    help: 'Master key versions held (more than one while a rotation is not finished)',
    registers: [registry],
    async collect() {
      this.set((await read()).versions.length);
    },
  });
  new client.Gauge({
    name: 'lethe_master_key_items',
    help: 'Keystore entries and data keys by the master key version that wraps them: current, old (to re-wrap), blocked',
    labelNames: ['wrapped'],
    registers: [registry],
    async collect() {
      const value = await read();
      this.set({ wrapped: 'current' }, value.done);
      this.set({ wrapped: 'old' }, value.remaining);
      this.set({ wrapped: 'blocked' }, value.blocked);
    },
  });
}
