/**
 * Creating runs: manual (API, `lethe run --server`), schedule, webhook and poll all come here.
 * A run and its input are written in one group-committed transaction (with the gateway log
 * entry for webhooks), and only then is the caller told the run exists — so an accepted run
 * is never lost. An `Idempotency-Key` makes a repeated request return the first run instead
 * of making another.
 *
 * Runs that keep no payloads (confidential flows; every flow of a workspace that denies log
 * access) are written without their input, which the runner holds in memory; their webhook
 * body is not logged, their Idempotency-Key is stored as a digest, and a mistake in their
 * parameters is reported without repeating the values. Manual runs may bring credentials
 * (./credentials.ts), which are checked here and then held by the runner only.
 */
import { LetheError } from '../errors/index.js';
import { isUniqueViolation } from '../store/database.js';
import { newId } from '../store/ids.js';
import type { Store } from '../store/index.js';
import type { GatewayLogRow } from '../store/records.js';
import type { RunInput, RunRow } from '../store/runs.js';
import type { FlowRow } from '../store/flows.js';
import type { Workspace } from '../store/workspaces.js';
import {
  checkCredentials,
  type HeldConnection,
  type RunInputWithCredentials,
  type RuntimeCredentials,
} from './credentials.js';
import { checkParams, runByIdempotencyKey, storedIdempotencyKey, storesPayloads } from './privacy.js';
import type { RunCompletion, Runner } from './runner.js';

export type TriggerKind = 'manual' | 'schedule' | 'webhook' | 'poll';

export interface CreateRun {
  workspace: Workspace;
  flow: FlowRow;
  trigger: TriggerKind;
  params?: Record<string, unknown>;
  /** The trigger's payload as records. */
  payload?: unknown[];
  idempotencyKey?: string;
  /** The gateway log entry of the webhook that made this run (written with it). */
  gateway?: Omit<GatewayLogRow, 'run_id'>;
  /** Someone waits for the result: run it before queued work. */
  urgent?: boolean;
  /** Credentials given for this run only, by connection name (manual runs only). */
  credentials?: RuntimeCredentials;
}

export interface CreatedRun {
  run: RunRow;
  /** True when the idempotency key named an earlier run, which is returned instead. */
  duplicate: boolean;
}

const MAX_IDEMPOTENCY_KEY = 200;

export class RunService {
  constructor(
    private readonly store: Store,
    private readonly runner: Runner,
  ) {}

  /** The earlier run of an idempotency key — which must be one of the same flow. */
  private duplicateOf(earlier: RunRow, flow: FlowRow): CreatedRun {
    if (earlier.flow_name !== flow.name) {
      throw new LetheError(
        'CONFLICT',
        `this Idempotency-Key was already used for a run of flow "${earlier.flow_name}"`,
        {
          hint: 'use a new key for each distinct request',
        },
      );
    }
    return { run: earlier, duplicate: true };
  }

  /**
   * Run now and answer with the result (webhooks with `respond: result` and no
   * Idempotency-Key): the run is written once, when it has ended — see Runner.runDirect.
   */
  async runNow(
    request: Omit<CreateRun, 'idempotencyKey' | 'urgent'>,
  ): Promise<{ runId: string; completion: Promise<RunCompletion> }> {
    const { workspace, flow } = request;
    const keeps = storesPayloads(flow.privacy, workspace);
    const loaded = await this.runner.flows.get(workspace.id, workspace.name, flow.name, flow.version);
    checkParams(loaded, request.params ?? {}, keeps);
    const now = Date.now();
    const run: RunRow = {
      ...this.newRun(request, now, 1),
      status: 'running',
      attempt: 1,
      started_at: now,
    };
    const input: RunInput = { params: request.params ?? {}, payload: request.payload };
    const gateway = request.gateway
      ? { ...request.gateway, run_id: run.id, body: keeps ? request.gateway.body : null }
      : undefined;
    return { runId: run.id, completion: this.runner.runDirect(run, input, gateway) };
  }

  private newRun(
    request: Pick<CreateRun, 'workspace' | 'flow' | 'trigger' | 'idempotencyKey'>,
    now: number,
    maxAttempts: number,
  ): RunRow {
    const { workspace, flow } = request;
    const keeps = storesPayloads(flow.privacy, workspace);
    const key = request.idempotencyKey;
    return {
      id: newId(now),
      workspace_id: workspace.id,
      flow_name: flow.name,
      flow_version: flow.version,
      trigger: request.trigger,
      privacy: flow.privacy,
      status: 'queued',
      attempt: 0,
      max_attempts: maxAttempts,
      queued_at: now,
      available_at: now,
      started_at: null,
      finished_at: null,
      duration_ms: null,
      rows_read: null,
      rows_written: null,
      error_code: null,
      error_step: null,
      idempotency_key: key === undefined ? null : storedIdempotencyKey(workspace.id, key, keeps),
      input_kept: keeps ? 1 : 0,
    };
  }

  async create(request: CreateRun): Promise<CreatedRun> {
    const { workspace, flow } = request;
    const key = request.idempotencyKey;
    if (key !== undefined && (key.length === 0 || key.length > MAX_IDEMPOTENCY_KEY)) {
      throw new LetheError('USAGE', `Idempotency-Key must be 1 to ${MAX_IDEMPOTENCY_KEY} characters`);
    }
    if (request.credentials !== undefined && request.trigger !== 'manual') {
      throw new LetheError('USAGE', 'only manual runs take credentials at run time');
    }
    const keeps = storesPayloads(flow.privacy, workspace);
    if (key !== undefined) {
      const earlier = await runByIdempotencyKey(this.store.db, workspace.id, key);
      if (earlier) return this.duplicateOf(earlier, flow);
    }
    const loaded = await this.runner.flows.get(workspace.id, workspace.name, flow.name, flow.version);
    // Parameters are checked now, so that a caller hears of a mistake instead of a failed run.
    checkParams(loaded, request.params ?? {}, keeps);
    let credentials = new Map<string, HeldConnection>();
    if (request.credentials !== undefined && Object.keys(request.credentials).length > 0) {
      credentials = await checkCredentials({
        given: request.credentials,
        flow: loaded.flow,
        workspaceId: workspace.id,
        stored: (name) => this.store.connections.get(workspace.id, name),
        vault: this.runner.vault,
        filesDir: this.runner.filesDir(workspace.name),
      });
    }
    const now = Date.now();
    const input: RunInputWithCredentials = { params: request.params ?? {}, payload: request.payload };
    // Only the names of connections given at run time are kept with the input, so that a run
    // that needs them after a restart says why it cannot go on.
    if (credentials.size > 0) input.credentials = [...credentials.keys()];
    const run = this.newRun(request, now, loaded.flow.retry?.attempts ?? 1);
    this.runner.holdInput(run.id, input, !keeps);
    this.runner.holdCredentials(run.id, credentials);
    try {
      await this.store.commits.submit(async (trx) => {
        await this.store.runs.insert(trx, run, keeps ? input : undefined);
        if (request.gateway) {
          await this.store.gatewayLog.insert(trx, {
            ...request.gateway,
            run_id: run.id,
            body: keeps ? request.gateway.body : null,
          });
        }
      });
    } catch (error) {
      this.runner.dropInput(run.id);
      if (key !== undefined && isUniqueViolation(error)) {
        const earlier = await runByIdempotencyKey(this.store.db, workspace.id, key);
        if (earlier) return this.duplicateOf(earlier, flow);
      }
      throw error;
    }
    this.runner.notify(run.id, request.urgent === true);
    return { run, duplicate: false };
  }
}
