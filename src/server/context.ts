/**
 * What every server plugin gets: the store, the vault, the runner and the rest, built once per
 * region. Plugins are given the home region's context; a guarded route works in the context of
 * the workspace's region (`scopeOf(request)` in ./auth.ts), so a workspace's rows are read and
 * written in its region's store only.
 */
import type { Logger } from 'pino';
import type { AuditLog } from '../privacy/audit.js';
import type { Purger } from '../privacy/retention.js';
import type { Deployment } from '../regions/deployment.js';
import type { RunService } from '../runs/service.js';
import type { Runner } from '../runs/runner.js';
import type { Vault } from '../security/vault.js';
import type { Store } from '../store/index.js';
import type { ServerConfig } from './config.js';
import type { Metrics } from './metrics.js';

export interface ServerContext {
  config: ServerConfig;
  /** This context's region: `store`, `vault`, `runner`, `runs`, `audit`… are that region's. */
  region: string;
  /** Every region's store; the home region's also holds the directory (src/regions). */
  deployment: Deployment;
  /** The home region's store: the directory of workspaces (name → region), API tokens, users. */
  home: Store;
  /** Every region's context, by name (the home region's included). */
  regions: ReadonlyMap<string, ServerContext>;
  store: Store;
  vault: Vault;
  runner: Runner;
  runs: RunService;
  metrics: Metrics;
  logger: Logger;
  /** The hash-chained audit log (deletion receipts, and more with the security issue). */
  audit: AuditLog;
  /** The retention engine's purger (purging continuously unless LETHE_PURGE=0). */
  retention?: Purger;
  /** Schedules and polls: told when flows change, so changes take effect at once. */
  triggers?: { refresh(): Promise<void> };
  /** The webhook targets the hooks plugin caches: forgotten when flows change, so a deleted or
   * disabled flow's webhook stops at once rather than after the cache's lag. */
  hookTargets?: { forget(): void };
  /** False while starting and once shutdown has begun (for /readyz and intake). */
  isAccepting(): boolean;
  /** True once the server has been listening (so "not accepting" means "shutting down"). */
  isStarted(): boolean;
}
