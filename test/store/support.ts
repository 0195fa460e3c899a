/**
 * The store suites run once per database: `describeStores(title, suite)` calls `suite('sqlite')`
 * in one describe and `suite('postgres')` in another (skipped loudly, or failed under
 * LETHE_REQUIRE_SERVICES=1, when PostgreSQL does not answer). A `StorePlace` is one empty
 * database — a temporary data dir for SQLite, a fresh schema for PostgreSQL — on which any
 * number of Store instances can be opened; `cleanup()` closes them all and removes the place.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe } from 'vitest';
import type { Flow } from '../../src/flow/validate.js';
import { parseFlow } from '../../src/flow/load.js';
import { Store } from '../../src/store/index.js';
import { newId } from '../../src/store/ids.js';
import type { GatewayLogRow } from '../../src/store/records.js';
import type { RunRow } from '../../src/store/runs.js';
import { pgSchemaUrl } from '../helpers/server.js';
import { describeWithPostgres } from '../helpers/services.js';

export type StoreKind = 'sqlite' | 'postgres';

export interface StorePlace {
  kind: StoreKind;
  /** The PostgreSQL URL (with the schema), or undefined for SQLite. */
  url: string | undefined;
  dataDir: string;
  /** Open (and migrate) another Store on this database; cleanup() closes it. */
  open(): Promise<Store>;
  cleanup(): Promise<void>;
}

export async function newPlace(kind: StoreKind): Promise<StorePlace> {
  const dataDir = mkdtempSync(join(tmpdir(), 'lethe-store-'));
  const schema = kind === 'postgres' ? await pgSchemaUrl() : undefined;
  const opened: Store[] = [];
  return {
    kind,
    url: schema?.url,
    dataDir,
    open: async () => {
      const store = await Store.open({ url: schema?.url, dataDir });
      opened.push(store);
      return store;
    },
    cleanup: async () => {
      await Promise.allSettled(opened.map((store) => store.close()));
      await schema?.drop();
      rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Register `suite` for SQLite and for PostgreSQL. Call with `await` at the top level. */
export async function describeStores(title: string, suite: (kind: StoreKind) => void): Promise<void> {
  describe(`${title} (SQLite)`, () => suite('sqlite'));
  await describeWithPostgres(`${title} (PostgreSQL)`, () => suite('postgres'));
}

/** One place and one open store for a describe block: `const ctx = useStore(kind)`. */
export function useStore(kind: StoreKind): { readonly store: Store; readonly place: StorePlace } {
  let place: StorePlace | undefined;
  let store: Store | undefined;
  beforeAll(async () => {
    place = await newPlace(kind);
    store = await place.open();
  });
  afterAll(async () => {
    await place?.cleanup();
  });
  return {
    get store() {
      if (!store) throw new Error('the store is not open yet');
      return store;
    },
    get place() {
      if (!place) throw new Error('the store is not open yet');
      return place;
    },
  };
}

/** A fresh place and store for one test; the caller cleans up. */
export async function freshStore(kind: StoreKind): Promise<{ store: Store; place: StorePlace }> {
  const place = await newPlace(kind);
  return { store: await place.open(), place };
}

/** The base tables of the store's database (not SQLite's own). */
export async function tableNames(store: Store): Promise<string[]> {
  const rows =
    store.dialect === 'sqlite'
      ? await sql<{ name: string }>`select name from sqlite_master
          where type = 'table' and name not like 'sqlite\\_%' escape '\\'`.execute(store.db)
      : await sql<{ name: string }>`select table_name as name from information_schema.tables
          where table_schema = current_schema() and table_type = 'BASE TABLE'`.execute(store.db);
  return rows.rows.map((row) => row.name).sort();
}

/** A table's column names. */
export async function columnNames(store: Store, table: string): Promise<string[]> {
  const rows =
    store.dialect === 'sqlite'
      ? await sql<{ name: string }>`select name from pragma_table_info(${table})`.execute(store.db)
      : await sql<{ name: string }>`select column_name as name from information_schema.columns
          where table_schema = current_schema() and table_name = ${table}`.execute(store.db);
  return rows.rows.map((row) => row.name).sort();
}

let workspaceCounter = 0;

/** A workspace name no other test uses. */
export function uniqueName(prefix = 'ws'): string {
  workspaceCounter++;
  return `${prefix}-${workspaceCounter}-${newId().slice(-6)}`;
}

/** A flow parsed from YAML, for flows.put. */
export function flowOf(yaml: string): Flow {
  return parseFlow(yaml, 'flow.yaml', process.cwd()).flow;
}

/** A flow's YAML: manual by default, or with the trigger given (e.g. `{ webhook: { path: a } }`). */
export function flowYaml(name: string, trigger?: string, extra = ''): string {
  return [
    'version: 1',
    `name: ${name}`,
    ...(trigger ? [`trigger: ${trigger}`] : []),
    'steps:',
    '  - id: source',
    `    input: { values: [{ a: 1 }] }${extra}`,
    '',
  ].join('\n');
}

/** A gateway log row (a received webhook) for tests: an empty POST to "p", received now. */
export function gatewayRow(workspaceId: string, overrides: Partial<GatewayLogRow> = {}): GatewayLogRow {
  const at = overrides.received_at ?? Date.now();
  return {
    id: newId(at),
    workspace_id: workspaceId,
    path: 'p',
    flow_name: null,
    received_at: at,
    method: 'POST',
    content_type: null,
    size: 0,
    status: 202,
    run_id: null,
    body: null,
    ...overrides,
  };
}

/** A queued run row with sensible defaults. */
export function runRow(workspaceId: string, overrides: Partial<RunRow> = {}): RunRow {
  const now = overrides.queued_at ?? Date.now();
  return {
    id: newId(now),
    workspace_id: workspaceId,
    flow_name: 'f',
    flow_version: 1,
    trigger: 'manual',
    privacy: 'standard',
    status: 'queued',
    attempt: 0,
    max_attempts: 3,
    queued_at: now,
    available_at: now,
    started_at: null,
    finished_at: null,
    duration_ms: null,
    rows_read: null,
    rows_written: null,
    error_code: null,
    error_step: null,
    idempotency_key: null,
    input_kept: 1,
    ...overrides,
  };
}
