/**
 * SPEC §2 "login/password of the executing user stored only when schedule or real-time execution
 * is enabled" (krewData): manual runs take credentials at run time and keep them in memory only.
 * The runs use them (a SQLite database whose path, and a PostgreSQL connection whose URL, exist
 * only in the request), and the values appear nowhere: not in the store (its files or, on
 * PostgreSQL, every table), the data dir, the logs, the temp dirs, the API answers, nor the
 * output of `lethe run --ask-credentials`. A run that needs them after a restart ends
 * CREDENTIALS_LOST; schedule, webhook and poll runs need stored connections.
 */
import { mkdtempSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ServerConfig } from '../../src/server/config.js';
import { lethe } from '../cli/support.js';
import { pgSchemaUrl, startTestServer, type TestServer } from '../helpers/server.js';
import { describeWithPostgres, pgUrl } from '../helpers/services.js';
import {
  canary,
  changedTempFiles,
  expectNowhere,
  folderBlobs,
  postgresBlobs,
  snapshotTemp,
  textBlob,
  type Blob,
} from './confidential-scan.js';

const WS = '/api/v1/workspaces/default';

const READ_FLOW = (name: string, privacy = 'standard') => `version: 1
name: ${name}
privacy: ${privacy}
steps:
  - id: items
    input: { connection: vault, table: items }
  - id: doubled
    compute: { from: items, columns: { twice: "n * 2" } }
`;

const HOOK_FLOW = `version: 1
name: hooked
trigger: { webhook: { path: hooked } }
steps:
  - id: items
    input: { connection: vault, table: items }
`;

/**
 * Manual and long (several seconds, yielding often), so that runs behind it wait in the queue;
 * it is cut short by the stop, and cancelled after the restart.
 */
const LONG_FLOW = `version: 1
name: long
steps:
  - id: in
    input: { values: [{ v: 1 }] }
  - id: many
    compute: { from: in, columns: { xs: "[1..300000]" } }
  - id: rows
    unnest: { from: many, column: xs }
  - id: work
    compute: { from: rows, columns: { y: '$sift({"a": xs}, function($v){ $v > 0 }).a' } }
`;

interface RunDetail {
  run: { id: string; status: string; errorCode: string | null; rowsRead: number | null };
  input: { kept: boolean; stored: boolean; note?: string };
  details: { steps: { id: string; sample?: { rows: unknown[][] } }[]; errorMessage: string | null } | null;
}

/** A server whose every answer is kept for the scan. */
class Harness {
  readonly answers: string[] = [];
  readonly logs: string[] = [];
  t!: TestServer;

  async start(dataDir: string, config: Partial<ServerConfig> = {}) {
    this.t = await startTestServer({ dataDir, config });
  }

  async stop() {
    this.logs.push(...this.t.logs);
    await this.t.close();
  }

  async call(method: string, path: string, body?: unknown, headers: Record<string, string> = {}) {
    const response = await this.t.api(path, {
      method,
      headers: {
        ...(body === undefined
          ? {}
          : { 'content-type': typeof body === 'string' ? 'application/yaml' : 'application/json' }),
        ...headers,
      },
      body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
    });
    const text = await response.text();
    this.answers.push(text);
    return {
      status: response.status,
      text,
      body: (text === '' ? {} : JSON.parse(text)) as Record<string, unknown>,
    };
  }

  async put(name: string, yaml: string) {
    const reply = await this.call('PUT', `${WS}/flows/${name}`, yaml);
    expect(reply.status, reply.text).toBeLessThan(300);
  }

  async run(flow: string, body: unknown): Promise<string> {
    const reply = await this.call('POST', `${WS}/flows/${flow}/runs`, body);
    expect(reply.status, reply.text).toBe(202);
    return reply.body.runId as string;
  }

  async wait(
    id: string,
    until = (d: RunDetail) => ['succeeded', 'failed', 'incomplete'].includes(d.run.status),
  ) {
    for (let i = 0; i < 400; i++) {
      const reply = await this.call('GET', `${WS}/runs/${id}`);
      const detail = reply.body as unknown as RunDetail;
      if (until(detail)) return detail;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    throw new Error(`run ${id} did not end`);
  }
}

/** A SQLite database in the workspace's files folder with a few rows. */
function makeDatabase(dataDir: string, name: string, rows: number): void {
  const folder = join(dataDir, 'files', 'default');
  mkdirSync(folder, { recursive: true });
  const db = new Database(join(folder, name));
  db.exec('create table items (id integer primary key, n integer)');
  const insert = db.prepare('insert into items (n) values (?)');
  for (let i = 1; i <= rows; i++) insert.run(i);
  db.close();
}

/** `lethe …args` with lines on stdin (not a terminal); its output is scanned too. */
function letheWithInput(args: readonly string[], input: string) {
  return lethe(args, { input, timeoutMs: 60_000, env: { LETHE_SERVER: undefined, LETHE_TOKEN: undefined } });
}

describe('run-time credentials', () => {
  const h = new Harness();
  let dataDir: string;
  let tempBefore: ReturnType<typeof snapshotTemp>;
  /** Values that must appear nowhere. */
  const secrets: Record<string, string> = {};
  const cliOutput: string[] = [];

  beforeAll(async () => {
    tempBefore = snapshotTemp();
    dataDir = mkdtempSync(join(tmpdir(), 'lethe-credentials-'));
    await h.start(dataDir);
  });

  afterAll(async () => {
    await h.t?.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('a run uses a connection given at run time, which is stored nowhere', async () => {
    secrets.path = `${canary('dbpath')}.db`;
    makeDatabase(dataDir, secrets.path, 3);
    await h.put('reader', READ_FLOW('reader'));
    await h.put('quiet-reader', READ_FLOW('quiet-reader', 'confidential'));
    const credentials = { vault: { type: 'sqlite', settings: { path: secrets.path } } };
    for (const flow of ['reader', 'quiet-reader']) {
      const id = await h.run(flow, { credentials });
      const detail = await h.wait(id);
      expect(detail.run, flow).toMatchObject({ status: 'succeeded', rowsRead: 3 });
    }
    // The stored input of the standard run names the connection, nothing more.
    const inputs = await h.t.server.context.store.db.selectFrom('run_inputs').select('input').execute();
    for (const row of inputs) expect(row.input).not.toContain(secrets.path);

    // Without the credentials, the connection does not exist: the run says how to give it.
    const bare = await h.wait(await h.run('reader', {}));
    expect(bare.run).toMatchObject({ status: 'incomplete', errorCode: 'CONNECTION_ERROR' });
    expect(bare.details?.errorMessage).toMatch(/no connection "vault".*\n.*credentials/);
  });

  it('redacts run-time values from the error a standard run stores', async () => {
    secrets.missing = `${canary('missing')}.db`;
    const id = await h.run('reader', {
      credentials: { vault: { type: 'sqlite', settings: { path: secrets.missing } } },
    });
    const detail = await h.wait(id);
    expect(detail.run).toMatchObject({ status: 'incomplete', errorCode: 'CONNECTION_ERROR' });
    // The connector's message quotes the path; what is stored has it redacted.
    expect(detail.details?.errorMessage).toMatch(/cannot open the database "\[redacted\]"/);
    expect(detail.details?.errorMessage).not.toContain(secrets.missing);
  });

  it('checks credentials when the run is created, without repeating their values', async () => {
    secrets.bad = canary('badvalue');
    const cases: [unknown, RegExp][] = [
      [
        { elsewhere: { type: 'sqlite', settings: { path: secrets.bad } } },
        /does not use a connection "elsewhere"/,
      ],
      [
        { vault: { settings: { path: secrets.bad } } },
        /credentials\.vault\.type: there is no stored connection "vault"/,
      ],
      [
        { vault: { type: 'sqllite', settings: { path: secrets.bad } } },
        /unknown connection type \(did you mean "sqlite"\?\)/,
      ],
      [
        { vault: { type: 'sqlite', settings: { path: `../../${secrets.bad}.db` } } },
        /leads outside the workspace's files folder/,
      ],
      [
        { vault: { type: 'sqlite', secrets: { path: secrets.bad } } },
        /"path" is not a secret setting of a sqlite connection/,
      ],
      [
        { vault: { type: 'sqlite', settings: { path: secrets.bad, wal: secrets.bad } } },
        /credentials\.vault\.settings\.wal/,
      ],
    ];
    for (const [credentials, message] of cases) {
      const reply = await h.call('POST', `${WS}/flows/reader/runs`, { credentials });
      expect(reply.status, reply.text).toBe(400);
      const error = reply.body.error as { code: string; message: string; errors?: { message: string }[] };
      expect(error.code).toBe('CONNECTIONS_INVALID');
      const messages = [error.message, ...(error.errors ?? []).map((e) => e.message)].join('\n');
      expect(messages).toMatch(message);
      expect(reply.text).not.toContain(secrets.bad);
    }
  });

  it('schedule, webhook and poll runs need stored connections', async () => {
    await h.put('hooked', HOOK_FLOW);
    const response = await fetch(`${h.t.url}/hooks/default/hooked`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    const { runId } = (await response.json()) as { runId: string };
    const detail = await h.wait(runId);
    expect(detail.run).toMatchObject({ status: 'incomplete', errorCode: 'CONNECTION_ERROR' });
    expect(detail.details?.errorMessage).toMatch(
      /no stored connection "vault" in this workspace: webhook runs need their connections stored \(only manual runs may bring credentials at run time\)/,
    );
  });

  it('lethe run --ask-credentials asks for each connection the flow uses and sends them', async () => {
    const token = await h.t.token('editor');
    const connections = await h.call('GET', `${WS}/flows/reader/connections`);
    expect(connections.body).toEqual({ items: [{ name: 'vault', stored: false, type: null, secrets: [] }] });
    // type, then each sqlite setting: path, create, wal, readonly, busyTimeoutMs.
    const result = await letheWithInput(
      ['run', 'reader', '--server', h.t.url, '--token', token, '--ask-credentials', '--wait'],
      `sqlite\n${secrets.path}\n\n\n\n\n`,
    );
    cliOutput.push(result.stdout, result.stderr);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toMatch(/connection "vault" is not stored; its type \(sqlite, postgres[^)]*\): /);
    expect(result.stderr).toMatch(/vault\.path \(empty leaves it out\): /);
    expect(result.stdout).toMatch(/reader: succeeded/);
    expect(result.stdout).toMatch(/items\s+input\s+0\s+3/);
    expect(result.stdout + result.stderr).not.toContain(secrets.path);

    // A stored connection: only its secrets are asked for (without echo on a terminal).
    secrets.password = canary('password');
    const stored = await h.call('PUT', `${WS}/connections/wh`, {
      type: 'postgres',
      settings: { host: '127.0.0.1', port: 1, database: 'nothing', user: 'nobody' },
    });
    expect(stored.status, stored.text).toBe(201);
    await h.put(
      'pg-ask',
      `version: 1
name: pg-ask
steps:
  - id: rows
    input: { connection: wh, sql: "select 1 as one" }
`,
    );
    // postgres secrets: password, url (empty: left out).
    const asked = await letheWithInput(
      ['run', 'pg-ask', '--server', h.t.url, '--token', token, '--ask-credentials', '--wait'],
      `${secrets.password}\n\n`,
    );
    cliOutput.push(asked.stdout, asked.stderr);
    expect(asked.stderr).toMatch(
      /connection "wh" \(postgres, stored\): password \(hidden; empty leaves it out\): /,
    );
    expect(asked.stderr).toMatch(
      /connection "wh" \(postgres, stored\): url \(hidden; empty leaves it out\): /,
    );
    // Nothing listens there: the run fails, and its stored error has no password in it.
    expect(asked.code).toBe(1);
    expect(asked.stdout).toMatch(/pg-ask: incomplete/);
    expect(asked.stdout + asked.stderr).not.toContain(secrets.password);
  });

  it('a run that needs its credentials after a restart ends CREDENTIALS_LOST', async () => {
    await h.put('long', LONG_FLOW);
    await h.stop();
    // One run at a time: the long run holds the slot, the run with credentials waits in the queue.
    await h.start(dataDir, { concurrency: 1, shutdownGraceMs: 100 });
    const long = await h.run('long', {});
    await h.wait(long, (d) => d.run.status === 'running');
    secrets.queued = `${canary('queued')}.db`;
    makeDatabase(dataDir, secrets.queued, 2);
    const waiting = await h.run('reader', {
      credentials: { vault: { type: 'sqlite', settings: { path: secrets.queued } } },
    });
    expect((await h.wait(waiting, () => true)).run.status).toBe('queued');
    await h.stop();

    await h.start(dataDir);
    const lost = await h.wait(waiting);
    expect(lost.run).toMatchObject({ status: 'incomplete', errorCode: 'CREDENTIALS_LOST' });
    expect(lost.details?.errorMessage).toMatch(
      /credentials given at run time for "vault" were held in memory only/,
    );
    const retry = await h.call('POST', `${WS}/dlq/${waiting}/retry`);
    expect(retry.status, retry.text).toBe(409);
    expect((retry.body.error as { code: string }).code).toBe('CREDENTIALS_NOT_KEPT');
    await h.wait(long, (d) => d.run.status === 'running');
    expect((await h.call('POST', `${WS}/runs/${long}/cancel`)).status).toBe(202);
    expect((await h.wait(long)).run).toMatchObject({ status: 'failed', errorCode: 'CANCELLED' });
  });

  it('leaves no credential anywhere: store, data dir, logs, temp files, API answers, CLI output', async () => {
    await h.stop();
    const exclude = (path: string) => Object.values(secrets).some((name) => path.endsWith(name));
    const everything: Blob[] = [
      ...folderBlobs(dataDir, exclude),
      textBlob('server logs', h.logs),
      textBlob('API answers', h.answers),
      textBlob('CLI output', cliOutput),
      ...changedTempFiles(tempBefore, [dataDir]),
    ];
    expect(Object.keys(secrets)).toEqual(['path', 'missing', 'bad', 'password', 'queued']);
    for (const [label, value] of Object.entries(secrets)) expectNowhere(everything, value, label);
    // The scan sees the store: the run ids it wrote are there.
    expect(
      everything.some((blob) => blob.where.startsWith('file lethe') && blob.bytes.includes('reader')),
    ).toBe(true);
  });
});

await describeWithPostgres('run-time credentials for PostgreSQL [postgres store]', () => {
  let schema: Awaited<ReturnType<typeof pgSchemaUrl>>;
  let dataDir: string;
  const h = new Harness();

  const egress = process.env.LETHE_EGRESS_ALLOW;

  beforeAll(async () => {
    // The test's PostgreSQL is on a loopback address, which the egress guard opens only when told.
    const target = new URL(pgUrl());
    process.env.LETHE_EGRESS_ALLOW = `${target.hostname}:${target.port || 5432}`;
    schema = await pgSchemaUrl();
    dataDir = mkdtempSync(join(tmpdir(), 'lethe-credentials-pg-'));
    await h.start(dataDir, { databaseUrl: schema.url });
  });

  afterAll(async () => {
    if (egress === undefined) delete process.env.LETHE_EGRESS_ALLOW;
    else process.env.LETHE_EGRESS_ALLOW = egress;
    await h.t?.close();
    await schema?.drop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it('uses a URL and a password given at run time; they are in no table, file, log or answer', async () => {
    const tempBefore = snapshotTemp();
    const target = new URL(pgUrl());
    // A whole connection for this run: its URL (a secret) carries a canary the run reads back.
    const appName = canary('appname');
    const url = new URL(pgUrl());
    url.searchParams.set('application_name', appName);
    // A stored connection, completed at run time with a password (the canary is the password).
    const password = canary('password');
    const stored = await h.call('PUT', `${WS}/connections/warehouse`, {
      type: 'postgres',
      settings: {
        host: target.hostname,
        port: Number(target.port || 5432),
        database: target.pathname.slice(1),
        user: decodeURIComponent(target.username),
      },
    });
    expect(stored.status, stored.text).toBeLessThan(300);
    await h.put(
      'pg-reader',
      `version: 1
name: pg-reader
steps:
  - id: app
    input: { connection: adhoc, sql: "select current_setting('application_name') as app" }
  - id: save
    output: { from: app, file: out/app.csv }
  - id: count
    input: { connection: warehouse, sql: "select 1 as one" }
`,
    );
    const connections = await h.call('GET', `${WS}/flows/pg-reader/connections`);
    expect(connections.body).toEqual({
      items: [
        { name: 'adhoc', stored: false, type: null, secrets: [] },
        { name: 'warehouse', stored: true, type: 'postgres', secrets: [] },
      ],
    });
    const id = await h.run('pg-reader', {
      credentials: {
        adhoc: { type: 'postgres', secrets: { url: url.toString() } },
        warehouse: { secrets: { password } },
      },
    });
    const detail = await h.wait(id);
    expect(detail.run, JSON.stringify(detail)).toMatchObject({ status: 'succeeded' });
    // The run used the URL: its output (the user's own file) has the value…
    const output = join(dataDir, 'files', 'default', 'out', 'app.csv');
    expect(readFileSync(output, 'utf8')).toContain(appName);
    // …and the sample the store keeps has it redacted.
    const sample = detail.details?.steps.find((step) => step.id === 'app')?.sample;
    expect(sample?.rows).toEqual([['[redacted]']]);

    await h.stop();
    const everything: Blob[] = [
      ...(await postgresBlobs(schema.url)),
      ...folderBlobs(dataDir, (path) => path === output),
      textBlob('server logs', h.logs),
      textBlob('API answers', h.answers),
      ...changedTempFiles(tempBefore, [dataDir]),
    ];
    for (const [label, value] of Object.entries({ appName, password, url: url.toString() })) {
      expectNowhere(everything, value, label);
    }
  });
});
