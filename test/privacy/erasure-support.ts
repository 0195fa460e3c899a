/**
 * Shared pieces of the erasure tests: planting a subject through real runs (a standard flow
 * whose samples and inline values hold it, a failing webhook flow whose input stays in the
 * dead-letter queue, the gateway log, connection settings and secrets), waiting for a request,
 * and scanning every table of the store for a needle.
 */
import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { expect } from 'vitest';
import type { ErasureView } from '../../src/privacy/erasure.js';
import type { Store } from '../../src/store/index.js';
import type { TestServer } from '../helpers/server.js';
import { call } from '../server/api-support.js';

export const api = (ws: string) => `/api/v1/workspaces/${ws}`;

/** A fresh subject: `canary.<hex>@example.com`. */
export function canary(): string {
  return `canary.${randomBytes(6).toString('hex')}@example.com`;
}

/** Mixed case, as people type it. */
export function shouty(address: string): string {
  return address.replace(/^c/, 'C').replace('example.com', 'Example.COM');
}

const ENDED = ['succeeded', 'failed', 'incomplete'];

export async function waitForRun(t: TestServer, ws: string, id: string, token: string) {
  for (let i = 0; i < 400; i++) {
    const reply = await call<{
      run: { status: string; errorCode: string | null };
      input: { stored: boolean };
    }>(t, 'GET', `${api(ws)}/runs/${id}`, { token });
    expect(reply.status, reply.text).toBe(200);
    if (ENDED.includes(reply.body.run.status)) return reply.body;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
  throw new Error(`run ${id} did not end`);
}

/** Poll a request until it is completed (bounded: 30 s). */
export async function waitForErasure(
  t: TestServer,
  ws: string,
  id: string,
  token: string,
): Promise<ErasureView> {
  let last: ErasureView | undefined;
  for (let i = 0; i < 600; i++) {
    const reply = await call<ErasureView>(t, 'GET', `${api(ws)}/erasure-requests/${id}`, { token });
    expect(reply.status, reply.text).toBe(200);
    last = reply.body;
    if (last.status === 'completed') return last;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(`erasure request ${id} did not complete: ${JSON.stringify(last)}`);
}

export interface Planted {
  subject: string;
  /** Someone else whose address contains the subject's: must survive. */
  decoy: string;
  /** The binary webhook body, as the gateway log keeps it (base64). */
  binaryBase64: string;
  contactsFlow: string;
  intakeFlow: string;
  dlqRuns: string[];
  connections: string[];
}

/**
 * Plant `subject` in five data classes of workspace `ws` through the API: execution details
 * (samples of a standard run), the gateway log and the DLQ (a webhook flow that fails: JSON,
 * form and binary bodies), flow versions (inline values) and credentials (connection settings,
 * a connection secret, an API token's label).
 */
export async function plant(t: TestServer, ws: string, subject: string, tag: string): Promise<Planted> {
  const token = await t.token('admin', ws);
  const decoy = `jo${subject}`;
  const contactsFlow = `contacts-${tag}`;
  const intakeFlow = `intake-${tag}`;
  const put = async (name: string, yaml: string) => {
    const reply = await call(t, 'PUT', `${api(ws)}/flows/${name}`, {
      token,
      body: yaml,
      headers: { 'content-type': 'application/yaml' },
    });
    expect(reply.status, reply.text).toBeLessThan(300);
  };
  await put(
    contactsFlow,
    `version: 1
name: ${contactsFlow}
steps:
  - id: people
    input: { values: [{ email: ${subject}, name: Canary }, { email: ${decoy}, name: Jo }] }
  - id: loud
    compute: { from: people, columns: { shout: "$uppercase(email)" } }
`,
  );
  const started = await call<{ runId: string }>(t, 'POST', `${api(ws)}/flows/${contactsFlow}/runs`, {
    token,
    body: {},
  });
  expect(started.status, started.text).toBe(202);
  expect((await waitForRun(t, ws, started.body.runId, token)).run.status).toBe('succeeded');

  await put(
    intakeFlow,
    `version: 1
name: ${intakeFlow}
trigger: { webhook: { path: ${intakeFlow}, respond: accepted } }
steps:
  - id: in
    input: { trigger: true }
  - id: crm
    input: { file: never-there-${tag}.csv }
  - id: joined
    join: { left: in, right: crm, on: { email: email } }
`,
  );
  const hook = async (body: string | Buffer, contentType: string) => {
    const response = await fetch(`${t.url}/hooks/${ws}/${intakeFlow}`, {
      method: 'POST',
      headers: { 'content-type': contentType },
      body,
    });
    const text = await response.text();
    expect(response.status, text).toBe(202);
    const { runId } = JSON.parse(text) as { runId: string };
    const detail = await waitForRun(t, ws, runId, token);
    expect(detail.run.status).toBe('incomplete');
    expect(detail.input.stored).toBe(true);
    return runId;
  };
  const binary = Buffer.concat([
    Buffer.from([0, 1, 2, 0xff]),
    Buffer.from(` to ${subject} \n`),
    Buffer.from([7]),
  ]);
  const dlqRuns = [
    await hook(JSON.stringify({ email: shouty(subject), note: `call ${decoy}` }), 'application/json'),
    await hook(`email=${encodeURIComponent(subject)}&x=1`, 'application/x-www-form-urlencoded'),
    await hook(binary, 'application/octet-stream'),
  ];

  const connections = [`crm-${tag}`, `warehouse-${tag}`];
  for (const [name, body] of [
    [
      connections[0]!,
      {
        type: 'postgres',
        settings: { host: 'db.example.com', database: 'crm', user: subject },
        secrets: { password: 'pw' },
      },
    ],
    [
      connections[1]!,
      {
        type: 'postgres',
        settings: { database: 'wh' },
        secrets: { url: `postgres://${encodeURIComponent(subject)}:pw@db.example.com/wh` },
      },
    ],
  ] as const) {
    const reply = await call(t, 'PUT', `${api(ws)}/connections/${name}`, { token, body });
    expect(reply.status, reply.text).toBeLessThan(300);
  }
  // An API token labelled with the subject's address.
  const labelled = await call(t, 'POST', `${api(ws)}/tokens`, {
    token,
    body: { role: 'viewer', name: `laptop of ${subject}` },
  });
  expect(labelled.status, labelled.text).toBe(201);
  return {
    subject,
    decoy,
    binaryBase64: binary.toString('base64'),
    contactsFlow,
    intakeFlow,
    dlqRuns,
    connections,
  };
}

/** Every table of the store and its rows as text (row_to_json on PostgreSQL, all columns on SQLite). */
export async function tableTexts(store: Store): Promise<Map<string, string[]>> {
  const tables = new Map<string, string[]>();
  if (store.dialect === 'sqlite') {
    const names = await sql<{ name: string }>`select name from sqlite_master where type = 'table'`.execute(
      store.db,
    );
    for (const { name } of names.rows) {
      const rows = await sql<Record<string, unknown>>`select * from ${sql.table(name)}`.execute(store.db);
      tables.set(
        name,
        rows.rows.map((row) =>
          JSON.stringify(row, (_key, value: unknown) =>
            Buffer.isBuffer(value) ? value.toString('latin1') : value,
          ),
        ),
      );
    }
  } else {
    const names = await sql<{ name: string }>`
      select table_name as name from information_schema.tables
      where table_schema = current_schema() and table_type = 'BASE TABLE'`.execute(store.db);
    for (const { name } of names.rows) {
      const rows = await sql<{
        j: string;
      }>`select row_to_json(t)::text as j from ${sql.table(name)} t`.execute(store.db);
      tables.set(
        name,
        rows.rows.map((row) => row.j),
      );
    }
  }
  return tables;
}

/**
 * Where a needle occurs: `table` for each row that holds it (case-insensitive unless `exact`),
 * after taking out `ignore` (other people whose addresses contain the needle).
 */
export async function scan(
  store: Store,
  needles: readonly string[],
  exact: readonly string[] = [],
  ignore: readonly string[] = [],
): Promise<string[]> {
  const hits: string[] = [];
  for (const [table, texts] of await tableTexts(store)) {
    for (const text of texts) {
      let row = text;
      for (const other of ignore)
        row = row.replace(new RegExp(other.replace(/[.*+?^${}()|[\]\\]/g, '\\$&'), 'gi'), '');
      const lower = row.toLowerCase();
      if (
        needles.some((needle) => lower.includes(needle.toLowerCase())) ||
        exact.some((needle) => row.includes(needle))
      )
        hits.push(table);
    }
  }
  return hits;
}

/** The forms a planted subject is stored in: plain, URL-encoded, and the binary body's base64. */
export function needlesOf(planted: Planted): { needles: string[]; exact: string[]; ignore: string[] } {
  return {
    needles: [planted.subject, encodeURIComponent(planted.subject)],
    exact: [planted.binaryBase64],
    ignore: [planted.decoy],
  };
}
