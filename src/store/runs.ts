/**
 * Runs: the activity stream (one summary row per run: ids, status, timings, counts, error
 * class — never values), their trigger input while it is needed (the dead-letter queue keeps
 * it for incomplete runs), and execution details. The runs table is also the durable queue:
 * a run is `queued` until a worker claims it with a conditional update, so a run is never
 * started twice at once.
 */
import type { Kysely } from 'kysely';
import { decodeCursor, toPage, type Page } from './ids.js';
import type { Database, Db, RunDetailsTable, RunStatus, RunsTable } from './schema.js';
import { Slot, type Statements } from './statements.js';

export type RunRow = RunsTable;
export type RunDetailsRow = RunDetailsTable;

/** A run's trigger input: run parameters and the trigger's payload (records). */
export interface RunInput {
  params: Record<string, unknown>;
  payload: unknown[] | undefined;
}

export interface RunOutcome {
  status: Extract<RunStatus, 'succeeded' | 'failed' | 'incomplete'>;
  finishedAt: number;
  durationMs: number;
  rowsRead: number;
  rowsWritten: number;
  errorCode: string | null;
  errorStep: string | null;
  /** Execution details to keep (standard flows), or undefined. */
  details?: { steps: unknown; errorMessage: string | null };
}

export interface RunFilter {
  flow?: string;
  status?: RunStatus;
}

export class RunRepository {
  constructor(
    private readonly db: Kysely<Database>,
    private readonly statements: Statements,
  ) {}

  /** Insert a run (and its input when kept); used inside a group commit. */
  async insert(trx: Db, run: RunRow, input: RunInput | undefined): Promise<void> {
    await this.statements.insert(trx, 'runs', run);
    if (input !== undefined && run.input_kept === 1) {
      await this.statements.insert(trx, 'run_inputs', {
        run_id: run.id,
        workspace_id: run.workspace_id,
        input: JSON.stringify(input),
        created_at: run.queued_at,
      });
    }
  }

  async byIdempotencyKey(workspaceId: string, key: string): Promise<RunRow | undefined> {
    return this.db
      .selectFrom('runs')
      .selectAll()
      .where('workspace_id', '=', workspaceId)
      .where('idempotency_key', '=', key)
      .executeTakeFirst();
  }

  async get(id: string): Promise<RunRow | undefined> {
    return this.db.selectFrom('runs').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async inWorkspace(workspaceId: string, id: string): Promise<RunRow | undefined> {
    return this.db
      .selectFrom('runs')
      .selectAll()
      .where('workspace_id', '=', workspaceId)
      .where('id', '=', id)
      .executeTakeFirst();
  }

  async list(workspaceId: string, filter: RunFilter, limit: number, cursor?: string): Promise<Page<RunRow>> {
    const before = decodeCursor(cursor);
    let query = this.db.selectFrom('runs').selectAll().where('workspace_id', '=', workspaceId);
    if (filter.flow !== undefined) query = query.where('flow_name', '=', filter.flow);
    if (filter.status !== undefined) query = query.where('status', '=', filter.status);
    if (before !== undefined) query = query.where('id', '<', before);
    const rows = await query
      .orderBy('id', 'desc')
      .limit(limit + 1)
      .execute();
    return toPage(rows, limit, (row) => row.id);
  }

  async details(runId: string): Promise<RunDetailsRow | undefined> {
    return this.db.selectFrom('run_details').selectAll().where('run_id', '=', runId).executeTakeFirst();
  }

  async input(runId: string): Promise<RunInput | undefined> {
    const row = await this.db
      .selectFrom('run_inputs')
      .select('input')
      .where('run_id', '=', runId)
      .executeTakeFirst();
    return row ? (JSON.parse(row.input) as RunInput) : undefined;
  }

  /**
   * Take a queued run: returns it (attempt counted) if this caller won it. Meant for a group
   * commit, so that many claims share one transaction.
   */
  async claimIn(trx: Db, id: string, now: number): Promise<RunRow | undefined> {
    const [row] = await this.statements.execute<RunRow>(
      trx,
      'runs.claim',
      (db) =>
        db
          .updateTable('runs')
          .set((eb) => ({
            status: 'running',
            started_at: new Slot(1) as never,
            attempt: eb('attempt', '+', 1),
          }))
          .where('id', '=', new Slot(0) as never)
          .where('status', '=', 'queued')
          .returningAll(),
      [id, now],
    );
    return row;
  }

  /** claimIn, in a statement of its own. */
  claim(id: string, now: number): Promise<RunRow | undefined> {
    return this.claimIn(this.db, id, now);
  }

  /** Record how a run ended; on success its input is no longer needed and goes. */
  async finish(trx: Db, run: RunRow, outcome: RunOutcome): Promise<void> {
    await this.statements.execute(
      trx,
      'runs.finish',
      (db) =>
        db
          .updateTable('runs')
          .set({
            status: new Slot(1) as never,
            finished_at: new Slot(2) as never,
            duration_ms: new Slot(3) as never,
            rows_read: new Slot(4) as never,
            rows_written: new Slot(5) as never,
            error_code: new Slot(6) as never,
            error_step: new Slot(7) as never,
          })
          .where('id', '=', new Slot(0) as never),
      [
        run.id,
        outcome.status,
        outcome.finishedAt,
        Math.round(outcome.durationMs),
        outcome.rowsRead,
        outcome.rowsWritten,
        outcome.errorCode,
        outcome.errorStep,
      ],
    );
    if (outcome.details) {
      await trx
        .insertInto('run_details')
        .values({
          run_id: run.id,
          workspace_id: run.workspace_id,
          steps: JSON.stringify(outcome.details.steps),
          error_message: outcome.details.errorMessage,
          created_at: outcome.finishedAt,
        })
        .onConflict((conflict) =>
          conflict.column('run_id').doUpdateSet({
            steps: JSON.stringify(outcome.details!.steps),
            error_message: outcome.details!.errorMessage,
            created_at: outcome.finishedAt,
          }),
        )
        .execute();
    }
    if (outcome.status === 'succeeded' || outcome.status === 'failed') {
      await this.statements.execute(
        trx,
        'run_inputs.delete',
        (db) => db.deleteFrom('run_inputs').where('run_id', '=', new Slot(0) as never),
        [run.id],
      );
    }
  }

  /** Put a run back in the queue (a retry after back-off, or a run interrupted by shutdown). */
  async requeue(
    trx: Db,
    id: string,
    availableAt: number,
    options: { uncountAttempt?: boolean } = {},
  ): Promise<void> {
    await trx
      .updateTable('runs')
      .set((eb) => ({
        status: 'queued',
        available_at: availableAt,
        started_at: null,
        ...(options.uncountAttempt ? { attempt: eb('attempt', '-', 1) } : {}),
      }))
      .where('id', '=', id)
      .execute();
  }

  /** Queued runs whose time has come, oldest first. */
  async due(now: number, limit: number): Promise<Pick<RunRow, 'id' | 'workspace_id'>[]> {
    return this.db
      .selectFrom('runs')
      .select(['id', 'workspace_id'])
      .where('status', '=', 'queued')
      .where('available_at', '<=', now)
      .orderBy('available_at')
      .orderBy('id')
      .limit(limit)
      .execute();
  }

  /** When the next queued run becomes due, if any is waiting. */
  async nextDue(): Promise<number | undefined> {
    const row = await this.db
      .selectFrom('runs')
      .select((eb) => eb.fn.min('available_at').as('next'))
      .where('status', '=', 'queued')
      .executeTakeFirst();
    return row?.next === null || row?.next === undefined ? undefined : Number(row.next);
  }

  async countByStatus(): Promise<Record<string, number>> {
    const rows = await this.db
      .selectFrom('runs')
      .select(['status', (eb) => eb.fn.countAll<number>().as('count')])
      .groupBy('status')
      .execute();
    return Object.fromEntries(rows.map((row) => [row.status, Number(row.count)]));
  }

  /**
   * After a crash: runs left `running` go back to the queue while attempts remain, otherwise
   * to the dead-letter queue. Returns how many of each.
   */
  async recover(now: number): Promise<{ requeued: number; deadLettered: number }> {
    return this.db.transaction().execute(async (trx) => {
      const requeued = await trx
        .updateTable('runs')
        .set({ status: 'queued', available_at: now, started_at: null })
        .where('status', '=', 'running')
        .whereRef('attempt', '<', 'max_attempts')
        .executeTakeFirst();
      const deadLettered = await trx
        .updateTable('runs')
        .set({ status: 'incomplete', finished_at: now, error_code: 'INTERRUPTED' })
        .where('status', '=', 'running')
        .executeTakeFirst();
      return { requeued: Number(requeued.numUpdatedRows), deadLettered: Number(deadLettered.numUpdatedRows) };
    });
  }

  /** Send an incomplete run back to the queue with fresh attempts. */
  async retry(workspaceId: string, id: string, now: number): Promise<boolean> {
    const result = await this.db
      .updateTable('runs')
      .set({
        status: 'queued',
        attempt: 0,
        available_at: now,
        started_at: null,
        finished_at: null,
        error_code: null,
        error_step: null,
      })
      .where('workspace_id', '=', workspaceId)
      .where('id', '=', id)
      .where('status', '=', 'incomplete')
      .executeTakeFirst();
    return Number(result.numUpdatedRows) === 1;
  }

  /** Give up on an incomplete run: it becomes failed and its input is deleted. */
  async discard(workspaceId: string, id: string): Promise<boolean> {
    return this.db.transaction().execute(async (trx) => {
      const result = await trx
        .updateTable('runs')
        .set({ status: 'failed', error_code: 'DISCARDED' })
        .where('workspace_id', '=', workspaceId)
        .where('id', '=', id)
        .where('status', '=', 'incomplete')
        .executeTakeFirst();
      if (Number(result.numUpdatedRows) !== 1) return false;
      await trx.deleteFrom('run_inputs').where('run_id', '=', id).execute();
      return true;
    });
  }
}
