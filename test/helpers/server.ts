/**
 * Servers for tests: started in this process on a free port with a temporary data dir, on
 * SQLite or on PostgreSQL in a schema of their own (dropped on close), with their log lines
 * kept in memory so tests can read them. Every server started here must be closed by the
 * test that started it.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { loadConfig, type ServerConfig } from '../../src/server/config.js';
import { createLogger, DEFAULT_WORKSPACE, startServer, type RunningServer } from '../../src/server/serve.js';
import { createToken } from '../../src/security/tokens.js';
import type { Role } from '../../src/security/permissions.js';
import { pgUrl } from './services.js';

export type StoreKind = 'sqlite' | 'postgres';

export interface TestServer {
  server: RunningServer;
  /** http://127.0.0.1:<port> */
  url: string;
  dataDir: string;
  /** Everything the server logged, one JSON line each. */
  logs: string[];
  /** A token for a workspace (made if missing) with a role. */
  token(role?: Role, workspace?: string): Promise<string>;
  /** fetch against the server with a bearer token. */
  api(path: string, init?: RequestInit & { token?: string }): Promise<Response>;
  close(): Promise<void>;
}

/** A PostgreSQL URL whose connections use a fresh schema; and how to drop it. */
export async function pgSchemaUrl(): Promise<{ url: string; drop: () => Promise<void> }> {
  const schema = `lethe_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: pgUrl() });
  await admin.connect();
  await admin.query(`create schema ${schema}`);
  await admin.end();
  const url = new URL(pgUrl());
  url.searchParams.set('options', `-c search_path=${schema}`);
  return {
    url: url.toString(),
    drop: async () => {
      const client = new pg.Client({ connectionString: pgUrl() });
      await client.connect();
      await client.query(`drop schema if exists ${schema} cascade`);
      await client.end();
    },
  };
}

/**
 * A PostgreSQL URL to a fresh database of its own; and how to drop it. For tests that watch
 * VACUUM: dead rows can be removed only up to the oldest snapshot in the same database, and
 * the other test files' transactions live in the shared one.
 */
export async function pgDatabaseUrl(): Promise<{ url: string; drop: () => Promise<void> }> {
  const database = `lethe_test_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: pgUrl() });
  await admin.connect();
  await admin.query(`create database ${database}`);
  await admin.end();
  const url = new URL(pgUrl());
  url.pathname = `/${database}`;
  return {
    url: url.toString(),
    drop: async () => {
      const client = new pg.Client({ connectionString: pgUrl() });
      await client.connect();
      await client.query(`drop database if exists ${database} with (force)`);
      await client.end();
    },
  };
}

export async function startTestServer(
  options: { store?: StoreKind; config?: Partial<ServerConfig>; dataDir?: string } = {},
): Promise<TestServer> {
  const dataDir = options.dataDir ?? mkdtempSync(join(tmpdir(), 'lethe-server-'));
  const schema = options.store === 'postgres' ? await pgSchemaUrl() : undefined;
  const config: ServerConfig = {
    ...loadConfig({ dataDir, port: 0 }, {}),
    databaseUrl: schema?.url,
    seedExamples: false,
    ...options.config,
  };
  const logs: string[] = [];
  const sink = new Writable({
    write(chunk, _encoding, done) {
      logs.push(...String(chunk).split('\n').filter(Boolean));
      done();
    },
  });
  const server = await startServer(config, createLogger('debug', sink));
  const tokens = new Map<string, string>();
  const token = async (role: Role = 'admin', workspace = DEFAULT_WORKSPACE) => {
    const key = `${workspace}/${role}`;
    let value = tokens.get(key);
    if (!value) {
      const ws = await server.context.store.workspaces.ensure(workspace);
      value = (await createToken(server.context.store.tokens, { workspaceId: ws.id, role })).token;
      tokens.set(key, value);
    }
    return value;
  };
  let closed = false;
  return {
    server,
    url: server.url,
    dataDir,
    logs,
    token,
    api: async (path, init = {}) => {
      const { token: bearer, headers, ...rest } = init;
      const auth = bearer ?? (await token());
      return fetch(`${server.url}${path}`, {
        ...rest,
        headers: { authorization: `Bearer ${auth}`, ...headers },
      });
    },
    close: async () => {
      if (closed) return;
      closed = true;
      await server.close();
      await schema?.drop();
      if (!options.dataDir) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}
