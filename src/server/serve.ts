/**
 * Starting and stopping a server: open the store (migrating it), make sure the `default`
 * workspace exists, load the master key, recover runs a crash left behind, start the
 * triggers and the HTTP listener. Stopping is the reverse, gracefully: intake closes first,
 * running runs get a grace period and are otherwise put back in the queue, then the store
 * closes — so nothing accepted is lost.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { FastifyInstance } from 'fastify';
import pino, { type Logger } from 'pino';
import { egressFromEnvironment } from '../egress/index.js';
import { AuditLog } from '../privacy/audit.js';
import { Purger } from '../privacy/retention.js';
import { purgeClosedWorkspaces } from '../privacy/workspace-lifecycle.js';
import { RunService } from '../runs/service.js';
import { Runner } from '../runs/runner.js';
import { openKeystore } from '../security/keystore.js';
import { loadMasterKey, Vault } from '../security/vault.js';
import { Store } from '../store/index.js';
import { Triggers } from '../triggers/index.js';
import { buildApp } from './app.js';
import type { ServerConfig } from './config.js';
import type { ServerContext } from './context.js';
import { Metrics } from './metrics.js';
import { seedExamples } from './seed.js';

export const DEFAULT_WORKSPACE = 'default';

export interface RunningServer {
  app: FastifyInstance;
  context: ServerContext;
  triggers: Triggers;
  /** The address it listens on, e.g. http://127.0.0.1:8080 */
  url: string;
  /** Graceful stop; resolves when everything is closed. */
  close(): Promise<void>;
}

export function createLogger(level: string, destination?: NodeJS.WritableStream): Logger {
  // Logs carry ids and counts only; no redaction rules are needed because nothing else is logged.
  return pino(
    { level, base: { service: 'lethe' }, timestamp: pino.stdTimeFunctions.isoTime },
    destination ?? process.stdout,
  );
}

export async function startServer(
  config: ServerConfig,
  logger: Logger = createLogger(config.logLevel),
): Promise<RunningServer> {
  // A wrong LETHE_EGRESS_* entry stops the start, rather than the first run that connects.
  egressFromEnvironment();
  mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
  mkdirSync(join(config.dataDir, 'files'), { recursive: true });
  const store = await Store.open({
    url: config.databaseUrl,
    dataDir: config.dataDir,
    sqliteSynchronous: config.sqliteSynchronous,
  });
  // starting → accepting → closing
  let phase: 'starting' | 'accepting' | 'closing' = 'starting';
  let retention: Purger | undefined;
  try {
    const workspace = await store.workspaces.ensure(DEFAULT_WORKSPACE);
    const vault = new Vault(store.workspaceKeys, loadMasterKey(config.dataDir), openKeystore(config.dataDir));
    // The gauges read the runner when scraped, after it exists.
    const metrics: Metrics = new Metrics(
      async () => (await store.runs.countByStatus()).queued ?? 0,
      () => runner.activeCount,
      () => store.commits.stats,
    );
    const runner = new Runner({
      store,
      vault,
      dataDir: config.dataDir,
      concurrency: config.concurrency,
      logger: logger.child({ component: 'runner' }),
      onFinished: (_run, status, result) => metrics.runFinished(status, result),
    });
    const runs = new RunService(store, runner);
    const context: ServerContext = {
      config,
      store,
      vault,
      runner,
      runs,
      metrics,
      logger,
      audit: new AuditLog(store.db),
      isAccepting: () => phase === 'accepting',
      isStarted: () => phase !== 'starting',
    };
    // Retention: purges continuously in small batches once the server listens (LETHE_PURGE=0: never).
    retention = context.retention = new Purger({
      store,
      audit: context.audit,
      config: config.retention,
      logger: logger.child({ component: 'retention' }),
      onPurged: (dataClass, count) => metrics.purgedRecords.inc({ data_class: dataClass }, count),
      onPass: (report) => metrics.purgeDuration.observe(report.durationMs / 1000),
      writes: () => store.commits.stats.items,
    });
    // Closed workspaces whose passive storage has ended are purged by the same passes.
    retention.addStep('closed workspaces', (now) => purgeClosedWorkspaces(context, now));
    if (config.seedExamples)
      await seedExamples(store, workspace, join(config.dataDir, 'files', workspace.name));
    const triggers = new Triggers(context);
    context.triggers = triggers;
    const app = await buildApp(context);
    const recovered = await runner.start();
    if (recovered.requeued + recovered.deadLettered > 0) {
      logger.warn(recovered, 'runs left running by an earlier stop were recovered');
    }
    await triggers.start();
    const address = await app.listen({ port: config.port, host: config.host });
    phase = 'accepting';
    retention.start();
    logger.info(
      { url: address, store: store.dialect, concurrency: config.concurrency },
      'lethe is listening',
    );

    let closing: Promise<void> | undefined;
    const close = () =>
      (closing ??= (async () => {
        phase = 'closing';
        logger.info('shutting down: intake closed');
        // In-flight requests finish; a connection still open after the grace period is cut.
        const cut = setTimeout(() => app.server.closeAllConnections(), config.shutdownGraceMs);
        await app.close();
        clearTimeout(cut);
        logger.debug('http closed');
        await triggers.stop();
        logger.debug('triggers stopped');
        // A pass under way ends after its current batch; the maintenance connection closes.
        await context.retention?.stop();
        await runner.stop(config.shutdownGraceMs);
        logger.debug('runner stopped');
        await store.close();
        logger.info('stopped');
      })());
    return { app, context, triggers, url: address, close };
  } catch (error) {
    await retention?.stop();
    await store.close();
    throw error;
  }
}
