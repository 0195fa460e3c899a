/**
 * Shared pieces of the API tests: one server per store for a describe block (SQLite always,
 * PostgreSQL when it answers — skipped loudly otherwise, unless LETHE_REQUIRE_SERVICES=1),
 * JSON requests, posting to a webhook, reading the audit log after a point, and waiting for a
 * run by polling its route (bounded, never a fixed sleep).
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { describeWithPostgres, PG_URL_VARIABLE, pgAvailable, servicesRequired } from '../helpers/services.js';
import type { AuditLogTable } from '../../src/store/schema.js';
import { startTestServer, type StoreKind, type TestServer } from '../helpers/server.js';

export const STORES: readonly StoreKind[] = ['sqlite', 'postgres'];

/** `describe.each` over both stores; the PostgreSQL block runs only when PostgreSQL answers. */
export async function describeStores(title: string, body: (store: StoreKind) => void): Promise<void> {
  for (const store of STORES) {
    const name = `${title} [${store}]`;
    if (store === 'postgres') await describeWithPostgres(name, () => body(store));
    else describe(name, () => body(store));
  }
}

/** A server for the enclosing describe block; the getter gives it inside tests. */
export function useServer(store: StoreKind, config: Parameters<typeof startTestServer>[0] = {}) {
  let server: TestServer | undefined;
  beforeAll(async () => {
    server = await startTestServer({ ...config, store });
  });
  afterAll(async () => {
    await server?.close();
  });
  return (): TestServer => {
    if (!server) throw new Error('the server is not started');
    return server;
  };
}

export const WS = '/api/v1/workspaces/default';

export interface JsonReply<T = Record<string, unknown>> {
  status: number;
  body: T;
  headers: Headers;
  /** The raw text, for scanning. */
  text: string;
}

/** A request with an optional JSON body; the reply parsed (204 gives an empty object). */
export async function call<T = Record<string, unknown>>(
  t: TestServer,
  method: string,
  path: string,
  options: { body?: unknown; token?: string; headers?: Record<string, string> } = {},
): Promise<JsonReply<T>> {
  const headers: Record<string, string> = { ...options.headers };
  if (options.body !== undefined) headers['content-type'] ??= 'application/json';
  const response = await t.api(path, {
    method,
    token: options.token,
    headers,
    body:
      options.body === undefined
        ? undefined
        : typeof options.body === 'string'
          ? options.body
          : JSON.stringify(options.body),
  });
  const text = await response.text();
  return {
    status: response.status,
    body: (text === '' ? {} : JSON.parse(text)) as T,
    headers: response.headers,
    text,
  };
}

/** The error shape every route answers with. */
export function expectError(reply: JsonReply, status: number, code?: string): { message: string } {
  expect(reply.status, reply.text).toBe(status);
  const error = (reply.body as { error?: { code: unknown; message: unknown } }).error;
  expect(error, reply.text).toBeDefined();
  expect(typeof error!.code).toBe('string');
  expect(typeof error!.message).toBe('string');
  expect((error!.message as string).length).toBeGreaterThan(0);
  if (code !== undefined) expect(error!.code).toBe(code);
  return error as { message: string };
}

export async function putFlow(t: TestServer, name: string, yaml: string, token?: string) {
  const response = await t.api(`${WS}/flows/${name}`, {
    method: 'PUT',
    token,
    headers: { 'content-type': 'application/yaml' },
    body: yaml,
  });
  const text = await response.text();
  expect(response.status, text).toBeLessThan(300);
}

/** POST a JSON body to a workspace's webhook, expect the 202, and give the run id. */
export async function postHook(
  t: TestServer,
  path: string,
  body: unknown,
  workspace = 'default',
): Promise<string> {
  const response = await fetch(`${t.url}/hooks/${workspace}/${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  expect(response.status, text).toBe(202);
  return (JSON.parse(text) as { runId: string }).runId;
}

/** The home region's last audit entry's number (0 when there is none). */
export async function lastAuditSeq(t: TestServer): Promise<number> {
  const row = await t.server.context.home.db
    .selectFrom('audit_log')
    .select('seq')
    .orderBy('seq', 'desc')
    .limit(1)
    .executeTakeFirst();
  return Number(row?.seq ?? 0);
}

/** The home region's audit entries after `seq`, in order. */
export async function auditEntriesAfter(t: TestServer, seq: number): Promise<AuditLogTable[]> {
  return t.server.context.home.db
    .selectFrom('audit_log')
    .selectAll()
    .where('seq', '>', seq)
    .orderBy('seq')
    .execute();
}

/** Put a file in the default workspace's files folder (where flows' relative paths point). */
export function workspaceFile(t: TestServer, path: string, content: string): string {
  const file = join(t.dataDir, 'files', 'default', path);
  mkdirSync(dirname(file), { recursive: true });
  writeFileSync(file, content);
  return file;
}

export async function startRun(
  t: TestServer,
  flow: string,
  params: Record<string, unknown> = {},
  headers: Record<string, string> = {},
): Promise<string> {
  const reply = await call<{ runId: string }>(t, 'POST', `${WS}/flows/${flow}/runs`, {
    body: { params },
    headers,
  });
  expect(reply.status, reply.text).toBe(202);
  return reply.body.runId;
}

export interface RunDetail {
  run: Record<string, unknown> & { id: string; status: string };
  input: { kept: boolean; stored: boolean; note?: string };
  details: {
    steps: { id: string; rowsIn: number; rowsOut: number; status: string; sample?: unknown }[];
    errorMessage: string | null;
  } | null;
}

/** Poll the run until `done` says so (by default: until it has ended); up to 200 × 25 ms. */
export async function waitForRun(
  t: TestServer,
  id: string,
  done: (detail: RunDetail) => boolean = (d) => ['succeeded', 'failed', 'incomplete'].includes(d.run.status),
): Promise<RunDetail> {
  let last: RunDetail | undefined;
  for (let i = 0; i < 200; i++) {
    const reply = await call<RunDetail>(t, 'GET', `${WS}/runs/${id}`);
    expect(reply.status, reply.text).toBe(200);
    last = reply.body;
    if (done(last)) return last;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`run ${id} did not get there in time: ${JSON.stringify(last?.run)}`);
}

const postgresUp = await pgAvailable();

/**
 * A test that needs PostgreSQL as a service (a connection's database), whatever the store:
 * skipped loudly when PostgreSQL does not answer, a failure under LETHE_REQUIRE_SERVICES=1.
 */
export function itWithPostgres(name: string, body: () => Promise<void>): void {
  if (postgresUp) {
    it(name, body);
  } else if (servicesRequired()) {
    it(name, () => {
      throw new Error('PostgreSQL is not reachable (LETHE_REQUIRE_SERVICES=1 makes this a failure)');
    });
  } else {
    console.warn(`\n*** SKIPPED "${name}": PostgreSQL is not reachable (set ${PG_URL_VARIABLE}). ***\n`);
    it.skip(name, body);
  }
}
