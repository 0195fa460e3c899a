/**
 * The connector interface: how steps reach external systems. A connector type (`sqlite`,
 * `postgres`, …) declares the settings it accepts and opens sessions from a named connection;
 * a session reads tables and writes them. Each connector lives in its own folder with the
 * same files (settings, read, write, index) and registers itself in ./registry.ts.
 *
 * Connections are resolved by name through a ConnectionProvider, so the engine never knows
 * where they came from: a connections file for the CLI, the vault for the server.
 */
import { isAbsolute, relative, resolve } from 'node:path';
import type { TSchema } from 'typebox';
import type { Table, Value } from '../table/index.js';

/** A named connection with its type and (already substituted) settings. */
export interface ConnectionConfig {
  name: string;
  type: string;
  settings: Record<string, unknown>;
  /** Folder that relative paths in the settings resolve against. */
  baseDir: string;
}

/** What a connector may use while reading or writing. */
export interface IoContext {
  readonly signal: AbortSignal;
  progress(done: number, total?: number): void;
}

export interface QueryRequest {
  kind: 'query';
  sql: string;
  /** Bound as driver parameters ($1… for PostgreSQL, ? for SQLite): never spliced into SQL. */
  parameters: Value[];
}

export interface TableReadRequest {
  kind: 'table';
  table: string;
}

export type ReadRequest = QueryRequest | TableReadRequest;

export const WRITE_MODES = ['insert', 'upsert', 'update', 'delete', 'replace'] as const;
export type WriteMode = (typeof WRITE_MODES)[number];

export interface WriteRequest {
  table: string;
  mode: WriteMode;
  /** Key columns for upsert, update and delete. */
  key: readonly string[];
  /**
   * Create the table when it does not exist: columns typed from the data, the key (if any) as
   * primary key.
   */
  create?: boolean;
}

export interface WriteResult {
  /** Rows the database reports as inserted, updated or deleted. */
  affected: number;
}

export interface ConnectorSession {
  read(request: ReadRequest, context: IoContext): Promise<Table>;
  /** Writes the whole table in one transaction: all rows or none. */
  write(request: WriteRequest, table: Table, context: IoContext): Promise<WriteResult>;
  close(): Promise<void>;
}

export interface Connector {
  readonly type: string;
  readonly summary: string;
  /** JSON Schema of the connection's settings. */
  readonly settingsSchema: TSchema;
  /** Setting names whose values are secrets (never printed, later kept in the vault). */
  readonly secretSettings: readonly string[];
  /** Setting names that hold file paths: on a server they must stay in the workspace's folder. */
  readonly fileSettings: readonly string[];
  open(connection: ConnectionConfig): Promise<ConnectorSession>;
}

/** Resolves connection names for a run and keeps sessions open until the run ends. */
export interface ConnectionProvider {
  /** The names known to this provider (for "did you mean"). */
  names(): string[];
  session(name: string): Promise<ConnectorSession>;
  closeAll(): Promise<void>;
}

/** Whether `path`, taken relative to `folder`, leads outside it. */
export function leavesFolder(folder: string, path: string): boolean {
  const inside = relative(folder, resolve(folder, path));
  return inside.startsWith('..') || isAbsolute(inside);
}
