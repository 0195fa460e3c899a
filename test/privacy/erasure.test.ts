/**
 * Data-subject erasure (privacy issue item 5), through a started server on SQLite and
 * PostgreSQL. The acceptance test: a subject planted in five classes is gone from all of them
 * after the request; the report lists each; the audit chain verifies, and fails after a byte
 * is changed.
 */
import { sql } from 'kysely';
import { expect, it } from 'vitest';
import { AuditLog } from '../../src/privacy/audit.js';
import {
  createErasureRequest,
  processErasure,
  setErasureClock,
  type ErasureView,
} from '../../src/privacy/erasure.js';
import type { TestServer } from '../helpers/server.js';
import { call, describeStores, expectError, useServer } from '../server/api-support.js';
import {
  api,
  canary,
  needlesOf,
  plant,
  scan,
  shouty,
  waitForErasure,
  waitForRun,
} from './erasure-support.js';

const DAY = 86_400_000;
const FIVE = ['execution_detail', 'gateway_log', 'dlq', 'config', 'credential'];

async function request(t: TestServer, ws: string, subject: string, reason?: string) {
  const token = await t.token('admin', ws);
  return call<{ request: ErasureView; previous: string[] }>(t, 'POST', `${api(ws)}/erasure-requests`, {
    token,
    body: reason === undefined ? { subject } : { subject, reason },
  });
}

/** Keep processors away from a request (as if another process held it), or let them back. */
async function hold(t: TestServer, id: string, held: boolean) {
  const db = t.server.context.store.db;
  const row = await db
    .selectFrom('erasure_requests')
    .select('report')
    .where('id', '=', id)
    .executeTakeFirstOrThrow();
  const progress = JSON.parse(row.report!) as Record<string, unknown>;
  progress.lease = held ? { owner: 'test', until: Date.now() + 3_600_000 } : null;
  await db
    .updateTable('erasure_requests')
    .set({ report: JSON.stringify(progress) })
    .where('id', '=', id)
    .execute();
}

async function workspaceId(t: TestServer, name: string): Promise<string> {
  return (await t.server.context.store.workspaces.ensure(name)).id;
}

await describeStores('data-subject erasure', (store) => {
  const server = useServer(store);

  it('ACCEPTANCE: a subject planted in five classes is gone from all of them; the report lists each; the audit chain verifies, and fails after a byte is changed', async () => {
    const t = server();
    const db = t.server.context.store.db;
    const planted = await plant(t, 'default', canary(), 'acc');
    const { needles, exact, ignore } = needlesOf(planted);

    // Before: the subject is where it was planted (so the scan below can fail).
    const before = await scan(t.server.context.store, needles, exact, ignore);
    for (const table of ['run_details', 'gateway_log', 'run_inputs', 'flow_versions'])
      expect(before, `planted in ${table}`).toContain(table);
    expect(await scan(t.server.context.store, [], exact)).toContain('gateway_log');
    const connection = await db
      .selectFrom('connections')
      .select('settings')
      .where('name', '=', planted.connections[0]!)
      .executeTakeFirstOrThrow();
    expect(connection.settings).toContain(planted.subject);

    // The request names the subject in another case: e-mail addresses match regardless.
    const created = await request(
      t,
      'default',
      `email:${shouty(planted.subject)}`,
      `ticket 42 from ${planted.subject}`,
    );
    expect(created.status, created.text).toBe(201);
    expect(created.text.toLowerCase()).not.toContain(planted.subject);
    const id = created.body.request.id;
    expect(created.body.request).toMatchObject({ subjectKind: 'email', extended: false, overdue: false });
    expect(Date.parse(created.body.request.dueAt) - Date.parse(created.body.request.createdAt)).toBe(
      30 * DAY,
    );

    const done = await waitForErasure(t, 'default', id, await t.token('admin'));
    const report = done.report!;
    expect(done.completedAt).not.toBeNull();

    // After: nowhere in any table, in any form.
    expect(await scan(t.server.context.store, needles, exact, ignore)).toEqual([]);
    // Someone else whose address contains the subject's is still there.
    expect(await scan(t.server.context.store, [planted.decoy])).toContain('flow_versions');

    // The report lists every class; the five planted ones with what was found and done.
    for (const dataClass of FIVE) {
      const entry = report.classes.find((c) => c.dataClass === dataClass)!;
      expect(entry, dataClass).toBeDefined();
      expect(entry.found, dataClass).toBeGreaterThan(0);
      expect(entry.deleted + entry.pseudonymised, dataClass).toBe(entry.found);
    }
    // Exactly the rows that held it (the second connection holds it in an encrypted secret).
    const held = (table: string) => before.filter((hit) => hit === table).length;
    const byClass = Object.fromEntries(report.classes.map((c) => [c.dataClass, c]));
    expect(byClass.execution_detail).toMatchObject({
      found: held('run_details'),
      deleted: held('run_details'),
    });
    expect(byClass.gateway_log).toMatchObject({ found: 3, deleted: 3 });
    expect(held('gateway_log')).toBe(3);
    expect(byClass.dlq).toMatchObject({ found: 3, deleted: 3 });
    expect(held('run_inputs')).toBe(3);
    expect(byClass.config).toMatchObject({
      found: 1,
      deleted: 0,
      pseudonymised: 1,
      flows: [planted.contactsFlow],
    });
    // Two connections (settings; an encrypted secret) and an API token's label.
    expect(byClass.credential).toMatchObject({ found: 3, deleted: 0, pseudonymised: 3 });
    const tokens = await call<{ items: { name: string }[] }>(t, 'GET', `${api('default')}/tokens?limit=500`);
    expect(tokens.body.items.map((item) => item.name)).toContainEqual(
      expect.stringMatching(/^laptop of erased:[0-9a-f]{12}$/),
    );
    const secret = await db
      .selectFrom('connections')
      .select('secrets')
      .where('name', '=', planted.connections[1]!)
      .executeTakeFirstOrThrow();
    const url = await t.server.context.vault.decrypt(
      await workspaceId(t, 'default'),
      planted.connections[1]!,
      'url',
      (JSON.parse(secret.secrets) as { url: string }).url,
    );
    expect(url).toMatch(/^postgres:\/\/erased:[0-9a-f]{12}:pw@db\.example\.com\/wh$/);
    expect(byClass.credential!.connections).toEqual([...planted.connections].sort());
    expect(byClass.credential!.note).toMatch(/reconfigure/);
    for (const name of ['data_store', 'directory']) {
      expect(byClass[name]).toMatchObject({ stored: false, found: 0 });
      expect(byClass[name]!.note).toMatch(/not stored by this version/);
    }
    expect(report.classes.map((c) => c.dataClass).sort()).toEqual([
      'activity',
      'audit',
      'config',
      'counter',
      'credential',
      'data_store',
      'directory',
      'dlq',
      'execution_detail',
      'gateway_log',
      'notification',
    ]);
    expect(report).toMatchObject({ legalHold: false, runsMarked: 3, completedLate: false });

    // The subject is not kept once done; the reason was stored without it.
    const row = await db
      .selectFrom('erasure_requests')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirstOrThrow();
    expect(row.subject_sealed).toBeNull();
    expect(row.status).toBe('completed');
    expect(done.reason).toMatch(/^ticket 42 from erased:[0-9a-f]{12}$/);

    // The runs stay; dead-lettered ones lost their input and say so.
    const token = await t.token('admin');
    for (const runId of planted.dlqRuns) {
      const detail = await waitForRun(t, 'default', runId, token);
      expect(detail.run).toMatchObject({ status: 'failed', errorCode: 'ERASED' });
      expect(detail.input.stored).toBe(false);
    }
    // Flows and connections stay, pseudonymised; the flow still runs, and nothing comes back.
    const conn = await call<{ connection: { settings: { user: string }; updatedBy: string } }>(
      t,
      'GET',
      `${api('default')}/connections/${planted.connections[0]}`,
    );
    expect(conn.body.connection.settings.user).toMatch(/^erased:[0-9a-f]{12}$/);
    expect(conn.body.connection.updatedBy).toBe(`erasure:${id}`);
    const rerun = await call<{ runId: string }>(
      t,
      'POST',
      `${api('default')}/flows/${planted.contactsFlow}/runs`,
      { body: {} },
    );
    expect((await waitForRun(t, 'default', rerun.body.runId, token)).run.status).toBe('succeeded');
    expect(await scan(t.server.context.store, needles, exact, ignore)).toEqual([]);

    // One audit entry per class touched, ids and counts only; the chain verifies.
    const audit = new AuditLog(db);
    const verified = await audit.verify();
    expect(verified, JSON.stringify(verified)).toMatchObject({ ok: true });
    const entries = (
      await db.selectFrom('audit_log').selectAll().where('action', '=', 'erasure').execute()
    ).filter((entry) => (JSON.parse(entry.details) as { requestId?: string }).requestId === id);
    expect(entries.map((entry) => entry.data_class).sort()).toEqual([...FIVE].sort());
    for (const entry of entries) {
      expect(entry.reason).toBe(`erasure request ${id}`);
      const counted = byClass[entry.data_class!]!;
      expect(Number(entry.count)).toBe(counted.deleted + counted.pseudonymised);
    }

    // Change one byte of an entry: verification fails there; put it back: it verifies again.
    const target = entries[0]!;
    await db
      .updateTable('audit_log')
      .set({ count: Number(target.count) + 1 })
      .where('seq', '=', target.seq)
      .execute();
    const broken = await audit.verify();
    expect(broken).toMatchObject({ ok: false, brokenAt: Number(target.seq) });
    await db.updateTable('audit_log').set({ count: target.count }).where('seq', '=', target.seq).execute();
    expect(await audit.verify()).toMatchObject({ ok: true });
    const altered = target.details.replace(id, `${id.slice(0, -1)}${id.endsWith('0') ? '1' : '0'}`);
    await db.updateTable('audit_log').set({ details: altered }).where('seq', '=', target.seq).execute();
    expect(await audit.verify()).toMatchObject({ ok: false, brokenAt: Number(target.seq) });
    await db
      .updateTable('audit_log')
      .set({ details: target.details })
      .where('seq', '=', target.seq)
      .execute();
    expect(await audit.verify()).toMatchObject({ ok: true });
  });

  it('keeps records pseudonymised when the workspace is on legal hold', async () => {
    const t = server();
    const db = t.server.context.store.db;
    const ws = await workspaceId(t, 'held');
    await db
      .updateTable('workspaces')
      .set({ settings: JSON.stringify({ legalHold: true }) })
      .where('id', '=', ws)
      .execute();
    const planted = await plant(t, 'held', canary(), 'hold');
    const count = async (table: 'run_details' | 'gateway_log' | 'run_inputs') =>
      Number(
        (
          await db
            .selectFrom(table)
            .select((eb) => eb.fn.countAll<number>().as('n'))
            .where('workspace_id', '=', ws)
            .executeTakeFirstOrThrow()
        ).n,
      );
    const before = {
      details: await count('run_details'),
      gateway: await count('gateway_log'),
      inputs: await count('run_inputs'),
    };

    const created = await request(t, 'held', `email:${planted.subject}`);
    expect(created.status, created.text).toBe(201);
    const done = await waitForErasure(t, 'held', created.body.request.id, await t.token('admin', 'held'));
    const report = done.report!;
    expect(report.legalHold).toBe(true);
    expect(report.pseudonym).toMatch(/^erased:[0-9a-f]{12}$/);
    for (const dataClass of FIVE) {
      const entry = report.classes.find((c) => c.dataClass === dataClass)!;
      expect(entry.found, dataClass).toBeGreaterThan(0);
      expect(entry, dataClass).toMatchObject({ deleted: 0, pseudonymised: entry.found });
    }
    expect(report.runsMarked).toBe(0);

    // Every record is kept, with the pseudonym where the subject was.
    expect({
      details: await count('run_details'),
      gateway: await count('gateway_log'),
      inputs: await count('run_inputs'),
    }).toEqual(before);
    const { needles, exact, ignore } = needlesOf(planted);
    expect(await scan(t.server.context.store, needles, exact, ignore)).toEqual([]);
    const pseudonymised = await scan(t.server.context.store, [report.pseudonym!]);
    for (const table of ['run_details', 'gateway_log', 'run_inputs', 'flow_versions', 'connections'])
      expect(pseudonymised, table).toContain(table);
    // The binary body stays binary, with the pseudonym in it.
    const binary = await db
      .selectFrom('gateway_log')
      .select('body')
      .where('workspace_id', '=', ws)
      .where('content_type', '=', 'application/octet-stream')
      .executeTakeFirstOrThrow();
    expect(Buffer.from(binary.body!, 'base64').toString('latin1')).toContain(` to ${report.pseudonym} \n`);
    // Dead-lettered runs keep their (pseudonymised) input and can still be retried.
    const detail = await waitForRun(t, 'held', planted.dlqRuns[0]!, await t.token('admin', 'held'));
    expect(detail.run.status).toBe('incomplete');
    expect(detail.input.stored).toBe(true);
    const entries = await db
      .selectFrom('audit_log')
      .select('details')
      .where('action', '=', 'erasure')
      .where('workspace_id', '=', ws)
      .execute();
    expect(entries.length).toBe(5);
    for (const entry of entries)
      expect(JSON.parse(entry.details)).toMatchObject({ legalHold: true, deleted: 0 });
  });

  it('recognises a second request for the same subject, open or completed, without keeping it', async () => {
    const t = server();
    const subject = canary();
    const first = await request(t, 'default', `email:${subject}`);
    expect(first.status).toBe(201);
    const firstId = first.body.request.id;
    await waitForErasure(t, 'default', firstId, await t.token('admin'));

    // Completed before: a new request, which names the earlier one.
    const second = await request(t, 'default', `email:${shouty(subject)}`);
    expect(second.status, second.text).toBe(201);
    expect(second.body.previous).toEqual([firstId]);
    const secondDone = await waitForErasure(t, 'default', second.body.request.id, await t.token('admin'));
    // Nothing was found this time: every class says 0, and one receipt records it.
    expect(secondDone.report!.classes.every((c) => c.found === 0)).toBe(true);
    const receipts = (
      await t.server.context.store.db
        .selectFrom('audit_log')
        .selectAll()
        .where('action', '=', 'erasure')
        .execute()
    ).filter((e) => JSON.parse(e.details).requestId === second.body.request.id);
    expect(receipts).toHaveLength(1);
    expect(receipts[0]).toMatchObject({ data_class: null });
    expect(Number(receipts[0]!.count)).toBe(0);

    // Open: the same request comes back (200), no new one.
    const context = t.server.context;
    const third = await createErasureRequest(context, {
      workspaceId: await workspaceId(t, 'default'),
      subject: `email:${subject}`,
      requestedBy: 'test',
    });
    await hold(t, third.request.id, true);
    expect(third.previous.sort()).toEqual([firstId, second.body.request.id].sort());
    const again = await request(t, 'default', `  email:${subject.toUpperCase()} `);
    expect(again.status, again.text).toBe(200);
    expect(again.body.request.id).toBe(third.request.id);
    // The same hash, never the subject, in the store.
    const rows = await context.store.db
      .selectFrom('erasure_requests')
      .select(['subject_hash', 'subject_sealed'])
      .where('id', 'in', [firstId, second.body.request.id, third.request.id])
      .execute();
    expect(new Set(rows.map((r) => r.subject_hash)).size).toBe(1);
    expect(JSON.stringify(rows).toLowerCase()).not.toContain(subject);
    await hold(t, third.request.id, false);
    expect((await processErasure(context, third.request.id)).outcome).toBe('completed');
  });

  it('extends a due date once only, with a reason, and flags overdue requests (erasure clock)', async () => {
    const t = server();
    const context = t.server.context;
    const subject = canary();
    const { request: row } = await createErasureRequest(context, {
      workspaceId: await workspaceId(t, 'default'),
      subject: `key:${subject}`,
      requestedBy: 'test',
    });
    await hold(t, row.id, true);
    const base = api('default');
    try {
      expect((await call<ErasureView>(t, 'GET', `${base}/erasure-requests/${row.id}`)).body.overdue).toBe(
        false,
      );
      setErasureClock(context, () => Date.now() + 31 * DAY);
      const list = await call<{ items: ErasureView[] }>(t, 'GET', `${base}/erasure-requests?overdue=true`);
      expect(list.status, list.text).toBe(200);
      expect(list.body.items.find((item) => item.id === row.id)).toMatchObject({
        overdue: true,
        status: 'processing',
      });
      const onTime = await call<{ items: ErasureView[] }>(t, 'GET', `${base}/erasure-requests?overdue=false`);
      expect(onTime.body.items.map((item) => item.id)).not.toContain(row.id);

      expectError(
        await call(t, 'POST', `${base}/erasure-requests/${row.id}/extend`, {
          body: { reason: 'x', days: 61 },
        }),
        400,
      );
      const extended = await call<ErasureView>(t, 'POST', `${base}/erasure-requests/${row.id}/extend`, {
        body: { reason: `complex: ${subject} has records in three systems` },
      });
      expect(extended.status, extended.text).toBe(200);
      expect(extended.body).toMatchObject({ extended: true, overdue: false });
      expect(Date.parse(extended.body.dueAt)).toBe(Number(row.due_at) + 60 * DAY);
      expect(extended.body.extensionReason).toMatch(/^complex: erased:[0-9a-f]{12} has records/);

      const twice = await call(t, 'POST', `${base}/erasure-requests/${row.id}/extend`, {
        body: { reason: 'again' },
      });
      expect(expectError(twice, 409, 'ALREADY_EXTENDED').message).toMatch(/once/);

      setErasureClock(context, () => Date.now() + 91 * DAY);
      expect((await call<ErasureView>(t, 'GET', `${base}/erasure-requests/${row.id}`)).body.overdue).toBe(
        true,
      );
      await hold(t, row.id, false);
      const processed = await processErasure(context, row.id);
      expect(processed.outcome).toBe('completed');
      const done = await call<ErasureView>(t, 'GET', `${base}/erasure-requests/${row.id}`);
      expect(done.body).toMatchObject({ status: 'completed', overdue: false });
      expect(done.body.report!.completedLate).toBe(true);
      expectError(
        await call(t, 'POST', `${base}/erasure-requests/${row.id}/extend`, { body: { reason: 'late' } }),
        409,
        'ALREADY_COMPLETED',
      );
    } finally {
      setErasureClock(context, undefined);
    }
  });

  it('leaves other workspaces untouched', async () => {
    const t = server();
    const db = t.server.context.store.db;
    const subject = canary();
    await plant(t, 'default', subject, 'mine');
    const other = await plant(t, 'other', subject, 'theirs');
    const otherId = await workspaceId(t, 'other');
    const holding = async () => {
      const counts: Record<string, number> = {};
      for (const [table, column] of [
        ['run_details', 'steps'],
        ['gateway_log', 'body'],
        ['run_inputs', 'input'],
        ['flow_versions', 'source'],
        ['connections', 'settings'],
      ] as const) {
        const row = await db
          .selectFrom(table)
          .select((eb) => eb.fn.countAll<number>().as('n'))
          .where('workspace_id', '=', otherId)
          .where(sql<boolean>`lower(${sql.ref(column)}) like ${`%${subject}%`}`)
          .executeTakeFirstOrThrow();
        counts[table] = Number(row.n);
      }
      return counts;
    };
    const before = await holding();
    for (const count of Object.values(before)) expect(count).toBeGreaterThan(0);
    const created = await request(t, 'default', `email:${subject}`);
    await waitForErasure(t, 'default', created.body.request.id, await t.token('admin'));
    expect(await holding()).toEqual(before);
    const token = await t.token('admin', 'other');
    expect((await waitForRun(t, 'other', other.dlqRuns[0]!, token)).run.status).toBe('incomplete');
    // And the other workspace does not see the request.
    const theirs = await call<{ items: unknown[] }>(t, 'GET', `${api('other')}/erasure-requests`, { token });
    expect(theirs.body.items).toEqual([]);
    expectError(
      await call(t, 'GET', `${api('other')}/erasure-requests/${created.body.request.id}`, { token }),
      404,
      'NOT_FOUND',
    );
  });

  it('deletes invitations sent to the subject and names members’ sign-in accounts without changing them', async () => {
    const t = server();
    const db = t.server.context.store.db;
    const subject = canary();
    const ws = await workspaceId(t, 'default');
    const now = Date.now();
    const userId = `user-${subject.slice(7, 19)}`;
    await db
      .insertInto('users')
      .values({
        id: userId,
        email: subject,
        password_hash: null,
        deployment_role: null,
        created_at: now,
        updated_at: now,
        password_changed_at: null,
        disabled_at: null,
      })
      .execute();
    await db
      .insertInto('memberships')
      .values({ workspace_id: ws, user_id: userId, role: 'viewer', created_at: now })
      .execute();
    await db
      .insertInto('user_tokens')
      .values({
        id: `invite-${userId}`,
        purpose: 'invite',
        token_hash: `hash-${userId}`,
        user_id: null,
        email: shouty(subject),
        workspace_id: ws,
        role: 'viewer',
        created_by: 'test',
        created_at: now,
        expires_at: now + DAY,
        used_at: null,
      })
      .execute();
    const created = await request(t, 'default', `email:${subject}`);
    const done = await waitForErasure(t, 'default', created.body.request.id, await t.token('admin'));
    const credential = done.report!.classes.find((entry) => entry.dataClass === 'credential')!;
    expect(credential.tables.find((entry) => entry.table === 'user_tokens')).toMatchObject({
      found: 1,
      deleted: 1,
    });
    expect(credential.tables.find((entry) => entry.table === 'users')).toMatchObject({
      found: 1,
      deleted: 0,
      pseudonymised: 0,
    });
    expect(credential.accounts).toEqual([userId]);
    expect(credential.note).toMatch(/user management/);
    expect(
      await db.selectFrom('user_tokens').select('id').where('id', '=', `invite-${userId}`).execute(),
    ).toEqual([]);
    expect(
      (await db.selectFrom('users').select('email').where('id', '=', userId).executeTakeFirst())?.email,
    ).toBe(subject);
    await db.deleteFrom('memberships').where('user_id', '=', userId).execute();
    await db.deleteFrom('users').where('id', '=', userId).execute();
  });

  it('takes an admin, a valid subject, and answers with errors that say why', async () => {
    const t = server();
    const base = api('default');
    for (const role of ['viewer', 'editor'] as const) {
      const token = await t.token(role);
      expectError(await call(t, 'GET', `${base}/erasure-requests`, { token }), 403, 'FORBIDDEN');
      expectError(
        await call(t, 'POST', `${base}/erasure-requests`, { token, body: { subject: 'email:a@b.cd' } }),
        403,
        'FORBIDDEN',
      );
    }
    expect(expectError(await request(t, 'default', 'phone:123'), 400).message).toMatch(/email:<address>/);
    expect(expectError(await request(t, 'default', 'key:ab'), 400).message).toMatch(/at least 3/);
    expectError(
      await call(t, 'POST', `${base}/erasure-requests`, { body: { subject: 'email:a@b.cd', extra: 1 } }),
      400,
    );
    expectError(await call(t, 'GET', `${base}/erasure-requests/nope`), 404, 'NOT_FOUND');
    expectError(
      await call(t, 'POST', `${base}/erasure-requests/nope/extend`, { body: { reason: 'r' } }),
      404,
    );
  });
});
