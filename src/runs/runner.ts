/**
 * The runner: takes queued runs from the store (the durable queue), runs them through the
 * engine with bounded concurrency, and records how they ended.
 *
 * - A run is claimed with a conditional update, so it never runs twice at once.
 * - A failure is retried after exponential back-off with jitter while the flow's retry policy
 *   allows; then the run is `incomplete` and stays in the dead-letter queue with its input
 *   (standard flows). Mistakes retrying cannot fix (an invalid flow or params) go there at once.
 * - On start, runs left `running` by a crash are re-queued, or dead-lettered when their
 *   attempts are spent. On stop, intake ends, running runs get a grace period to finish, and
 *   the rest are cancelled and put back in the queue without counting the attempt.
 * - Values that came from secrets (decrypted connection secrets, credentials given at run
 *   time) are redacted from all a run hands on: stored details, errors, a webhook's answer.
 * - Runs that keep no payloads (confidential flows, workspaces that deny log access) hold their
 *   input in memory only, and store no sample rows and no error message: their record is ids,
 *   status, times, counts and the error's class. Their input is forgotten when the run ends,
 *   so they enter the dead-letter queue without it; one whose input a restart lost ends
 *   incomplete with INPUT_LOST. Credentials given at run time live here too, and only here
 *   (CREDENTIALS_LOST after a restart). See docs/privacy.md.
 */
import { join } from 'node:path';
import type { Logger } from 'pino';
import { runFlow, type RunResult } from '../engine/run.js';
import { runWithEgress } from '../egress/index.js';
import { egressForWorkspace } from '../egress/workspace.js';
import { LetheError, formatError, toLetheError, type ErrorCode } from '../errors/index.js';
import { resolveParams } from '../flow/load.js';
import { mayStorePayloads } from '../privacy/settings.js';
import { MIN_REDACTED_LENGTH } from '../security/redact.js';
import type { Vault } from '../security/vault.js';
import { newId } from '../store/ids.js';
import type { Store } from '../store/index.js';
import type { GatewayLogRow } from '../store/records.js';
import type { RunInput, RunOutcome, RunRow } from '../store/runs.js';
import type { Workspace } from '../store/workspaces.js';
import { tableFromRecords, type Table } from '../table/index.js';
import { StoredConnections } from './connections.js';
import { credentialValues, type HeldCredentials, type RunInputWithCredentials } from './credentials.js';
import { FlowCache } from './flow-cache.js';
import { Redactor } from './privacy.js';

/** Errors that another attempt cannot fix. */
const PERMANENT: ReadonlySet<ErrorCode> = new Set([
  'USAGE',
  'FLOW_SYNTAX',
  'FLOW_INVALID',
  'PARAM_INVALID',
  'EXPRESSION_SYNTAX',
  'CONNECTIONS_INVALID',
  'INPUT_LOST',
  'CREDENTIALS_LOST',
  'FLOW_DELETED',
]);

/** Rows of each step's output kept in execution details (standard flows). */
export const SAMPLE_ROWS = 20;

/** Standard runs' inputs kept in memory (besides the store) at most, to save reading them back. */
const MEMORY_INPUTS = 10_000;

/** How long a workspace read for a run is reused. */
const WORKSPACE_CACHE_MS = 5000;

export interface RunnerOptions {
  store: Store;
  vault: Vault;
  dataDir: string;
  concurrency: number;
  logger: Logger;
  /** Called when a run ends (metrics). */
  onFinished?: (run: RunRow, status: RunOutcome['status'], result: RunResult | undefined) => void;
}

/** What a waiter for a run's result learns (webhooks with `respond: result`). */
export interface RunCompletion {
  runId: string;
  status: RunOutcome['status'] | 'requeued';
  response: Table | undefined;
  error: LetheError | undefined;
}

type StopReason = 'cancel' | 'shutdown';

/** A run started directly (not from the queue): its input and gateway entry, written at its end. */
interface Direct {
  input?: RunInput;
  gateway?: GatewayLogRow;
  /** Set when the run was written before its end (its caller stopped waiting). */
  persisted?: Promise<void>;
}

/** How a run ended, as settle() found it, for record() to write. */
interface Ending {
  result: RunResult | undefined;
  error: LetheError | undefined;
  durationMs: number;
  direct: Direct;
  keepsPayloads: boolean;
  redactor: Redactor;
  /** Never written yet: the record is inserted whole. */
  isDirect: boolean;
  now: number;
  reason: StopReason | undefined;
}

export function parseDuration(text: string | undefined, fallbackMs: number): number {
  const match = text === undefined ? null : /^([0-9]+)(ms|s|m|h|d)$/.exec(text);
  if (!match) return fallbackMs;
  const unit = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 }[
    match[2] as 'ms' | 's' | 'm' | 'h' | 'd'
  ];
  return Number(match[1]) * unit;
}

/** Back-off before attempt `attempt + 1`: base × 2^(attempt-1) (or base), with jitter in [½, 1]. */
export function backoffMs(
  policy: { backoff?: string; delay?: string } | undefined,
  attempt: number,
  random = Math.random,
): number {
  const base = parseDuration(policy?.delay, 10_000);
  const delay = policy?.backoff === 'fixed' ? base : base * 2 ** Math.max(0, attempt - 1);
  return Math.round(Math.min(delay, 86_400_000) * (0.5 + random() / 2));
}

export class Runner {
  private readonly store: Store;
  /** Parsed flow versions, shared with the run service. */
  readonly flows: FlowCache;
  private readonly ready: string[] = [];
  private readonly readySet = new Set<string>();
  /** Runs whose engine is at work: they hold the concurrency slots. */
  private readonly running = new Map<string, { controller: AbortController }>();
  /** Every run started and not yet recorded (engine done or not), for a clean stop. */
  private readonly inFlight = new Set<Promise<void>>();
  private readonly stopReasons = new Map<string, StopReason>();
  private readonly waiters = new Map<string, ((completion: RunCompletion) => void)[]>();
  /**
   * Inputs of runs made by this process, so they need not be read back: confidential runs'
   * inputs live only here; standard runs' are also in the store, and kept here while few.
   */
  private readonly memoryInputs = new Map<string, RunInput>();
  /** Credentials given at run time, by run: in memory only, until the run ends. */
  private readonly credentials = new Map<string, HeldCredentials>();
  private readonly workspaces = new Map<string, { workspace: Workspace | undefined; until: number }>();
  private timer: NodeJS.Timeout | undefined;
  private accepting = false;
  /** Direct runs waiting for a slot: they go before queued runs. */
  private readonly slotWaiters: { resolve: () => void; reject: (error: LetheError) => void }[] = [];
  /** Slots promised to direct runs that have not started yet. */
  private reserved = 0;
  /** Direct runs under way, by id. */
  private readonly directs = new Map<string, { run: RunRow; direct: Direct }>();

  constructor(private readonly options: RunnerOptions) {
    this.store = options.store;
    this.flows = new FlowCache(options.store.flows, (workspace) => this.filesDir(workspace));
  }

  /** A workspace's files folder: where its flows' relative paths point. */
  filesDir(workspaceName: string): string {
    return join(this.options.dataDir, 'files', workspaceName);
  }

  /** The vault (the run service checks credentials given at run time with it). */
  get vault(): Vault {
    return this.options.vault;
  }

  get activeCount(): number {
    return this.running.size;
  }

  get readyCount(): number {
    return this.ready.length;
  }

  /** Recover what a crash left behind, then start taking queued runs. */
  async start(): Promise<{ requeued: number; deadLettered: number }> {
    const recovered = await this.store.runs.recover(Date.now());
    this.accepting = true;
    await this.loadDue();
    return recovered;
  }

  /**
   * Keep a run's input in memory until it ends: always for confidential runs (it exists
   * nowhere else), for standard runs only while the number held is small.
   */
  holdInput(runId: string, input: RunInput, confidential: boolean): void {
    if (confidential || this.memoryInputs.size < MEMORY_INPUTS) this.memoryInputs.set(runId, input);
  }

  /** Keep credentials given at run time until the run ends (they exist nowhere else). */
  holdCredentials(runId: string, credentials: HeldCredentials): void {
    if (credentials.size > 0) this.credentials.set(runId, credentials);
  }

  /** Forget what a run held in memory: its input and any credentials given at run time. */
  dropInput(runId: string): void {
    this.memoryInputs.delete(runId);
    this.credentials.delete(runId);
  }

  /**
   * A run was queued (or re-queued) and may be due now. `urgent` runs (someone waits for their
   * result) go to the front of the line.
   */
  notify(runId: string, urgent = false): void {
    if (!this.accepting || this.readySet.has(runId) || this.running.has(runId)) return;
    if (urgent) this.ready.unshift(runId);
    else this.ready.push(runId);
    this.readySet.add(runId);
    this.pump();
  }

  /** Resolves when the run ends (or is put back in the queue), or after `timeoutMs`. */
  waitFor(runId: string, timeoutMs: number): Promise<RunCompletion | undefined> {
    return new Promise((resolve) => {
      const list = this.waiters.get(runId) ?? [];
      const timer = setTimeout(() => {
        const remaining = (this.waiters.get(runId) ?? []).filter((waiter) => waiter !== done);
        if (remaining.length > 0) this.waiters.set(runId, remaining);
        else this.waiters.delete(runId);
        resolve(undefined);
      }, timeoutMs);
      const done = (completion: RunCompletion) => {
        clearTimeout(timer);
        resolve(completion);
      };
      list.push(done);
      this.waiters.set(runId, list);
    });
  }

  /** Cancel a running run; it ends as failed (CANCELLED). Returns whether it was running here. */
  cancel(runId: string): boolean {
    const entry = this.running.get(runId);
    if (!entry) return false;
    this.stopReasons.set(runId, 'cancel');
    entry.controller.abort();
    return true;
  }

  /**
   * Stop: take no more runs, give running ones `graceMs` to finish, then cancel them and put
   * them back in the queue (their attempt not counted).
   */
  async stop(graceMs: number): Promise<void> {
    this.accepting = false;
    if (this.timer) clearTimeout(this.timer);
    this.ready.length = 0;
    this.readySet.clear();
    for (const waiter of this.slotWaiters.splice(0)) {
      waiter.reject(new LetheError('CANCELLED', 'the server is shutting down'));
    }
    const all = () => Promise.allSettled([...this.inFlight]);
    let timer: NodeJS.Timeout | undefined;
    const graceOver = new Promise<'timeout'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), graceMs);
    });
    if ((await Promise.race([all().then(() => 'done' as const), graceOver])) === 'timeout') {
      for (const [runId, entry] of this.running) {
        this.stopReasons.set(runId, 'shutdown');
        entry.controller.abort();
      }
      await all();
    }
    clearTimeout(timer);
  }

  /** Queue every run that is due, and wake up when the next one will be. */
  private async loadDue(): Promise<void> {
    if (!this.accepting) return;
    const now = Date.now();
    for (const run of await this.store.runs.due(now, 1000)) this.notify(run.id);
    const next = await this.store.runs.nextDue();
    if (this.timer) clearTimeout(this.timer);
    if (next !== undefined && next > now && this.accepting) {
      this.timer = setTimeout(
        () => void this.loadDue().catch((error) => this.logError('loading due runs', error)),
        Math.min(next - now, 60_000),
      );
      this.timer.unref();
    }
  }

  private pump(): void {
    while (this.accepting && this.running.size + this.reserved < this.options.concurrency) {
      const waiter = this.slotWaiters.shift();
      if (waiter) {
        this.reserved++;
        waiter.resolve();
        continue;
      }
      const runId = this.ready.shift();
      if (runId === undefined) break;
      this.readySet.delete(runId);
      const controller = new AbortController();
      this.running.set(runId, { controller });
      this.track(
        runId,
        this.claimAndRun(runId, controller, () => this.release(runId)).catch((error) =>
          this.logError(`run ${runId}`, error),
        ),
      );
    }
  }

  /** A run's engine is done: its slot goes to the next run (its record may still be committing). */
  private release(runId: string): void {
    if (this.running.delete(runId)) this.pump();
  }

  /** Follow a started run until it is recorded; then forget it. */
  private track(runId: string, work: Promise<unknown>): Promise<void> {
    const done = work.then(
      () => undefined,
      () => undefined,
    );
    this.inFlight.add(done);
    void done.finally(() => {
      this.inFlight.delete(done);
      this.stopReasons.delete(runId);
      this.release(runId);
    });
    return done;
  }

  /** A slot for a direct run, before any queued run gets one. */
  private slot(): Promise<void> {
    return new Promise((resolve, reject) => {
      this.slotWaiters.push({ resolve, reject });
      this.pump();
    });
  }

  /**
   * Run now, in this process, and write the run's record only once it has ended: one commit
   * for the whole run. For webhooks answering with the result and no Idempotency-Key — the
   * caller waits for the answer, so a crash mid-run leaves no record and no answer alike (the
   * caller sees the connection fail and may retry). A run a shutdown interrupts is written to
   * the queue instead, and will run after the restart.
   */
  async runDirect(run: RunRow, input: RunInput, gateway: GatewayLogRow | undefined): Promise<RunCompletion> {
    if (!this.accepting) throw new LetheError('CANCELLED', 'the server is shutting down');
    await this.slot();
    this.reserved--;
    const controller = new AbortController();
    const direct: Direct = { input, gateway };
    this.directs.set(run.id, { run, direct });
    this.running.set(run.id, { controller });
    const working = this.runClaimed(run, controller, direct, () => this.release(run.id));
    await this.track(run.id, working);
    this.directs.delete(run.id);
    const completion = await working;
    return completion;
  }

  /**
   * Write a direct run that is still going (its caller stopped waiting), so that it can be read
   * and survives a crash like a queued run: running, with its input.
   */
  async persistDirect(runId: string): Promise<boolean> {
    const entry = this.directs.get(runId);
    if (!entry) return false;
    const { run, direct } = entry;
    direct.persisted ??= this.store.commits.submit(async (trx) => {
      await this.store.runs.insert(trx, run, run.input_kept === 1 ? direct.input : undefined);
      if (direct.gateway) await this.store.gatewayLog.insert(trx, { ...direct.gateway, run_id: run.id });
    });
    await direct.persisted;
    return true;
  }

  private logError(what: string, error: unknown): void {
    const e = toLetheError(error);
    this.options.logger.error({ code: e.code }, `${what} failed`);
  }

  private complete(completion: RunCompletion): RunCompletion {
    const list = this.waiters.get(completion.runId);
    this.waiters.delete(completion.runId);
    for (const waiter of list ?? []) waiter(completion);
    return completion;
  }

  private async claimAndRun(runId: string, controller: AbortController, release: () => void): Promise<void> {
    let claimed: RunRow | undefined;
    // Claims share a transaction with other writes (group commit): one fsync for many.
    await this.store.commits.submit(async (trx) => {
      claimed = await this.store.runs.claimIn(trx, runId, Date.now());
    });
    if (!claimed) return; // someone else took it, or it is no longer queued
    await this.runClaimed(claimed, controller, {}, release);
  }

  private async runClaimed(
    run: RunRow,
    controller: AbortController,
    direct: Direct,
    release: () => void,
  ): Promise<RunCompletion> {
    const started = performance.now();
    const workspace = await this.workspace(run.workspace_id);
    let result: RunResult | undefined;
    let error: LetheError | undefined;
    const runtime = this.credentials.get(run.id);
    // Whatever this run learns that must never be stored (secrets, credentials given at run time).
    const redactor = new Redactor();
    credentialValues(runtime, redactor);
    const connections = new StoredConnections(
      () => this.store.connections.all(run.workspace_id),
      this.options.vault,
      this.filesDir(workspace?.name ?? run.workspace_id),
      { runtime, redactor, trigger: run.trigger },
    );
    const keepsPayloads = workspace !== undefined && this.keepsPayloads(run, workspace);
    try {
      if (!workspace) throw new LetheError('FLOW_INVALID', 'the workspace of this run no longer exists');
      const input: RunInputWithCredentials | undefined =
        direct.input ??
        this.memoryInputs.get(run.id) ??
        (run.input_kept === 1 ? await this.store.runs.input(run.id) : undefined);
      if (input === undefined && run.input_kept === 0 && run.trigger !== 'schedule') {
        throw new LetheError(
          'INPUT_LOST',
          'the input of this run was held in memory only (it is never stored) and is gone: the server restarted ' +
            'before the run could end; send the request again or start a new run',
        );
      }
      const missing = (input?.credentials ?? []).filter((name) => !runtime?.has(name));
      if (missing.length > 0) {
        throw new LetheError(
          'CREDENTIALS_LOST',
          `the credentials given at run time for ${missing.map((name) => `"${name}"`).join(', ')} were held in ` +
            'memory only and are gone: the server restarted before the run could end',
          { hint: 'start a new run with its credentials (lethe run --ask-credentials)' },
        );
      }
      const loaded = await this.flows.get(workspace.id, workspace.name, run.flow_name, run.flow_version);
      const params = resolveParams(loaded.flow, input?.params ?? {});
      // Every connection the run opens is checked by the deployment's egress policy, opened
      // only by the workspace's own allow-list.
      result = await runWithEgress(egressForWorkspace(workspace.settings), () =>
        runFlow(loaded, {
          runId: run.id,
          workspace: workspace.id,
          params,
          connections,
          counters: this.store.counters,
          trigger: input?.payload ? { table: tableFromRecords(input.payload) } : undefined,
          signal: controller.signal,
          confineFiles: true,
          sampleRows: keepsPayloads ? SAMPLE_ROWS : 0,
        }),
      );
      error = result.error;
    } catch (thrown) {
      error = toLetheError(thrown);
    } finally {
      await connections.closeAll();
      // The engine is done: the next run may start while this one's record commits.
      release();
    }
    if (redactor.tooShort > 0) {
      // A count only: such values are left as they are wherever they appear.
      this.options.logger.warn(
        { runId: run.id, values: redactor.tooShort },
        `secret values too short to redact (under ${MIN_REDACTED_LENGTH} characters)`,
      );
    }
    return this.settle(run, result, error, performance.now() - started, direct, keepsPayloads, redactor);
  }

  /**
   * Whether this run's payloads may be stored: a standard flow whose input was kept (so it
   * was not made while its workspace denied log access), in a workspace that allows log access.
   */
  private keepsPayloads(run: RunRow, workspace: Workspace): boolean {
    return run.privacy === 'standard' && run.input_kept === 1 && mayStorePayloads(workspace);
  }

  /** Decide how a run ended and record it. */
  private async settle(
    run: RunRow,
    result: RunResult | undefined,
    error: LetheError | undefined,
    durationMs: number,
    direct: Direct,
    keepsPayloads: boolean,
    redactor: Redactor,
  ): Promise<RunCompletion> {
    const now = Date.now();
    const reason = this.stopReasons.get(run.id);
    if (direct.persisted) await direct.persisted.catch(() => undefined);
    // A direct run not yet written is written whole now; once written, it is updated like any run.
    const isDirect = direct.input !== undefined && direct.persisted === undefined;
    const ending: Ending = {
      result,
      error,
      durationMs,
      direct,
      keepsPayloads,
      redactor,
      isDirect,
      now,
      reason,
    };
    if (!isDirect) return this.record(run, ending);
    // From here this write is the run's record: a caller that stops waiting now (persistDirect)
    // waits for it instead of inserting the run a second time.
    let written!: () => void;
    direct.persisted = new Promise<void>((resolve) => (written = resolve));
    try {
      return await this.record(run, ending);
    } finally {
      written();
    }
  }

  private async record(run: RunRow, ending: Ending): Promise<RunCompletion> {
    const { result, durationMs, direct, keepsPayloads, redactor, isDirect, now, reason } = ending;
    if (result?.status === 'cancelled' && reason === 'shutdown') {
      await this.store.commits.submit(async (trx) => {
        if (isDirect) {
          // Never written yet: it goes to the queue now, to run after the restart. An input that
          // is never stored stays in memory only, where the restart loses it (INPUT_LOST).
          await this.store.runs.insert(
            trx,
            { ...run, status: 'queued', attempt: 0, started_at: null, available_at: now },
            run.input_kept === 1 ? direct.input : undefined,
          );
          if (direct.gateway) await this.store.gatewayLog.insert(trx, { ...direct.gateway, run_id: run.id });
        } else {
          await this.store.runs.requeue(trx, run.id, now, { uncountAttempt: true });
        }
      });
      return this.complete({ runId: run.id, status: 'requeued', response: undefined, error: undefined });
    }
    let error = ending.error;
    const cancelled = result?.status === 'cancelled' || error?.code === 'CANCELLED';
    // A run whose flow was deleted while it ran (or deleted and made anew since it was queued)
    // has nothing to be retried with: it fails, and keeps no input in the dead-letter queue
    // (the flow's deletion discarded the rest).
    if (error && !cancelled && error.code !== 'FLOW_DELETED' && (await this.flowGone(run))) {
      error = new LetheError('FLOW_DELETED', `flow "${run.flow_name}" was deleted while this run ran`, {
        step: error.details.step,
      });
    }
    const flowRetry = await this.retryPolicy(run);
    const permanent = error !== undefined && PERMANENT.has(error.code);
    if (error && !cancelled && !permanent && run.attempt < run.max_attempts && !isDirect) {
      const at = now + backoffMs(flowRetry, run.attempt);
      await this.store.commits.submit((trx) => this.store.runs.requeue(trx, run.id, at));
      await this.loadDue();
      return { runId: run.id, status: 'requeued', response: undefined, error: redactor.error(error) };
    }
    const status: RunOutcome['status'] = !error
      ? 'succeeded'
      : cancelled || error.code === 'FLOW_DELETED'
        ? 'failed'
        : 'incomplete';
    const steps = result?.steps ?? [];
    const outcome: RunOutcome = {
      status,
      finishedAt: now,
      durationMs,
      rowsRead: steps.filter((s) => s.command === 'input').reduce((n, s) => n + s.rowsOut, 0),
      rowsWritten: steps.filter((s) => s.command === 'output').reduce((n, s) => n + s.rowsOut, 0),
      errorCode: error ? error.code : null,
      errorStep: error?.details.step ?? null,
      // Runs that keep no payloads store no details at all: no samples, no error message.
      details: keepsPayloads
        ? {
            steps: steps.map((step) => redactor.value(step)),
            errorMessage: error ? redactor.text(formatError(error)) : null,
          }
        : undefined,
    };
    await this.store.commits.submit(async (trx) => {
      if (isDirect) {
        // The whole run in one write: its record, the input only if it stays for a retry.
        const keptInput = status === 'incomplete' && run.input_kept === 1 ? direct.input : undefined;
        await this.store.runs.insert(trx, run, keptInput);
        if (direct.gateway) await this.store.gatewayLog.insert(trx, { ...direct.gateway, run_id: run.id });
      }
      await this.store.runs.finish(trx, run, outcome);
      if (status !== 'succeeded') {
        await this.store.notifications.insert(trx, {
          id: newId(now),
          workspace_id: run.workspace_id,
          kind: status === 'incomplete' ? 'dlq.added' : 'run.failed',
          run_id: run.id,
          flow_name: run.flow_name,
          created_at: now,
          read_at: null,
        });
      }
    });
    // The run has ended: what it held in memory goes (a DLQ retry cannot replay it).
    this.dropInput(run.id);
    this.options.onFinished?.(run, status, result);
    // What a waiter gets (a webhook's answer) is as clean as what was stored.
    return this.complete({
      runId: run.id,
      status,
      response: result?.response && redactor.table(result.response),
      error: error && redactor.error(error),
    });
  }

  /** A workspace's settings changed: the next run reads them afresh (not after the cache's lag). */
  forgetWorkspace(id: string): void {
    this.workspaces.delete(id);
  }

  private async workspace(id: string): Promise<Workspace | undefined> {
    const now = Date.now();
    const cached = this.workspaces.get(id);
    if (cached && cached.until > now) return cached.workspace;
    const workspace = await this.store.workspaces.byId(id);
    this.workspaces.set(id, { workspace, until: now + WORKSPACE_CACHE_MS });
    return workspace;
  }

  /** Whether the run's flow is no more: deleted, or deleted and made anew after it was queued. */
  private async flowGone(run: RunRow): Promise<boolean> {
    const flow = await this.store.flows.get(run.workspace_id, run.flow_name);
    return !flow || Number(flow.created_at) > Number(run.queued_at);
  }

  private async retryPolicy(run: RunRow): Promise<{ backoff?: string; delay?: string } | undefined> {
    try {
      const workspace = await this.workspace(run.workspace_id);
      if (!workspace) return undefined;
      const loaded = await this.flows.get(workspace.id, workspace.name, run.flow_name, run.flow_version);
      return loaded.flow.retry;
    } catch {
      return undefined;
    }
  }
}
