/**
 * Versioned migrations, in order. Written with Kysely's schema builder in types both SQLite
 * and PostgreSQL accept (text, integer, bigint), so one list serves both. Never edit a
 * migration that has shipped: add the next one. Every table a migration creates must be
 * claimed by a data class in ./tables.ts (a test fails otherwise).
 */
import type { Kysely, Migration } from 'kysely';

/* eslint-disable @typescript-eslint/no-explicit-any -- migrations see the database as it was then */
type Db = Kysely<any>;

const initial: Migration = {
  async up(db: Db) {
    await db.schema
      .createTable('workspaces')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('name', 'text', (c) => c.notNull().unique())
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('settings', 'text', (c) => c.notNull().defaultTo('{}'))
      .execute();

    await db.schema
      .createTable('workspace_keys')
      .addColumn('workspace_id', 'text', (c) => c.notNull())
      .addColumn('version', 'integer', (c) => c.notNull())
      .addColumn('wrapped_key', 'text', (c) => c.notNull())
      .addColumn('master_key_id', 'text', (c) => c.notNull())
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addPrimaryKeyConstraint('workspace_keys_pk', ['workspace_id', 'version'])
      .execute();

    await db.schema
      .createTable('flows')
      .addColumn('workspace_id', 'text', (c) => c.notNull())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('version', 'integer', (c) => c.notNull())
      .addColumn('privacy', 'text', (c) => c.notNull())
      .addColumn('trigger_kind', 'text', (c) => c.notNull())
      .addColumn('webhook_path', 'text')
      .addColumn('enabled', 'integer', (c) => c.notNull().defaultTo(1))
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('updated_at', 'bigint', (c) => c.notNull())
      .addPrimaryKeyConstraint('flows_pk', ['workspace_id', 'name'])
      .execute();
    await db.schema
      .createIndex('flows_webhook_path')
      .on('flows')
      .columns(['workspace_id', 'webhook_path'])
      .unique()
      .execute();

    await db.schema
      .createTable('flow_versions')
      .addColumn('workspace_id', 'text', (c) => c.notNull())
      .addColumn('flow_name', 'text', (c) => c.notNull())
      .addColumn('version', 'integer', (c) => c.notNull())
      .addColumn('source', 'text', (c) => c.notNull())
      .addColumn('format', 'text', (c) => c.notNull())
      .addColumn('author', 'text', (c) => c.notNull())
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addPrimaryKeyConstraint('flow_versions_pk', ['workspace_id', 'flow_name', 'version'])
      .execute();

    await db.schema
      .createTable('connections')
      .addColumn('workspace_id', 'text', (c) => c.notNull())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('type', 'text', (c) => c.notNull())
      .addColumn('settings', 'text', (c) => c.notNull())
      .addColumn('secrets', 'text', (c) => c.notNull())
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('updated_at', 'bigint', (c) => c.notNull())
      .addColumn('updated_by', 'text', (c) => c.notNull())
      .addPrimaryKeyConstraint('connections_pk', ['workspace_id', 'name'])
      .execute();

    await db.schema
      .createTable('api_tokens')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('workspace_id', 'text', (c) => c.notNull())
      .addColumn('role', 'text', (c) => c.notNull())
      .addColumn('name', 'text', (c) => c.notNull())
      .addColumn('token_hash', 'text', (c) => c.notNull().unique())
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('expires_at', 'bigint')
      .addColumn('last_used_at', 'bigint')
      .addColumn('revoked_at', 'bigint')
      .execute();

    await db.schema
      .createTable('runs')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('workspace_id', 'text', (c) => c.notNull())
      .addColumn('flow_name', 'text', (c) => c.notNull())
      .addColumn('flow_version', 'integer', (c) => c.notNull())
      .addColumn('trigger', 'text', (c) => c.notNull())
      .addColumn('privacy', 'text', (c) => c.notNull())
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('attempt', 'integer', (c) => c.notNull())
      .addColumn('max_attempts', 'integer', (c) => c.notNull())
      .addColumn('queued_at', 'bigint', (c) => c.notNull())
      .addColumn('available_at', 'bigint', (c) => c.notNull())
      .addColumn('started_at', 'bigint')
      .addColumn('finished_at', 'bigint')
      .addColumn('duration_ms', 'integer')
      .addColumn('rows_read', 'bigint')
      .addColumn('rows_written', 'bigint')
      .addColumn('error_code', 'text')
      .addColumn('error_step', 'text')
      .addColumn('idempotency_key', 'text')
      .addColumn('input_kept', 'integer', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('runs_status').on('runs').columns(['status', 'available_at']).execute();
    await db.schema.createIndex('runs_workspace').on('runs').columns(['workspace_id', 'id']).execute();
    await db.schema
      .createIndex('runs_flow')
      .on('runs')
      .columns(['workspace_id', 'flow_name', 'id'])
      .execute();
    await db.schema
      .createIndex('runs_idempotency')
      .on('runs')
      .columns(['workspace_id', 'idempotency_key'])
      .unique()
      .execute();

    await db.schema
      .createTable('run_inputs')
      .addColumn('run_id', 'text', (c) => c.primaryKey())
      .addColumn('workspace_id', 'text', (c) => c.notNull())
      .addColumn('input', 'text', (c) => c.notNull())
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .execute();

    await db.schema
      .createTable('run_details')
      .addColumn('run_id', 'text', (c) => c.primaryKey())
      .addColumn('workspace_id', 'text', (c) => c.notNull())
      .addColumn('steps', 'text', (c) => c.notNull())
      .addColumn('error_message', 'text')
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .execute();

    await db.schema
      .createTable('gateway_log')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('workspace_id', 'text', (c) => c.notNull())
      .addColumn('path', 'text', (c) => c.notNull())
      .addColumn('flow_name', 'text')
      .addColumn('received_at', 'bigint', (c) => c.notNull())
      .addColumn('method', 'text', (c) => c.notNull())
      .addColumn('content_type', 'text')
      .addColumn('size', 'integer', (c) => c.notNull())
      .addColumn('status', 'integer', (c) => c.notNull())
      .addColumn('run_id', 'text')
      .addColumn('body', 'text')
      .execute();
    await db.schema
      .createIndex('gateway_log_workspace')
      .on('gateway_log')
      .columns(['workspace_id', 'id'])
      .execute();

    await db.schema
      .createTable('notifications')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('workspace_id', 'text', (c) => c.notNull())
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('run_id', 'text')
      .addColumn('flow_name', 'text')
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('read_at', 'bigint')
      .execute();
    await db.schema
      .createIndex('notifications_workspace')
      .on('notifications')
      .columns(['workspace_id', 'id'])
      .execute();

    await db.schema
      .createTable('counters')
      .addColumn('workspace_id', 'text', (c) => c.notNull())
      .addColumn('counter', 'text', (c) => c.notNull())
      .addColumn('period', 'text', (c) => c.notNull())
      .addColumn('value', 'bigint', (c) => c.notNull())
      .addColumn('updated_at', 'bigint', (c) => c.notNull())
      .addPrimaryKeyConstraint('counters_pk', ['workspace_id', 'counter', 'period'])
      .execute();

    await db.schema
      .createTable('trigger_state')
      .addColumn('workspace_id', 'text', (c) => c.notNull())
      .addColumn('flow_name', 'text', (c) => c.notNull())
      .addColumn('kind', 'text', (c) => c.notNull())
      .addColumn('state', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'bigint', (c) => c.notNull())
      .addPrimaryKeyConstraint('trigger_state_pk', ['workspace_id', 'flow_name', 'kind'])
      .execute();

    await db.schema
      .createTable('poll_seen')
      .addColumn('workspace_id', 'text', (c) => c.notNull())
      .addColumn('flow_name', 'text', (c) => c.notNull())
      .addColumn('key_hash', 'text', (c) => c.notNull())
      .addColumn('row_hash', 'text', (c) => c.notNull())
      .addColumn('seen_at', 'bigint', (c) => c.notNull())
      .addPrimaryKeyConstraint('poll_seen_pk', ['workspace_id', 'flow_name', 'key_hash'])
      .execute();

    // Read by the retention engine's batched purges (privacy issue): oldest first per class.
    for (const [table, column] of [
      ['runs', 'queued_at'],
      ['run_inputs', 'created_at'],
      ['run_details', 'created_at'],
      ['gateway_log', 'received_at'],
      ['notifications', 'created_at'],
    ] as const) {
      await db.schema.createIndex(`${table}_age`).on(table).column(column).execute();
    }
  },
  async down(db: Db) {
    for (const table of [
      'poll_seen',
      'trigger_state',
      'counters',
      'notifications',
      'gateway_log',
      'run_details',
      'run_inputs',
      'runs',
      'api_tokens',
      'connections',
      'flow_versions',
      'flows',
      'workspace_keys',
      'workspaces',
    ]) {
      await db.schema.dropTable(table).execute();
    }
  },
};

/**
 * The privacy engine's records: the hash-chained audit log (with the anchor that lets it be
 * verified after its oldest entries are purged), erasure requests, and what a workspace needs
 * to be closed, sealed and pinned to a region.
 */
const privacy: Migration = {
  async up(db: Db) {
    await db.schema
      .createTable('audit_log')
      .addColumn('seq', 'bigint', (c) => c.primaryKey())
      .addColumn('at', 'bigint', (c) => c.notNull())
      .addColumn('workspace_id', 'text')
      .addColumn('actor', 'text', (c) => c.notNull())
      .addColumn('action', 'text', (c) => c.notNull())
      .addColumn('data_class', 'text')
      .addColumn('count', 'bigint')
      .addColumn('reason', 'text')
      .addColumn('details', 'text', (c) => c.notNull().defaultTo('{}'))
      .addColumn('prev_hash', 'text', (c) => c.notNull())
      .addColumn('hash', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('audit_log_age').on('audit_log').column('at').execute();
    await db.schema
      .createIndex('audit_log_workspace')
      .on('audit_log')
      .columns(['workspace_id', 'seq'])
      .execute();

    // One row: the last entry purged by retention, so the chain verifies from there.
    await db.schema
      .createTable('audit_anchor')
      .addColumn('id', 'integer', (c) => c.primaryKey())
      .addColumn('seq', 'bigint', (c) => c.notNull())
      .addColumn('hash', 'text', (c) => c.notNull())
      .addColumn('updated_at', 'bigint', (c) => c.notNull())
      .execute();

    await db.schema
      .createTable('erasure_requests')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('workspace_id', 'text', (c) => c.notNull())
      .addColumn('subject_kind', 'text', (c) => c.notNull())
      // HMAC of the subject: lets a repeated request be recognised without keeping who it was.
      .addColumn('subject_hash', 'text', (c) => c.notNull())
      // The subject itself, encrypted by the vault, only while the request is open.
      .addColumn('subject_sealed', 'text')
      .addColumn('status', 'text', (c) => c.notNull())
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('due_at', 'bigint', (c) => c.notNull())
      .addColumn('extended_at', 'bigint')
      .addColumn('extension_reason', 'text')
      .addColumn('completed_at', 'bigint')
      .addColumn('report', 'text')
      .addColumn('requested_by', 'text', (c) => c.notNull())
      .execute();
    await db.schema
      .createIndex('erasure_requests_workspace')
      .on('erasure_requests')
      .columns(['workspace_id', 'id'])
      .execute();
    await db.schema.createIndex('erasure_requests_age').on('erasure_requests').column('created_at').execute();

    await db.schema
      .alterTable('workspaces')
      .addColumn('region', 'text', (c) => c.notNull().defaultTo('default'))
      .execute();
    await db.schema
      .alterTable('workspaces')
      .addColumn('status', 'text', (c) => c.notNull().defaultTo('active'))
      .execute();
    await db.schema.alterTable('workspaces').addColumn('closed_at', 'bigint').execute();
    await db.schema.alterTable('workspaces').addColumn('purge_after', 'bigint').execute();
  },
  async down(db: Db) {
    for (const column of ['purge_after', 'closed_at', 'status', 'region']) {
      await db.schema.alterTable('workspaces').dropColumn(column).execute();
    }
    for (const table of ['erasure_requests', 'audit_anchor', 'audit_log']) {
      await db.schema.dropTable(table).execute();
    }
  },
};

/**
 * People and the web console: users (e-mail and password hash), their workspace memberships,
 * sessions, single-use invite and reset tokens, and the webhook event ids seen recently (the
 * replay window of signed webhooks).
 */
const security: Migration = {
  async up(db: Db) {
    await db.schema
      .createTable('users')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('email', 'text', (c) => c.notNull().unique())
      .addColumn('password_hash', 'text')
      .addColumn('deployment_role', 'text')
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('updated_at', 'bigint', (c) => c.notNull())
      .addColumn('password_changed_at', 'bigint')
      .addColumn('disabled_at', 'bigint')
      .execute();

    await db.schema
      .createTable('memberships')
      .addColumn('workspace_id', 'text', (c) => c.notNull())
      .addColumn('user_id', 'text', (c) => c.notNull())
      .addColumn('role', 'text', (c) => c.notNull())
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addPrimaryKeyConstraint('memberships_pk', ['workspace_id', 'user_id'])
      .execute();
    await db.schema.createIndex('memberships_user').on('memberships').column('user_id').execute();

    await db.schema
      .createTable('sessions')
      // SHA-256 of the session id: the id itself is only in the cookie.
      .addColumn('id_hash', 'text', (c) => c.primaryKey())
      .addColumn('user_id', 'text', (c) => c.notNull())
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('last_seen_at', 'bigint', (c) => c.notNull())
      .addColumn('expires_at', 'bigint', (c) => c.notNull())
      .addColumn('csrf_secret', 'text', (c) => c.notNull())
      .execute();
    await db.schema.createIndex('sessions_user').on('sessions').column('user_id').execute();

    await db.schema
      .createTable('user_tokens')
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('purpose', 'text', (c) => c.notNull())
      .addColumn('token_hash', 'text', (c) => c.notNull().unique())
      .addColumn('user_id', 'text')
      .addColumn('email', 'text')
      .addColumn('workspace_id', 'text')
      .addColumn('role', 'text')
      .addColumn('created_by', 'text', (c) => c.notNull())
      .addColumn('created_at', 'bigint', (c) => c.notNull())
      .addColumn('expires_at', 'bigint', (c) => c.notNull())
      .addColumn('used_at', 'bigint')
      .execute();

    await db.schema
      .createTable('webhook_events_seen')
      .addColumn('workspace_id', 'text', (c) => c.notNull())
      .addColumn('flow_name', 'text', (c) => c.notNull())
      .addColumn('event_id', 'text', (c) => c.notNull())
      .addColumn('seen_at', 'bigint', (c) => c.notNull())
      .addPrimaryKeyConstraint('webhook_events_seen_pk', ['workspace_id', 'flow_name', 'event_id'])
      .execute();
    await db.schema
      .createIndex('webhook_events_seen_age')
      .on('webhook_events_seen')
      .column('seen_at')
      .execute();
  },
  async down(db: Db) {
    for (const table of ['webhook_events_seen', 'user_tokens', 'sessions', 'memberships', 'users']) {
      await db.schema.dropTable(table).execute();
    }
  },
};

/**
 * 0004: the retention engine's per-workspace work — purging workspaces with periods of their
 * own, legal holds, the retention status — reads one workspace's records oldest first.
 */
const AGED_BY_WORKSPACE = [
  ['runs', 'queued_at'],
  ['run_inputs', 'created_at'],
  ['run_details', 'created_at'],
  ['gateway_log', 'received_at'],
  ['notifications', 'created_at'],
] as const;

const retentionIndexes: Migration = {
  async up(db: Db) {
    for (const [table, column] of AGED_BY_WORKSPACE) {
      await db.schema
        .createIndex(`${table}_workspace_age`)
        .on(table)
        .columns(['workspace_id', column])
        .execute();
    }
  },
  async down(db: Db) {
    for (const [table] of AGED_BY_WORKSPACE) await db.schema.dropIndex(`${table}_workspace_age`).execute();
  },
};

/** Every migration, by name; names sort in the order they apply. */
export const MIGRATIONS: Record<string, Migration> = {
  '0001_initial': initial,
  '0002_privacy': privacy,
  '0003_security': security,
  '0004_retention_indexes': retentionIndexes,
};
