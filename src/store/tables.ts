/**
 * Which data class (src/privacy/data-classes.ts) each stored table belongs to, the column that
 * dates its records (for retention), and the columns that may hold personal data. One table,
 * one class; a table no entry claims is a bug, and a test that introspects the migrated
 * database says so.
 */
import type { DataClassName } from '../privacy/data-classes.js';
import type { Database } from './schema.js';

export interface StoredTable {
  dataClass: DataClassName;
  /** The column retention counts age from (epoch ms), when the class has a retention period. */
  agedBy?: string;
  /** Columns that may hold personal data or payload values (never for ids-only classes). */
  personalColumns: readonly string[];
}

/** Kysely's own migration bookkeeping. */
export const MIGRATION_TABLES = ['kysely_migration', 'kysely_migration_lock'] as const;

export const STORED_TABLES: Readonly<
  Record<keyof Database | (typeof MIGRATION_TABLES)[number], StoredTable>
> = {
  workspaces: { dataClass: 'config', personalColumns: [] },
  workspace_keys: { dataClass: 'credential', personalColumns: [] },
  flows: { dataClass: 'config', personalColumns: [] },
  // Inline `values` in a flow may be personal data.
  flow_versions: { dataClass: 'config', personalColumns: ['source'] },
  // Settings may name a user (a login, an e-mail); secrets are encrypted.
  connections: { dataClass: 'credential', personalColumns: ['settings'] },
  api_tokens: { dataClass: 'credential', personalColumns: ['name'] },
  runs: { dataClass: 'activity', agedBy: 'queued_at', personalColumns: [] },
  run_inputs: { dataClass: 'dlq', agedBy: 'created_at', personalColumns: ['input'] },
  run_details: {
    dataClass: 'execution_detail',
    agedBy: 'created_at',
    personalColumns: ['steps', 'error_message'],
  },
  gateway_log: { dataClass: 'gateway_log', agedBy: 'received_at', personalColumns: ['body'] },
  notifications: { dataClass: 'notification', agedBy: 'created_at', personalColumns: [] },
  counters: { dataClass: 'counter', personalColumns: [] },
  // A poll cursor is the watermark column's last value: an id or a time, not a payload.
  trigger_state: { dataClass: 'config', personalColumns: [] },
  poll_seen: { dataClass: 'config', personalColumns: [] },
  audit_log: { dataClass: 'audit', agedBy: 'at', personalColumns: [] },
  // Bookkeeping of the audit chain (where it starts after purges): never purged itself.
  audit_anchor: { dataClass: 'config', personalColumns: [] },
  // The subject is sealed (encrypted) while the request is open and removed when it completes.
  erasure_requests: { dataClass: 'audit', agedBy: 'created_at', personalColumns: ['subject_sealed'] },
  // Lethe's own users (not a synced directory): the e-mail to sign in, the password as a hash.
  users: { dataClass: 'credential', personalColumns: ['email'] },
  memberships: { dataClass: 'config', personalColumns: [] },
  // Sessions and single-use tokens expire; the auth module deletes them (hashes only).
  sessions: { dataClass: 'credential', personalColumns: [] },
  user_tokens: { dataClass: 'credential', personalColumns: ['email'] },
  // Event ids of signed webhooks, for the replay window.
  webhook_events_seen: { dataClass: 'gateway_log', agedBy: 'seen_at', personalColumns: [] },
  kysely_migration: { dataClass: 'config', personalColumns: [] },
  kysely_migration_lock: { dataClass: 'config', personalColumns: [] },
};
