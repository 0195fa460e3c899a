/**
 * What the operator commands (purge, audit, erase, report, workspace, token) work on: every
 * region's store with its vault and audit log, opened from the data dir and the environment
 * the server uses (LETHE_DATA_DIR, LETHE_DATABASE_URL, LETHE_REGIONS). A workspace's records
 * are always read and written in its region's store.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { LetheError } from '../errors/index.js';
import { AuditLog } from '../privacy/audit.js';
import { placeRegions } from '../regions/config.js';
import { Deployment } from '../regions/deployment.js';
import { openVault, type Vault } from '../security/vault.js';
import { loadConfig, type ServerConfig } from '../server/config.js';
import type { Store } from '../store/index.js';
import type { Workspace } from '../store/workspaces.js';
import { errorsOf, EXIT, printErrors } from './report.js';

/** One region, as the commands use it (the shape the privacy modules take). */
export interface RegionScope {
  region: string;
  store: Store;
  /** The home region's store (the directory). */
  home: Store;
  vault: Vault;
  audit: AuditLog;
  config: ServerConfig;
  filesDir(workspaceName: string): string;
}

export interface OpenedDeployment {
  config: ServerConfig;
  deployment: Deployment;
  /** Every region, the home region first. */
  scopes: RegionScope[];
  home: RegionScope;
  /** A workspace and its region's scope; a usage error when there is no such workspace. */
  workspace(name: string): Promise<{ workspace: Workspace; scope: RegionScope }>;
}

export async function openDeployment(options: {
  dataDir?: string;
  /** Refuse a data dir without a store (rather than making an empty one). */
  mustExist?: boolean;
}): Promise<OpenedDeployment> {
  const config = loadConfig({ dataDir: options.dataDir });
  if (options.mustExist && !config.databaseUrl && !existsSync(join(config.dataDir, 'lethe.db'))) {
    throw new LetheError('USAGE', `there is no Lethe store in ${config.dataDir}`, {
      hint: 'pass the server’s --data-dir (or set LETHE_DATA_DIR or LETHE_DATABASE_URL)',
    });
  }
  const deployment = await Deployment.open(
    placeRegions(config.regions, { dataDir: config.dataDir, databaseUrl: config.databaseUrl }),
  );
  const scopes = [...deployment.regions.values()].map(({ spec, store }): RegionScope => ({
    region: spec.name,
    store,
    home: deployment.home.store,
    vault: openVault(store.workspaceKeys, config.dataDir),
    audit: new AuditLog(store.db),
    config,
    filesDir: (name) => join(spec.dir, 'files', name),
  }));
  const byRegion = new Map(scopes.map((scope) => [scope.region, scope]));
  return {
    config,
    deployment,
    scopes,
    home: byRegion.get(deployment.home.spec.name)!,
    async workspace(name) {
      const located = await deployment.locate(name);
      if (!located) throw new LetheError('USAGE', `there is no workspace "${name}"`);
      return { workspace: located.workspace, scope: byRegion.get(located.region.spec.name)! };
    },
  };
}

/**
 * Open the deployment, run `work`, close it; errors are printed the CLI's way and give the
 * "invalid" exit code.
 */
export async function withDeployment(
  options: { dataDir?: string; mustExist?: boolean },
  work: (opened: OpenedDeployment) => Promise<number>,
): Promise<number> {
  let opened: OpenedDeployment | undefined;
  try {
    opened = await openDeployment(options);
    return await work(opened);
  } catch (error) {
    printErrors(errorsOf(error));
    return EXIT.invalid;
  } finally {
    await opened?.deployment.close();
  }
}
