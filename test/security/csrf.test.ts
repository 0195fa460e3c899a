import { expect, it } from 'vitest';
import { startTestServer } from '../helpers/server.js';
import { call, describeStores, useServer, WS } from '../server/api-support.js';
import { makeUser, session, signIn, uniqueEmail, webConfig, withSession } from './people-support.js';

const CONNECTION = { type: 'sqlite', settings: { path: 'a.db' } };

await describeStores('CSRF for cookie-authenticated requests', (store) => {
  const server = useServer(store);

  it('refuses a state-changing request without the session’s token', async () => {
    const t = server();
    const admin = await makeUser(t, { role: 'admin' });
    const s = await session(t, admin.email);
    const missing = await withSession(t, s, 'PUT', `${WS}/connections/c`, { body: CONNECTION, csrf: false });
    expect(missing.status).toBe(403);
    expect(missing.body).toMatchObject({ error: { code: 'CSRF_TOKEN_MISSING' } });
    const wrong = await withSession(t, { ...s, csrf: 'A'.repeat(43) }, 'PUT', `${WS}/connections/c`, {
      body: CONNECTION,
    });
    expect(wrong.body).toMatchObject({ error: { code: 'CSRF_TOKEN_MISSING' } });
    // Another session's token is not this session's.
    const other = await session(t, admin.email);
    const swapped = await withSession(
      t,
      { cookie: s.cookie, csrf: other.csrf },
      'PUT',
      `${WS}/connections/c`,
      {
        body: CONNECTION,
      },
    );
    expect(swapped.status).toBe(403);
    // Nothing was written.
    expect((await withSession(t, s, 'GET', `${WS}/connections/c`)).status).toBe(404);
  });

  it('refuses a foreign Origin and cross-site Fetch Metadata, even with the token', async () => {
    const t = server();
    const admin = await makeUser(t, { role: 'admin' });
    const s = await session(t, admin.email);
    const attempts: Record<string, string>[] = [
      { origin: 'https://evil.example' },
      { origin: 'null' },
      { origin: t.url.replace('127.0.0.1', 'localhost') },
      { 'sec-fetch-site': 'cross-site' },
      { 'sec-fetch-site': 'same-site' },
      { 'sec-fetch-site': 'cross-site', origin: '' },
    ];
    for (const headers of attempts) {
      const reply = await withSession(t, s, 'PUT', `${WS}/connections/c`, { body: CONNECTION, headers });
      expect(reply.status, JSON.stringify(headers)).toBe(403);
      expect(reply.body).toMatchObject({ error: { code: 'CROSS_SITE_REQUEST' } });
    }
    for (const method of ['POST', 'DELETE'] as const) {
      const reply = await withSession(
        t,
        s,
        method,
        method === 'POST' ? '/api/v1/auth/logout' : `${WS}/tokens/x`,
        {
          headers: { 'sec-fetch-site': 'cross-site' },
        },
      );
      expect(reply.status).toBe(403);
    }
    expect((await withSession(t, s, 'GET', `${WS}/connections/c`)).status).toBe(404);
  });

  it('accepts the console’s own requests: the token, same origin (or no Origin and no Fetch Metadata)', async () => {
    const t = server();
    const admin = await makeUser(t, { role: 'admin' });
    const s = await session(t, admin.email);
    const put = await withSession(t, s, 'PUT', `${WS}/connections/c`, { body: CONNECTION });
    expect(put.status, put.text).toBeLessThan(300);
    const bare = await withSession(t, s, 'DELETE', `${WS}/connections/c`, {
      headers: { origin: '', 'sec-fetch-site': '' },
    });
    expect(bare.status, bare.text).toBe(204);
    // Reads need no token.
    expect(
      (await withSession(t, s, 'GET', `${WS}/connections`, { headers: { 'sec-fetch-site': 'none' } })).status,
    ).toBe(200);
  });

  it('leaves bearer-token requests alone: no ambient credentials, nothing to forge', async () => {
    const t = server();
    const reply = await call(t, 'PUT', `${WS}/connections/bearer`, {
      body: CONNECTION,
      headers: { origin: 'https://evil.example', 'sec-fetch-site': 'cross-site' },
    });
    expect(reply.status, reply.text).toBeLessThan(300);
    // A bearer token wins over a cookie sent alongside it (and the cookie is not checked).
    const admin = await makeUser(t, { role: 'viewer' });
    const s = await session(t, admin.email);
    const both = await call(t, 'DELETE', `${WS}/connections/bearer`, {
      headers: { cookie: `__Host-lethe_session=${s.cookie}`, 'sec-fetch-site': 'cross-site' },
    });
    expect(both.status).toBe(204);
  });

  it('refuses cross-site sign-in (login CSRF)', async () => {
    const t = server();
    const user = await makeUser(t);
    expect((await signIn(t, user.email, user.password, { 'sec-fetch-site': 'cross-site' })).status).toBe(403);
    expect((await signIn(t, user.email, user.password, { origin: 'https://evil.example' })).status).toBe(403);
    expect(
      (await signIn(t, user.email, user.password, { origin: t.url, 'sec-fetch-site': 'same-origin' })).status,
    ).toBe(200);
  });
});

it('checks Origin against LETHE_PUBLIC_URL when it is set', async () => {
  const t = await startTestServer({
    config: { web: webConfig({ LETHE_PUBLIC_URL: 'https://lethe.example.org/' }) },
  });
  try {
    const user = await makeUser(t, { role: 'admin', email: uniqueEmail() });
    const s = await session(t, user.email);
    const own = await withSession(t, s, 'PUT', `${WS}/connections/c`, {
      body: CONNECTION,
      headers: { origin: t.url },
    });
    expect(own.body).toMatchObject({ error: { code: 'CROSS_SITE_REQUEST' } });
    const configured = await withSession(t, s, 'PUT', `${WS}/connections/c`, {
      body: CONNECTION,
      headers: { origin: 'https://lethe.example.org' },
    });
    expect(configured.status, configured.text).toBeLessThan(300);
    // Invite links point there too.
    const invite = await withSession(t, s, 'POST', `${WS}/members/invites`, {
      body: { email: uniqueEmail(), role: 'viewer' },
      headers: { origin: 'https://lethe.example.org' },
    });
    expect(invite.body.url).toMatch(/^https:\/\/lethe\.example\.org\/invite#lethe_invite_/);
  } finally {
    await t.close();
  }
});
