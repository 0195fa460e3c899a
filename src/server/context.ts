/** What every server plugin gets: the store, the vault, the runner and the rest, built once. */
import type { Logger } from 'pino';
import type { AuditLog } from '../privacy/audit.js';
import type { Purger } from '../privacy/retention.js';
import type { RunService } from '../runs/service.js';
import type { Runner } from '../runs/runner.js';
import type { Vault } from '../security/vault.js';
import type { Store } from '../store/index.js';
import type { ServerConfig } from './config.js';
import type { Metrics } from './metrics.js';

export interface ServerContext {
  config: ServerConfig;
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
  /** False while starting and once shutdown has begun (for /readyz and intake). */
  isAccepting(): boolean;
  /** True once the server has been listening (so "not accepting" means "shutting down"). */
  isStarted(): boolean;
}
