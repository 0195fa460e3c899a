/**
 * The inventory report (issue 4 item 8): generated from the live system, its numbers match the
 * database, flows are split confidential/standard, stored credentials are listed with why —
 * never with their values — every format escapes what users wrote, and only admins read it.
 */
import { randomBytes } from 'node:crypto';
import { sql } from 'kysely';
import { describe, expect, it } from 'vitest';
import { DATA_CLASSES, type DataClassName } from '../../src/privacy/data-classes.js';
import { buildInventory, type Inventory, type WorkspaceInventory } from '../../src/privacy/inventory.js';
import { escapeHtml, formatAge, mdEscape, renderInventory } from '../../src/privacy/inventory-render.js';
import { retentionConfig } from '../../src/privacy/retention-policy.js';
import { closeWorkspace, workspaceTables } from '../../src/privacy/workspace-lifecycle.js';
import { newId } from '../../src/store/ids.js';
import type { Store } from '../../src/store/index.js';
import { STORED_TABLES } from '../../src/store/tables.js';
import type { TestServer } from '../helpers/server.js';
import { call, describeStores, expectError, useServer } from '../server/api-support.js';
import { gatewayRow } from '../store/support.js';

const DAY = 86_400_000;
const api = (ws: string) => `/api/v1/workspaces/${ws}`;
let counter = 0;
const uniqueWs = (prefix: string) => `${prefix}-${++counter}-${randomBytes(3).toString('hex')}`;

async function putFlow(t: TestServer, ws: string, token: string, yaml: string) {
  const name = /name: (\S+)/.exec(yaml)![1]!;
  const reply = await call(t, 'PUT', `${api(ws)}/flows/${name}`, {
    token,
    body: yaml,
    headers: { 'content-type': 'application/yaml' },
  });
  expect(reply.status, reply.text).toBeLessThan(300);
}

async function putConnection(t: TestServer, ws: string, token: string, name: string, password: string) {
  const reply = await call(t, 'PUT', `${api(ws)}/connections/${name}`, {
    token,
    body: {
      type: 'postgres',
      settings: { host: 'db.example.org', database: 'sales', user: 'etl' },
      secrets: { password },
    },
  });
  expect(reply.status, reply.text).toBeLessThan(300);
}

const flow = (
  name: string,
  extra: string[],
  steps = ['  - id: source', '    input: { values: [{ a: 1 }] }'],
) => ['version: 1', `name: ${name}`, ...extra, 'steps:', ...steps, ''].join('\n');

const dbStep = (connection: string) => [
  '  - id: source',
  `    input: { connection: ${connection}, sql: "select 1 as a" }`,
];

function wsOf(inventory: Inventory, name: string): WorkspaceInventory {
  const found = inventory.workspaces.find((ws) => ws.name === name);
  if (!found) throw new Error(`no workspace ${name} in the report`);
  return found;
}

/** Independently of the report: records and the oldest date of a class in a workspace. */
async function fromDatabase(store: Store, workspaceId: string, dataClass: DataClassName) {
  let records = 0;
  let oldest: number | null = null;
  for (const table of await workspaceTables(store)) {
    const stored = STORED_TABLES[table as keyof typeof STORED_TABLES];
    if (stored.dataClass !== dataClass) continue;
    const row = await sql<{ n: number | string; oldest: number | string | null }>`
      select count(*) as n, ${stored.agedBy ? sql`min(${sql.ref(stored.agedBy)})` : sql`null`} as oldest
      from ${sql.table(table)} where workspace_id = ${workspaceId}`.execute(store.db);
    records += Number(row.rows[0]!.n);
    const min = row.rows[0]!.oldest;
    if (min !== null && (oldest === null || Number(min) < oldest)) oldest = Number(min);
  }
  if (dataClass === 'config') records += 1; // the workspace row itself
  return { records, oldest };
}

await describeStores('inventory report', (kind) => {
  const server = useServer(kind);

  it('counts records and the oldest one’s age exactly as the database has them', async () => {
    const t = server();
    const { store } = t.server.context;
    const name = uniqueWs('counts');
    await t.token('owner', name);
    const ws = (await store.workspaces.byName(name))!;
    const other = (await store.workspaces.ensure(uniqueWs('other')))!;
    const now = Date.now();
    // Planted records of known ages (within their retention, so no purge takes them meanwhile).
    const gateway = (workspaceId: string, age: number) => gatewayRow(workspaceId, { received_at: now - age });
    await store.db
      .insertInto('gateway_log')
      .values([
        gateway(ws.id, 5 * DAY),
        gateway(ws.id, 2 * DAY),
        gateway(ws.id, 3600_000),
        gateway(other.id, 20 * DAY),
      ])
      .execute();
    const notification = (workspaceId: string, age: number) => ({
      id: newId(),
      workspace_id: workspaceId,
      kind: 'run.failed',
      run_id: null,
      flow_name: null,
      created_at: now - age,
      read_at: null,
    });
    await store.db
      .insertInto('notifications')
      .values([notification(ws.id, 6 * DAY), notification(ws.id, DAY), notification(other.id, 6.5 * DAY)])
      .execute();
    await store.counters.reserve({ workspace: ws.id, counter: 'invoices', period: '' }, 2);

    const inventory = await buildInventory(t.server.context, { workspace: name, now });
    expect(inventory.workspaces.map((w) => w.name)).toEqual([name]);
    const report = wsOf(inventory, name);
    const byName = Object.fromEntries(report.dataClasses.map((c) => [c.name, c]));
    expect(Object.keys(byName).sort()).toEqual(Object.keys(DATA_CLASSES).sort());
    // The planted ones, by hand…
    expect(byName.gateway_log).toMatchObject({
      records: 3,
      oldestAt: new Date(now - 5 * DAY).toISOString(),
      oldestAgeMs: 5 * DAY,
    });
    expect(byName.notification).toMatchObject({ records: 2, oldestAgeMs: 6 * DAY });
    expect(byName.counter!.records).toBe(1);
    expect(byName.dlq).toMatchObject({ records: 0, oldestAt: null, oldestAgeMs: null });
    // …and every class against the database, counted here independently.
    for (const dataClass of Object.keys(DATA_CLASSES) as DataClassName[]) {
      const expected = await fromDatabase(store, ws.id, dataClass);
      expect(byName[dataClass]!.records, dataClass).toBe(expected.records);
      expect(byName[dataClass]!.oldestAt, dataClass).toBe(
        expected.oldest === null ? null : new Date(expected.oldest).toISOString(),
      );
    }
    // The formats say the same numbers.
    expect(renderInventory(inventory, 'md')).toMatch(/\| `gateway_log` \| .* \| 3 \| [^|]+ \| 5 d \|/);
    expect(renderInventory(inventory, 'html')).toContain('<td>3</td>');
    expect(JSON.parse(renderInventory(inventory, 'json'))).toEqual(JSON.parse(JSON.stringify(inventory)));
  });

  it('lists confidential and standard flows, triggers, and stored credentials with why — never their values', async () => {
    const t = server();
    const { store } = t.server.context;
    const name = uniqueWs('flows');
    const owner = await t.token('owner', name);
    const secrets = [
      `pw-${randomBytes(10).toString('hex')}`,
      `pw-${randomBytes(10).toString('hex')}`,
      `pw-${randomBytes(10).toString('hex')}`,
    ];
    await putConnection(t, name, owner, 'warehouse', secrets[0]!);
    await putConnection(t, name, owner, 'adhoc', secrets[1]!);
    await putConnection(t, name, owner, 'unused', secrets[2]!);
    await putFlow(
      t,
      name,
      owner,
      flow('intake', ['privacy: confidential', 'trigger: { webhook: { path: orders } }']),
    );
    await putFlow(
      t,
      name,
      owner,
      flow(
        'nightly',
        ['trigger: { schedule: { cron: "0 3 * * *", timezone: Asia/Tokyo } }'],
        dbStep('warehouse'),
      ),
    );
    await putFlow(t, name, owner, flow('lookup', ['description: look something up'], dbStep('adhoc')));

    const inventory = await buildInventory(t.server.context, { workspace: name });
    const report = wsOf(inventory, name);
    expect(report.flows.confidential.map((f) => f.name)).toEqual(['intake']);
    expect(report.flows.standard.map((f) => f.name)).toEqual(['lookup', 'nightly']);
    expect(report.flows.confidential[0]).toMatchObject({
      privacy: 'confidential',
      trigger: 'webhook',
      triggerDetail: 'POST /hooks/{workspace}/orders',
      storesPayloads: false,
      stored: expect.stringMatching(/never stored/),
    });
    expect(report.flows.standard.find((f) => f.name === 'nightly')).toMatchObject({
      trigger: 'schedule',
      triggerDetail: 'cron "0 3 * * *" (Asia/Tokyo)',
      connections: ['warehouse'],
      needsStoredCredentials: true,
      storesPayloads: true,
    });
    expect(report.triggers).toEqual({ manual: 1, schedule: 1, webhook: 1, poll: 0 });
    const connections = Object.fromEntries(report.connections.map((c) => [c.name, c]));
    expect(connections.warehouse).toMatchObject({
      type: 'postgres',
      secretFields: ['password'],
      secretFieldsOfType: ['password', 'url'],
      settingsFields: ['database', 'host', 'user'],
      usedBy: [{ flow: 'nightly', trigger: 'schedule', needsStoredCredentials: true }],
      why: expect.stringMatching(/needed by 1 schedule flow/),
    });
    expect(connections.adhoc!.why).toMatch(/manual flows only: they could be given credentials at run time/);
    expect(connections.unused!.why).toMatch(/no flow uses it/);
    expect(report.notStored.map((n) => n.what).join('\n')).toMatch(/confidential flows/);
    expect(report.processingRecord).toMatchObject({
      categoriesOfRecipients: [],
      transfersToThirdCountries: [],
      purposes: { flows: ['intake', 'lookup', 'nightly'] },
    });
    expect(report.processingRecord.securityMeasures.join(' ')).toMatch(/AES-256-GCM/);
    expect(inventory.deployment).toMatchObject({ subProcessors: [], telemetry: 'none' });

    // No secret — nor its ciphertext — in any format.
    const ciphertexts = (await store.connections.all(report.id)).flatMap((row) =>
      Object.values(JSON.parse(row.secrets) as Record<string, string>),
    );
    expect(ciphertexts).toHaveLength(3);
    for (const format of ['md', 'html', 'json'] as const) {
      const text = renderInventory(inventory, format);
      for (const value of [...secrets, ...ciphertexts]) expect(text, format).not.toContain(value);
      expect(text).toContain('warehouse'); // the scan sees the report
    }
    const md = renderInventory(inventory, 'md');
    expect(md).toMatch(/#### Confidential flows\n\nConfidential flows keep no record/);
    expect(md).toMatch(/\| intake \(v1\) \|/);
    expect(md).toContain('Sub-processors:** none');
  });

  it('escapes what users wrote, in HTML and in Markdown', async () => {
    const t = server();
    const { store } = t.server.context;
    const name = uniqueWs('escape');
    const owner = await t.token('owner', name);
    const id = (await store.workspaces.byName(name))!.id;
    await putFlow(
      t,
      name,
      owner,
      flow('tricky', [`description: '<script>alert("x")</script> & <b>bold</b> | *not* [a](javascript:x)'`]),
    );
    // A name the API would refuse, put in the store directly: the report must not trust the store.
    await store.connections.put({
      workspace_id: id,
      name: '<img src=x onerror=alert(1)>',
      type: 'postgres"><script>',
      settings: JSON.stringify({ '<i>field</i>': 1 }),
      secrets: '{}',
      created_at: 1,
      updated_at: 1,
      updated_by: 't',
    });
    const inventory = await buildInventory(t.server.context, { workspace: name });
    const html = renderInventory(inventory, 'html');
    expect(html).toContain('&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;');
    expect(html).toContain('&lt;img src=x onerror=alert(1)&gt;');
    expect(html).toContain('postgres&quot;&gt;&lt;script&gt;');
    expect(html).toContain('&lt;i&gt;field&lt;/i&gt;');
    // The page has no script and no element a user made.
    expect(html).not.toMatch(/<script|<img|<i>|<b>|onerror=alert\(1\)>/i);
    const md = renderInventory(inventory, 'md');
    expect(md).not.toMatch(/<script|<img|<i>|<b>/i);
    expect(md).toContain('&lt;script&gt;');
    expect(md).toContain('\\| \\*not\\* \\[a\\](javascript:x)');
    expect(mdEscape('a|b\nc')).toBe('a\\|b c');
    expect(escapeHtml(`<'">&`)).toBe('&lt;&#39;&quot;&gt;&amp;');
    // JSON is data: the values as they are.
    expect(JSON.parse(renderInventory(inventory, 'json')).workspaces[0].connections[0].name).toBe(
      '<img src=x onerror=alert(1)>',
    );
  });

  it('shows the workspace’s retention overrides, legal hold, log access and region', async () => {
    const t = server();
    const { store } = t.server.context;
    const name = uniqueWs('retention');
    await t.token('owner', name);
    await store.db
      .updateTable('workspaces')
      .set({
        settings: JSON.stringify({ retentionDays: { gateway_log: 10 }, legalHold: true, logAccess: 'deny' }),
        region: 'eu-west',
      })
      .where('name', '=', name)
      .execute();
    const report = wsOf(
      await buildInventory(t.server.context, { workspace: name, retention: retentionConfig() }),
      name,
    );
    const byName = Object.fromEntries(report.dataClasses.map((c) => [c.name, c]));
    expect(byName.gateway_log!.retention).toMatchObject({ days: 10, source: 'workspace', onHold: true });
    expect(byName.gateway_log!.retention.text).toMatch(
      /^10 days \(this workspace’s setting\) — on legal hold/,
    );
    expect(byName.execution_detail!.retention).toMatchObject({ days: 60, source: 'deployment' });
    expect(byName.notification!.retention.days).toBe(7);
    expect(byName.config!.retention).toMatchObject({ days: null, source: 'none', onHold: false });
    expect(report).toMatchObject({ legalHold: true, logAccess: 'deny', region: 'eu-west' });
    expect(report.processingRecord.transfersNote).toMatch(/region "eu-west" only/);
    expect(report.notStored.map((n) => n.what).join('\n')).toMatch(
      /Payloads, step samples and webhook bodies of any flow/,
    );
    // The deployment's own defaults come through too.
    const shorter = wsOf(
      await buildInventory(t.server.context, {
        workspace: name,
        retention: retentionConfig({ defaults: { notification: 3 } }),
      }),
      name,
    );
    expect(shorter.dataClasses.find((c) => c.name === 'notification')!.retention.days).toBe(3);
  });

  it('says a closed workspace is sealed, with its purge date', async () => {
    const t = server();
    const name = uniqueWs('sealed');
    await t.token('owner', name);
    const closed = await closeWorkspace(t.server.context, name, { mode: 'passive', actor: 'test' });
    const inventory = await buildInventory(t.server.context, { workspace: name });
    expect(wsOf(inventory, name)).toMatchObject({
      status: 'sealed',
      key: { state: 'sealed' },
      closedAt: new Date(closed.closedAt).toISOString(),
      purgeAfter: new Date(closed.purgeAfter).toISOString(),
    });
    expect(renderInventory(inventory, 'md')).toMatch(
      /\*\*Status:\*\* CLOSED — sealed in passive storage since/,
    );
    expect(renderInventory(inventory, 'html')).toMatch(/<span class="closed">CLOSED — sealed/);
  });

  it('is served to admins (and owners) only, in three formats; HTML under a policy with no script', async () => {
    const t = server();
    const name = uniqueWs('api');
    const admin = await t.token('admin', name);
    const json = await call<{ kind: string; workspaces: { name: string }[] }>(
      t,
      'GET',
      `${api(name)}/inventory`,
      { token: admin },
    );
    expect(json.status, json.text).toBe(200);
    expect(json.headers.get('content-type')).toMatch(/^application\/json/);
    expect(json.body.kind).toBe('lethe-inventory');
    expect(json.body.workspaces.map((w) => w.name)).toEqual([name]); // its own workspace only
    for (const [format, type] of [
      ['md', /^text\/markdown; charset=utf-8/],
      ['html', /^text\/html; charset=utf-8/],
    ] as const) {
      const reply = await t.api(`${api(name)}/inventory?format=${format}`, { token: admin });
      expect(reply.status).toBe(200);
      expect(reply.headers.get('content-type')).toMatch(type);
      expect(reply.headers.get('cache-control')).toBe('no-store');
      const text = await reply.text();
      expect(text).toContain(`Workspace ${name}`);
      if (format === 'html') {
        const csp = reply.headers.get('content-security-policy')!;
        expect(csp).toMatch(/default-src 'none'/);
        expect(csp).not.toMatch(/unsafe-inline|script-src/);
        expect(text.startsWith('<!doctype html>')).toBe(true);
      }
    }
    expect(
      (await call(t, 'GET', `${api(name)}/inventory`, { token: await t.token('owner', name) })).status,
    ).toBe(200);
    for (const role of ['viewer', 'editor'] as const)
      expectError(
        await call(t, 'GET', `${api(name)}/inventory`, { token: await t.token(role, name) }),
        403,
        'FORBIDDEN',
      );
    expectError(
      await call(t, 'GET', `${api(name)}/inventory`, { token: await t.token('owner', uniqueWs('x')) }),
      404,
    );
    expectError(await call(t, 'GET', `${api(name)}/inventory`, { token: 'lethe_nope' }), 401);
    expectError(await call(t, 'GET', `${api(name)}/inventory?format=pdf`, { token: admin }), 400);
  });
});

describe('inventory rendering', () => {
  it('formats ages for people', () => {
    expect(formatAge(null)).toBe('—');
    expect(formatAge(40_000)).toBe('40 s');
    expect(formatAge(5 * 60_000)).toBe('5 min');
    expect(formatAge(5 * 3600_000 + 2 * 60_000)).toBe('5 h 2 min');
    expect(formatAge(12 * DAY + 3 * 3600_000)).toBe('12 d 3 h');
  });
});
