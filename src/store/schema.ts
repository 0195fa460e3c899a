/**
 * The store's tables, as Kysely sees them. Times are epoch milliseconds (integers in both
 * SQLite and PostgreSQL), JSON is text, booleans are 0/1 integers: one representation for
 * both databases, so every query is written once.
 */
import type { Kysely, Transaction } from 'kysely';

/** The store, or a transaction on it: what a query may run on. */
export type Db = Kysely<Database> | Transaction<Database>;

export interface WorkspacesTable {
  id: string;
  name: string;
  created_at: number;
  /** JSON: workspace settings (retention overrides, legal hold, log access). */
  settings: string;
  /** The region whose store holds the workspace's rows. */
  region: string;
  /** active | sealed (closed, in passive storage: unreadable until purged or reopened). */
  status: string;
  closed_at: number | null;
  /** When a sealed workspace is purged for good. */
  purge_after: number | null;
}

export interface WorkspaceKeysTable {
  workspace_id: string;
  version: number;
  /** The data key, wrapped (encrypted) by the master key. */
  wrapped_key: string;
  /** Which master key wrapped it. */
  master_key_id: string;
  created_at: number;
}

export interface FlowsTable {
  workspace_id: string;
  name: string;
  /** The current version. */
  version: number;
  privacy: 'standard' | 'confidential';
  /** manual | schedule | webhook | poll */
  trigger_kind: string;
  /** The webhook path under /hooks/{workspace}/, for webhook flows. */
  webhook_path: string | null;
  enabled: number;
  created_at: number;
  updated_at: number;
}

export interface FlowVersionsTable {
  workspace_id: string;
  flow_name: string;
  version: number;
  /** The flow as given (YAML or JSON text), so versions diff in git. */
  source: string;
  format: 'yaml' | 'json';
  /** Who made this version (a token or user id). */
  author: string;
  created_at: number;
}

export interface ConnectionsTable {
  workspace_id: string;
  name: string;
  type: string;
  /** JSON: the settings that are not secret. */
  settings: string;
  /** JSON: secret field → ciphertext (vault). */
  secrets: string;
  created_at: number;
  updated_at: number;
  updated_by: string;
}

export interface ApiTokensTable {
  id: string;
  workspace_id: string;
  role: string;
  name: string;
  /** SHA-256 of the token: the token itself is shown once and never stored. */
  token_hash: string;
  created_at: number;
  expires_at: number | null;
  last_used_at: number | null;
  revoked_at: number | null;
}

export type RunStatus = 'queued' | 'running' | 'succeeded' | 'failed' | 'incomplete';

export interface RunsTable {
  id: string;
  workspace_id: string;
  flow_name: string;
  flow_version: number;
  /** manual | schedule | webhook | poll */
  trigger: string;
  privacy: 'standard' | 'confidential';
  status: RunStatus;
  /** Attempts started so far. */
  attempt: number;
  max_attempts: number;
  queued_at: number;
  /** When the run may start (later than queued_at for retries with back-off). */
  available_at: number;
  started_at: number | null;
  finished_at: number | null;
  duration_ms: number | null;
  rows_read: number | null;
  rows_written: number | null;
  /** The error's class (a code such as EXPRESSION_ERROR), never its message or values. */
  error_code: string | null;
  error_step: string | null;
  idempotency_key: string | null;
  /** Whether the trigger input was kept (false for confidential flows). */
  input_kept: number;
}

export interface RunInputsTable {
  run_id: string;
  workspace_id: string;
  /** JSON: { params, payload } */
  input: string;
  created_at: number;
}

export interface RunDetailsTable {
  run_id: string;
  workspace_id: string;
  /** JSON: per step { id, command, status, rowsIn, rowsOut, durationMs, sample? } */
  steps: string;
  /** The full error message (standard flows only; may quote values). */
  error_message: string | null;
  created_at: number;
}

export interface GatewayLogTable {
  id: string;
  workspace_id: string;
  path: string;
  flow_name: string | null;
  received_at: number;
  method: string;
  content_type: string | null;
  size: number;
  status: number;
  run_id: string | null;
  /** The body, for standard flows only. */
  body: string | null;
}

export interface NotificationsTable {
  id: string;
  workspace_id: string;
  kind: string;
  run_id: string | null;
  flow_name: string | null;
  created_at: number;
  read_at: number | null;
}

export interface CountersTable {
  workspace_id: string;
  counter: string;
  period: string;
  value: number;
  updated_at: number;
}

export interface TriggerStateTable {
  workspace_id: string;
  flow_name: string;
  kind: string;
  /** JSON: schedule: the last tick fired; poll: the cursor. */
  state: string;
  updated_at: number;
}

export interface PollSeenTable {
  workspace_id: string;
  flow_name: string;
  /** Hash of the row's key columns (never the values themselves). */
  key_hash: string;
  /** Hash of the whole row, to notice changes. */
  row_hash: string;
  seen_at: number;
}

export interface AuditLogTable {
  /** Position in the chain, from 1. */
  seq: number;
  at: number;
  /** Null for deployment-wide entries. */
  workspace_id: string | null;
  /** Who (a token, user, `retention`, `cli` …) — an id, never a name. */
  actor: string;
  action: string;
  data_class: string | null;
  count: number | null;
  reason: string | null;
  /** JSON, ids only. */
  details: string;
  prev_hash: string;
  /** SHA-256 over prev_hash and the entry's canonical JSON. */
  hash: string;
}

export interface AuditAnchorTable {
  id: number;
  seq: number;
  hash: string;
  updated_at: number;
}

export interface ErasureRequestsTable {
  id: string;
  workspace_id: string;
  subject_kind: string;
  subject_hash: string;
  subject_sealed: string | null;
  /** open | completed */
  status: string;
  created_at: number;
  due_at: number;
  extended_at: number | null;
  extension_reason: string | null;
  completed_at: number | null;
  /** JSON: per data class, records erased and pseudonymised. */
  report: string | null;
  requested_by: string;
}

export interface UsersTable {
  id: string;
  /** Lower-cased; unique. */
  email: string;
  /** A PHC string (Argon2id or PBKDF2-SHA512); null until an invited user sets one. */
  password_hash: string | null;
  /** 'operator' for people who run the deployment; null for everyone else. */
  deployment_role: string | null;
  created_at: number;
  updated_at: number;
  password_changed_at: number | null;
  disabled_at: number | null;
}

export interface MembershipsTable {
  workspace_id: string;
  user_id: string;
  role: string;
  created_at: number;
}

export interface SessionsTable {
  id_hash: string;
  user_id: string;
  created_at: number;
  last_seen_at: number;
  /** The absolute end of the session. */
  expires_at: number;
  /** Bound to this session: the CSRF token is derived from it. */
  csrf_secret: string;
}

export interface UserTokensTable {
  id: string;
  /** invite | reset */
  purpose: string;
  token_hash: string;
  user_id: string | null;
  email: string | null;
  workspace_id: string | null;
  role: string | null;
  created_by: string;
  created_at: number;
  expires_at: number;
  used_at: number | null;
}

export interface WebhookEventsSeenTable {
  workspace_id: string;
  flow_name: string;
  event_id: string;
  seen_at: number;
}

export interface Database {
  workspaces: WorkspacesTable;
  workspace_keys: WorkspaceKeysTable;
  flows: FlowsTable;
  flow_versions: FlowVersionsTable;
  connections: ConnectionsTable;
  api_tokens: ApiTokensTable;
  runs: RunsTable;
  run_inputs: RunInputsTable;
  run_details: RunDetailsTable;
  gateway_log: GatewayLogTable;
  notifications: NotificationsTable;
  counters: CountersTable;
  trigger_state: TriggerStateTable;
  poll_seen: PollSeenTable;
  audit_log: AuditLogTable;
  audit_anchor: AuditAnchorTable;
  erasure_requests: ErasureRequestsTable;
  users: UsersTable;
  memberships: MembershipsTable;
  sessions: SessionsTable;
  user_tokens: UserTokensTable;
  webhook_events_seen: WebhookEventsSeenTable;
}
