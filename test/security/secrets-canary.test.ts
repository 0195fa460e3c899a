/**
 * SPEC §7 "Secrets never leave the vault in API responses, logs, errors, run details or
 * webhook responses", proven with canaries: stored HTTP connections whose secrets (a bearer
 * token, a Basic auth password, an API key sent in the query string) are random canaries call
 * a local API that echoes the Authorization header and the URL back into its answer. So the
 * secrets flow into step data (manual runs, whose samples are stored), into an error (a step
 * that fails on the echoed header), into the dead-letter queue, and into a webhook's
 * `respond: result` answer (run at once, and through the queue); a manual run also brings a
 * token at run time. Then every API answer the test got, the server's log lines and
 * every byte of the store are scanned: no canary appears — neither as given, URL-encoded nor
 * base64-encoded (a Basic auth header encodes `user:password` whole) — while a value that is
 * not secret, echoed the same way, does appear (so the scan sees what is written).
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { sql, type Kysely } from 'kysely';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Database } from '../../src/store/schema.js';
import { base64Cores, Redactor, REDACTED } from '../../src/security/redact.js';
import { call, describeStores, useServer, WS, type JsonReply } from '../server/api-support.js';
import {
  canary,
  expectNowhere,
  expectSomewhere,
  folderBlobs,
  textBlob,
  type Blob,
} from '../privacy/confidential-scan.js';

const USER = 'svc-reader';
/** Echoed by the API like the secrets, but not a secret: the scan must find it. */
const CONTROL = canary('control');

let api: Server;
let port = 0;
/** What the API was sent (header and URL), to prove the secrets really went out. */
const sent: string[] = [];

beforeAll(async () => {
  api = createServer((request, response) => {
    sent.push(`${request.headers.authorization ?? ''} ${request.url}`);
    response.setHeader('content-type', 'application/json');
    response.end(
      JSON.stringify([{ auth: request.headers.authorization ?? null, url: request.url, control: CONTROL }]),
    );
  });
  await new Promise<void>((resolve) => api.listen(0, '127.0.0.1', resolve));
  port = (api.address() as AddressInfo).port;
});

afterAll(async () => {
  await new Promise((resolve) => api.close(resolve));
});

/** Every form of a secret that must not turn up. */
function forms(secret: string): string[] {
  return [
    secret,
    encodeURIComponent(secret),
    Buffer.from(secret).toString('base64'),
    Buffer.from(`${USER}:${secret}`).toString('base64'),
  ];
}

const ECHO = (connection: string) => `input: { connection: ${connection}, request: { path: /echo } }`;

/** Each connection’s echo, read into one table, all. */
const READ_ALL = `  - id: bearer
    ${ECHO('bearer')}
  - id: basic
    ${ECHO('basic')}
  - id: keyed
    ${ECHO('keyed')}
  - id: all
    union: { from: [bearer, basic, keyed] }
`;

const MANUAL_FLOW = `version: 1
name: echo-all
steps:
${READ_ALL}  - id: tagged
    compute: { from: all, columns: { seen: "auth & ' ' & url" } }
`;

/** Fails on the echoed header, with a message that quotes it. */
const FAILING_FLOW = `version: 1
name: echo-fail
steps:
  - id: bearer
    ${ECHO('bearer')}
  - id: counted
    compute: { from: bearer, columns: { n: "$number(auth)" } }
`;

const HOOK_FLOW = `version: 1
name: echo-hook
trigger: { webhook: { path: echo-hook, respond: result } }
steps:
${READ_ALL}  - id: out
    output: { from: all, respond: true }
`;

/** Every row of every table of the server's PostgreSQL schema, as JSON text (one blob per table). */
async function postgresTables(db: Kysely<Database>): Promise<Blob[]> {
  const tables = await sql<{ name: string }>`
    select table_name as name from information_schema.tables
    where table_schema = current_schema() and table_type = 'BASE TABLE'`.execute(db);
  expect(tables.rows.length, 'the schema has tables').toBeGreaterThan(5);
  const blobs: Blob[] = [];
  for (const { name } of tables.rows) {
    const rows = await sql<{
      row: string;
    }>`select row_to_json(t)::text as row from ${sql.table(name)} t`.execute(db);
    blobs.push(
      textBlob(
        `table ${name}`,
        rows.rows.map((r) => r.row),
      ),
    );
  }
  return blobs;
}

interface RunDetail {
  run: { id: string; status: string; errorCode: string | null };
  details: { steps: { id: string; sample?: { rows: unknown[][] } }[]; errorMessage: string | null } | null;
}

it('a redactor hides a value inside larger text, nested values and its encodings, in one pass', () => {
  const redactor = new Redactor();
  const secret = 'pa$$w0rd+/?';
  redactor.add(secret);
  redactor.add('ab'); // too short to redact: ordinary text would suffer
  const basic = Buffer.from(`someone:${secret}`).toString('base64');
  const text = `x${secret}y ${encodeURIComponent(secret)} ${JSON.stringify(secret)} Basic ${basic} ab`;
  const shown = redactor.text(text);
  expect(shown).not.toContain(secret);
  expect(shown).not.toContain(encodeURIComponent(secret));
  for (const core of base64Cores(secret)) expect(shown).not.toContain(core);
  expect(shown).toContain(`x${REDACTED}y`);
  expect(shown.endsWith(' ab')).toBe(true);
  expect(redactor.tooShort).toBe(1); // the run logs how many (never which)
  // Whatever the offset, each alignment's core is part of the whole encoding.
  for (const prefix of ['', 'a', 'ab', 'abc']) {
    const encoded = Buffer.from(`${prefix}${secret}tail`).toString('base64');
    expect(
      base64Cores(secret).some((core) => encoded.includes(core)),
      prefix,
    ).toBe(true);
  }
  expect(redactor.value({ a: [{ [secret]: `<${secret}>` }], n: 1 })).toEqual({
    a: [{ [REDACTED]: `<${REDACTED}>` }],
    n: 1,
  });
});

await describeStores('secrets canary', (store) => {
  const server = useServer(store);
  const answers: string[] = [];
  const record = <T>(reply: JsonReply<T>): JsonReply<T> => {
    answers.push(reply.text);
    return reply;
  };

  async function waitEnd(id: string): Promise<RunDetail> {
    for (let i = 0; i < 400; i++) {
      const reply = record(await call<RunDetail>(server(), 'GET', `${WS}/runs/${id}`));
      expect(reply.status, reply.text).toBe(200);
      if (['succeeded', 'failed', 'incomplete'].includes(reply.body.run.status)) return reply.body;
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    throw new Error(`run ${id} did not end`);
  }

  it('no secret a flow uses appears in API answers, logs, run details, errors, the DLQ or the store', async () => {
    const t = server();
    const secrets = {
      token: canary('token'),
      password: canary('password'),
      apiKey: canary('apikey'),
      runtimeToken: canary('runtimetoken'),
    };
    const baseUrl = `http://127.0.0.1:${port}`;
    const connections: Record<string, unknown> = {
      bearer: { type: 'http', settings: { baseUrl, auth: 'bearer' }, secrets: { token: secrets.token } },
      basic: {
        type: 'http',
        settings: { baseUrl, auth: 'basic', username: USER },
        secrets: { password: secrets.password },
      },
      keyed: {
        type: 'http',
        settings: { baseUrl, auth: 'apiKey', apiKeyName: 'key', apiKeyIn: 'query' },
        secrets: { apiKey: secrets.apiKey },
      },
    };
    for (const [name, body] of Object.entries(connections)) {
      const put = record(await call(t, 'PUT', `${WS}/connections/${name}`, { body }));
      expect(put.status, put.text).toBeLessThan(300);
    }
    for (const [name, yaml] of [
      ['echo-all', MANUAL_FLOW],
      ['echo-fail', FAILING_FLOW],
      ['echo-hook', HOOK_FLOW],
    ]) {
      const put = record(
        await call(t, 'PUT', `${WS}/flows/${name}`, {
          body: yaml,
          headers: { 'content-type': 'application/yaml' },
        }),
      );
      expect(put.status, put.text).toBeLessThan(300);
    }

    // A manual run: the echoed secrets are in every step's sample rows, which are stored.
    const started = record(
      await call<{ runId: string }>(t, 'POST', `${WS}/flows/echo-all/runs`, { body: {} }),
    );
    expect(started.status, started.text).toBe(202);
    const ok = await waitEnd(started.body.runId);
    expect(ok.run.status, JSON.stringify(ok)).toBe('succeeded');
    const samples = JSON.stringify(ok.details);
    expect(samples).toContain(CONTROL);
    expect(samples).toContain(`Bearer ${REDACTED}`);
    expect(samples).toContain(`key=${REDACTED}`);
    expect(samples).toContain(`Basic `);

    // A manual run with a token given at run time (over the stored one): it is hidden too.
    const given = record(
      await call<{ runId: string }>(t, 'POST', `${WS}/flows/echo-all/runs`, {
        body: { credentials: { bearer: { secrets: { token: secrets.runtimeToken } } } },
      }),
    );
    expect(given.status, given.text).toBe(202);
    const givenRun = await waitEnd(given.body.runId);
    expect(givenRun.run.status, JSON.stringify(givenRun)).toBe('succeeded');
    expect(JSON.stringify(givenRun.details)).toContain(`Bearer ${REDACTED}`);

    // A failing run: its error quotes the echoed header; it ends in the dead-letter queue.
    const failing = record(
      await call<{ runId: string }>(t, 'POST', `${WS}/flows/echo-fail/runs`, { body: {} }),
    );
    expect(failing.status, failing.text).toBe(202);
    const failed = await waitEnd(failing.body.runId);
    expect(failed.run.status).toBe('incomplete');
    expect(failed.details?.errorMessage).toContain(`Bearer ${REDACTED}`);
    record(await call(t, 'GET', `${WS}/dlq?limit=100`));
    record(await call(t, 'GET', `${WS}/dlq/${failing.body.runId}`));

    // A webhook answering with the result: the caller gets the rows, without the secrets.
    const hooked = await fetch(`${t.url}/hooks/default/echo-hook`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{}',
    });
    const answer = await hooked.text();
    answers.push(answer);
    expect(hooked.status, answer).toBe(200);
    expect(answer).toContain(CONTROL);
    expect(answer).toContain(`Bearer ${REDACTED}`);
    expect(answer).toContain(`key=${REDACTED}`);
    // With an Idempotency-Key the run goes through the queue, and the answer is just as clean.
    const queued = await fetch(`${t.url}/hooks/default/echo-hook`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': `k-${store}` },
      body: '{}',
    });
    const queuedAnswer = await queued.text();
    answers.push(queuedAnswer);
    expect(queued.status, queuedAnswer).toBe(200);
    expect(queuedAnswer).toContain(`Bearer ${REDACTED}`);

    // Everything else the API says about these runs and connections.
    const list = record(await call<{ items: { id: string }[] }>(t, 'GET', `${WS}/runs?limit=100`));
    for (const item of list.body.items) await waitEnd(item.id);
    record(await call(t, 'GET', `${WS}/notifications?limit=100`));
    record(await call(t, 'GET', `${WS}/gateway-log?limit=100`));
    record(await call(t, 'GET', `${WS}/connections`));
    for (const name of Object.keys(connections)) record(await call(t, 'GET', `${WS}/connections/${name}`));
    record(await call(t, 'GET', `${WS}/inventory`));

    const stored: Blob[] =
      store === 'postgres' ? await postgresTables(t.server.context.store.db) : folderBlobs(t.dataDir);
    const everything: Blob[] = [...stored, textBlob('API answers', answers), textBlob('server logs', t.logs)];
    expect(t.logs.length).toBeGreaterThan(5);
    // Each secret did go out to the API, and so into the answers the runs got.
    const wire = sent.join('\n');
    expect(wire).toContain(`Bearer ${secrets.token}`);
    expect(wire).toContain(`Bearer ${secrets.runtimeToken}`);
    expect(wire).toContain(`Basic ${Buffer.from(`${USER}:${secrets.password}`).toString('base64')}`);
    expect(wire).toContain(`key=${secrets.apiKey}`);
    // The scan sees what is written: the control value is in the store and in the answers.
    expectSomewhere(stored, CONTROL, 'control value in the store');
    expectSomewhere([textBlob('API answers', answers)], CONTROL, 'control value in the answers');
    for (const [label, secret] of Object.entries(secrets)) {
      for (const form of forms(secret)) expectNowhere(everything, form, label);
      for (const core of base64Cores(secret)) expectNowhere(everything, core, `${label} (base64)`);
    }
  });
});
