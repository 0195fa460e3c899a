/**
 * The retention engine's purger: deletes what is older than its data class's period, workspace
 * by workspace with each one's effective policy (retention-policy.ts), continuously and in
 * small batches so webhook intake is never stalled; counts every purge in metrics and the
 * audit log; gives the space back (retention-space.ts).
 *
 * - A pass visits every table with an age column (retention-tables.ts: which rows may go, and
 *   how related rows — runs, their input, their details — stay consistent), oldest first.
 *   Workspaces that share a period share statements; a workspace on legal hold is skipped
 *   entirely; rows of workspaces that no longer exist follow the deployment's defaults.
 * - A batch is one statement of at most `batchSize` rows (500 by default), shrunk when it
 *   takes longer than `targetBatchMs`, and followed by a pause as long as it took: the purger
 *   never takes more than about half of the event loop, and a webhook waits for at most one
 *   batch. Passes are `intervalMs` apart.
 * - After a pass that deleted something, ONE audit entry per (workspace, class) records the
 *   count (`action: purge`, `reason: retention`); the audit log itself is purged through
 *   `AuditLog.purgeBefore`, so the chain still verifies — and never past the first entry of a
 *   workspace on legal hold.
 * - A change of settings (legal hold!) made through the API takes effect before the next
 *   batch (`settingsChanged`). A pass killed half-way (SIGKILL) has deleted what it deleted
 *   but may not have written its audit entries.
 *
 * For other parts of Lethe: `runOnce({ workspaceId, before, reason })` purges one workspace
 * (everything older than `before`, whatever its policy — e.g. a closed workspace) with the same
 * batches and receipts, `forecast()` says what a pass would delete, `status()` is the
 * retention route's answer.
 */
import { sql } from 'kysely';
import type { Logger } from 'pino';
import type { Store } from '../store/index.js';
import type { AuditLog } from './audit.js';
import {
  effectivePolicy,
  PURGEABLE_CLASSES,
  type EffectivePolicy,
  type PurgeableClass,
  type RetentionConfig,
} from './retention-policy.js';
import { SpaceReclaimer, type SpaceReport } from './retention-space.js';
import {
  countAll,
  countDue,
  deleteBatch,
  deleteInputsOf,
  expireDeadLetters,
  PURGE_TARGETS,
  type DeletedRow,
  type PurgeTarget,
  type Scope,
} from './retention-tables.js';
import { privacySettings } from './settings.js';

export interface PurgeCount {
  /** Null for the deployment-wide audit chain. */
  workspaceId: string | null;
  dataClass: PurgeableClass;
  count: number;
}

export interface PurgeReport {
  startedAt: number;
  durationMs: number;
  /** Records deleted, per workspace and class (only non-zero counts). */
  purged: PurgeCount[];
  total: number;
  /** Incomplete runs that left the dead-letter queue (now failed, EXPIRED). */
  expiredFromDlq: number;
  /** Whether the pass stopped early (shutdown). */
  interrupted: boolean;
  space: SpaceReport | undefined;
}

export interface PassOptions {
  /** Only this workspace (the audit chain, deployment-wide, is then left alone). */
  workspaceId?: string;
  /** Delete everything older than this time (epoch ms) instead of each class's period. */
  before?: number;
  /** The audit entries' reason (default `retention`) and actor (default the purger's). */
  reason?: string;
  actor?: string;
  /** Give space back after the pass (default true). */
  reclaim?: boolean;
}

export interface ForecastRow {
  workspaceId: string | null;
  /** The workspace's name; null for the deployment-wide audit chain, `?` for unknown ids. */
  workspace: string | null;
  dataClass: PurgeableClass;
  retentionDays: number;
  legalHold: boolean;
  /** Records a pass would delete now. */
  due: number;
  /** The oldest of those (epoch ms). */
  oldestDueAt: number | null;
  /** Estimated bytes they take (average row size of their tables × count), when asked for. */
  bytes?: number;
}

export interface ClassStatus {
  dataClass: PurgeableClass;
  retentionDays: number;
  source: 'deployment' | 'workspace';
  clamped: boolean;
  bounds: { min: number; max: number } | null;
  records: number;
  due: number;
  oldestAt: number | null;
}

export interface RetentionStatus {
  legalHold: boolean;
  unit: string;
  classes: ClassStatus[];
  /** The server's last pass: when, how long, and how many of this workspace's records it purged. */
  lastPass: { at: number; durationMs: number; purged: number } | undefined;
}

export interface PurgerOptions {
  store: Store;
  audit: AuditLog;
  config: RetentionConfig;
  /** Who the audit entries name (default `retention`). */
  actor?: string;
  logger?: Pick<Logger, 'info' | 'warn' | 'debug'>;
  /** Called after every batch (metrics). */
  onPurged?: (dataClass: PurgeableClass, count: number) => void;
  /** Called after every pass (metrics). */
  onPass?: (report: PurgeReport) => void;
  /** A count that grows with every write of the store's other users: unchanged = quiet. */
  writes?: () => number;
}

/** Each class's tables, in the order a pass visits them. */
const TARGETS_OF = (dataClass: PurgeableClass) => PURGE_TARGETS.filter((t) => t.dataClass === dataClass);

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Signals that the workspaces' settings changed mid-pass: the table is done again. */
class SettingsChanged extends Error {}

interface Group {
  scope: Scope;
  ms: number;
}

export class Purger {
  private readonly store: Store;
  private readonly audit: AuditLog;
  private readonly config: RetentionConfig;
  private readonly space: SpaceReclaimer;
  private batchSize: number;
  private generation = 0;
  private stopped = false;
  private timer: NodeJS.Timeout | undefined;
  private queue: Promise<unknown> = Promise.resolve();
  private lastWrites: number | undefined;
  /** Deleted since the last quiet reclaim. */
  private dirty = false;
  lastPass: PurgeReport | undefined;
  private readonly steps: { name: string; run: (now: number) => Promise<unknown> }[] = [];

  constructor(private readonly options: PurgerOptions) {
    this.store = options.store;
    this.audit = options.audit;
    this.config = options.config;
    this.batchSize = options.config.purge.batchSize;
    this.space = new SpaceReclaimer(options.store, {
      vacuumIntervalMs: options.config.purge.vacuumIntervalMs,
      targetMs: options.config.purge.targetBatchMs,
    });
  }

  /** Purge continuously: a first pass soon after start, then one every `intervalMs`. */
  start(): void {
    if (!this.config.purge.enabled || this.stopped) return;
    this.schedule(this.config.purge.initialDelayMs);
  }

  private schedule(ms: number): void {
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.runOnce().then(
        () => this.schedule(this.config.purge.intervalMs),
        (error: unknown) => {
          this.options.logger?.warn({ err: { message: (error as Error).message } }, 'purge pass failed');
          this.schedule(this.config.purge.intervalMs);
        },
      );
    }, ms);
    this.timer.unref();
  }

  /** Stop purging: the pass under way ends after its current batch (and writes its receipts). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    await this.queue.catch(() => undefined);
    this.space.close();
  }

  /**
   * More work for every regular pass, after the tables (e.g. purging closed workspaces whose
   * passive storage has ended). A step that fails is logged; the pass goes on.
   */
  addStep(name: string, run: (now: number) => Promise<unknown>): void {
    this.steps.push({ name, run });
  }

  /** Workspace settings changed (e.g. a legal hold): the pass under way reloads them. */
  settingsChanged(): void {
    this.generation++;
  }

  /** One pass now (after any pass under way); resolves with what it deleted. */
  runOnce(options: PassOptions = {}): Promise<PurgeReport> {
    const pass = this.queue.then(() => this.pass(options));
    this.queue = pass.catch(() => undefined);
    return pass;
  }

  private async policies(): Promise<Map<string, EffectivePolicy>> {
    const rows = await this.store.db.selectFrom('workspaces').select(['id', 'settings']).execute();
    return new Map(rows.map((row) => [row.id, effectivePolicy(this.config, privacySettings(row))]));
  }

  /**
   * Workspaces grouped by their period for a class: the first group follows the deployment's
   * default (and takes rows of workspaces that no longer exist); held workspaces are in none.
   * With `before`, one group of every workspace not on hold.
   */
  private groups(
    policies: Map<string, EffectivePolicy>,
    dataClass: PurgeableClass,
    options: PassOptions,
  ): Group[] {
    const defaultMs = this.config.defaults[dataClass] * this.config.unitMs;
    const held = [...policies].filter(([, policy]) => policy.legalHold).map(([id]) => id);
    if (options.workspaceId !== undefined) {
      const policy = policies.get(options.workspaceId);
      if (policy?.legalHold) return [];
      return [{ scope: { only: [options.workspaceId] }, ms: policy?.classes[dataClass].ms ?? defaultMs }];
    }
    if (options.before !== undefined) return [{ scope: { except: held }, ms: 0 }];
    const apart = [...held];
    const byPeriod = new Map<number, string[]>();
    for (const [id, policy] of policies) {
      const ms = policy.classes[dataClass].ms;
      if (policy.legalHold || ms === defaultMs) continue;
      apart.push(id);
      byPeriod.set(ms, [...(byPeriod.get(ms) ?? []), id]);
    }
    return [
      { scope: { except: apart }, ms: defaultMs },
      ...[...byPeriod].map(([ms, only]) => ({ scope: { only }, ms })),
    ];
  }

  private async pass(options: PassOptions): Promise<PurgeReport> {
    const startedAt = Date.now();
    const started = performance.now();
    const counts = new Map<string, PurgeCount>();
    const touched = new Set<string>();
    let expiredFromDlq = 0;
    const count = (workspaceId: string | null, dataClass: PurgeableClass, n: number) => {
      if (n === 0) return;
      const key = `${workspaceId ?? ''}\u0000${dataClass}`;
      const entry = counts.get(key) ?? { workspaceId, dataClass, count: 0 };
      entry.count += n;
      counts.set(key, entry);
      this.options.onPurged?.(dataClass, n);
    };
    const countRows = (workspaceIds: readonly string[], dataClass: PurgeableClass) => {
      const per = new Map<string, number>();
      for (const id of workspaceIds) per.set(id, (per.get(id) ?? 0) + 1);
      for (const [id, n] of per) count(id, dataClass, n);
    };
    const cutoffOf = (group: Group) => options.before ?? startedAt - group.ms;
    let policies = await this.policies();
    let generation = this.generation;
    /** Before each batch: stop when asked; start the table again when settings changed. */
    const beforeBatch = async () => {
      if (this.generation !== generation) {
        generation = this.generation;
        policies = await this.policies();
        throw new SettingsChanged();
      }
    };
    /** Run `step` over every group of `dataClass`, again from the start when settings change. */
    const eachGroup = async (dataClass: PurgeableClass, step: (group: Group) => Promise<void>) => {
      for (let attempt = 0; attempt < 10; attempt++) {
        try {
          for (const group of this.groups(policies, dataClass, options)) await step(group);
          return;
        } catch (error) {
          if (!(error instanceof SettingsChanged)) throw error;
        }
      }
    };
    let interrupted = false;
    try {
      for (const target of PURGE_TARGETS) {
        if (this.stopped) break;
        if (target.table === 'run_inputs') {
          // Incomplete runs leave the DLQ first (with their input), then other old inputs go.
          await eachGroup('dlq', async (group) => {
            for (;;) {
              if (this.stopped) return;
              await beforeBatch();
              const limit = this.batchSize;
              const took = await this.timed(async () => {
                const { runs, inputs } = await this.store.db.transaction().execute(async (trx) => {
                  const expired = await expireDeadLetters(
                    trx,
                    cutoffOf(group),
                    group.scope,
                    limit,
                    Date.now(),
                  );
                  return {
                    runs: expired,
                    inputs: await deleteInputsOf(
                      trx,
                      expired.map((run) => run.id),
                    ),
                  };
                });
                expiredFromDlq += runs.length;
                countRows(inputs, 'dlq');
                if (inputs.length > 0) touched.add('run_inputs');
                return runs.length;
              });
              if (took.rows < limit) return;
              await this.pace(took.ms);
            }
          });
        }
        await eachGroup(target.dataClass, async (group) => {
          let from = Number.MIN_SAFE_INTEGER;
          for (;;) {
            if (this.stopped) return;
            await beforeBatch();
            const limit = this.batchSize;
            const took = await this.timed(async () => {
              const rows = await this.deleteOne(target, cutoffOf(group), from, group.scope, limit, countRows);
              countRows(
                rows.map((row) => row.workspace_id),
                target.dataClass,
              );
              if (rows.length > 0) touched.add(target.table);
              for (const row of rows) if (row.aged > from) from = row.aged;
              return rows.length;
            });
            if (took.rows < limit) return;
            await this.pace(took.ms);
          }
        });
      }
      if (options.workspaceId === undefined && options.before === undefined) {
        for (const step of this.steps) {
          if (this.stopped) break;
          try {
            await step.run(Date.now());
          } catch (error) {
            this.options.logger?.warn(
              { step: step.name, err: { message: (error as Error).message } },
              'purge step failed',
            );
          }
        }
      }
      if (options.workspaceId === undefined && !this.stopped) {
        const purged = await this.purgeAuditChain(policies, options);
        count(null, 'audit', purged);
        if (purged > 0) touched.add('audit_log');
      }
    } finally {
      interrupted = this.stopped;
      await this.receipts([...counts.values()], policies, options);
    }
    for (const table of touched) this.space.deleted(table);
    const total = [...counts.values()].reduce((sum, entry) => sum + entry.count, 0);
    if (total > 0) this.dirty = true;
    let space: SpaceReport | undefined;
    if (options.reclaim !== false && !this.stopped) {
      const writes = this.options.writes?.();
      const quiet = writes === undefined || writes === this.lastWrites;
      this.lastWrites = writes;
      if (this.dirty) {
        space = await this.space.reclaim({ quiet, stopping: () => this.stopped });
        // Quiet and all given back: nothing to do until something is deleted again.
        if (quiet && space.complete) this.dirty = false;
      }
    }
    const report: PurgeReport = {
      startedAt,
      durationMs: performance.now() - started,
      purged: [...counts.values()],
      total,
      expiredFromDlq,
      interrupted,
      space,
    };
    this.lastPass = report;
    this.options.onPass?.(report);
    if (total > 0)
      this.options.logger?.info(
        { purged: total, ms: Math.round(report.durationMs), expiredFromDlq },
        'retention purge',
      );
    return report;
  }

  /** One batch of one table (runs: with any input left for them, in one transaction). */
  private async deleteOne(
    target: PurgeTarget,
    cutoff: number,
    from: number,
    scope: Scope,
    limit: number,
    countRows: (workspaceIds: readonly string[], dataClass: PurgeableClass) => void,
  ): Promise<DeletedRow[]> {
    if (target.table !== 'runs') return deleteBatch(this.store.db, target, cutoff, from, scope, limit);
    const { rows, inputs } = await this.store.db.transaction().execute(async (trx) => {
      const deleted = await deleteBatch(trx, target, cutoff, from, scope, limit);
      return {
        rows: deleted,
        inputs: await deleteInputsOf(
          trx,
          deleted.map((row) => row.key),
        ),
      };
    });
    countRows(inputs, 'dlq');
    return rows;
  }

  /** Where the audit chain may be cut: `before`, or a held workspace's oldest entry if earlier. */
  private async auditCutoff(policies: Map<string, EffectivePolicy>, before: number): Promise<number> {
    const held = [...policies].filter(([, policy]) => policy.legalHold).map(([id]) => id);
    if (held.length === 0) return before;
    const oldest = await this.store.db
      .selectFrom('audit_log')
      .select((eb) => eb.fn.min('at').as('at'))
      .where('workspace_id', 'in', held)
      .executeTakeFirst();
    return oldest?.at !== null && oldest?.at !== undefined ? Math.min(before, Number(oldest.at)) : before;
  }

  /** The audit chain: a prefix older than the audit period, never past a held workspace's entry. */
  private async purgeAuditChain(
    policies: Map<string, EffectivePolicy>,
    options: PassOptions,
  ): Promise<number> {
    const before = await this.auditCutoff(
      policies,
      options.before ?? Date.now() - this.config.defaults.audit * this.config.unitMs,
    );
    let purged = 0;
    for (;;) {
      if (this.stopped) break;
      const limit = this.batchSize;
      const took = await this.timed(async () => this.audit.purgeBefore(before, limit));
      purged += took.rows;
      if (took.rows < limit) break;
      await this.pace(took.ms);
    }
    return purged;
  }

  /** One audit entry per (workspace, class) that lost records. */
  private async receipts(
    counts: readonly PurgeCount[],
    policies: Map<string, EffectivePolicy>,
    options: PassOptions,
  ): Promise<void> {
    for (const entry of counts) {
      if (entry.count === 0) continue;
      const policy = entry.workspaceId === null ? undefined : policies.get(entry.workspaceId);
      const days = policy?.classes[entry.dataClass].days ?? this.config.defaults[entry.dataClass];
      try {
        await this.audit.append({
          workspaceId: entry.workspaceId,
          actor: options.actor ?? this.options.actor ?? 'retention',
          action: 'purge',
          dataClass: entry.dataClass,
          count: entry.count,
          reason: options.reason ?? 'retention',
          details:
            options.before !== undefined
              ? { before: options.before }
              : { retentionDays: days, unit: this.config.unit },
        });
      } catch (error) {
        this.options.logger?.warn(
          { dataClass: entry.dataClass, count: entry.count, err: { message: (error as Error).message } },
          'could not write a purge receipt',
        );
      }
    }
  }

  private async timed(work: () => Promise<number>): Promise<{ rows: number; ms: number }> {
    const started = performance.now();
    const rows = await work();
    const ms = performance.now() - started;
    const { batchSize, targetBatchMs } = this.config.purge;
    if (ms > targetBatchMs) this.batchSize = Math.max(10, Math.floor(this.batchSize / 2));
    else if (ms < targetBatchMs / 2) this.batchSize = Math.min(batchSize, Math.ceil(this.batchSize * 1.25));
    return { rows, ms };
  }

  /** After a batch: as long again for everyone else (at least one turn of the event loop). */
  private async pace(ms: number): Promise<void> {
    await sleep(Math.max(1, Math.min(ms, 1000)));
  }

  /** What a pass would delete now, per workspace and class (lethe purge --dry-run). */
  async forecast(options: { workspaceId?: string; sizes?: boolean } = {}): Promise<ForecastRow[]> {
    const now = Date.now();
    const workspaces = await this.store.db
      .selectFrom('workspaces')
      .select(['id', 'name', 'settings'])
      .execute();
    const policies = new Map(
      workspaces.map((row) => [row.id, effectivePolicy(this.config, privacySettings(row))]),
    );
    const defaults = effectivePolicy(this.config, {});
    const averages = options.sizes ? new Map<string, number>() : undefined;
    const average = async (table: string) => {
      if (!averages) return 0;
      if (!averages.has(table)) averages.set(table, await averageRowBytes(this.store, table));
      return averages.get(table)!;
    };
    const scopes: { scope: Scope; policy: EffectivePolicy; known: boolean }[] = [];
    for (const row of workspaces) {
      if (options.workspaceId !== undefined && row.id !== options.workspaceId) continue;
      scopes.push({ scope: { only: [row.id] }, policy: policies.get(row.id)!, known: true });
    }
    // Rows of workspaces that no longer exist: the deployment's defaults apply.
    if (options.workspaceId === undefined)
      scopes.push({ scope: { except: workspaces.map((w) => w.id) }, policy: defaults, known: false });
    const names = new Map(workspaces.map((w) => [w.id, w.name]));
    const rows = new Map<string, ForecastRow>();
    const rowOf = (workspaceId: string, dataClass: PurgeableClass, policy: EffectivePolicy) => {
      const key = `${workspaceId}\u0000${dataClass}`;
      let row = rows.get(key);
      if (!row) {
        row = {
          workspaceId,
          workspace: names.get(workspaceId) ?? '?',
          dataClass,
          retentionDays: policy.classes[dataClass].days,
          legalHold: policy.legalHold,
          due: 0,
          oldestDueAt: null,
          ...(averages ? { bytes: 0 } : {}),
        };
        rows.set(key, row);
      }
      return row;
    };
    for (const { scope, policy, known } of scopes) {
      for (const dataClass of PURGEABLE_CLASSES) {
        if (known && 'only' in scope) rowOf(scope.only[0]!, dataClass, policy);
        if (policy.legalHold) continue;
        const cutoff = now - policy.classes[dataClass].ms;
        const dlqCutoff = now - policy.classes.dlq.ms;
        for (const target of TARGETS_OF(dataClass)) {
          for (const found of await countDue(this.store.db, target, cutoff, scope, dlqCutoff)) {
            const row = rowOf(found.workspace_id, dataClass, policy);
            row.due += found.count;
            if (found.oldest !== null) row.oldestDueAt = Math.min(row.oldestDueAt ?? Infinity, found.oldest);
            if (row.bytes !== undefined) row.bytes += found.count * (await average(target.table));
          }
        }
      }
    }
    const result = [...rows.values()];
    if (options.workspaceId === undefined) {
      const chain = await this.auditChainDue(policies, now);
      result.push({
        workspaceId: null,
        workspace: null,
        dataClass: 'audit',
        retentionDays: this.config.defaults.audit,
        legalHold: false,
        due: chain.count,
        oldestDueAt: chain.oldest,
        ...(averages ? { bytes: chain.count * (await average('audit_log')) } : {}),
      });
    }
    return result;
  }

  private async auditChainDue(
    policies: Map<string, EffectivePolicy>,
    now: number,
  ): Promise<{ count: number; oldest: number | null }> {
    const before = await this.auditCutoff(policies, now - this.config.defaults.audit * this.config.unitMs);
    const row = await this.store.db
      .selectFrom('audit_log')
      .select((eb) => [eb.fn.countAll<number>().as('count'), eb.fn.min('at').as('oldest')])
      .where('at', '<', before)
      .executeTakeFirst();
    return {
      count: Number(row?.count ?? 0),
      oldest: row?.oldest === null || row?.oldest === undefined ? null : Number(row.oldest),
    };
  }

  /** The retention route's answer for a workspace: policy, records, what is due, legal hold. */
  async status(workspaceId: string): Promise<RetentionStatus> {
    return retentionStatus(this.store, this.config, workspaceId, this.lastPass);
  }
}

/** A workspace's retention status (policy per class, records, due, oldest); no purger needed. */
export async function retentionStatus(
  store: Store,
  config: RetentionConfig,
  workspaceId: string,
  lastPass?: PurgeReport,
): Promise<RetentionStatus> {
  const workspace = await store.db
    .selectFrom('workspaces')
    .select(['id', 'settings'])
    .where('id', '=', workspaceId)
    .executeTakeFirstOrThrow();
  const policy = effectivePolicy(config, privacySettings(workspace));
  const now = Date.now();
  const classes: ClassStatus[] = [];
  for (const dataClass of PURGEABLE_CLASSES) {
    const classPolicy = policy.classes[dataClass];
    const status: ClassStatus = {
      dataClass,
      retentionDays: classPolicy.days,
      source: classPolicy.source,
      clamped: classPolicy.clamped,
      bounds: classPolicy.bounds ?? null,
      records: 0,
      due: 0,
      oldestAt: null,
    };
    const oldest = (at: number | null) => {
      if (at !== null) status.oldestAt = Math.min(status.oldestAt ?? Infinity, at);
    };
    const tables: { table: PurgeTarget['table'] | 'audit_log'; agedBy: string; target?: PurgeTarget }[] = [
      ...TARGETS_OF(dataClass).map((target) => ({ table: target.table, agedBy: target.agedBy, target })),
      ...(dataClass === 'audit' ? [{ table: 'audit_log' as const, agedBy: 'at' }] : []),
    ];
    for (const { table, agedBy, target } of tables) {
      const all = await countAll(store.db, table, agedBy, workspaceId);
      status.records += all.count;
      oldest(all.oldest);
      if (policy.legalHold) continue;
      if (target) {
        const due = await countDue(
          store.db,
          target,
          now - classPolicy.ms,
          { only: [workspaceId] },
          now - policy.classes.dlq.ms,
        );
        status.due += due.reduce((sum, row) => sum + row.count, 0);
      } else {
        const due = await sql<{ count: number | string }>`select count(*) as count from audit_log
          where workspace_id = ${workspaceId} and at < ${now - classPolicy.ms}`.execute(store.db);
        status.due += Number(due.rows[0]?.count ?? 0);
      }
    }
    classes.push(status);
  }
  return {
    legalHold: policy.legalHold,
    unit: config.unit,
    classes,
    // This workspace's share of the last pass only: nothing about other workspaces.
    lastPass: lastPass && {
      at: lastPass.startedAt,
      durationMs: lastPass.durationMs,
      purged: lastPass.purged
        .filter((entry) => entry.workspaceId === workspaceId)
        .reduce((sum, entry) => sum + entry.count, 0),
    },
  };
}

/**
 * The average size of a table's rows, for forecasts: SQLite's `dbstat` (pages of the table and
 * its indexes) when the build has it, else the length of its text columns; PostgreSQL's
 * `pg_total_relation_size` (table, indexes, TOAST). Divided by the rows the table holds.
 */
export async function averageRowBytes(store: Store, table: string): Promise<number> {
  const countRow = await sql<{
    count: number | string;
  }>`select count(*) as count from ${sql.table(table)}`.execute(store.db);
  const rows = Number(countRow.rows[0]?.count ?? 0);
  if (rows === 0) return 0;
  if (store.dialect === 'postgres') {
    const size = await sql<{ bytes: number | string }>`
      select pg_total_relation_size(to_regclass(${table})) as bytes`.execute(store.db);
    return Number(size.rows[0]?.bytes ?? 0) / rows;
  }
  try {
    const size = await sql<{ bytes: number | string | null }>`
      select sum(pgsize) as bytes from dbstat
      where name in (select name from sqlite_master where tbl_name = ${table})`.execute(store.db);
    return Number(size.rows[0]?.bytes ?? 0) / rows;
  } catch {
    // No dbstat in this build: the text and blob columns' lengths.
    const columns = await sql<{ name: string }>`select name from pragma_table_info(${table})`.execute(
      store.db,
    );
    const lengths = sql.join(
      columns.rows.map((column) => sql`coalesce(length(${sql.ref(column.name)}), 0)`),
      sql` + `,
    );
    const size = await sql<{ bytes: number | string | null }>`
      select avg(${lengths}) as bytes from ${sql.table(table)}`.execute(store.db);
    return Number(size.rows[0]?.bytes ?? 0);
  }
}
