/**
 * Promises of the data-handling page (docs/privacy.md) that no other test proved on its own:
 *
 * - the seeds' periods: retention per class, 6 months of passive storage for a closed
 *   workspace, erasure due within 30 days, the audit log's 12 months;
 * - deleting a connection removes every record of it (settings, encrypted secrets);
 * - deleting a flow removes every record derived from it that may hold its data (versions,
 *   gateway log, notifications, DLQ inputs, execution details); run summaries keep ids only;
 * - "logs hold only the account ID": signing in and managing members logs user ids, never an
 *   e-mail address.
 *
 * Each store test first finds its canaries where they are kept, so the scan provably sees
 * what is written, then proves them gone.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { expect, it } from 'vitest';
import { DATA_CLASSES } from '../../src/privacy/data-classes.js';
import { DEFAULT_DUE_DAYS } from '../../src/privacy/erasure.js';
import { retentionConfigFromEnv } from '../../src/privacy/retention-policy.js';
import { PASSIVE_STORAGE_MONTHS, purgeDeadline } from '../../src/privacy/workspace-lifecycle.js';
import type { Database } from '../../src/store/schema.js';
import { STORED_TABLES, MIGRATION_TABLES } from '../../src/store/tables.js';
import type { TestServer } from '../helpers/server.js';
import { makeUser, signIn, uniqueEmail } from '../security/people-support.js';
import {
  call,
  describeStores,
  expectError,
  postHook,
  putFlow,
  useServer,
  waitForRun,
  workspaceFile,
  WS,
} from '../server/api-support.js';
import { canary, expectNowhere, expectSomewhere, textBlob, type Blob } from './confidential-scan.js';

/** Every row of every table the store registers, one blob per table (both databases alike). */
async function tableBlobs(t: TestServer): Promise<Blob[]> {
  const { db } = t.server.context.store;
  const blobs: Blob[] = [];
  for (const table of Object.keys(STORED_TABLES)) {
    if ((MIGRATION_TABLES as readonly string[]).includes(table)) continue;
    const rows = await db
      .selectFrom(table as keyof Database)
      .selectAll()
      .execute();
    blobs.push(textBlob(`table ${table}`, rows.map((row) => JSON.stringify(row)).join('\n')));
  }
  return blobs;
}

async function rowsOf(t: TestServer, table: 'run_inputs' | 'run_details', runIds: string[]) {
  return t.server.context.store.db.selectFrom(table).select('run_id').where('run_id', 'in', runIds).execute();
}

it('keeps the seeds’ periods: gateway log 30 d, DLQ 30 d, notifications 7 d, activity 30 d, execution details 60 d, audit 12 months, passive storage 6 months, erasure within 30 days', () => {
  const seeds = { gateway_log: 30, dlq: 30, notification: 7, activity: 30, execution_detail: 60, audit: 365 };
  expect(retentionConfigFromEnv({}).defaults).toEqual(seeds);
  for (const [name, days] of Object.entries(seeds))
    expect(DATA_CLASSES[name as keyof typeof seeds].retentionDays).toBe(days);
  expect(PASSIVE_STORAGE_MONTHS).toBe(6);
  // Six calendar months, the same day (UTC).
  expect(purgeDeadline(Date.UTC(2026, 0, 15, 9, 30))).toBe(Date.UTC(2026, 6, 15, 9, 30));
  expect(DEFAULT_DUE_DAYS).toBe(30);
});

await describeStores('data-handling promises', (store) => {
  const server = useServer(store);

  it('deleting a connection removes its settings and encrypted secrets from every table', async () => {
    const t = server();
    const host = `${canary('host')}.example`;
    const login = canary('login');
    const password = canary('password');
    const put = await call(t, 'PUT', `${WS}/connections/crm`, {
      body: { type: 'postgres', settings: { host, database: 'crm', user: login }, secrets: { password } },
    });
    expect(put.status, put.text).toBe(201);
    const ws = await t.server.context.store.workspaces.byName('default');
    const row = await t.server.context.store.connections.get(ws!.id, 'crm');
    const ciphertext = (JSON.parse(row!.secrets) as Record<string, string>).password!;
    expect(ciphertext.length).toBeGreaterThan(20);

    const before = await tableBlobs(t);
    expectSomewhere(before, host, 'the host setting');
    expectSomewhere(before, login, 'the login setting');
    expectSomewhere(before, ciphertext, 'the encrypted password');
    expectNowhere(before, password, 'the password in plain text');

    const deleted = await call(t, 'DELETE', `${WS}/connections/crm`);
    expect(deleted.status, deleted.text).toBe(204);
    const after = await tableBlobs(t);
    for (const [label, value] of [
      ['the host setting', host],
      ['the login setting', login],
      ['the encrypted password', ciphertext],
      ['the password', password],
    ] as const)
      expectNowhere(after, value, label);
    expectError(await call(t, 'GET', `${WS}/connections/crm`), 404, 'NOT_FOUND');
  });

  it('deleting a flow removes its versions, gateway log, notifications, DLQ inputs and execution details; its run summaries keep ids and counts only', async () => {
    const t = server();
    const flow = (name: string, file: string) => `version: 1
name: ${name}
trigger: { webhook: { path: ${name}, respond: accepted } }
steps:
  - id: hook
    input: { trigger: true }
  - id: read
    input: { file: ${file} }
`;
    const inline = canary('inline-value');
    await putFlow(t, 'intake', `${flow('intake', 'intake.csv')}# ${inline}\n`);
    await putFlow(t, 'kept', flow('kept', 'kept.csv'));

    // The first run finds no file: it waits in the DLQ with its input.
    const queued = canary('dlq-input');
    const late = await postHook(t, 'intake', { value: queued });
    expect((await waitForRun(t, late)).run.status).toBe('incomplete');
    // The file arrives: the second run succeeds, its samples hold both.
    const fileValue = canary('file-row');
    const bodyValue = canary('webhook-body');
    workspaceFile(t, 'intake.csv', `v\n${fileValue}\n`);
    const done = await postHook(t, 'intake', { value: bodyValue });
    expect((await waitForRun(t, done)).run.status).toBe('succeeded');
    // Another flow's records must stay.
    const keptValue = canary('kept-body');
    workspaceFile(t, 'kept.csv', 'v\n1\n');
    const kept = await postHook(t, 'kept', { value: keptValue });
    expect((await waitForRun(t, kept)).run.status).toBe('succeeded');

    const before = await tableBlobs(t);
    const planted = [
      ['the inline value of a version', inline],
      ['the DLQ input', queued],
      ['the sampled file row', fileValue],
      ['the webhook body', bodyValue],
    ] as const;
    for (const [label, value] of planted) expectSomewhere(before, value, label);
    expect(await rowsOf(t, 'run_inputs', [late])).toHaveLength(1);
    expect(await rowsOf(t, 'run_details', [late, done])).toHaveLength(2);

    const deleted = await call(t, 'DELETE', `${WS}/flows/intake`);
    expect(deleted.status, deleted.text).toBe(204);
    // Its webhook is gone at once (not after the webhook cache's lag), so nothing new is kept.
    const gone = await fetch(`${t.url}/hooks/default/intake`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ value: bodyValue }),
    });
    expect(gone.status).toBe(404);

    const after = await tableBlobs(t);
    for (const [label, value] of planted) expectNowhere(after, value, label);
    expect(await rowsOf(t, 'run_inputs', [late, done])).toEqual([]);
    expect(await rowsOf(t, 'run_details', [late, done])).toEqual([]);
    const { db } = t.server.context.store;
    for (const table of ['flow_versions', 'gateway_log', 'notifications'] as const) {
      const left = await db.selectFrom(table).select('flow_name').where('flow_name', '=', 'intake').execute();
      expect(left, table).toEqual([]);
    }
    // Nothing of it is left to retry; the summaries remain (ids, status, counts).
    const dlq = await call<{ items: unknown[] }>(t, 'GET', `${WS}/dlq?flow=intake`);
    expect(dlq.body.items).toEqual([]);
    const runs = await db.selectFrom('runs').selectAll().where('id', 'in', [late, done]).execute();
    expect(runs.map((run) => run.status).sort()).toEqual(['failed', 'succeeded']);
    expect(runs.find((run) => run.id === late)?.error_code).toBe('DISCARDED');
    expectError(await call(t, 'GET', `${WS}/flows/intake`), 404, 'NOT_FOUND');
    // The deletion's receipt counts what went: two bodies, both runs' details, the DLQ input, the
    // DLQ notice, the version.
    const receipt = await t.server.context.store.db
      .selectFrom('audit_log')
      .select('details')
      .where('action', '=', 'flow.deleted')
      .orderBy('seq', 'desc')
      .executeTakeFirstOrThrow();
    expect(JSON.parse(receipt.details)).toMatchObject({
      'removed.flow_versions': 1,
      'removed.gateway_log': 2,
      'removed.run_details': 2,
      'removed.run_inputs': 1,
      'removed.notifications': 1,
    });

    // The other flow keeps its body, details and versions.
    expectSomewhere(after, keptValue, 'the other flow’s webhook body');
    expect(await rowsOf(t, 'run_details', [kept])).toHaveLength(1);
    expect((await call(t, 'GET', `${WS}/flows/kept`)).status).toBe(200);
  });

  it('deleting a flow fails its queued runs (FLOW_DELETED) and deletes their inputs; a run it cut short fails without entering the DLQ, even when the flow is made anew', async () => {
    const t = server();
    const flow = (file: string) => `version: 1
name: waiting
trigger: { webhook: { path: waiting, respond: accepted } }
retry: { attempts: 3, backoff: fixed, delay: 1h }
steps:
  - id: hook
    input: { trigger: true }
  - id: read
    input: { file: ${file}, types: { a: integer } }
`;
    await putFlow(t, 'waiting', flow('not-yet.csv'));
    // The first attempt finds no file: the run waits an hour in the queue, its input kept.
    const value = canary('queued-input');
    const queued = await postHook(t, 'waiting', { value });
    const waiting = await waitForRun(t, queued, (d) => d.run.status === 'queued' && d.run.attempt === 1);
    expect(waiting.input).toMatchObject({ kept: true, stored: true });
    expectSomewhere(await tableBlobs(t), value, 'the queued run’s input');

    // A run in progress when the flow goes: it reads a pipe that is written only afterwards.
    const pipe = join(t.dataDir, 'files', 'default', 'pipe.csv');
    mkdirSync(dirname(pipe), { recursive: true });
    execFileSync('mkfifo', [pipe]);
    await putFlow(t, 'waiting', flow('pipe.csv'));
    const running = await postHook(t, 'waiting', { value: canary('running-input') });
    await waitForRun(t, running, (d) => d.run.status === 'running');

    expect((await call(t, 'DELETE', `${WS}/flows/waiting`)).status).toBe(204);
    // …and made anew under the same name: the running run's flow is still gone.
    await putFlow(t, 'waiting', flow('pipe.csv'));
    // A row that does not convert: the run fails, and would have been retried or dead-lettered.
    // Asynchronous: opening a pipe for writing waits for its reader, which is in this process.
    await writeFile(pipe, 'a\nnot-a-number\n');
    const { db } = t.server.context.store;
    const ended = async () =>
      db
        .selectFrom('runs')
        .select(['id', 'status', 'error_code'])
        .where('id', 'in', [queued, running])
        .execute();
    for (let i = 0; i < 400 && (await ended()).some((run) => run.status === 'running'); i++)
      await new Promise((resolve) => setTimeout(resolve, 25));
    const runs = await ended();
    expect(
      runs
        .map(({ id, status, error_code }) => ({ id, status, error_code }))
        .sort((a, b) => a.id.localeCompare(b.id)),
    ).toEqual(
      [
        { id: queued, status: 'failed', error_code: 'FLOW_DELETED' },
        { id: running, status: 'failed', error_code: 'FLOW_DELETED' },
      ].sort((a, b) => a.id.localeCompare(b.id)),
    );
    expect(await rowsOf(t, 'run_inputs', [queued, running])).toEqual([]);
    expectNowhere(await tableBlobs(t), value, 'the queued run’s input');
    const dlq = await call<{ items: unknown[] }>(t, 'GET', `${WS}/dlq?flow=waiting`);
    expect(dlq.body.items).toEqual([]);
  });

  it('logs account ids only: signing in and managing members never logs an e-mail address', async () => {
    const t = server();
    const admin = await makeUser(t, { role: 'admin' });
    const member = await makeUser(t, { role: 'viewer' });
    const stranger = uniqueEmail('stranger');
    const invited = uniqueEmail('invited');
    const from = t.logs.length;

    expect((await signIn(t, admin.email, admin.password)).status).toBe(200);
    expect((await signIn(t, admin.email, 'not the password at all')).status).toBe(401);
    expect((await signIn(t, stranger, 'not the password at all')).status).toBe(401);
    const members = await call(t, 'GET', `${WS}/members`, { token: await t.token('admin') });
    expect(members.text).toContain(member.email);
    const changed = await call(t, 'PUT', `${WS}/members/${member.id}`, {
      token: await t.token('admin'),
      body: { role: 'editor' },
    });
    expect(changed.status, changed.text).toBe(200);
    const invite = await call(t, 'POST', `${WS}/members/invites`, {
      token: await t.token('admin'),
      body: { email: invited, role: 'viewer' },
    });
    expect(invite.status, invite.text).toBe(201);
    const removed = await call(t, 'DELETE', `${WS}/members/${member.id}`, { token: await t.token('admin') });
    expect(removed.status, removed.text).toBe(204);

    const logs = [textBlob('server logs', t.logs.slice(from))];
    for (const [label, email] of [
      ['the admin', admin.email],
      ['the member', member.email],
      ['an unknown address', stranger],
      ['an invited address', invited],
    ] as const)
      expectNowhere(logs, email, `${label}’s e-mail address`);
    expectNowhere(logs, '@example.test', 'any e-mail address');
    // The sign-in is logged, by its account id.
    expectSomewhere(logs, admin.id, 'the account id of the user who signed in');
  });
});
