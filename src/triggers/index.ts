/**
 * triggers — what starts runs besides API calls and webhooks: schedules (cron with time zones)
 * and polls (re-reading a source and firing on new or changed rows). One Triggers object
 * watches every enabled flow of the store and keeps its timers in step with flow changes:
 * it re-reads the store's scheduled and polled flows every `rescanMs`, and at once when
 * told (`refresh()`, for the flows API after a change).
 *
 * Exactly once, across restarts and processes: every run is created with an idempotency key
 * (a schedule's flow and tick, a poll's row), which the store makes unique per workspace, so
 * two processes — or a process retrying after a crash — that fire the same tick or row make one
 * run. Polls of one flow never overlap: in a process they are serialised, across processes a
 * lease in trigger_state keeps a second poller out. See docs/triggers.md.
 */
import { randomUUID } from 'node:crypto';
import type { Cron } from 'croner';
import { LetheErrors, toLetheError, type ErrorCode } from '../errors/index.js';
import type { LoadedFlow } from '../flow/load.js';
import { parseDuration } from '../runs/runner.js';
import type { ServerContext } from '../server/context.js';
import type { FlowRow } from '../store/flows.js';
import type { Workspace } from '../store/workspaces.js';
import { pollFlow, type PollDefinition, type PollOutcome, type PollState } from './poll.js';
import { cronOf, dueTicks, nextTick, scheduleKey, type MissedPolicy } from './schedule.js';
import { acquireLease, releaseLease } from './store-queries.js';

export { dueTicks, scheduleKey } from './schedule.js';
export type { PollOutcome } from './poll.js';

export interface TriggerOptions {
  /** Re-read the store's scheduled and polled flows this often, in ms (default 5000). */
  rescanMs?: number;
  /** The clock (epoch ms); tests pass their own. */
  now?: () => number;
  /**
   * Keep timers (default true). Without them nothing happens by itself: `refresh()`,
   * `checkSchedules()` and `pollOnce()` are called by hand (tests).
   */
  timers?: boolean;
  /** A tick older than this when its timer fires counts as missed, in ms (default 60 s). */
  lateMs?: number;
  /** How long a poll may hold its cross-process lease, in ms (default 10 min). */
  pollLeaseMs?: number;
}

/** What a schedule keeps in trigger_state (kind `schedule`). */
export interface ScheduleState {
  /** The latest tick handled (fired, or skipped as missed), epoch ms. */
  last: number;
  /** The same, as ISO text, for people reading the store. */
  tick: string;
}

export interface FiredTick {
  workspaceId: string;
  flow: string;
  tick: string;
  runId: string;
  duplicate: boolean;
}

interface Job {
  key: string;
  workspace: Workspace;
  flow: FlowRow;
  timer?: NodeJS.Timeout;
}

interface ScheduleJob extends Job {
  cron: Cron;
  missed: MissedPolicy;
  /** Ticks at or before this are not this job's (before the flow version, or while disabled). */
  floor: number;
  /** Ticks from here on came while this process watched the flow. */
  since: number;
}

interface PollJob extends Job {
  poll: PollDefinition;
  everyMs: number;
}

/** Errors that firing again cannot fix: logged once per tick and the tick is passed. */
const PERMANENT: ReadonlySet<ErrorCode> = new Set(['USAGE', 'FLOW_INVALID', 'FLOW_SYNTAX', 'PARAM_INVALID']);

const MAX_TIMER_MS = 3_600_000;

function codeOf(error: unknown): ErrorCode {
  return error instanceof LetheErrors ? error.code : toLetheError(error).code;
}

function keyOf(flow: { workspace_id: string; name: string }): string {
  return `${flow.workspace_id}\u0000${flow.name}`;
}

export class Triggers {
  private readonly now: () => number;
  private readonly rescanMs: number;
  private readonly timers: boolean;
  private readonly lateMs: number;
  private readonly pollLeaseMs: number;
  private readonly schedules = new Map<string, ScheduleJob>();
  private readonly polls = new Map<string, PollJob>();
  /** Work per flow, chained so that checks and polls of one flow never overlap. */
  private readonly busy = new Map<string, Promise<unknown>>();
  /** Flow versions that failed to load, so a broken one is logged once, not every scan. */
  private readonly broken = new Map<string, number>();
  private readonly abort = new AbortController();
  private readonly instance = randomUUID();
  private readonly log;
  private rescanTimer: NodeJS.Timeout | undefined;
  private scanning: Promise<void> | undefined;
  private rescanWanted = false;
  private startedAt: number | undefined;
  private lastScanAt: number | undefined;
  private lastScanWall: number | undefined;
  private started = false;
  private stopped = false;

  constructor(
    private readonly context: ServerContext,
    options: TriggerOptions = {},
  ) {
    this.now = options.now ?? Date.now;
    this.rescanMs = options.rescanMs ?? 5000;
    this.timers = options.timers ?? true;
    this.lateMs = options.lateMs ?? 60_000;
    this.pollLeaseMs = options.pollLeaseMs ?? 600_000;
    this.log = context.logger.child({ component: 'triggers' });
  }

  /** When this object began watching (epoch ms): ticks before it and not yet fired were missed. */
  get startTime(): number | undefined {
    return this.startedAt;
  }

  /** Read the store's flows, catch up on missed ticks, and (with timers) keep watching. */
  async start(): Promise<void> {
    if (this.stopped || this.started) return;
    this.started = true;
    this.startedAt ??= this.now();
    await this.refresh();
    if (this.timers && !this.stopped) {
      this.rescanTimer = setInterval(() => void this.refresh(), this.rescanMs);
      this.rescanTimer.unref();
    }
  }

  /** Stop every timer and wait for checks and polls under way (a poll is cancelled). */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.rescanTimer) clearInterval(this.rescanTimer);
    this.rescanTimer = undefined;
    for (const job of this.schedules.values()) this.dropSchedule(job);
    for (const job of this.polls.values()) this.dropPoll(job);
    this.schedules.clear();
    this.polls.clear();
    this.abort.abort();
    await this.scanning;
    await Promise.allSettled([...this.busy.values()]);
  }

  /**
   * Re-read the store's scheduled and polled flows now: flows created, changed, enabled,
   * disabled or deleted since the last scan take effect. Calls made while a scan runs are
   * folded into one more scan after it.
   */
  refresh(): Promise<void> {
    if (this.stopped) return Promise.resolve();
    this.startedAt ??= this.now();
    this.rescanWanted = true;
    this.scanning ??= (async () => {
      try {
        while (this.rescanWanted && !this.stopped) {
          this.rescanWanted = false;
          await this.scan().catch((error) => this.logError('scanning flows', error));
        }
      } finally {
        this.scanning = undefined;
      }
    })();
    return this.scanning;
  }

  /** Check every watched schedule now (what the timers do); returns the ticks fired. */
  async checkSchedules(): Promise<FiredTick[]> {
    await this.refresh();
    const fired = await Promise.all(
      [...this.schedules.values()].map((job) => this.serial(job.key, () => this.checkSchedule(job))),
    );
    return fired.flat();
  }

  /**
   * Poll one flow now, whatever its interval (what the timers do when it is due). Resolves when
   * the poll is done; throws what made it fail.
   */
  async pollOnce(workspaceId: string, flowName: string): Promise<PollOutcome> {
    return this.serial(keyOf({ workspace_id: workspaceId, name: flowName }), () =>
      this.poll(workspaceId, flowName, true),
    );
  }

  // --- scanning -------------------------------------------------------------------------------

  private async scan(): Promise<void> {
    const now = this.now();
    const previous = this.lastScanAt;
    // The store stamps flows with the wall clock, so "changed since the last scan" asks it.
    const wallNow = Date.now();
    const previousWall = this.lastScanWall;
    const { flows, workspaces } = this.context.store;
    const [scheduled, polled] = await Promise.all([flows.withTrigger('schedule'), flows.withTrigger('poll')]);
    const workspaceCache = new Map<string, Promise<Workspace | undefined>>();
    const workspaceOf = (id: string) => {
      let found = workspaceCache.get(id);
      if (!found) workspaceCache.set(id, (found = workspaces.byId(id)));
      return found;
    };
    const load = async (row: FlowRow): Promise<{ workspace: Workspace; loaded: LoadedFlow } | undefined> => {
      const key = keyOf(row);
      if (this.broken.get(key) === row.version) return undefined;
      try {
        const workspace = await workspaceOf(row.workspace_id);
        if (!workspace) return undefined;
        const loaded = await this.context.runner.flows.get(
          workspace.id,
          workspace.name,
          row.name,
          row.version,
        );
        this.broken.delete(key);
        return { workspace, loaded };
      } catch (error) {
        this.broken.set(key, row.version);
        this.logError('loading a triggered flow', error, row);
        return undefined;
      }
    };

    const scheduleKeys = new Set<string>();
    for (const row of scheduled) {
      const key = keyOf(row);
      scheduleKeys.add(key);
      const current = this.schedules.get(key);
      if (current && current.flow.version === row.version) continue;
      const found = await load(row);
      const schedule = found?.loaded.flow.trigger?.schedule;
      if (!found || !schedule || this.stopped) continue;
      let cron: Cron;
      try {
        cron = cronOf(schedule, found.loaded.flow.timezone);
      } catch (error) {
        this.logError('reading a schedule', error, row);
        continue;
      }
      // A flow that was in the store, unchanged, at the last scan but not scheduled then was
      // enabled since: ticks while it was disabled are not missed, they are not its.
      const enabledSince =
        previous !== undefined && previousWall !== undefined && !current && row.updated_at <= previousWall;
      const floor = enabledSince ? previous : row.updated_at;
      const job: ScheduleJob = {
        key,
        workspace: found.workspace,
        flow: row,
        cron,
        missed: schedule.missed ?? 'once',
        floor,
        since: Math.min(now, Math.max(this.startedAt ?? now, floor)),
      };
      if (current) this.dropSchedule(current);
      this.schedules.set(key, job);
      if (this.timers) {
        // Catch up at once (missed ticks), then follow the cron.
        void this.serial(key, () => this.checkSchedule(job)).finally(() => this.armSchedule(job));
      }
    }
    for (const [key, job] of this.schedules) {
      if (scheduleKeys.has(key)) continue;
      this.dropSchedule(job);
      this.schedules.delete(key);
    }

    const pollKeys = new Set<string>();
    for (const row of polled) {
      const key = keyOf(row);
      pollKeys.add(key);
      const current = this.polls.get(key);
      if (current && current.flow.version === row.version) continue;
      const found = await load(row);
      const poll: PollDefinition | undefined = found?.loaded.flow.trigger?.poll;
      if (!found || !poll || this.stopped) continue;
      const job: PollJob = {
        key,
        workspace: found.workspace,
        flow: row,
        poll,
        everyMs: Math.max(1000, parseDuration(poll.every, 60_000)),
      };
      if (current) this.dropPoll(current);
      this.polls.set(key, job);
      if (this.timers) {
        // Keep the interval across restarts and processes: poll when the last poll is `every` old.
        const state = await this.context.store.triggerState
          .get<PollState>(row.workspace_id, row.name, 'poll')
          .catch(() => undefined);
        const due = state?.polledAt === undefined ? 0 : state.polledAt + job.everyMs - this.now();
        this.armPoll(job, Math.max(0, due));
      }
    }
    for (const [key, job] of this.polls) {
      if (pollKeys.has(key)) continue;
      this.dropPoll(job);
      this.polls.delete(key);
    }
    for (const key of this.broken.keys()) {
      if (!scheduleKeys.has(key) && !pollKeys.has(key)) this.broken.delete(key);
    }
    this.lastScanAt = now;
    this.lastScanWall = wallNow;
  }

  // --- schedules ------------------------------------------------------------------------------

  private armSchedule(job: ScheduleJob): void {
    if (!this.timers || this.stopped || this.schedules.get(job.key) !== job) return;
    if (job.timer) clearTimeout(job.timer);
    const now = this.now();
    const next = nextTick(job.cron, now);
    if (next === undefined) return; // the expression has no future ticks
    job.timer = setTimeout(
      () => {
        job.timer = undefined;
        void this.serial(job.key, () => this.checkSchedule(job)).finally(() => this.armSchedule(job));
      },
      Math.min(Math.max(next - now, 0), MAX_TIMER_MS),
    );
    job.timer.unref();
  }

  private dropSchedule(job: ScheduleJob): void {
    if (job.timer) clearTimeout(job.timer);
    job.timer = undefined;
    job.cron.stop();
  }

  /** Fire a schedule's due ticks (by its missed-fire policy) and record the latest one handled. */
  private async checkSchedule(job: ScheduleJob): Promise<FiredTick[]> {
    if (this.stopped || this.schedules.get(job.key) !== job) return [];
    const { store } = this.context;
    const { workspace } = job;
    const fired: FiredTick[] = [];
    try {
      const now = this.now();
      const flow = await store.flows.get(workspace.id, job.flow.name);
      if (
        !flow ||
        flow.enabled !== 1 ||
        flow.trigger_kind !== 'schedule' ||
        flow.version !== job.flow.version
      ) {
        void this.refresh(); // changed since the last scan: the job is rebuilt or dropped
        return [];
      }
      const state = await store.triggerState.get<ScheduleState>(workspace.id, flow.name, 'schedule');
      const handled = state?.last ?? Number.NEGATIVE_INFINITY;
      const due = dueTicks(job.cron, job.missed, {
        floor: Math.max(job.floor, handled),
        onTimeFrom: Math.max(job.since, now - this.lateMs),
        now,
      });
      if (due.last === undefined) return [];
      if (due.missed !== undefined) {
        this.log.info(
          {
            workspace: workspace.id,
            flow: flow.name,
            tick: new Date(due.missed).toISOString(),
            missed: job.missed,
          },
          job.missed === 'once' ? 'firing the most recent missed tick' : 'skipping missed ticks',
        );
      }
      let last = due.missed !== undefined && job.missed === 'skip' ? due.missed : handled;
      try {
        for (const tick of due.fire) {
          if (this.stopped) break;
          try {
            const created = await this.context.runs.create({
              workspace,
              flow,
              trigger: 'schedule',
              idempotencyKey: scheduleKey(flow.name, tick),
            });
            const iso = new Date(tick).toISOString();
            fired.push({
              workspaceId: workspace.id,
              flow: flow.name,
              tick: iso,
              runId: created.run.id,
              duplicate: created.duplicate,
            });
            if (!created.duplicate) {
              this.log.info(
                { workspace: workspace.id, flow: flow.name, tick: iso, run: created.run.id },
                'schedule fired',
              );
            }
          } catch (error) {
            // A mistake in the flow (a parameter without a default) fails every tick: pass it.
            if (!PERMANENT.has(codeOf(error))) throw error;
            this.logError('firing a schedule', error, flow);
          }
          last = Math.max(last, tick);
        }
        if (!this.stopped) last = Math.max(last, due.last);
      } finally {
        if (last > handled) {
          const next: ScheduleState = { last, tick: new Date(last).toISOString() };
          await store.triggerState.set(store.db, workspace.id, flow.name, 'schedule', next, this.now());
        }
      }
    } catch (error) {
      this.logError('checking a schedule', error, job.flow);
    }
    return fired;
  }

  // --- polls ----------------------------------------------------------------------------------

  private armPoll(job: PollJob, delay: number): void {
    if (!this.timers || this.stopped || this.polls.get(job.key) !== job) return;
    if (job.timer) clearTimeout(job.timer);
    job.timer = setTimeout(
      () => {
        job.timer = undefined;
        void this.serial(job.key, () => this.poll(job.workspace.id, job.flow.name, false))
          .catch((error) => this.logError('polling', error, job.flow))
          .finally(() => this.armPoll(job, job.everyMs));
      },
      Math.min(delay, MAX_TIMER_MS),
    );
    job.timer.unref();
  }

  private dropPoll(job: PollJob): void {
    if (job.timer) clearTimeout(job.timer);
    job.timer = undefined;
  }

  private async poll(workspaceId: string, flowName: string, force: boolean): Promise<PollOutcome> {
    const skipped: PollOutcome = { status: 'skipped', rows: 0, changed: 0, fired: 0, ignored: 0 };
    if (this.stopped) return skipped;
    const { store, runner } = this.context;
    const flow = await store.flows.get(workspaceId, flowName);
    if (!flow || flow.enabled !== 1 || flow.trigger_kind !== 'poll') return skipped;
    const workspace = await store.workspaces.byId(workspaceId);
    if (!workspace) return skipped;
    const loaded = await runner.flows.get(workspace.id, workspace.name, flow.name, flow.version);
    const poll: PollDefinition | undefined = loaded.flow.trigger?.poll;
    if (!poll) return skipped;
    const owner = `${this.instance}:${randomUUID()}`;
    const now = this.now();
    const until = now + this.pollLeaseMs;
    const leased = await acquireLease(store.db, workspace.id, flow.name, 'poll-lease', owner, now, until);
    if (!leased) return { ...skipped, status: 'busy' };
    try {
      if (!force) {
        // Another process polled this flow a moment ago: keep to the interval.
        const state = await store.triggerState.get<PollState>(workspace.id, flow.name, 'poll');
        const everyMs = parseDuration(poll.every, 60_000);
        if (state?.polledAt !== undefined && now - state.polledAt < everyMs / 2) return skipped;
      }
      const outcome = await pollFlow({
        context: this.context,
        workspace,
        flow,
        loaded,
        poll,
        now: this.now,
        signal: this.abort.signal,
      });
      this.log.debug(
        { workspace: workspace.id, flow: flow.name, ...outcome },
        outcome.status === 'baseline' ? 'poll took its baseline' : 'polled',
      );
      return outcome;
    } finally {
      await releaseLease(store.db, workspace.id, flow.name, 'poll-lease', owner).catch(() => undefined);
    }
  }

  // --- helpers --------------------------------------------------------------------------------

  /** Run `work` after everything queued for `key`; one thing at a time per flow. */
  private serial<T>(key: string, work: () => Promise<T>): Promise<T> {
    const previous = this.busy.get(key) ?? Promise.resolve();
    const result = previous.catch(() => undefined).then(work);
    const settled = result.catch(() => undefined);
    this.busy.set(key, settled);
    void settled.then(() => {
      if (this.busy.get(key) === settled) this.busy.delete(key);
    });
    return result;
  }

  /** Logs carry ids and the error's code and step — never its message, which may quote values. */
  private logError(what: string, error: unknown, flow?: { workspace_id: string; name: string }): void {
    const step =
      error instanceof LetheErrors ? error.errors[0]?.details.step : toLetheError(error).details.step;
    this.log.error(
      {
        ...(flow ? { workspace: flow.workspace_id, flow: flow.name } : {}),
        code: codeOf(error),
        ...(step ? { step } : {}),
      },
      `${what} failed`,
    );
  }
}
