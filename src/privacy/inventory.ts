/**
 * privacy — the inventory report (SPEC 6, issue 4 item 8): what Lethe stores and what it does
 * not, per workspace, generated from the live system — the seeds' data-handling pages, but
 * true by construction. Every number is read from the store when the report is made:
 *
 * - data classes (./data-classes.ts) with their effective retention (./retention-policy.ts:
 *   deployment defaults, the workspace's overrides within bounds, legal hold), the records of
 *   each class (every table with a workspace_id column, classed by store/tables.ts) and the
 *   age of the oldest (the table's `agedBy` column);
 * - flows, confidential or standard, with their triggers and the connections they name;
 * - stored credentials: connection types, which fields are secret (their names only — values
 *   are never read, not even decrypted), and which flows need them stored and why;
 * - region, key state, legal hold, log access, sub-processors (none), telemetry (none);
 * - what is not stored, each with where the code makes it so;
 * - the fields of a GDPR Art. 30 record of processing that the system knows.
 *
 * Rendering (Markdown, HTML) is ./inventory-render.ts; this module only gathers.
 */
import { sql } from 'kysely';
import { CONNECTORS } from '../connectors/registry.js';
import { connectionsOf } from '../flow/connections.js';
import { parseFlow } from '../flow/load.js';
import type { Flow } from '../flow/validate.js';
import type { KeystoreState } from '../security/keystore.js';
import type { Vault } from '../security/vault.js';
import type { Store } from '../store/index.js';
import { STORED_TABLES } from '../store/tables.js';
import type { Workspace } from '../store/workspaces.js';
import { DATA_CLASSES, type DataClassName } from './data-classes.js';
import {
  effectivePolicy,
  isPurgeableClass,
  retentionConfigFromEnv,
  type RetentionConfig,
} from './retention-policy.js';
import { privacySettings } from './settings.js';
import { PARKED_FLOW, workspaceTables } from './workspace-lifecycle.js';

/** Rows of each step's output kept in execution details (runs/runner.ts SAMPLE_ROWS). */
const SAMPLE_ROWS = 20;

export type TriggerKind = 'manual' | 'schedule' | 'webhook' | 'poll';

export interface TableCount {
  table: string;
  records: number;
  /** The oldest record's time (ISO), for tables dated by `agedBy`. */
  oldestAt: string | null;
  /** Columns that may hold personal data or payload values. */
  personalColumns: string[];
  /** Kept in the home region's directory, not in the workspace's region (access records). */
  inHomeDirectory?: true;
}

export interface DataClassInventory {
  name: DataClassName;
  description: string;
  mayHoldPersonalData: boolean;
  retention: {
    /** The period in retention days; null: kept until deleted by its owner (or the workspace closes). */
    days: number | null;
    /** deployment default, workspace setting, or none (no period). */
    source: 'deployment' | 'workspace' | 'none';
    /** Whether a legal hold stops the purge. */
    onHold: boolean;
    /** For people: "30 days", "until deleted"… */
    text: string;
  };
  records: number;
  oldestAt: string | null;
  /** Age of the oldest record in ms when the report was made. */
  oldestAgeMs: number | null;
  tables: TableCount[];
}

export interface FlowInventory {
  name: string;
  version: number;
  description: string | null;
  privacy: 'standard' | 'confidential';
  trigger: TriggerKind;
  /** The trigger's details: cron and time zone, webhook path, polled step. */
  triggerDetail: string | null;
  /** enabled, disabled, or parked (its workspace is closed). */
  state: 'enabled' | 'disabled' | 'parked';
  /** Connections its steps name. */
  connections: string[];
  /** Whether its payloads, step samples and webhook bodies may be stored. */
  storesPayloads: boolean;
  /** Scheduled and real-time flows have nobody to ask: their credentials must be stored. */
  needsStoredCredentials: boolean;
  /** What is stored about its runs, for people. */
  stored: string;
}

export interface ConnectionInventory {
  name: string;
  type: string;
  /** Names of the secret fields that are set: encrypted with AES-256-GCM (values never shown). */
  secretFields: string[];
  /** Names of the secret fields the connector type has. */
  secretFieldsOfType: string[];
  /** Names of the settings stored in clear (not secret). */
  settingsFields: string[];
  usedBy: { flow: string; trigger: TriggerKind; needsStoredCredentials: boolean }[];
  /** Why it is stored, for people. */
  why: string;
  createdAt: string;
  updatedAt: string;
}

export interface NotStored {
  what: string;
  /** Where the code makes it so. */
  how: string;
}

export interface ProcessingRecord {
  /** GDPR Art. 30(1) (b): the processing operations Lethe performs are the workspace's flows. */
  purposes: { note: string; flows: string[] };
  /** Art. 30(1) (c): categories of personal data, by data class. */
  categoriesOfPersonalData: { dataClass: DataClassName; description: string; fields: string[] }[];
  /** Art. 30(1) (d): none — no sub-processor, nothing shared with third parties. */
  categoriesOfRecipients: string[];
  recipientsNote: string;
  /** Art. 30(1) (e): none. */
  transfersToThirdCountries: string[];
  transfersNote: string;
  /** Art. 30(1) (f): time limits for erasure, by data class. */
  retentionPeriods: { dataClass: DataClassName; period: string }[];
  /** Art. 30(1) (g): technical and organisational security measures. */
  securityMeasures: string[];
  /** What the system cannot know and the controller fills in. */
  toBeCompletedByController: string[];
}

export interface WorkspaceInventory {
  id: string;
  name: string;
  region: string;
  status: 'active' | 'sealed';
  createdAt: string;
  closedAt: string | null;
  purgeAfter: string | null;
  key: { state: KeystoreState; versions: number };
  legalHold: boolean;
  logAccess: 'allow' | 'deny';
  dataClasses: DataClassInventory[];
  flows: { confidential: FlowInventory[]; standard: FlowInventory[] };
  triggers: Record<TriggerKind, number>;
  connections: ConnectionInventory[];
  notStored: NotStored[];
  processingRecord: ProcessingRecord;
}

export interface Inventory {
  kind: 'lethe-inventory';
  version: 1;
  generatedAt: string;
  deployment: {
    store: 'sqlite' | 'postgres';
    /** How long a retention "day" is (a test deployment may shorten it). */
    retentionUnit: string;
    subProcessors: string[];
    telemetry: 'none';
    encryption: string;
  };
  workspaces: WorkspaceInventory[];
}

export interface InventorySource {
  store: Store;
  vault: Pick<Vault, 'keyState'>;
  /** The region `store` is; with it, only that region's workspaces are listed. */
  region?: string;
  /** The home region's store, where a workspace of another region has its directory records. */
  home?: Store;
}

/** Tables of the directory (home region) that hold records of a workspace of any region. */
const DIRECTORY_TABLES = ['api_tokens', 'memberships', 'user_tokens'];

export interface InventoryOptions {
  /** One workspace by name; every workspace when absent. */
  workspace?: string;
  now?: number;
  /** The deployment's retention configuration (default: from the environment). */
  retention?: RetentionConfig;
}

export const ENCRYPTION =
  'AES-256-GCM with a random 96-bit nonce per value, bound to workspace, connection and field; ' +
  'per-workspace data keys wrapped by a key derived (HKDF-SHA256) from the master key and the ' +
  'workspace’s keystore secret, both kept outside the database';

export const SECURITY_MEASURES = [
  `Connection secrets encrypted at rest: ${ENCRYPTION}; never returned by the API after they are saved.`,
  'Crypto-shredding: closing a workspace destroys its keystore secret, so its data keys — and every secret they protect — are unreadable in every copy of the database, backups included.',
  'API tokens are shown once and stored only as SHA-256 hashes; they are scoped to one workspace and one role, and may expire.',
  'Role-based access per workspace (owner, admin, editor, viewer); a token of another workspace gets 404.',
  'Confidential flows: payloads, step data and outputs are processed in memory only.',
  'Logs and the audit trail carry ids, statuses, timings and counts — never bodies, values or secrets.',
  'Hash-chained, append-only audit log of purges, erasures, closings and changes (ids and counts only).',
  'Retention: every stored record has a data class and a period; expired records are purged continuously.',
  'Closed workspaces are unreadable while in passive storage (their key sealed) and purged afterwards.',
];

function triggerDetail(flow: Flow | undefined, kind: TriggerKind, webhookPath: string | null): string | null {
  const trigger = flow?.trigger;
  if (kind === 'schedule' && trigger?.schedule)
    return `cron "${trigger.schedule.cron}"${trigger.schedule.timezone ? ` (${trigger.schedule.timezone})` : ''}`;
  if (kind === 'webhook') return `POST /hooks/{workspace}/${webhookPath ?? flow?.name ?? ''}`;
  if (kind === 'poll' && trigger?.poll) return `re-reads step "${trigger.poll.step}"`;
  return null;
}

function parseStoredFlow(source: string, name: string, format: string): Flow | undefined {
  try {
    return parseFlow(source, `${name}.${format}`, process.cwd()).flow;
  } catch {
    return undefined;
  }
}

function iso(ms: number | null | undefined): string | null {
  return ms === null || ms === undefined ? null : new Date(Number(ms)).toISOString();
}

/** "30 days" (in the deployment's retention unit). */
function period(days: number, unit: string): string {
  return `${days} ${unit}${days === 1 ? '' : 's'}`;
}

function flowStored(
  privacy: 'standard' | 'confidential',
  storesPayloads: boolean,
  trigger: TriggerKind,
): string {
  if (!storesPayloads) {
    return (
      'run summaries only (ids, status, timings, row counts, error classes); payloads, step data, outputs' +
      (trigger === 'webhook' ? ', webhook bodies' : '') +
      ' and error messages are processed in memory and never stored' +
      (privacy === 'standard' ? ' (log access is denied for this workspace)' : '')
    );
  }
  return (
    'run summaries; the trigger input while the run is queued, running or incomplete (DLQ); ' +
    `per-step statistics with up to ${SAMPLE_ROWS} sample rows per step and the error message` +
    (trigger === 'webhook' ? '; the webhook body in the gateway log' : '')
  );
}

function connectionWhy(usedBy: ConnectionInventory['usedBy']): string {
  const needing = usedBy.filter((use) => use.needsStoredCredentials);
  if (needing.length > 0) {
    const kinds = [...new Set(needing.map((use) => use.trigger))].join(', ');
    return (
      `needed by ${needing.length} ${kinds} flow${needing.length === 1 ? '' : 's'}: ` +
      'scheduled and real-time runs have nobody to give credentials, so they must be stored'
    );
  }
  if (usedBy.length > 0) {
    return (
      'used by manual flows only: they could be given credentials at run time instead ' +
      '(held in memory for the run), and this connection deleted'
    );
  }
  return 'no flow uses it: it could be deleted';
}

/** What Lethe never stores, with where the code makes it so (nothing here is a promise only). */
function notStored(legalHold: boolean, logAccess: 'allow' | 'deny'): NotStored[] {
  const items: NotStored[] = [
    {
      what: 'Record data of confidential flows: trigger payloads, step data, outputs, webhook bodies and error messages',
      how:
        'processed in memory: their runs are written without input (runs.input_kept = 0), without execution ' +
        'details, and with the gateway log body left empty; a failed run enters the DLQ without its input',
    },
    {
      what: 'Connection secrets (passwords, tokens, URLs with credentials) in plain text',
      how: `encrypted before they reach the store (${ENCRYPTION}); the API returns the names of secret fields, never values`,
    },
    {
      what: 'API tokens',
      how: 'only a SHA-256 hash is stored; the token is shown once when it is made',
    },
    {
      what: 'The master key and the workspaces’ keystore secrets',
      how: 'kept outside the database (LETHE_MASTER_KEY or master.key; keystore.json or LETHE_KEYSTORE)',
    },
    {
      what: 'Credentials given at run time for a manual run',
      how: 'held in the memory of the process for that run only; the run’s input names the connections, never the values',
    },
    {
      what: 'Request headers, query strings and client addresses of webhooks and API calls',
      how: 'the gateway log has no column for them, and logs carry ids, routes, statuses and timings only',
    },
    {
      what: 'Values of the rows a poll has seen',
      how: 'only hashes of each row’s key and of the whole row are kept, to notice new and changed rows',
    },
    {
      what: 'Error messages and values in the activity stream',
      how: 'run summaries keep the error class (e.g. EXPRESSION_ERROR) and the step, never the message',
    },
    {
      what: `More than ${SAMPLE_ROWS} rows of any step’s data`,
      how: `execution details of standard flows keep at most ${SAMPLE_ROWS} sample rows per step`,
    },
    {
      what: 'Anything sent to a third party: no sub-processor, no telemetry',
      how: 'the process opens no outbound connection that a flow did not ask for',
    },
  ];
  if (logAccess === 'deny') {
    items.splice(1, 0, {
      what: 'Payloads, step samples and webhook bodies of any flow of this workspace',
      how: 'log access is denied: standard flows are stored like confidential ones',
    });
  }
  if (legalHold) {
    items.push({
      what: '(Legal hold) nothing is purged by retention while the hold is on',
      how: 'the workspace’s legal hold stops the purger; erasure pseudonymises instead of deleting',
    });
  }
  return items;
}

/** Count and date the workspace's records in every table that has its id. */
async function countRows(store: Store, table: string, workspace: Workspace): Promise<TableCount> {
  const stored = STORED_TABLES[table as keyof typeof STORED_TABLES];
  const agedBy = stored?.agedBy;
  const row = agedBy
    ? await sql<{ records: number | string; oldest: number | string | null }>`
        select count(*) as records, min(${sql.ref(agedBy)}) as oldest from ${sql.table(table)}
        where workspace_id = ${workspace.id}`.execute(store.db)
    : await sql<{ records: number | string; oldest: null }>`
        select count(*) as records, null as oldest from ${sql.table(table)}
        where workspace_id = ${workspace.id}`.execute(store.db);
  const first = row.rows[0];
  return {
    table,
    records: Number(first?.records ?? 0),
    oldestAt: first?.oldest === null || first?.oldest === undefined ? null : iso(Number(first.oldest)),
    personalColumns: [...(stored?.personalColumns ?? [])],
  };
}

async function tableCounts(store: Store, workspace: Workspace, home?: Store): Promise<TableCount[]> {
  const counts: TableCount[] = [
    {
      table: 'workspaces',
      records: 1,
      oldestAt: null,
      personalColumns: [...STORED_TABLES.workspaces.personalColumns],
    },
  ];
  const elsewhere = home !== undefined && home !== store;
  for (const table of await workspaceTables(store)) {
    if (elsewhere && DIRECTORY_TABLES.includes(table)) continue;
    counts.push(await countRows(store, table, workspace));
  }
  if (elsewhere) {
    for (const table of DIRECTORY_TABLES)
      counts.push({ ...(await countRows(home, table, workspace)), inHomeDirectory: true });
  }
  return counts;
}

function classOf(table: string): DataClassName | undefined {
  return STORED_TABLES[table as keyof typeof STORED_TABLES]?.dataClass;
}

async function workspaceInventory(
  source: InventorySource,
  workspace: Workspace,
  retention: RetentionConfig,
  now: number,
): Promise<WorkspaceInventory> {
  const { store } = source;
  const settings = privacySettings(workspace);
  const legalHold = settings.legalHold === true;
  const logAccess = settings.logAccess ?? 'allow';
  const policy = effectivePolicy(retention, settings);
  const tables = await tableCounts(store, workspace, source.home);

  const dataClasses: DataClassInventory[] = Object.values(DATA_CLASSES).map((dataClass) => {
    const own = tables.filter((table) => classOf(table.table) === dataClass.name);
    const dates = own.map((table) => table.oldestAt).filter((at): at is string => at !== null);
    const oldestAt = dates.length > 0 ? dates.sort()[0]! : null;
    const classPolicy = isPurgeableClass(dataClass.name) ? policy.classes[dataClass.name] : undefined;
    const days = classPolicy?.days ?? null;
    const text =
      days === null
        ? 'until deleted by its owner, or the workspace is closed'
        : `${period(days, retention.unit)}${classPolicy?.source === 'workspace' ? ' (this workspace’s setting)' : ''}` +
          (legalHold ? ' — on legal hold: not purged while the hold is on' : '');
    return {
      name: dataClass.name,
      description: dataClass.description,
      mayHoldPersonalData: dataClass.mayHoldPersonalData,
      retention: { days, source: classPolicy?.source ?? 'none', onHold: legalHold && days !== null, text },
      records: own.reduce((sum, table) => sum + table.records, 0),
      oldestAt,
      oldestAgeMs: oldestAt === null ? null : Math.max(0, now - Date.parse(oldestAt)),
      tables: own,
    };
  });

  const flowRows = await store.db
    .selectFrom('flows')
    .selectAll()
    .where('workspace_id', '=', workspace.id)
    .orderBy('name')
    .execute();
  const flows: FlowInventory[] = [];
  for (const row of flowRows) {
    const version = await store.flows.version(workspace.id, row.name, row.version);
    const flow = version ? parseStoredFlow(version.source, row.name, version.format) : undefined;
    const trigger = row.trigger_kind as TriggerKind;
    const storesPayloads = row.privacy === 'standard' && logAccess !== 'deny';
    flows.push({
      name: row.name,
      version: row.version,
      description: flow?.description ?? null,
      privacy: row.privacy,
      trigger,
      triggerDetail: triggerDetail(flow, trigger, row.webhook_path),
      state: row.enabled === 1 ? 'enabled' : row.enabled === PARKED_FLOW ? 'parked' : 'disabled',
      connections: flow ? connectionsOf(flow, { signing: true }) : [],
      storesPayloads,
      needsStoredCredentials: trigger !== 'manual',
      stored: flowStored(row.privacy, storesPayloads, trigger),
    });
  }

  const connectionRows = await store.connections.all(workspace.id);
  const connections: ConnectionInventory[] = connectionRows.map((row) => {
    const usedBy = flows
      .filter((flow) => flow.connections.includes(row.name))
      .map((flow) => ({
        flow: flow.name,
        trigger: flow.trigger,
        needsStoredCredentials: flow.needsStoredCredentials,
      }));
    return {
      name: row.name,
      type: row.type,
      // Names only: the values are neither read nor decrypted here.
      secretFields: Object.keys(JSON.parse(row.secrets) as object).sort(),
      secretFieldsOfType: [...(CONNECTORS.get(row.type)?.secretSettings ?? [])],
      settingsFields: Object.keys(JSON.parse(row.settings) as object).sort(),
      usedBy,
      why: connectionWhy(usedBy),
      createdAt: iso(row.created_at)!,
      updatedAt: iso(row.updated_at)!,
    };
  });

  const triggers: Record<TriggerKind, number> = { manual: 0, schedule: 0, webhook: 0, poll: 0 };
  for (const flow of flows) triggers[flow.trigger] = (triggers[flow.trigger] ?? 0) + 1;

  const keyVersions = await store.workspaceKeys.all(workspace.id);
  const retentionPeriods = dataClasses.map((c) => ({ dataClass: c.name, period: c.retention.text }));
  return {
    id: workspace.id,
    name: workspace.name,
    region: workspace.region,
    status: workspace.status === 'sealed' ? 'sealed' : 'active',
    createdAt: iso(workspace.created_at)!,
    closedAt: iso(workspace.closed_at),
    purgeAfter: iso(workspace.purge_after),
    key: { state: source.vault.keyState(workspace.id), versions: keyVersions.length },
    legalHold,
    logAccess,
    dataClasses,
    flows: {
      confidential: flows.filter((flow) => flow.privacy === 'confidential'),
      standard: flows.filter((flow) => flow.privacy === 'standard'),
    },
    triggers,
    connections,
    notStored: notStored(legalHold, logAccess),
    processingRecord: {
      purposes: {
        note: 'the processing operations are this workspace’s flows; their purposes are the controller’s to state',
        flows: flows.map((flow) => flow.name),
      },
      categoriesOfPersonalData: dataClasses
        .filter((c) => c.mayHoldPersonalData)
        .map((c) => ({
          dataClass: c.name,
          description: c.description,
          fields: [
            ...new Set(
              c.tables.flatMap((table) => table.personalColumns.map((col) => `${table.table}.${col}`)),
            ),
          ],
        })),
      categoriesOfRecipients: [],
      recipientsNote:
        'none: Lethe has no sub-processor and shares nothing with third parties; data goes only to the ' +
        'systems this workspace’s own flows and connections name',
      transfersToThirdCountries: [],
      transfersNote: `none by Lethe: the workspace’s records are stored in region "${workspace.region}" only`,
      retentionPeriods,
      securityMeasures: SECURITY_MEASURES,
      toBeCompletedByController: [
        'name and contact details of the controller (and its representative and data protection officer)',
        'purposes of each flow',
        'categories of data subjects',
      ],
    },
  };
}

/** Gather the inventory from the live system. */
export async function buildInventory(
  source: InventorySource,
  options: InventoryOptions = {},
): Promise<Inventory> {
  const now = options.now ?? Date.now();
  const retention = options.retention ?? retentionConfigFromEnv(process.env);
  let workspaces: Workspace[];
  if (options.workspace !== undefined) {
    const one = await source.store.workspaces.byName(options.workspace);
    workspaces = one ? [one] : [];
  } else {
    workspaces = (await source.store.workspaces.list()).filter(
      (workspace) => source.region === undefined || workspace.region === source.region,
    );
  }
  const inventories: WorkspaceInventory[] = [];
  for (const workspace of workspaces)
    inventories.push(await workspaceInventory(source, workspace, retention, now));
  return {
    kind: 'lethe-inventory',
    version: 1,
    generatedAt: new Date(now).toISOString(),
    deployment: {
      store: source.store.dialect,
      retentionUnit: retention.unit,
      subProcessors: [],
      telemetry: 'none',
      encryption: ENCRYPTION,
    },
    workspaces: inventories,
  };
}
