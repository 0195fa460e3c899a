/**
 * Signed webhooks in (SPEC 7), on both stores: for each scheme (generic, GitHub, Standard
 * Webhooks) a correctly signed request runs, and a wrong secret, a tampered body, a missing
 * header, a stale timestamp (past or future) and a replay are refused before anything is kept —
 * no run, no gateway log entry. The previous secret is accepted while rotating; flows without a
 * signature are unchanged. Signatures are real HMACs made here with node:crypto.
 */
import { createHmac, randomBytes } from 'node:crypto';
import { expect, it } from 'vitest';
import { call, describeStores, expectError, putFlow, useServer, WS } from '../server/api-support.js';
import type { TestServer } from '../helpers/server.js';

const GENERIC_SECRET = 'generic-secret-' + randomBytes(8).toString('hex');
const GITHUB_SECRET = 'github-secret-' + randomBytes(8).toString('hex');
const STANDARD_KEY = randomBytes(24);
const STANDARD_SECRET = `whsec_${STANDARD_KEY.toString('base64')}`;
const OLD_SECRET = 'old-secret-' + randomBytes(8).toString('hex');
const NEW_SECRET = 'new-secret-' + randomBytes(8).toString('hex');

function flow(name: string, signature?: string, extra = ''): string {
  return `version: 1
name: ${name}
${extra}trigger: { webhook: { path: ${name}${signature ? `, signature: ${signature}` : ''} } }
steps:
  - id: in
    input: { trigger: true }
`;
}

const FLOWS: Record<string, string> = {
  gen: flow('gen', '{ scheme: generic, connection: gen-secret }'),
  genhdr: flow('genhdr', '{ scheme: generic, connection: gen-secret, header: X-Sig, tolerance: 60s }'),
  gh: flow('gh', '{ scheme: github, connection: gh-secret }'),
  std: flow('std', '{ scheme: standard-webhooks, connection: std-secret }'),
  conf: flow('conf', '{ scheme: generic, connection: gen-secret }', 'privacy: confidential\n'),
  rot: flow('rot', '{ scheme: github, connection: rot-secret }'),
  nosecret: flow('nosecret', '{ scheme: generic, connection: not-stored }'),
  plain: flow('plain'),
};

const hmac = (key: string | Buffer, content: string) => createHmac('sha256', key).update(content).digest();
const nowSeconds = () => Math.floor(Date.now() / 1000);
/** Beyond the 300 s tolerance into the future even after flooring to seconds and a slow request. */
const FUTURE = 305;

function generic(body: string, secret = GENERIC_SECRET, t = nowSeconds()): Record<string, string> {
  return { 'x-lethe-signature': `t=${t},v1=${hmac(secret, `${t}.${body}`).toString('hex')}` };
}

function github(body: string, secret = GITHUB_SECRET, delivery = randomBytes(8).toString('hex')) {
  return {
    'x-hub-signature-256': `sha256=${hmac(secret, body).toString('hex')}`,
    'x-github-delivery': delivery,
  };
}

function standard(
  body: string,
  key = STANDARD_KEY,
  t = nowSeconds(),
  id = `msg_${randomBytes(6).toString('hex')}`,
) {
  return {
    'webhook-id': id,
    'webhook-timestamp': String(t),
    // A second, unrelated entry first: the verifier must try each v1 signature.
    'webhook-signature': `v1,${randomBytes(32).toString('base64')} v1,${hmac(key, `${id}.${t}.${body}`).toString('base64')}`,
  };
}

await describeStores('signed webhooks', (store) => {
  const server = useServer(store);

  /** Every signature sent, to be sure none is logged. */
  const sent: string[] = [];
  const post = (t: TestServer, path: string, body: string, headers: Record<string, string>) => {
    for (const value of Object.values(headers)) {
      for (const part of value.split(/[ ,=]/)) if (part.length >= 40) sent.push(part);
    }
    return fetch(`${t.url}/hooks/default/${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body,
    });
  };

  /** Runs and remembered event ids of a flow, and every gateway log row (whatever flow it names). */
  async function kept(t: TestServer, flowName: string) {
    const db = t.server.context.store.db;
    const count = async (table: 'runs' | 'gateway_log' | 'webhook_events_seen') =>
      Number(
        (
          await db
            .selectFrom(table)
            .select((eb) => eb.fn.countAll<number>().as('n'))
            .where((eb) => (table === 'gateway_log' ? eb.lit(true) : eb('flow_name', '=', flowName)))
            .executeTakeFirstOrThrow()
        ).n,
      );
    return {
      runs: await count('runs'),
      gateway: await count('gateway_log'),
      seen: await count('webhook_events_seen'),
    };
  }

  /** The request is refused with `status`, leaves nothing behind, and repeats no secret or signature. */
  async function refused(
    t: TestServer,
    path: string,
    body: string,
    headers: Record<string, string>,
    status: number,
    code: string,
    message: RegExp,
  ) {
    const before = await kept(t, path);
    const response = await post(t, path, body, headers);
    const text = await response.text();
    const error = expectError(
      {
        status: response.status,
        body: JSON.parse(text) as Record<string, unknown>,
        headers: response.headers,
        text,
      },
      status,
      code,
    );
    expect(error.message).toMatch(message);
    for (const secret of [GENERIC_SECRET, GITHUB_SECRET, STANDARD_SECRET, OLD_SECRET, NEW_SECRET]) {
      expect(text).not.toContain(secret);
    }
    for (const value of Object.values(headers)) {
      const signature = value.split(/[=,]/).pop()!;
      if (signature.length >= 40) expect(text).not.toContain(signature);
    }
    expect(await kept(t, path)).toEqual(before);
  }

  async function accepted(t: TestServer, path: string, body: string, headers: Record<string, string>) {
    const before = await kept(t, path);
    const response = await post(t, path, body, headers);
    const text = await response.text();
    expect(response.status, text).toBe(202);
    const after = await kept(t, path);
    expect(after.runs).toBe(before.runs + 1);
    return after;
  }

  it('stores the secrets and the flows (a webhook-secret connection never returns its secrets)', async () => {
    const t = server();
    for (const [name, secret] of [
      ['gen-secret', GENERIC_SECRET],
      ['gh-secret', GITHUB_SECRET],
      ['std-secret', STANDARD_SECRET],
    ]) {
      const put = await call(t, 'PUT', `${WS}/connections/${name}`, {
        body: { type: 'webhook-secret', secrets: { secret } },
      });
      expect(put.status, put.text).toBeLessThan(300);
      const read = await call(t, 'GET', `${WS}/connections/${name}`);
      expect(read.body.connection).toMatchObject({ type: 'webhook-secret', secrets: ['secret'] });
      expect(read.text).not.toContain(secret!);
    }
    const rot = await call(t, 'PUT', `${WS}/connections/rot-secret`, {
      body: { type: 'webhook-secret', secrets: { secret: NEW_SECRET, previousSecret: OLD_SECRET } },
    });
    expect(rot.status, rot.text).toBeLessThan(300);
    for (const [name, text] of Object.entries(FLOWS)) await putFlow(t, name, text);
    // The inventory says why each signing secret is stored: the webhook flows that need it.
    const inventory = await call<{
      workspaces: { connections: { name: string; usedBy: { flow: string }[] }[] }[];
    }>(t, 'GET', `${WS}/inventory`, { token: await t.token('owner') });
    expect(inventory.status, inventory.text).toBe(200);
    const usedBy = (name: string) =>
      inventory.body.workspaces[0]!.connections.find((c) => c.name === name)
        ?.usedBy.map((u) => u.flow)
        .sort();
    expect(usedBy('gen-secret')).toEqual(['conf', 'gen', 'genhdr']);
    expect(usedBy('rot-secret')).toEqual(['rot']);
  });

  it('generic: a signed request runs; wrong secret, tampered body, missing or stale header, replay are refused', async () => {
    const t = server();
    const body = JSON.stringify({ order: 1 });
    const headers = generic(body);
    const after = await accepted(t, 'gen', body, headers);
    expect(after.gateway).toBeGreaterThan(0);
    expect(after.seen).toBe(1);
    await refused(t, 'gen', body, headers, 409, 'REPLAYED', /already received/);
    await refused(
      t,
      'gen',
      body,
      generic(body, 'not-the-secret'),
      401,
      'BAD_SIGNATURE',
      /X-Lethe-Signature signature does not match/,
    );
    await refused(
      t,
      'gen',
      JSON.stringify({ order: 2 }),
      generic(body),
      401,
      'BAD_SIGNATURE',
      /does not match/,
    );
    await refused(t, 'gen', body, {}, 401, 'BAD_SIGNATURE', /X-Lethe-Signature header is missing/);
    await refused(t, 'gen', body, { 'x-lethe-signature': 'v1=abc' }, 401, 'BAD_SIGNATURE', /malformed/);
    await refused(
      t,
      'gen',
      body,
      generic(body, GENERIC_SECRET, nowSeconds() - 301),
      401,
      'BAD_SIGNATURE',
      /more than 300s old/,
    );
    await refused(
      t,
      'gen',
      body,
      generic(body, GENERIC_SECRET, nowSeconds() + FUTURE),
      401,
      'BAD_SIGNATURE',
      /more than 300s in the future/,
    );
    // Within the tolerance either way is fine.
    await accepted(t, 'gen', body, generic(body, GENERIC_SECRET, nowSeconds() - 200));
    await accepted(t, 'gen', body, generic(body, GENERIC_SECRET, nowSeconds() + 200));
  });

  it('generic: a custom header and tolerance are honoured', async () => {
    const t = server();
    const body = '{"a":1}';
    const signed = generic(body)['x-lethe-signature']!;
    await refused(
      t,
      'genhdr',
      body,
      { 'x-lethe-signature': signed },
      401,
      'BAD_SIGNATURE',
      /X-Sig header is missing/,
    );
    await accepted(t, 'genhdr', body, { 'x-sig': signed });
    const old = generic(body, GENERIC_SECRET, nowSeconds() - 61)['x-lethe-signature']!;
    await refused(t, 'genhdr', body, { 'x-sig': old }, 401, 'BAD_SIGNATURE', /more than 60s old/);
  });

  it('github: a signed delivery runs; wrong secret, tampered body, missing headers, replay are refused', async () => {
    const t = server();
    const body = JSON.stringify({ action: 'opened', number: 7 });
    const headers = github(body);
    await accepted(t, 'gh', body, headers);
    await refused(t, 'gh', body, headers, 409, 'REPLAYED', /already received/);
    // The delivery id is not signed: the same signed body under a new id is still a replay.
    await refused(t, 'gh', body, github(body), 409, 'REPLAYED', /already received/);
    const other = JSON.stringify({ action: 'closed', number: 7 });
    await refused(
      t,
      'gh',
      other,
      github(other, 'not-the-secret'),
      401,
      'BAD_SIGNATURE',
      /X-Hub-Signature-256 signature does not match/,
    );
    await refused(t, 'gh', other, github(body), 401, 'BAD_SIGNATURE', /does not match/);
    await refused(
      t,
      'gh',
      other,
      { 'x-github-delivery': 'abc' },
      401,
      'BAD_SIGNATURE',
      /X-Hub-Signature-256 header is missing/,
    );
    const { 'x-hub-signature-256': signature } = github(other);
    await refused(
      t,
      'gh',
      other,
      { 'x-hub-signature-256': signature },
      401,
      'BAD_SIGNATURE',
      /X-GitHub-Delivery header is missing/,
    );
    await accepted(t, 'gh', other, github(other));
  });

  it('standard-webhooks: a signed message runs; wrong key, tampered body, missing or stale header, replay are refused', async () => {
    const t = server();
    const body = JSON.stringify({ type: 'invoice.paid', id: 1 });
    const headers = standard(body);
    await accepted(t, 'std', body, headers);
    await refused(t, 'std', body, headers, 409, 'REPLAYED', /already received/);
    await refused(
      t,
      'std',
      body,
      standard(body, randomBytes(24)),
      401,
      'BAD_SIGNATURE',
      /webhook-signature does not match/,
    );
    // The raw whsec_ text is not the key: the base64 after the prefix is.
    await refused(
      t,
      'std',
      body,
      standard(body, Buffer.from(STANDARD_SECRET)),
      401,
      'BAD_SIGNATURE',
      /does not match/,
    );
    await refused(t, 'std', body + ' ', standard(body), 401, 'BAD_SIGNATURE', /does not match/);
    const { 'webhook-id': _id, ...noId } = standard(body);
    await refused(t, 'std', body, noId, 401, 'BAD_SIGNATURE', /webhook-id header is missing/);
    await refused(
      t,
      'std',
      body,
      standard(body, STANDARD_KEY, nowSeconds() - 301),
      401,
      'BAD_SIGNATURE',
      /webhook-timestamp timestamp is more than 300s old/,
    );
    await refused(
      t,
      'std',
      body,
      standard(body, STANDARD_KEY, nowSeconds() + FUTURE),
      401,
      'BAD_SIGNATURE',
      /in the future/,
    );
    await accepted(t, 'std', body, standard(body));
  });

  it('checks confidential flows the same way, and keeps no event beyond its id', async () => {
    const t = server();
    const body = '{"ssn":"123"}';
    await refused(t, 'conf', body, generic(body, 'not-the-secret'), 401, 'BAD_SIGNATURE', /does not match/);
    const headers = generic(body);
    await accepted(t, 'conf', body, headers);
    await refused(t, 'conf', body, headers, 409, 'REPLAYED', /already received/);
  });

  it('accepts the previous secret while rotating, and refuses it once removed', async () => {
    const t = server();
    const one = '{"n":1}';
    const two = '{"n":2}';
    await accepted(t, 'rot', one, github(one, OLD_SECRET));
    await accepted(t, 'rot', two, github(two, NEW_SECRET));
    await refused(t, 'rot', '{"n":3}', github('{"n":3}', 'neither'), 401, 'BAD_SIGNATURE', /does not match/);
    const put = await call(t, 'PUT', `${WS}/connections/rot-secret`, {
      body: { type: 'webhook-secret', secrets: { secret: NEW_SECRET } },
    });
    expect(put.status, put.text).toBeLessThan(300);
    // The decrypted keys live as long as the webhook's 2 s target cache.
    await new Promise((resolve) => setTimeout(resolve, 2100));
    await refused(t, 'rot', '{"n":4}', github('{"n":4}', OLD_SECRET), 401, 'BAD_SIGNATURE', /does not match/);
    await accepted(t, 'rot', '{"n":5}', github('{"n":5}', NEW_SECRET));
  });

  it('refuses every request when the secret connection is missing, and keeps nothing', async () => {
    const t = server();
    const body = '{}';
    await refused(t, 'nosecret', body, generic(body), 503, 'UNAVAILABLE', /cannot check signatures/);
  });

  it('runs a flow without a signature as before, whatever headers come', async () => {
    const t = server();
    await accepted(t, 'plain', '{"x":1}', {});
    await accepted(t, 'plain', '{"x":1}', generic('{"x":1}', 'anything'));
  });

  it('says which signature field is wrong when a flow is saved', async () => {
    const t = server();
    const reply = await call(t, 'PUT', `${WS}/flows/badsig`, {
      body: flow('badsig', '{ scheme: github, connection: gh-secret, tolerance: 2h, header: X-Sig }'),
      headers: { 'content-type': 'application/yaml' },
    });
    expectError(reply, 400, 'FLOW_INVALID');
    expect(reply.text).toContain('trigger.webhook.signature.tolerance');
    expect(reply.text).toContain('between 1s and 1h');
    expect(reply.text).toContain('trigger.webhook.signature.header');
    expect(reply.text).toContain('generic scheme only');
  });

  it('never logs a secret or a signature', () => {
    const logs = server().logs.join('\n');
    for (const secret of [
      GENERIC_SECRET,
      GITHUB_SECRET,
      STANDARD_KEY.toString('base64'),
      OLD_SECRET,
      NEW_SECRET,
    ]) {
      expect(logs).not.toContain(secret);
    }
    expect(sent.length).toBeGreaterThan(20);
    for (const signature of sent) expect(logs).not.toContain(signature);
  });
});
