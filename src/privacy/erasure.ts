/**
 * Data-subject erasure (SPEC 6, privacy issue item 5): a request to erase one person — by
 * e-mail, account id or key — from every data class that may hold personal data, within a due
 * date (30 days, extendable once by up to 60 more, GDPR Art. 12(3)), with a completion report.
 *
 * - **The request** keeps the subject only sealed (vault-encrypted, bound to the request) and
 *   only while it is open; a keyed hash (./erasure-subject.ts) recognises a repeated request
 *   without the subject. Free text (reason, extension reason) never holds the subject: it is
 *   replaced by the pseudonym before it is stored.
 * - **Processing** (`processErasure`) searches every table with personal columns
 *   (`ERASURE_TABLES`, checked against src/store/tables.ts by a test) in bounded batches: a
 *   LIKE prefilter in SQL, then the matcher decides. Execution details, gateway log entries and
 *   dead-letter inputs are deleted (the run stays; a dead-lettered or queued run whose input
 *   went is marked failed, ERASED); flow versions, connection settings and token names are
 *   pseudonymised (deleting a flow or a connection is not what was asked). A workspace on
 *   legal hold keeps every record, pseudonymised. Each batch commits together with the
 *   request's progress, so a request interrupted by a restart resumes with exact counts; a
 *   lease in the progress lets one processor at a time work on a request, in any process.
 * - **Completion** writes the report, drops the sealed subject and appends one audit entry per
 *   data class touched (ids and counts only), all in one transaction.
 */
import { randomBytes } from 'node:crypto';
import { sql, type Expression, type Kysely, type SqlBool, type Transaction } from 'kysely';
import { LetheError } from '../errors/index.js';
import { loadMasterKey, type Vault } from '../security/vault.js';
import { decodeCursor, newId, toPage, type Page } from '../store/ids.js';
import type { Store } from '../store/index.js';
import type { ErasureRequestsTable } from '../store/schema.js';
import type { AuditLog } from './audit.js';
import { DATA_CLASSES, type DataClassName } from './data-classes.js';
import {
  deriveSubjectKey,
  formatSubject,
  parseSubject,
  pseudonymOf,
  SubjectMatcher,
  subjectHash,
  type SubjectForm,
  type SubjectKind,
} from './erasure-subject.js';
import { privacySettings } from './settings.js';

export { parseSubject, type Subject, type SubjectKind } from './erasure-subject.js';

export const DEFAULT_DUE_DAYS = 30;
export const MAX_EXTENSION_DAYS = 60;
export const MAX_REASON_LENGTH = 500;
const DAY_MS = 86_400_000;
/** A processor holds a request this long without renewing; then another may take over. */
const LEASE_MS = 30_000;
const DEFAULT_BATCH = 200;
/** Sweeps of all tables per processing: again when runs were running or rows changed meanwhile. */
const MAX_PASSES = 5;
const DEFAULT_RUN_WAIT_MS = 120_000;

/** What erasure needs of the server (ServerContext has it all; the CLI builds its own). */
export interface ErasureContext {
  store: Store;
  vault: Vault;
  audit: AuditLog;
  config: { dataDir: string };
}

export type ErasureRow = ErasureRequestsTable;

// ---------------------------------------------------------------------------------------------
// Keys and clocks

const subjectKeys = new WeakMap<object, Buffer>();
const clocks = new WeakMap<object, () => number>();

/** The subject-hash key of a deployment: HKDF of the master key (LETHE_MASTER_KEY or the data dir's). */
function subjectKeyOf(context: ErasureContext): Buffer {
  let key = subjectKeys.get(context.store);
  if (!key) {
    key = deriveSubjectKey(loadMasterKey(context.config.dataDir).key);
    subjectKeys.set(context.store, key);
  }
  return key;
}

/** Make erasure see another time (tests: due dates and overdue requests). */
export function setErasureClock(
  context: Pick<ErasureContext, 'store'>,
  now: (() => number) | undefined,
): void {
  if (now) clocks.set(context.store, now);
  else clocks.delete(context.store);
}

function nowOf(context: Pick<ErasureContext, 'store'>): number {
  return (clocks.get(context.store) ?? Date.now)();
}

// ---------------------------------------------------------------------------------------------
// Where personal data is searched

export type ErasureTableName =
  | 'run_inputs'
  | 'gateway_log'
  | 'run_details'
  | 'flow_versions'
  | 'connections'
  | 'api_tokens'
  | 'user_tokens'
  | 'users';

export interface ErasureTable {
  table: ErasureTableName;
  dataClass: DataClassName;
  /** The primary key without workspace_id (every table here has one), for keyset paging. */
  key: readonly string[];
  /** The columns searched (and pseudonymised). */
  columns: readonly string[];
  /**
   * delete: records holding the subject go (pseudonymised instead on legal hold);
   * pseudonymise: they stay with the subject replaced; report: they are counted and named in
   * the report only (what another procedure must do).
   */
  action: 'delete' | 'pseudonymise' | 'report';
  /** Whether SQL can preselect rows; connections' secrets are encrypted, so every row is read. */
  prefilter: boolean;
  /** workspace: rows with the workspace's id; members: deployment rows of the workspace's members. */
  scope: 'workspace' | 'members';
}

/** Every table with personal columns (src/store/tables.ts), in the order they are swept. */
export const ERASURE_TABLES: readonly ErasureTable[] = [
  // First the flows, so runs that start meanwhile already use the pseudonymised text.
  {
    table: 'flow_versions',
    dataClass: 'config',
    key: ['flow_name', 'version'],
    columns: ['source'],
    action: 'pseudonymise',
    prefilter: true,
    scope: 'workspace',
  },
  // Then inputs: a queued run whose input holds the subject is stopped before it runs.
  {
    table: 'run_inputs',
    dataClass: 'dlq',
    key: ['run_id'],
    columns: ['input'],
    action: 'delete',
    prefilter: true,
    scope: 'workspace',
  },
  {
    table: 'gateway_log',
    dataClass: 'gateway_log',
    key: ['id'],
    columns: ['body'],
    action: 'delete',
    prefilter: true,
    scope: 'workspace',
  },
  {
    table: 'run_details',
    dataClass: 'execution_detail',
    key: ['run_id'],
    columns: ['steps', 'error_message'],
    action: 'delete',
    prefilter: true,
    scope: 'workspace',
  },
  {
    table: 'connections',
    dataClass: 'credential',
    key: ['name'],
    columns: ['settings', 'secrets'],
    action: 'pseudonymise',
    prefilter: false,
    scope: 'workspace',
  },
  {
    table: 'api_tokens',
    dataClass: 'credential',
    key: ['id'],
    columns: ['name'],
    action: 'pseudonymise',
    prefilter: true,
    scope: 'workspace',
  },
  // Invitations to the workspace sent to the subject.
  {
    table: 'user_tokens',
    dataClass: 'credential',
    key: ['id'],
    columns: ['email'],
    action: 'delete',
    prefilter: true,
    scope: 'workspace',
  },
  // A member's own sign-in account: deployment-wide, so closing it is user management's job.
  {
    table: 'users',
    dataClass: 'credential',
    key: ['id'],
    columns: ['email'],
    action: 'report',
    prefilter: true,
    scope: 'members',
  },
];

/** Classes that may hold personal data but have no tables in this version. */
const NOT_STORED: ReadonlySet<DataClassName> = new Set(['data_store', 'directory']);

// ---------------------------------------------------------------------------------------------
// Progress and report

export interface TableCounts {
  found: number;
  deleted: number;
  pseudonymised: number;
}

/** What the `report` column holds while a request is open. */
interface Progress {
  reason: string | null;
  passes: number;
  startedAt: number | null;
  tables: Partial<Record<ErasureTableName, TableCounts>>;
  /** Flows and connections whose records were pseudonymised (names, at most 100 each). */
  flows: string[];
  connections: string[];
  /** Ids of members' sign-in accounts that use the subject (reported, not changed). */
  accounts: string[];
  /** Dead-lettered or queued runs marked failed (ERASED) because their input went. */
  runsMarked: number;
  /** The last failure's error class, if processing failed (it is tried again). */
  lastError: string | null;
  lease: { owner: string; until: number } | null;
}

export interface ErasureClassReport {
  dataClass: DataClassName;
  /** Whether this version stores records of the class at all. */
  stored: boolean;
  /** Whether records of the class may hold personal data (SPEC 3). */
  mayHoldPersonalData: boolean;
  found: number;
  deleted: number;
  pseudonymised: number;
  tables: ({ table: ErasureTableName } & TableCounts)[];
  note: string;
  flows?: string[];
  connections?: string[];
  /** Ids of members' sign-in accounts that use the subject: close them through user management. */
  accounts?: string[];
}

export interface ErasureReport {
  requestId: string;
  subjectKind: SubjectKind;
  legalHold: boolean;
  /** What replaced the subject in records that stay (null when nothing was pseudonymised). */
  pseudonym: string | null;
  createdAt: string;
  dueAt: string;
  completedAt: string;
  completedLate: boolean;
  /** Runs whose trigger input was erased: they stay, marked failed (ERASED). */
  runsMarked: number;
  /** One entry per data class (SPEC 3), every class listed. */
  classes: ErasureClassReport[];
  notes: string[];
}

const NAMES_KEPT = 100;

function emptyProgress(reason: string | null): Progress {
  return {
    reason,
    passes: 0,
    startedAt: null,
    tables: {},
    flows: [],
    connections: [],
    accounts: [],
    runsMarked: 0,
    lastError: null,
    lease: null,
  };
}

function parseProgress(text: string | null): Progress {
  if (!text) return emptyProgress(null);
  try {
    return { ...emptyProgress(null), ...(JSON.parse(text) as Partial<Progress>) };
  } catch {
    return emptyProgress(null);
  }
}

// ---------------------------------------------------------------------------------------------
// Views

export type ErasureStatus = 'open' | 'processing' | 'completed';

export interface ErasureView {
  id: string;
  subjectKind: string;
  status: ErasureStatus;
  requestedBy: string;
  reason: string | null;
  createdAt: string;
  dueAt: string;
  overdue: boolean;
  extended: boolean;
  extendedAt: string | null;
  extensionReason: string | null;
  completedAt: string | null;
  progress: {
    passes: number;
    startedAt: string | null;
    tables: ({ table: string; dataClass: string } & TableCounts)[];
    lastError: string | null;
  } | null;
  report: ErasureReport | null;
}

const iso = (ms: number | null) => (ms === null ? null : new Date(Number(ms)).toISOString());

export function erasureView(row: ErasureRow, now: number): ErasureView {
  const completed = row.status === 'completed';
  let report: ErasureReport | null = null;
  let progress: ErasureView['progress'] = null;
  let reason: string | null = null;
  let status: ErasureStatus = completed ? 'completed' : 'open';
  if (completed) {
    const parsed = row.report ? (JSON.parse(row.report) as ErasureReport & { reason?: string | null }) : null;
    reason = parsed?.reason ?? null;
    if (parsed) {
      const { reason: _reason, ...rest } = parsed;
      report = rest;
    }
  } else {
    const state = parseProgress(row.report);
    reason = state.reason;
    if (state.lease && state.lease.until > Date.now()) status = 'processing';
    progress = {
      passes: state.passes,
      startedAt: iso(state.startedAt),
      tables: ERASURE_TABLES.map((t) => ({
        table: t.table,
        dataClass: t.dataClass,
        ...(state.tables[t.table] ?? { found: 0, deleted: 0, pseudonymised: 0 }),
      })),
      lastError: state.lastError,
    };
  }
  return {
    id: row.id,
    subjectKind: row.subject_kind,
    status,
    requestedBy: row.requested_by,
    reason,
    createdAt: iso(row.created_at)!,
    dueAt: iso(row.due_at)!,
    overdue: !completed && Number(row.due_at) < now,
    extended: row.extended_at !== null,
    extendedAt: iso(row.extended_at),
    extensionReason: row.extension_reason,
    completedAt: iso(row.completed_at),
    progress,
    report,
  };
}

/** A request as shown, with "overdue" by the erasure clock (settable in tests). */
export function viewOf(context: Pick<ErasureContext, 'store'>, row: ErasureRow): ErasureView {
  return erasureView(row, nowOf(context));
}

// ---------------------------------------------------------------------------------------------
// Requests: create, read, list, extend

function checkReason(reason: string | undefined | null, what: string): string | null {
  if (reason === undefined || reason === null) return null;
  const trimmed = reason.trim();
  if (trimmed === '') return null;
  if (trimmed.length > MAX_REASON_LENGTH)
    throw new LetheError('USAGE', `the ${what} is longer than ${MAX_REASON_LENGTH} characters`);
  return trimmed;
}

export interface CreateErasureInput {
  workspaceId: string;
  /** `email:…`, `account:…` or `key:…` */
  subject: string;
  reason?: string;
  /** Who asked: `token:<id>`, `cli`… (an id, never a name). */
  requestedBy: string;
  /** Days until due (default 30). */
  dueDays?: number;
}

export interface CreatedErasure {
  request: ErasureRow;
  /** False when an open request for the same subject exists already (it is returned). */
  created: boolean;
  /** Earlier requests for the same subject in the workspace, completed ones included. */
  previous: string[];
}

export async function createErasureRequest(
  context: ErasureContext,
  input: CreateErasureInput,
): Promise<CreatedErasure> {
  const subject = parseSubject(input.subject);
  const hash = subjectHash(subjectKeyOf(context), input.workspaceId, subject);
  const matcher = new SubjectMatcher(subject, pseudonymOf(hash));
  const reason = checkReason(input.reason, 'reason');
  const dueDays = input.dueDays ?? DEFAULT_DUE_DAYS;
  if (!Number.isInteger(dueDays) || dueDays < 1 || dueDays > DEFAULT_DUE_DAYS)
    throw new LetheError('USAGE', `the due date must be 1 to ${DEFAULT_DUE_DAYS} days away`);
  const db = context.store.db;
  const earlier = await db
    .selectFrom('erasure_requests')
    .selectAll()
    .where('workspace_id', '=', input.workspaceId)
    .where('subject_hash', '=', hash)
    .orderBy('id')
    .execute();
  const open = earlier.find((row) => row.status !== 'completed');
  const previous = earlier.filter((row) => row !== open).map((row) => row.id);
  if (open) return { request: open, created: false, previous };

  const now = nowOf(context);
  const id = newId(now);
  const row: ErasureRow = {
    id,
    workspace_id: input.workspaceId,
    subject_kind: subject.kind,
    subject_hash: hash,
    subject_sealed: await context.vault.encrypt(
      input.workspaceId,
      `erasure:${id}`,
      'subject',
      formatSubject(subject),
    ),
    status: 'open',
    created_at: now,
    due_at: now + dueDays * DAY_MS,
    extended_at: null,
    extension_reason: null,
    completed_at: null,
    // A reason that names the subject would keep it: it is pseudonymised before it is stored.
    report: JSON.stringify(emptyProgress(reason === null ? null : matcher.replace(reason).text)),
    requested_by: input.requestedBy,
  };
  await db.transaction().execute(async (trx) => {
    await trx.insertInto('erasure_requests').values(row).execute();
    await context.audit.append(
      {
        workspaceId: input.workspaceId,
        actor: input.requestedBy,
        action: 'erasure.requested',
        reason: `erasure request ${id}`,
        details: { requestId: id, subjectKind: subject.kind, repeatOf: previous.length },
      },
      trx,
    );
  });
  return { request: row, created: true, previous };
}

export async function getErasureRequest(
  context: Pick<ErasureContext, 'store'>,
  workspaceId: string,
  id: string,
): Promise<ErasureRow | undefined> {
  return context.store.db
    .selectFrom('erasure_requests')
    .selectAll()
    .where('workspace_id', '=', workspaceId)
    .where('id', '=', id)
    .executeTakeFirst();
}

export interface ErasureListFilter {
  status?: 'open' | 'completed';
  overdue?: boolean;
}

/** Requests of a workspace, newest first, with overdue ones flagged (and filterable). */
export async function listErasureRequests(
  context: Pick<ErasureContext, 'store'>,
  workspaceId: string,
  filter: ErasureListFilter,
  limit: number,
  cursor?: string,
): Promise<Page<ErasureView>> {
  const now = nowOf(context);
  const before = decodeCursor(cursor);
  let query = context.store.db
    .selectFrom('erasure_requests')
    .selectAll()
    .where('workspace_id', '=', workspaceId);
  if (filter.status === 'completed') query = query.where('status', '=', 'completed');
  if (filter.status === 'open') query = query.where('status', '!=', 'completed');
  if (filter.overdue === true) query = query.where('status', '!=', 'completed').where('due_at', '<', now);
  if (filter.overdue === false)
    query = query.where((eb) => eb.or([eb('status', '=', 'completed'), eb('due_at', '>=', now)]));
  if (before !== undefined) query = query.where('id', '<', before);
  const rows = await query
    .orderBy('id', 'desc')
    .limit(limit + 1)
    .execute();
  const page = toPage(rows, limit, (row) => row.id);
  return { items: page.items.map((row) => erasureView(row, now)), next: page.next };
}

/** Why an extension was refused. */
export class ErasureConflict extends LetheError {
  constructor(
    readonly kind: 'ALREADY_EXTENDED' | 'ALREADY_COMPLETED',
    message: string,
  ) {
    super('CONFLICT', message);
  }
}

/**
 * Extend the due date once, by up to 60 days, with a reason. Undefined when the request does
 * not exist; ErasureConflict when it was extended already or is completed.
 */
export async function extendErasureRequest(
  context: ErasureContext,
  workspaceId: string,
  id: string,
  input: { reason: string; days?: number; actor: string },
): Promise<ErasureRow | undefined> {
  const days = input.days ?? MAX_EXTENSION_DAYS;
  if (!Number.isInteger(days) || days < 1 || days > MAX_EXTENSION_DAYS)
    throw new LetheError('USAGE', `an extension is 1 to ${MAX_EXTENSION_DAYS} days`);
  const reason = checkReason(input.reason, 'reason');
  if (reason === null)
    throw new LetheError('USAGE', 'an extension needs a reason', {
      hint: 'GDPR Art. 12(3): the data subject is told why within the first month',
    });
  const row = await getErasureRequest(context, workspaceId, id);
  if (!row) return undefined;
  const refuse = (current: ErasureRow): never => {
    if (current.status === 'completed')
      throw new ErasureConflict('ALREADY_COMPLETED', `erasure request "${id}" is completed`);
    throw new ErasureConflict(
      'ALREADY_EXTENDED',
      `erasure request "${id}" was extended already: a request may be extended once`,
    );
  };
  if (row.status === 'completed' || row.extended_at !== null || row.subject_sealed === null) refuse(row);
  // The reason must not name the subject: it is pseudonymised with the request's own subject.
  const subject = await context.vault.decrypt(workspaceId, `erasure:${id}`, 'subject', row.subject_sealed!);
  const matcher = new SubjectMatcher(parseSubject(subject), pseudonymOf(row.subject_hash));
  const now = nowOf(context);
  const changed = await context.store.db.transaction().execute(async (trx) => {
    const result = await trx
      .updateTable('erasure_requests')
      .set({
        due_at: Number(row.due_at) + days * DAY_MS,
        extended_at: now,
        extension_reason: matcher.replace(reason).text,
      })
      .where('id', '=', id)
      .where('workspace_id', '=', workspaceId)
      .where('status', '!=', 'completed')
      .where('extended_at', 'is', null)
      .executeTakeFirst();
    if (Number(result.numUpdatedRows) !== 1) return false;
    await context.audit.append(
      {
        workspaceId,
        actor: input.actor,
        action: 'erasure.extended',
        reason: `erasure request ${id}`,
        details: { requestId: id, days },
      },
      trx,
    );
    return true;
  });
  const current = (await getErasureRequest(context, workspaceId, id))!;
  if (!changed) refuse(current);
  return current;
}

// ---------------------------------------------------------------------------------------------
// Processing

export interface ProcessOptions {
  /** Rows read per batch (default 200). */
  batchSize?: number;
  signal?: AbortSignal;
  /** How long to wait for runs that are running with the subject in their input (default 2 min). */
  runWaitMs?: number;
  /** Called after each committed batch (tests interrupt processing here). */
  onBatch?: (table: ErasureTableName) => void;
}

export type ProcessOutcome =
  /** Done: the report is written. */
  | 'completed'
  /** Another processor holds the request. */
  | 'busy'
  /** Runs with the subject are still running: the request stays open and is tried again. */
  | 'waiting'
  /** Stopped by the signal: the request stays open and resumes where it was. */
  | 'aborted';

export interface ProcessResult {
  outcome: ProcessOutcome;
  request: ErasureRow;
}

class LeaseLost extends Error {}

/* eslint-disable @typescript-eslint/no-explicit-any -- the swept tables are chosen at run time */
type AnyDb = Kysely<any> | Transaction<any>;

type Row = Record<string, unknown>;

const likePattern = (text: string) => `%${text.replace(/[\\%_]/g, '\\$&')}%`;

/** `(col LIKE %form% OR …)` over columns and forms, case-insensitive where the form says. */
function containsAny(
  dialect: Store['dialect'],
  columns: readonly string[],
  forms: readonly SubjectForm[],
): Expression<SqlBool> {
  const parts = columns.flatMap((column) =>
    forms.map((form) => {
      // SQLite's LIKE ignores ASCII case anyway (a superset: the matcher decides).
      const operator = dialect === 'postgres' && form.caseInsensitive ? 'ilike' : 'like';
      return sql<SqlBool>`${sql.ref(column)} ${sql.raw(operator)} ${likePattern(form.text)} escape '\\'`;
    }),
  );
  return sql<SqlBool>`(${sql.join(parts, sql` or `)})`;
}

/** A decision about one row: undefined when it does not hold the subject. */
type Change = { row: Row; set: Row };

class Processor {
  private readonly db: Kysely<any>;
  private progress: Progress;
  private progressText: string;
  private lastSaved = Date.now();
  /** Progress saved in a transaction not yet committed. */
  private pendingSave: { text: string; progress: Progress } | undefined;
  /** Runs seen running with the subject in their input: wait for them, then sweep again. */
  readonly pending = new Set<string>();
  /** A row changed between reading and writing: sweep again. */
  again = false;

  constructor(
    private readonly context: ErasureContext,
    private readonly request: ErasureRow,
    private readonly owner: string,
    private readonly matcher: SubjectMatcher,
    private readonly legalHold: boolean,
    private readonly options: ProcessOptions,
    progressText: string,
  ) {
    this.db = context.store.db as unknown as Kysely<any>;
    this.progressText = progressText;
    this.progress = parseProgress(progressText);
  }

  get state(): Progress {
    return this.progress;
  }

  /** The progress as stored (what a compare-and-set compares with). */
  get stateText(): string {
    return this.progressText;
  }

  /** Give the request back (end the lease), keeping its progress, after a stop or a failure. */
  async release(lastError: string | null): Promise<void> {
    try {
      await this.db
        .updateTable('erasure_requests')
        .set({ report: JSON.stringify({ ...this.progress, lastError, lease: null }) })
        .where('id', '=', this.request.id)
        .where('status', '=', 'open')
        .where('report', '=', this.progressText)
        .execute();
    } catch {
      // Best effort: the lease runs out by itself.
    }
  }

  private get workspaceId(): string {
    return this.request.workspace_id;
  }

  /** Save progress in `trx` if nobody else changed it since; otherwise the lease is lost. */
  async save(trx: AnyDb, next: Progress): Promise<void> {
    const renewed: Progress = { ...next, lease: { owner: this.owner, until: Date.now() + LEASE_MS } };
    const text = JSON.stringify(renewed);
    const result = await trx
      .updateTable('erasure_requests')
      .set({ report: text })
      .where('id', '=', this.request.id)
      .where('status', '=', 'open')
      .where('report', '=', this.progressText)
      .executeTakeFirst();
    if (Number(result.numUpdatedRows) !== 1) throw new LeaseLost('another processor took the request');
    this.pendingSave = { text, progress: renewed };
  }

  /** After the transaction that saved progress committed. */
  committed(): void {
    if (!this.pendingSave) return;
    this.progressText = this.pendingSave.text;
    this.progress = this.pendingSave.progress;
    this.pendingSave = undefined;
    this.lastSaved = Date.now();
  }

  /** Renew the lease when a third of it has passed without a save. */
  async keepAlive(): Promise<void> {
    if (Date.now() - this.lastSaved < LEASE_MS / 3) return;
    await this.save(this.db, this.progress);
    this.committed();
  }

  async sweepAll(): Promise<void> {
    this.again = false;
    for (const table of ERASURE_TABLES) await this.sweep(table);
    await this.db.transaction().execute(async (trx) => {
      await this.save(trx, { ...this.progress, passes: this.progress.passes + 1 });
    });
    this.committed();
  }

  private async sweep(table: ErasureTable): Promise<void> {
    const batch = this.options.batchSize ?? DEFAULT_BATCH;
    let after: unknown[] | undefined;
    // Records only reported are counted afresh by every sweep (nothing changes them).
    const reported: string[] = [];
    for (;;) {
      if (this.options.signal?.aborted) throw this.options.signal.reason ?? new Error('aborted');
      await this.keepAlive();
      let query = this.db.selectFrom(table.table).select([...table.key, ...table.columns]);
      query =
        table.scope === 'members'
          ? query.where(
              'id',
              'in',
              this.db
                .selectFrom('memberships')
                .select('user_id')
                .where('workspace_id', '=', this.workspaceId),
            )
          : query.where('workspace_id', '=', this.workspaceId);
      if (after !== undefined) {
        const last = after;
        query = query.where((eb) =>
          eb.or(
            table.key.map((column, i) =>
              eb.and([
                ...table.key.slice(0, i).map((previous, j) => eb(previous, '=', last[j])),
                eb(column, '>', last[i]),
              ]),
            ),
          ),
        );
      }
      if (table.prefilter)
        query = query.where(containsAny(this.context.store.dialect, table.columns, this.matcher.forms));
      for (const column of table.key) query = query.orderBy(column);
      const rows = (await query.limit(batch).execute()) as Row[];
      if (rows.length === 0) break;
      after = table.key.map((column) => rows[rows.length - 1]![column]);
      const changes: Change[] = [];
      for (const row of rows) {
        const change = await this.decide(table, row);
        if (change) changes.push(change);
      }
      if (table.action === 'report') {
        reported.push(...changes.map((change) => String(change.row[table.key[0]!])));
      } else if (changes.length > 0) {
        await this.apply(table, changes);
        this.options.onBatch?.(table.table);
      }
      if (rows.length < batch) break;
    }
    if (table.action === 'report') {
      await this.db.transaction().execute(async (trx) => {
        await this.save(trx, {
          ...this.progress,
          tables: {
            ...this.progress.tables,
            [table.table]: { found: reported.length, deleted: 0, pseudonymised: 0 },
          },
          accounts: reported.slice(0, NAMES_KEPT),
        });
      });
      this.committed();
    }
  }

  /** Whether a row holds the subject, and its columns with the subject replaced. */
  private async decide(table: ErasureTable, row: Row): Promise<Change | undefined> {
    const set: Row = {};
    let found = false;
    for (const column of table.columns) {
      const value = row[column];
      if (typeof value !== 'string') continue;
      if (table.table === 'connections' && column === 'secrets') {
        const secrets = await this.secrets(String(row.name), value);
        if (secrets !== undefined) {
          set[column] = secrets;
          found = true;
        }
        continue;
      }
      const replaced = this.matcher.replace(value);
      if (replaced.count > 0) {
        set[column] = replaced.text;
        found = true;
      }
    }
    return found ? { row, set } : undefined;
  }

  /** A connection's secrets with the subject replaced (re-encrypted), or undefined when absent. */
  private async secrets(connection: string, text: string): Promise<string | undefined> {
    let stored: Record<string, string>;
    try {
      stored = JSON.parse(text) as Record<string, string>;
    } catch {
      return undefined;
    }
    let changed = false;
    const next: Record<string, string> = { ...stored };
    for (const [field, ciphertext] of Object.entries(stored)) {
      let plain: string;
      try {
        plain = await this.context.vault.decrypt(this.workspaceId, connection, field, ciphertext);
      } catch {
        continue; // unreadable (another key): nobody can read it either
      }
      const replaced = this.matcher.replace(plain);
      if (replaced.count === 0) continue;
      next[field] = await this.context.vault.encrypt(this.workspaceId, connection, field, replaced.text);
      changed = true;
    }
    return changed ? JSON.stringify(next) : undefined;
  }

  private async apply(table: ErasureTable, changes: Change[]): Promise<void> {
    const deleting = table.action === 'delete' && !this.legalHold;
    const now = Date.now();
    const pending: string[] = [];
    let again = false;
    try {
      await this.db.transaction().execute(async (trx) => {
        const counts = {
          ...(this.progress.tables[table.table] ?? { found: 0, deleted: 0, pseudonymised: 0 }),
        };
        const flows = new Set(this.progress.flows);
        const connections = new Set(this.progress.connections);
        let runsMarked = this.progress.runsMarked;
        for (const { row, set } of changes) {
          if (table.table === 'run_inputs') {
            const runId = String(row.run_id);
            const run = (await trx
              .selectFrom('runs')
              .select(['status', 'finished_at'])
              .where('id', '=', runId)
              .where('workspace_id', '=', this.workspaceId)
              .executeTakeFirst()) as { status: string; finished_at: number | null } | undefined;
            if (run?.status === 'running') {
              // It holds the input in memory and will write details: wait for it, then sweep again.
              pending.push(runId);
              if (deleting) continue;
            } else if (deleting && (run?.status === 'incomplete' || run?.status === 'queued')) {
              // The run stays, its input gone: it can no longer be retried.
              const marked = await trx
                .updateTable('runs')
                .set({ status: 'failed', error_code: 'ERASED', finished_at: run.finished_at ?? now })
                .where('id', '=', runId)
                .where('status', '=', run.status)
                .executeTakeFirst();
              if (Number(marked.numUpdatedRows) !== 1) {
                again = true;
                continue;
              }
              runsMarked++;
            }
          }
          let affected: number;
          if (deleting) {
            let remove = trx.deleteFrom(table.table).where('workspace_id', '=', this.workspaceId);
            for (const column of table.key) remove = remove.where(column, '=', row[column]);
            const result = await remove.executeTakeFirst();
            affected = Number(result.numDeletedRows);
            counts.deleted += affected;
          } else {
            let update = trx
              .updateTable(table.table)
              .set({ ...set, ...this.touched(table) })
              .where('workspace_id', '=', this.workspaceId);
            for (const column of table.key) update = update.where(column, '=', row[column]);
            // Only if the row is still as it was read (otherwise it is looked at again).
            for (const column of table.columns) {
              const old = row[column];
              update =
                old === null || old === undefined
                  ? update.where(column, 'is', null)
                  : update.where(column, '=', old);
            }
            affected = Number((await update.executeTakeFirst()).numUpdatedRows);
            if (affected === 0) again = true;
            counts.pseudonymised += affected;
          }
          if (affected === 0) continue;
          counts.found += affected;
          if (table.table === 'flow_versions' && flows.size < NAMES_KEPT) flows.add(String(row.flow_name));
          if (table.table === 'connections' && connections.size < NAMES_KEPT)
            connections.add(String(row.name));
        }
        await this.save(trx, {
          ...this.progress,
          tables: { ...this.progress.tables, [table.table]: counts },
          flows: [...flows],
          connections: [...connections],
          runsMarked,
        });
      });
    } catch (error) {
      this.pendingSave = undefined;
      throw error;
    }
    this.committed();
    for (const id of pending) this.pending.add(id);
    // Runs that started from the old text may write details after they were swept: once more.
    if (again || table.table === 'flow_versions') this.again = true;
  }

  /** Columns that say who last changed a pseudonymised record. */
  private touched(table: ErasureTable): Row {
    if (table.table === 'connections')
      return { updated_at: Date.now(), updated_by: `erasure:${this.request.id}` };
    return {};
  }
}
/* eslint-enable @typescript-eslint/no-explicit-any */

async function acquire(
  context: ErasureContext,
  id: string,
  owner: string,
): Promise<{ row: ErasureRow; text: string } | { row: ErasureRow; busy: true } | undefined> {
  for (let attempt = 0; attempt < 5; attempt++) {
    const row = await context.store.db
      .selectFrom('erasure_requests')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirst();
    if (!row) return undefined;
    if (row.status === 'completed') return { row, busy: true };
    const progress = parseProgress(row.report);
    const now = Date.now();
    if (progress.lease && progress.lease.owner !== owner && progress.lease.until > now)
      return { row, busy: true };
    const text = JSON.stringify({
      ...progress,
      startedAt: progress.startedAt ?? now,
      lease: { owner, until: now + LEASE_MS },
    });
    let query = context.store.db
      .updateTable('erasure_requests')
      .set({ report: text })
      .where('id', '=', id)
      .where('status', '=', 'open');
    query = row.report === null ? query.where('report', 'is', null) : query.where('report', '=', row.report);
    const result = await query.executeTakeFirst();
    if (Number(result.numUpdatedRows) === 1) return { row: { ...row, report: text }, text };
  }
  const row = await context.store.db
    .selectFrom('erasure_requests')
    .selectAll()
    .where('id', '=', id)
    .executeTakeFirstOrThrow();
  return { row, busy: true };
}

function buildReport(
  request: ErasureRow,
  progress: Progress,
  legalHold: boolean,
  pseudonym: string,
  completedAt: number,
): ErasureReport {
  const classes: ErasureClassReport[] = [];
  let pseudonymised = 0;
  for (const dataClass of Object.values(DATA_CLASSES)) {
    const tables = ERASURE_TABLES.filter((t) => t.dataClass === dataClass.name).map((t) => ({
      table: t.table,
      ...(progress.tables[t.table] ?? { found: 0, deleted: 0, pseudonymised: 0 }),
    }));
    const sum = (key: keyof TableCounts) => tables.reduce((n, t) => n + t[key], 0);
    const entry: ErasureClassReport = {
      dataClass: dataClass.name,
      stored: !NOT_STORED.has(dataClass.name),
      mayHoldPersonalData: dataClass.mayHoldPersonalData,
      found: sum('found'),
      deleted: sum('deleted'),
      pseudonymised: sum('pseudonymised'),
      tables,
      note: '',
    };
    pseudonymised += entry.pseudonymised;
    const held = legalHold ? ' (kept pseudonymised: the workspace is on legal hold)' : '';
    switch (dataClass.name) {
      case 'execution_detail':
        entry.note = `run details (step samples, error messages) holding the subject${legalHold ? held : ' were deleted; the runs stay'}`;
        break;
      case 'gateway_log':
        entry.note = `received webhooks whose body held the subject${legalHold ? held : ' were deleted'}`;
        break;
      case 'dlq':
        entry.note = legalHold
          ? `trigger inputs holding the subject${held}`
          : `trigger inputs holding the subject were deleted; ${progress.runsMarked} run(s) waiting for a retry or in the queue stay, marked failed (ERASED)`;
        break;
      case 'config':
        entry.note =
          'flow versions keep their structure: inline values naming the subject were replaced by the pseudonym (the flows were not deleted)';
        if (progress.flows.length > 0) entry.flows = [...progress.flows].sort();
        break;
      case 'credential': {
        const parts = [
          progress.connections.length > 0
            ? `connection settings named the subject and were pseudonymised: reconfigure ${[...progress.connections].sort().join(', ')}`
            : 'connection settings and secrets, API token names and invitations were searched',
        ];
        if (progress.accounts.length > 0)
          parts.push(
            `${progress.accounts.length} member sign-in account(s) use the subject's address: they serve every workspace of their user, so close them through user management (not changed here)`,
          );
        entry.note = parts.join('; ');
        if (progress.connections.length > 0) entry.connections = [...progress.connections].sort();
        if (progress.accounts.length > 0) entry.accounts = [...progress.accounts].sort();
        break;
      }
      case 'audit':
        entry.note =
          'the audit log holds ids and counts only; this request kept the subject sealed while it was open and no longer holds it (a keyed hash stays, to recognise a repeated request)';
        break;
      case 'data_store':
      case 'directory':
        entry.note = 'not stored by this version: nothing to erase';
        break;
      default:
        entry.note = 'ids, statuses, timings and counts only: holds no personal data';
    }
    classes.push(entry);
  }
  return {
    requestId: request.id,
    subjectKind: request.subject_kind as SubjectKind,
    legalHold,
    pseudonym: pseudonymised > 0 ? pseudonym : null,
    createdAt: iso(request.created_at)!,
    dueAt: iso(request.due_at)!,
    completedAt: iso(completedAt)!,
    completedLate: completedAt > Number(request.due_at),
    runsMarked: progress.runsMarked,
    classes,
    notes: [
      'Files that flows wrote to the workspace folder or to external systems are not searched: erase them there.',
      'Server logs carry ids only.',
      'Webhook bodies sent with \\u-escaped characters are matched only where Lethe stored them decoded (run inputs, details).',
    ],
  };
}

/**
 * Process an open request: sweep every table, then complete it with its report and audit
 * entries. Safe to call again (after a restart, from another process): it resumes with the
 * counts saved so far, and only one processor works on a request at a time.
 */
export async function processErasure(
  context: ErasureContext,
  id: string,
  options: ProcessOptions = {},
): Promise<ProcessResult> {
  const owner = randomBytes(8).toString('hex');
  const acquired = await acquire(context, id, owner);
  if (!acquired) throw new LetheError('USAGE', `erasure request "${id}" not found`);
  if ('busy' in acquired)
    return { outcome: acquired.row.status === 'completed' ? 'completed' : 'busy', request: acquired.row };
  const request = acquired.row;
  if (request.subject_sealed === null)
    throw new LetheError('INTERNAL', `erasure request "${id}" is open but holds no subject`);
  const subject = parseSubject(
    await context.vault.decrypt(request.workspace_id, `erasure:${id}`, 'subject', request.subject_sealed),
  );
  const workspace = await context.store.workspaces.byId(request.workspace_id);
  const legalHold = workspace ? privacySettings(workspace).legalHold === true : false;
  const pseudonym = pseudonymOf(request.subject_hash);
  const matcher = new SubjectMatcher(subject, pseudonym);
  const processor = new Processor(context, request, owner, matcher, legalHold, options, acquired.text);
  const current = () =>
    context.store.db
      .selectFrom('erasure_requests')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirstOrThrow();

  try {
    for (let pass = 0; ; pass++) {
      processor.pending.clear();
      await processor.sweepAll();
      if (processor.pending.size === 0 && !processor.again) break;
      if (pass + 1 >= MAX_PASSES) {
        await processor.release('INCOMPLETE_PASSES');
        return { outcome: 'waiting', request: await current() };
      }
      if (processor.pending.size > 0) {
        const ended = await waitForRuns(context, processor, options);
        if (!ended) {
          await processor.release('RUNS_STILL_RUNNING');
          return { outcome: 'waiting', request: await current() };
        }
      }
    }
    await complete(context, request, processor, legalHold, pseudonym, matcher);
    return { outcome: 'completed', request: await current() };
  } catch (error) {
    if (error instanceof LeaseLost) return { outcome: 'busy', request: await current() };
    if (options.signal?.aborted) {
      await processor.release(null);
      return { outcome: 'aborted', request: await current() };
    }
    const code = error instanceof LetheError ? error.code : 'INTERNAL';
    await processor.release(code);
    throw error;
  }
}

async function waitForRuns(
  context: ErasureContext,
  processor: Processor,
  options: ProcessOptions,
): Promise<boolean> {
  const until = Date.now() + (options.runWaitMs ?? DEFAULT_RUN_WAIT_MS);
  const ids = [...processor.pending];
  for (;;) {
    const running = await context.store.db
      .selectFrom('runs')
      .select('id')
      .where('id', 'in', ids)
      .where('status', '=', 'running')
      .execute();
    if (running.length === 0) return true;
    if (Date.now() >= until || options.signal?.aborted) return false;
    await new Promise((resolve) => setTimeout(resolve, 100));
    await processor.keepAlive();
  }
}

async function complete(
  context: ErasureContext,
  request: ErasureRow,
  processor: Processor,
  legalHold: boolean,
  pseudonym: string,
  matcher: SubjectMatcher,
): Promise<void> {
  for (let attempt = 0; ; attempt++) {
    const completedAt = Math.max(nowOf(context), Number(request.created_at));
    const progress = processor.state;
    const report = buildReport(request, progress, legalHold, pseudonym, completedAt);
    const stored = {
      ...report,
      reason: progress.reason === null ? null : matcher.replace(progress.reason).text,
    };
    const fresh = await getErasureRequest(context, request.workspace_id, request.id);
    try {
      await context.store.db.transaction().execute(async (trx) => {
        const result = await trx
          .updateTable('erasure_requests')
          .set({
            status: 'completed',
            completed_at: completedAt,
            report: JSON.stringify(stored),
            // The subject is not kept once the request is done.
            subject_sealed: null,
            extension_reason:
              fresh?.extension_reason == null ? null : matcher.replace(fresh.extension_reason).text,
          })
          .where('id', '=', request.id)
          .where('status', '=', 'open')
          .where('report', '=', processor.stateText)
          .executeTakeFirst();
        if (Number(result.numUpdatedRows) !== 1) throw new LeaseLost('another processor took the request');
        const touched = report.classes.filter((entry) => entry.deleted + entry.pseudonymised > 0);
        const entries = touched.length > 0 ? touched : [undefined];
        for (const entry of entries) {
          await context.audit.append(
            {
              workspaceId: request.workspace_id,
              actor: request.requested_by,
              action: 'erasure',
              dataClass: entry?.dataClass ?? null,
              count: entry ? entry.deleted + entry.pseudonymised : 0,
              reason: `erasure request ${request.id}`,
              details: {
                requestId: request.id,
                deleted: entry?.deleted ?? 0,
                pseudonymised: entry?.pseudonymised ?? 0,
                legalHold,
              },
            },
            trx,
          );
        }
      });
      return;
    } catch (error) {
      if (error instanceof LeaseLost || attempt >= 10) throw error;
      // Another audit writer took our place in the chain: try again.
      await new Promise((resolve) => setTimeout(resolve, 10 + Math.random() * 40));
    }
  }
}

/** Requests not completed yet, oldest first (to pick up after a restart). */
export async function openErasureRequests(
  context: Pick<ErasureContext, 'store'>,
  limit = 100,
): Promise<string[]> {
  const rows = await context.store.db
    .selectFrom('erasure_requests')
    .select('id')
    .where('status', '=', 'open')
    .orderBy('id')
    .limit(limit)
    .execute();
  return rows.map((row) => row.id);
}
