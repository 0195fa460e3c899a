/**
 * Flows and their versions. Every change of a flow's text makes a new version (who, when, the
 * text as given, so versions diff in git); putting the same text again makes none.
 */
import type { Kysely } from 'kysely';
import { LetheError } from '../errors/index.js';
import type { Flow } from '../flow/validate.js';
import { isUniqueViolation } from './database.js';
import { decodeCursor, toPage, type Page } from './ids.js';
import type { Database, Db, FlowsTable, FlowVersionsTable } from './schema.js';

export type FlowRow = FlowsTable;

/** What deleting a flow did. */
export interface FlowDeletion {
  /** Queued runs that were failed (whoever holds their inputs in memory drops them). */
  queuedFailed: string[];
  /** Rows deleted, by table (for the deletion's receipt). */
  removed: Record<string, number>;
}
export type FlowVersionRow = FlowVersionsTable;

export interface PutFlow {
  workspaceId: string;
  flow: Flow;
  source: string;
  format: 'yaml' | 'json';
  author: string;
}

/** The trigger kind and webhook path a flow registers. */
export function triggerOf(flow: Flow): { kind: string; webhookPath: string | null } {
  const trigger = flow.trigger;
  if (trigger?.schedule) return { kind: 'schedule', webhookPath: null };
  if (trigger?.webhook) return { kind: 'webhook', webhookPath: trigger.webhook.path ?? flow.name };
  if (trigger?.poll) return { kind: 'poll', webhookPath: null };
  return { kind: 'manual', webhookPath: null };
}

export class FlowRepository {
  constructor(private readonly db: Kysely<Database>) {}

  async get(workspaceId: string, name: string): Promise<FlowRow | undefined> {
    return this.db
      .selectFrom('flows')
      .selectAll()
      .where('workspace_id', '=', workspaceId)
      .where('name', '=', name)
      .executeTakeFirst();
  }

  async version(workspaceId: string, name: string, version: number): Promise<FlowVersionRow | undefined> {
    return this.db
      .selectFrom('flow_versions')
      .selectAll()
      .where('workspace_id', '=', workspaceId)
      .where('flow_name', '=', name)
      .where('version', '=', version)
      .executeTakeFirst();
  }

  async versions(workspaceId: string, name: string): Promise<Omit<FlowVersionRow, 'source'>[]> {
    return this.db
      .selectFrom('flow_versions')
      .select(['workspace_id', 'flow_name', 'version', 'format', 'author', 'created_at'])
      .where('workspace_id', '=', workspaceId)
      .where('flow_name', '=', name)
      .orderBy('version', 'desc')
      .execute();
  }

  /** Every flow of a workspace, by name. */
  async all(workspaceId: string): Promise<FlowRow[]> {
    return this.db
      .selectFrom('flows')
      .selectAll()
      .where('workspace_id', '=', workspaceId)
      .orderBy('name')
      .execute();
  }

  async list(workspaceId: string, limit: number, cursor?: string): Promise<Page<FlowRow>> {
    const after = decodeCursor(cursor);
    let query = this.db.selectFrom('flows').selectAll().where('workspace_id', '=', workspaceId);
    if (after !== undefined) query = query.where('name', '>', after);
    const rows = await query
      .orderBy('name')
      .limit(limit + 1)
      .execute();
    return toPage(rows, limit, (row) => row.name);
  }

  /** Every enabled flow with a trigger of this kind, across workspaces (for the schedulers). */
  async withTrigger(kind: string): Promise<FlowRow[]> {
    return this.db
      .selectFrom('flows')
      .selectAll()
      .where('trigger_kind', '=', kind)
      .where('enabled', '=', 1)
      .execute();
  }

  async byWebhookPath(workspaceId: string, path: string): Promise<FlowRow | undefined> {
    return this.db
      .selectFrom('flows')
      .selectAll()
      .where('workspace_id', '=', workspaceId)
      .where('webhook_path', '=', path)
      .executeTakeFirst();
  }

  /**
   * Store a flow; a new version when its text changed. In `trx` when given (e.g. with its audit
   * entry): a conflict then fails the transaction, for its owner to run again.
   */
  async put(input: PutFlow, trx?: Db): Promise<{ flow: FlowRow; created: boolean; changed: boolean }> {
    if (trx) return this.putOnce(input, trx);
    for (let attempt = 1; ; attempt++) {
      try {
        return await this.db.transaction().execute((own) => this.putOnce(input, own));
      } catch (error) {
        // Another put of this flow (same version number), or of a flow taking the same webhook
        // path, committed between our reads and our writes: read again. The second time round
        // the version follows theirs, or the path check names the flow that holds the path.
        if (!isUniqueViolation(error) || attempt >= 10) throw error;
      }
    }
  }

  private async putOnce(
    input: PutFlow,
    trx: Db,
  ): Promise<{ flow: FlowRow; created: boolean; changed: boolean }> {
    const { workspaceId, flow, source, format, author } = input;
    const name = flow.name;
    const { kind, webhookPath } = triggerOf(flow);
    const now = Date.now();
    const current = await trx
      .selectFrom('flows')
      .selectAll()
      .where('workspace_id', '=', workspaceId)
      .where('name', '=', name)
      .executeTakeFirst();
    if (current) {
      const latest = await trx
        .selectFrom('flow_versions')
        .select('source')
        .where('workspace_id', '=', workspaceId)
        .where('flow_name', '=', name)
        .where('version', '=', current.version)
        .executeTakeFirst();
      if (latest?.source === source) return { flow: current, created: false, changed: false };
    }
    if (webhookPath !== null) {
      const holder = await trx
        .selectFrom('flows')
        .select('name')
        .where('workspace_id', '=', workspaceId)
        .where('webhook_path', '=', webhookPath)
        .where('name', '!=', name)
        .executeTakeFirst();
      if (holder) {
        throw new LetheError(
          'FLOW_INVALID',
          `the webhook path "${webhookPath}" is already used by flow "${holder.name}"`,
          {
            hint: 'give this flow another trigger.webhook.path',
          },
        );
      }
    }
    const version = (current?.version ?? 0) + 1;
    await trx
      .insertInto('flow_versions')
      .values({
        workspace_id: workspaceId,
        flow_name: name,
        version,
        source,
        format,
        author,
        created_at: now,
      })
      .execute();
    const row: FlowRow = {
      workspace_id: workspaceId,
      name,
      version,
      privacy: flow.privacy,
      trigger_kind: kind,
      webhook_path: webhookPath,
      enabled: current?.enabled ?? 1,
      created_at: current?.created_at ?? now,
      updated_at: now,
    };
    if (current) {
      await trx
        .updateTable('flows')
        .set({
          version,
          privacy: row.privacy,
          trigger_kind: kind,
          webhook_path: webhookPath,
          updated_at: now,
        })
        .where('workspace_id', '=', workspaceId)
        .where('name', '=', name)
        .execute();
    } else {
      await trx.insertInto('flows').values(row).execute();
    }
    return { flow: row, created: !current, changed: true };
  }

  /**
   * Enable or disable a flow (its trigger, and manual runs). Undefined when there is no such
   * flow; `changed` is false when it already was so. A flow parked by its workspace's closing
   * (`enabled` 2) is left as it is: reopening the workspace resumes it.
   */
  async setEnabled(
    workspaceId: string,
    name: string,
    enabled: boolean,
    trx: Db = this.db,
  ): Promise<{ flow: FlowRow; changed: boolean } | undefined> {
    const result = await trx
      .updateTable('flows')
      .set({ enabled: enabled ? 1 : 0 })
      .where('workspace_id', '=', workspaceId)
      .where('name', '=', name)
      .where('enabled', '=', enabled ? 0 : 1)
      .executeTakeFirst();
    const flow = await trx
      .selectFrom('flows')
      .selectAll()
      .where('workspace_id', '=', workspaceId)
      .where('name', '=', name)
      .executeTakeFirst();
    return flow && { flow, changed: Number(result.numUpdatedRows) === 1 };
  }

  /**
   * Delete a flow and every record derived from it that may hold its data (SPEC 2): versions,
   * trigger state and seen poll rows, webhook event ids, the gateway log (bodies), notifications,
   * and the inputs (DLQ) and execution details of its ended runs; its dead-lettered runs are
   * discarded (nothing could retry them), and its queued runs fail FLOW_DELETED without their
   * inputs. The run summaries stay in the activity stream (ids and counts only) until retention
   * ages them out; a running run is left to end. Undefined when there is no such flow.
   */
  async delete(workspaceId: string, name: string, trx?: Db): Promise<FlowDeletion | undefined> {
    if (trx) return this.deleteIn(workspaceId, name, trx);
    return this.db.transaction().execute((own) => this.deleteIn(workspaceId, name, own));
  }

  private async deleteIn(workspaceId: string, name: string, trx: Db): Promise<FlowDeletion | undefined> {
    const result = await trx
      .deleteFrom('flows')
      .where('workspace_id', '=', workspaceId)
      .where('name', '=', name)
      .executeTakeFirst();
    if (Number(result.numDeletedRows) === 0) return undefined;
    const removed: Record<string, number> = {};
    const count = (table: string, outcome: { numDeletedRows: bigint }) => {
      removed[table] = (removed[table] ?? 0) + Number(outcome.numDeletedRows);
    };
    const named = [
      'flow_versions',
      'trigger_state',
      'poll_seen',
      'webhook_events_seen',
      'gateway_log',
      'notifications',
    ] as const;
    for (const table of named) {
      count(
        table,
        await trx
          .deleteFrom(table)
          .where('workspace_id', '=', workspaceId)
          .where('flow_name', '=', name)
          .executeTakeFirst(),
      );
    }
    const ended = trx
      .selectFrom('runs')
      .select('id')
      .where('workspace_id', '=', workspaceId)
      .where('flow_name', '=', name)
      .where('status', 'in', ['succeeded', 'failed', 'incomplete']);
    for (const table of ['run_inputs', 'run_details'] as const) {
      count(
        table,
        await trx
          .deleteFrom(table)
          .where('workspace_id', '=', workspaceId)
          .where('run_id', 'in', ended)
          .executeTakeFirst(),
      );
    }
    await trx
      .updateTable('runs')
      .set({ status: 'failed', error_code: 'DISCARDED' })
      .where('workspace_id', '=', workspaceId)
      .where('flow_name', '=', name)
      .where('status', '=', 'incomplete')
      .execute();
    // Runs still waiting in the queue will not run: their inputs go now, not with the DLQ's
    // retention. (A running run ends as it may; if it fails, it fails FLOW_DELETED.)
    const queuedFailed = (
      await trx
        .updateTable('runs')
        .set({ status: 'failed', error_code: 'FLOW_DELETED', finished_at: Date.now() })
        .where('workspace_id', '=', workspaceId)
        .where('flow_name', '=', name)
        .where('status', '=', 'queued')
        .returning('id')
        .execute()
    ).map((row) => row.id);
    for (let at = 0; at < queuedFailed.length; at += 500) {
      count(
        'run_inputs',
        await trx
          .deleteFrom('run_inputs')
          .where('workspace_id', '=', workspaceId)
          .where('run_id', 'in', queuedFailed.slice(at, at + 500))
          .executeTakeFirst(),
      );
    }
    return { queuedFailed, removed };
  }
}
