/**
 * The stores of a deployment: one per region, the home region's also holding the directory —
 * every workspace's name, id and region, and the deployment's access records (API tokens,
 * users, memberships). A workspace's own rows (flows, connections, runs, logs, keys…) live in
 * its region's store only; in a region other than home, the store holds a copy of the
 * workspace row too (with the same id), so the region is complete on its own.
 */
import { mkdirSync } from 'node:fs';
import { LetheError } from '../errors/index.js';
import { Store } from '../store/index.js';
import { WORKSPACE_NAME_PATTERN, type Workspace } from '../store/workspaces.js';
import type { RegionSpec } from './config.js';

export interface RegionStore {
  spec: RegionSpec;
  store: Store;
}

/** A workspace found through the directory: its row in its region's store, and the region. */
export interface Located {
  /** The row in the region's store (status, settings… are this row's). */
  workspace: Workspace;
  region: RegionStore;
}

export class Deployment {
  private constructor(
    readonly home: RegionStore,
    readonly regions: ReadonlyMap<string, RegionStore>,
  ) {}

  /** Open (and migrate) every region's store; if one fails, the ones opened are closed. */
  static async open(
    specs: readonly RegionSpec[],
    options: { sqliteSynchronous?: 'full' | 'normal' } = {},
  ): Promise<Deployment> {
    const opened = new Map<string, RegionStore>();
    try {
      for (const spec of specs) {
        mkdirSync(spec.dir, { recursive: true, mode: 0o700 });
        const store = await Store.open({
          url: spec.url,
          dataDir: spec.dir,
          sqliteSynchronous: options.sqliteSynchronous,
        });
        opened.set(spec.name, { spec, store });
      }
    } catch (error) {
      for (const region of opened.values()) await region.store.close();
      throw error;
    }
    const home = [...opened.values()].find((region) => region.spec.home);
    if (!home) throw new LetheError('USAGE', 'the deployment has no home region');
    return new Deployment(home, opened);
  }

  /** The region of that name, or an error saying which regions exist. */
  region(name: string): RegionStore {
    const region = this.regions.get(name);
    if (!region) {
      throw new LetheError('USAGE', `unknown region "${name}"`, {
        hint: `this deployment has ${[...this.regions.keys()].map((known) => `"${known}"`).join(', ')} (LETHE_REGIONS)`,
      });
    }
    return region;
  }

  /** A workspace by name, through the directory; undefined when there is none. */
  async locate(name: string): Promise<Located | undefined> {
    const entry = await this.home.store.workspaces.byName(name);
    return entry && this.resolve(entry);
  }

  /** Where a directory entry's workspace lives, and its row there. */
  async resolve(entry: Workspace): Promise<Located> {
    const region = this.regions.get(entry.region);
    if (!region) {
      throw new LetheError(
        'UNAVAILABLE',
        `workspace "${entry.name}" lives in region "${entry.region}", which this process is not configured for`,
        { hint: 'add the region to LETHE_REGIONS' },
      );
    }
    if (region === this.home) return { workspace: entry, region };
    const workspace = await region.store.workspaces.byId(entry.id);
    if (!workspace) {
      throw new LetheError(
        'UNAVAILABLE',
        `workspace "${entry.name}" is missing from the store of its region "${entry.region}"`,
        { hint: 'check that LETHE_REGIONS points at the right store for that region' },
      );
    }
    return { workspace, region };
  }

  /**
   * A new workspace in a region (the home region when not said). Names are unique across the
   * deployment; making one that exists in the same region returns it, in another is an error.
   */
  async createWorkspace(name: string, regionName: string = this.home.spec.name): Promise<Located> {
    if (!WORKSPACE_NAME_PATTERN.test(name)) {
      throw new LetheError('USAGE', `invalid workspace name "${name}": use a-z, 0-9, "_" and "-"`);
    }
    const region = this.region(regionName);
    const existing = await this.home.store.workspaces.byName(name);
    if (existing) {
      if (existing.region !== region.spec.name) {
        throw new LetheError(
          'CONFLICT',
          `workspace "${name}" exists already, in region "${existing.region}"`,
          {
            hint: 'workspace names are unique across regions; move it with lethe workspace move',
          },
        );
      }
      return (await this.locate(name))!;
    }
    if (region === this.home) {
      return { workspace: await this.home.store.workspaces.ensure(name, region.spec.name), region };
    }
    // The region's row first: the directory entry is what makes the workspace visible.
    const workspace = await region.store.workspaces.ensure(name, region.spec.name);
    try {
      await this.home.store.workspaces.insert({ ...workspace });
    } catch (error) {
      await region.store.db.deleteFrom('workspaces').where('id', '=', workspace.id).execute();
      throw error;
    }
    return { workspace, region };
  }

  async close(): Promise<void> {
    for (const region of this.regions.values()) await region.store.close();
  }
}
