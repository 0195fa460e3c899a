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
import { placeRegions } from '../regions/config.js';
import { Deployment } from '../regions/deployment.js';
import { purgeClosedWorkspaces } from '../privacy/workspace-lifecycle.js';
import { RunService } from '../runs/service.js';
import { Runner } from '../runs/runner.js';
import { openKeystore } from '../security/keystore.js';
import { keyStatus, registerKeyGauges } from '../security/key-rotation.js';
import { loadMasterKeys, Vault } from '../security/vault.js';
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
  const deployment = await Deployment.open(
    placeRegions(config.regions, { dataDir: config.dataDir, databaseUrl: config.databaseUrl }),
    { sqliteSynchronous: config.sqliteSynchronous },
  );
  // starting → accepting → closing
  let phase: 'starting' | 'accepting' | 'closing' = 'starting';
  const contexts = new Map<string, ServerContext>();
  const all = () => [...contexts.values()];
  const triggersOf = new Map<ServerContext, Triggers>();
  try {
    const { workspace } = await deployment.createWorkspace(DEFAULT_WORKSPACE);
    // Master key versions: the key file is read again when `lethe keys rotate` replaces it.
    const master = loadMasterKeys(config.dataDir);
    const keystore = openKeystore(config.dataDir);
    // The gauges read the runners when scraped, after they exist; figures are the regions' sums.
    const metrics: Metrics = new Metrics(
      async () => {
        let queued = 0;
        for (const context of all()) queued += (await context.store.runs.countByStatus()).queued ?? 0;
        return queued;
      },
      () => all().reduce((sum, context) => sum + context.runner.activeCount, 0),
      () =>
        all().reduce(
          (sum, context) => ({
            commits: sum.commits + context.store.commits.stats.commits,
            items: sum.items + context.store.commits.stats.items,
          }),
          { commits: 0, items: 0 },
        ),
    );
    const keyPlaces = [...deployment.regions.values()].map((r) => ({
      name: r.spec.name,
      keys: r.store.workspaceKeys,
    }));
    registerKeyGauges(metrics.registry, () => keyStatus({ places: keyPlaces, masterKeys: master, keystore }));
    for (const { spec, store } of deployment.regions.values()) {
      mkdirSync(join(spec.dir, 'files'), { recursive: true });
      const vault = new Vault(store.workspaceKeys, master, keystore);
      const runner = new Runner({
        store,
        vault,
        dataDir: spec.dir,
        concurrency: config.concurrency,
        logger: logger.child({ component: 'runner', region: spec.name }),
        onFinished: (_run, status, result) => metrics.runFinished(status, result),
      });
      const audit = new AuditLog(store.db);
      const context: ServerContext = {
        config,
        region: spec.name,
        deployment,
        home: deployment.home.store,
        regions: contexts,
        store,
        vault,
        runner,
        runs: new RunService(store, runner),
        metrics,
        logger,
        audit,
        isAccepting: () => phase === 'accepting',
        isStarted: () => phase !== 'starting',
      };
      // Retention: purges continuously in small batches once the server listens (LETHE_PURGE=0: never).
      const retention = (context.retention = new Purger({
        store,
        audit,
        config: config.retention,
        logger: logger.child({ component: 'retention', region: spec.name }),
        onPurged: (dataClass, count) => metrics.purgedRecords.inc({ data_class: dataClass }, count),
        onPass: (report) => metrics.purgeDuration.observe(report.durationMs / 1000),
        writes: () => store.commits.stats.items,
      }));
      // Closed workspaces whose passive storage has ended are purged by the same passes.
      retention.addStep('closed workspaces', (now) => purgeClosedWorkspaces(context, now));
      const triggers = new Triggers(context);
      context.triggers = triggers;
      triggersOf.set(context, triggers);
      contexts.set(spec.name, context);
    }
    const context = contexts.get(deployment.home.spec.name)!;
    if (config.seedExamples)
      await seedExamples(context.store, workspace, context.runner.filesDir(workspace.name));
    const app = await buildApp(context);
    for (const regional of all()) {
      const recovered = await regional.runner.start();
      if (recovered.requeued + recovered.deadLettered > 0) {
        logger.warn(
          { ...recovered, region: regional.region },
          'runs left running by an earlier stop were recovered',
        );
      }
    }
    for (const triggers of triggersOf.values()) await triggers.start();
    const address = await app.listen({ port: config.port, host: config.host });
    phase = 'accepting';
    for (const regional of all()) regional.retention?.start();
    logger.info(
      {
        url: address,
        store: context.store.dialect,
        regions: all().map((regional) => regional.region),
        concurrency: config.concurrency,
      },
      'lethe is listening',
    );
    const triggers = triggersOf.get(context)!;

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
        for (const regional of triggersOf.values()) await regional.stop();
        logger.debug('triggers stopped');
        // A pass under way ends after its current batch; the maintenance connection closes.
        for (const regional of all()) await regional.retention?.stop();
        await Promise.all(all().map((regional) => regional.runner.stop(config.shutdownGraceMs)));
        logger.debug('runners stopped');
        await deployment.close();
        logger.info('stopped');
      })());
    return { app, context, triggers, url: address, close };
  } catch (error) {
    for (const regional of all()) await regional.retention?.stop();
    await deployment.close();
    throw error;
  }
}
