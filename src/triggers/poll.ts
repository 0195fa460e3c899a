/**
 * Polls: re-read one input step of a flow through the engine, tell new and changed rows from
 * seen ones, and fire one run per new or changed row with that row as the trigger payload.
 *
 * - `cursor: col` — rows whose cursor is greater than the stored one are new; the greatest
 *   cursor seen is stored (an id or a time: the only value a poll keeps).
 * - `key: [cols]` — rows whose key is unseen, or whose row hash changed, fire. Only HMAC-SHA-256
 *   hashes of the key and of the whole row are kept (keyed with a random per-flow salt, so a
 *   low-entropy key cannot be looked up in a table of hashes), never values.
 * - Every run is created with an idempotency key derived from the row, so a crash between
 *   firing and remembering, or two processes polling the same source, never fire twice.
 * - The first poll (of a new flow, or after its poll settings changed) takes a baseline by
 *   default (`initial: baseline`), or fires for every row (`initial: fire`).
 */
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { runWithEgress } from '../egress/index.js';
import { egressForWorkspace } from '../egress/workspace.js';
import { runFlow } from '../engine/run.js';
import { LetheError } from '../errors/index.js';
import { resolveParams, type LoadedFlow } from '../flow/load.js';
import type { FlowStep } from '../flow/validate.js';
import { StoredConnections } from '../runs/connections.js';
import type { ServerContext } from '../server/context.js';
import type { FlowRow } from '../store/flows.js';
import type { Workspace } from '../store/workspaces.js';
import { compareValues, KeyMaker, rowToRecord, type Row, type Table, type Value } from '../table/index.js';
import { forgetSeen, rememberMany, seenWithTime } from './store-queries.js';

export interface PollDefinition {
  every: string;
  step: string;
  key?: string[];
  cursor?: string;
  initial?: 'baseline' | 'fire';
}

/** What a poll keeps in trigger_state (kind `poll`). */
export interface PollState {
  /** Random, per flow: the HMAC key of the row and key hashes. */
  salt: string;
  /** A hash of the poll's settings; when they change, the next poll is a first poll again. */
  settings: string;
  /**
   * Cursor mode: the greatest cursor value seen, encrypted with the workspace's data key — it
   * is a value from the source (an id, a time), which may be personal or confidential.
   */
  cursorSealed?: string;
  /** When the last poll finished (epoch ms), so processes and restarts keep the interval. */
  polledAt?: number;
}

export interface PollOutcome {
  status: 'polled' | 'baseline' | 'busy' | 'skipped';
  /** Rows the step returned. */
  rows: number;
  /** Rows that were new or changed. */
  changed: number;
  /** Runs created (a row whose run existed already — an earlier attempt — is not counted). */
  fired: number;
  /** Rows ignored: a null key or cursor, or a key that appears again later in the same read. */
  ignored: number;
}

/** Runs created at once (each a group-committed write). */
const FIRE_BATCH = 32;

export function pollSettingsHash(poll: PollDefinition): string {
  const settings = { step: poll.step, key: poll.key ?? null, cursor: poll.cursor ?? null };
  return createHash('sha256').update(JSON.stringify(settings)).digest('hex').slice(0, 32);
}

function hmac(salt: string, text: string): string {
  return createHmac('sha256', salt).update(text).digest('hex');
}

/** A row's canonical text: columns by name, values typed (1 ≠ "1"), so column order does not matter. */
function canonicalRow(columns: readonly string[], row: Row): string {
  const pairs = columns.map((column, i) => [column, row[i] ?? null] as const);
  pairs.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  return JSON.stringify(pairs);
}

/** The idempotency key of a poll run: flow name and a digest of what made the row fire. */
export function pollKey(flowName: string, parts: string): string {
  return `poll:${flowName}:${createHash('sha256').update(parts).digest('hex')}`;
}

/** A flow of the polled input step alone, whose table comes back as the run's response. */
export function pollStepFlow(loaded: LoadedFlow, stepId: string): LoadedFlow {
  const step = loaded.flow.steps.find((candidate) => candidate.id === stepId);
  if (!step || step.command !== 'input') {
    throw new LetheError('FLOW_INVALID', `the poll's step "${stepId}" is not an input step of the flow`);
  }
  const respondId = step.id === 'poll-result' ? 'poll-result-2' : 'poll-result';
  const respond: FlowStep = {
    id: respondId,
    command: 'output',
    body: { from: step.id, respond: true },
    index: step.index,
    references: [{ step: step.id, path: ['from'] }],
    after: [],
  };
  return { ...loaded, flow: { ...loaded.flow, steps: [{ ...step, after: [] }, respond] } };
}

export interface PollRequest {
  context: ServerContext;
  workspace: Workspace;
  flow: FlowRow;
  loaded: LoadedFlow;
  poll: PollDefinition;
  now: () => number;
  signal: AbortSignal;
}

/** Run the polled step through the engine with the workspace's connections. */
export async function readPolledStep(request: PollRequest): Promise<Table> {
  const { context, workspace, loaded, poll } = request;
  const connections = new StoredConnections(
    () => context.store.connections.all(workspace.id),
    context.vault,
    context.runner.filesDir(workspace.name),
  );
  try {
    const result = await runWithEgress(egressForWorkspace(workspace.settings), () =>
      runFlow(pollStepFlow(loaded, poll.step), {
        params: resolveParams(loaded.flow, {}),
        connections,
        counters: context.store.counters,
        signal: request.signal,
        workspace: workspace.id,
        confineFiles: true,
        sampleRows: 0,
      }),
    );
    if (result.error) throw result.error;
    return result.response ?? { columns: [], rows: [] };
  } finally {
    await connections.closeAll();
  }
}

function columnIndex(table: Table, column: string, poll: PollDefinition, field: string): number {
  const index = table.columns.indexOf(column);
  if (index === -1) {
    throw new LetheError(
      'COLUMN_UNKNOWN',
      `the poll's ${field} column "${column}" is not in the output of step "${poll.step}"`,
      { step: poll.step, hint: `its columns are: ${table.columns.join(', ')}` },
    );
  }
  return index;
}

interface Candidate {
  row: Row;
  /** The idempotency key's parts. */
  parts: string;
  keyHash?: string;
  rowHash?: string;
}

/** The name the cursor's ciphertext is bound to, so it cannot be moved to another flow. */
function cursorScope(flow: FlowRow): string {
  return `poll:${flow.name}`;
}

async function openCursor(
  context: ServerContext,
  workspace: Workspace,
  flow: FlowRow,
  state: PollState | undefined,
): Promise<Value | undefined> {
  if (state?.cursorSealed === undefined) return undefined;
  const text = await context.vault.decrypt(workspace.id, cursorScope(flow), 'cursor', state.cursorSealed);
  return JSON.parse(text) as Value;
}

/**
 * One poll of a flow (the caller makes sure polls of one flow do not overlap). Reads the
 * state, the step, fires, remembers, and writes the state back.
 */
export async function pollFlow(request: PollRequest): Promise<PollOutcome> {
  const { context, workspace, flow, poll } = request;
  const { store } = context;
  const state = await store.triggerState.get<PollState>(workspace.id, flow.name, 'poll');
  const settings = pollSettingsHash(poll);
  const first = state?.settings !== settings;
  const salt = state?.salt ?? randomBytes(16).toString('hex');
  if (!state) {
    // The salt is stored before anything fires: a retry after a crash must make the same hashes,
    // and so the same idempotency keys.
    const initial: PollState = { salt, settings: '' };
    await store.triggerState.set(store.db, workspace.id, flow.name, 'poll', initial, request.now());
  }
  const baseline = first && (poll.initial ?? 'baseline') === 'baseline';

  const table = await readPolledStep(request);
  const columns = table.columns;
  const now = request.now();
  let ignored = 0;
  const candidates: Candidate[] = [];
  const remember: { keyHash: string; rowHash: string }[] = [];
  let cursor: Value | undefined = first ? undefined : await openCursor(context, workspace, flow, state);

  if (poll.cursor !== undefined) {
    const index = columnIndex(table, poll.cursor, poll, 'cursor');
    const previous = cursor;
    const fresh: Row[] = [];
    for (const row of table.rows) {
      const value = row[index] ?? null;
      if (value === null) {
        ignored++;
        continue;
      }
      if (previous !== undefined && previous !== null && compareValues(value, previous) <= 0) continue;
      fresh.push(row);
      if (cursor === undefined || cursor === null || compareValues(value, cursor) > 0) cursor = value;
    }
    // Fire in cursor order; identical rows are told apart by their occurrence.
    fresh.sort((a, b) => compareValues(a[index]!, b[index]!));
    const occurrences = new Map<string, number>();
    for (const row of fresh) {
      const rowHash = hmac(salt, canonicalRow(columns, row));
      const n = (occurrences.get(rowHash) ?? 0) + 1;
      occurrences.set(rowHash, n);
      candidates.push({ row, parts: `cursor:${rowHash}:${n}` });
    }
  } else {
    const key = poll.key ?? [];
    const indexes = key.map((column) => columnIndex(table, column, poll, 'key'));
    const keys = new KeyMaker();
    // A key that appears more than once in one read: its last row counts.
    const latest = new Map<string, { row: Row; rowHash: string }>();
    for (const row of table.rows) {
      if (indexes.some((i) => (row[i] ?? null) === null)) {
        ignored++;
        continue;
      }
      const keyHash = hmac(salt, `${settings}\n${keys.composite(row, indexes)}`);
      if (latest.delete(keyHash)) ignored++;
      latest.set(keyHash, { row, rowHash: hmac(salt, canonicalRow(columns, row)) });
    }
    if (first) await forgetSeen(store.db, workspace.id, flow.name);
    const seen = first
      ? new Map<string, { rowHash: string; seenAt: number }>()
      : await seenWithTime(store.db, workspace.id, flow.name, [...latest.keys()]);
    for (const [keyHash, { row, rowHash }] of latest) {
      const before = seen.get(keyHash);
      if (before?.rowHash === rowHash) continue;
      // The time the key was last remembered tells this change from an earlier one that
      // happened to give the same row (a value changed back and forth).
      candidates.push({
        row,
        parts: `key:${keyHash}:${rowHash}:${before?.seenAt ?? 'new'}`,
        keyHash,
        rowHash,
      });
    }
  }

  let fired = 0;
  if (baseline) {
    for (const candidate of candidates) {
      if (candidate.keyHash) remember.push({ keyHash: candidate.keyHash, rowHash: candidate.rowHash! });
    }
    await rememberMany(store.db, workspace.id, flow.name, remember, now);
  } else {
    for (let i = 0; i < candidates.length; i += FIRE_BATCH) {
      if (request.signal.aborted) throw new LetheError('CANCELLED', 'the poll was stopped');
      const batch = candidates.slice(i, i + FIRE_BATCH);
      const created = await Promise.all(
        batch.map((candidate) =>
          context.runs.create({
            workspace,
            flow,
            trigger: 'poll',
            payload: [rowToRecord(columns, candidate.row)],
            idempotencyKey: pollKey(flow.name, candidate.parts),
          }),
        ),
      );
      fired += created.filter((run) => !run.duplicate).length;
      const entries = batch
        .filter((candidate) => candidate.keyHash !== undefined)
        .map((candidate) => ({ keyHash: candidate.keyHash!, rowHash: candidate.rowHash! }));
      await rememberMany(store.db, workspace.id, flow.name, entries, now);
    }
  }
  const next: PollState = { salt, settings, polledAt: request.now() };
  if (poll.cursor !== undefined && cursor !== undefined) {
    next.cursorSealed = await context.vault.encrypt(
      workspace.id,
      cursorScope(flow),
      'cursor',
      JSON.stringify(cursor),
    );
  }
  await store.triggerState.set(store.db, workspace.id, flow.name, 'poll', next, request.now());
  return {
    status: baseline ? 'baseline' : 'polled',
    rows: table.rows.length,
    changed: candidates.length,
    fired,
    ignored,
  };
}
