import { afterEach, expect, it, vi } from 'vitest';
import * as passwords from '../../src/security/passwords.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { describeStores, useServer, WS } from '../server/api-support.js';
import {
  auditEntries,
  makeUser,
  peopleConfig,
  people,
  signIn,
  uniqueEmail,
  useClock,
  webConfig,
  type Reply,
} from './people-support.js';

/** Sign-ins from a client address, as a trusted proxy would say it. */
const from = (address: string) => ({ 'x-forwarded-for': address });

/** Status, body and the headers an attacker could compare (not date, rate-limit counters). */
function answer(reply: Reply) {
  const headers = [...reply.headers.entries()].filter(
    ([name]) => !['date', 'x-ratelimit-remaining', 'x-ratelimit-reset', 'keep-alive'].includes(name),
  );
  return { status: reply.status, text: reply.text, headers };
}

afterEach(() => {
  vi.restoreAllMocks();
});

await describeStores('sign-in throttling', (store) => {
  // Addresses come from X-Forwarded-For (a trusted proxy), so one test can be many clients.
  const server = useServer(store, {
    config: { web: webConfig({ LETHE_TRUST_PROXY: 'true', LETHE_RATE_LIMIT_AUTH: '0' }) },
  });
  const reset = (t: TestServer) => {
    people(t).now = Date.now;
  };

  it('backs off an account exponentially after 5 failures, whatever the address, then forgives', async () => {
    const t = server();
    const clock = useClock(t);
    try {
      const user = await makeUser(t);
      for (let i = 1; i <= 5; i++) {
        expect((await signIn(t, user.email, `wrong password ${i}`, from(`198.51.100.${i}`))).status).toBe(
          401,
        );
      }
      // Locked: even the right password, from yet another address, waits 1 s.
      const locked = await signIn(t, user.email, user.password, from('198.51.100.99'));
      expect(locked.status).toBe(429);
      expect(locked.body).toMatchObject({ error: { code: 'TOO_MANY_ATTEMPTS' } });
      expect(locked.headers.get('retry-after')).toBe('1');
      // Each further failure doubles the wait: 2 s, 4 s, 8 s…
      for (const wait of [2, 4, 8, 16]) {
        clock.advance(1000 * (wait / 2));
        expect((await signIn(t, user.email, 'wrong again!', from('198.51.100.7'))).status).toBe(401);
        const next = await signIn(t, user.email, user.password, from('198.51.100.8'));
        expect(next.status).toBe(429);
        expect(next.headers.get('retry-after')).toBe(String(wait));
      }
      // …up to the lockout window (15 minutes by default).
      expect(people(t).accountFailures.delayAfter(100)).toBe(15 * 60_000);
      clock.advance(16_000);
      expect((await signIn(t, user.email, user.password, from('198.51.100.9'))).status).toBe(200);
      // A success clears the account's count.
      expect((await signIn(t, user.email, 'wrong password', from('198.51.100.9'))).status).toBe(401);
      expect((await signIn(t, user.email, user.password, from('198.51.100.9'))).status).toBe(200);
    } finally {
      reset(t);
    }
  });

  it('backs off an address that fails on many accounts', async () => {
    const t = server();
    const clock = useClock(t);
    try {
      const address = from('203.0.113.50');
      for (let i = 0; i < 20; i++) {
        expect((await signIn(t, uniqueEmail('spray'), 'plum kettle orbit 42', address)).status).toBe(401);
      }
      const user = await makeUser(t);
      const blocked = await signIn(t, user.email, user.password, address);
      expect(blocked.status).toBe(429);
      // Another address signs in to the same account at once: the account itself is not locked.
      expect((await signIn(t, user.email, user.password, from('203.0.113.51'))).status).toBe(200);
      clock.advance(1000);
      expect((await signIn(t, user.email, user.password, address)).status).toBe(200);
    } finally {
      reset(t);
    }
  });

  it('throttles unknown addresses exactly like real accounts', async () => {
    const t = server();
    const clock = useClock(t);
    try {
      const user = await makeUser(t);
      const ghost = uniqueEmail('ghost');
      const answers: Reply[][] = [[], []];
      for (let i = 0; i < 7; i++) {
        answers[0]!.push(await signIn(t, user.email, 'not the password', from(`192.0.2.${i + 1}`)));
        answers[1]!.push(await signIn(t, ghost, 'not the password', from(`192.0.2.${i + 101}`)));
        clock.advance(10);
      }
      expect(answers[0]!.map((r) => r.status)).toEqual([401, 401, 401, 401, 401, 429, 429]);
      expect(answers[1]!.map((r) => r.status)).toEqual(answers[0]!.map((r) => r.status));
      for (let i = 0; i < 7; i++) expect(answer(answers[1]![i]!)).toEqual(answer(answers[0]![i]!));
    } finally {
      reset(t);
    }
  });

  it('backs off an address that sends unknown API tokens', async () => {
    const t = await startTestServer({
      store,
      config: {
        web: webConfig({ LETHE_TRUST_PROXY: 'true' }),
        people: peopleConfig({ LETHE_TOKEN_ADDRESS_FAILURES: '3' }),
      },
    });
    try {
      const good = await t.token('viewer');
      const bad = 'lethe_not-a-real-token';
      const get = (token: string, address: string) =>
        fetch(`${t.url}${WS}/runs`, { headers: { authorization: `Bearer ${token}`, ...from(address) } });
      for (let i = 0; i < 3; i++) expect((await get(bad, '192.0.2.10')).status).toBe(401);
      const blocked = await get(good, '192.0.2.10');
      expect(blocked.status).toBe(429);
      expect(blocked.headers.get('retry-after')).toBe('1');
      expect((await get(good, '192.0.2.11')).status).toBe(200);
    } finally {
      await t.close();
    }
  });

  it('limits sign-in requests per address with @fastify/rate-limit (LETHE_RATE_LIMIT_AUTH)', async () => {
    const t = await startTestServer({ store, config: { web: webConfig({ LETHE_RATE_LIMIT_AUTH: '3' }) } });
    try {
      const user = await makeUser(t);
      const statuses = [];
      for (let i = 0; i < 4; i++) statuses.push((await signIn(t, user.email, user.password)).status);
      expect(statuses).toEqual([200, 200, 200, 429]);
      const limited = await signIn(t, user.email, user.password);
      expect(limited.body).toMatchObject({ error: { code: 'RATE_LIMITED' } });
      expect(Number(limited.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(limited.headers.get('x-ratelimit-limit')).toBe('3');
    } finally {
      await t.close();
    }
  });

  it('limits API requests per address (LETHE_RATE_LIMIT)', async () => {
    const t = await startTestServer({ store, config: { web: webConfig({ LETHE_RATE_LIMIT: '5' }) } });
    try {
      const statuses = [];
      for (let i = 0; i < 6; i++) statuses.push((await t.api(`${WS}/runs`)).status);
      expect(statuses).toEqual([200, 200, 200, 200, 200, 429]);
      // Before authentication: an anonymous flood is refused without touching the store.
      expect((await fetch(`${t.url}${WS}/runs`)).status).toBe(429);
    } finally {
      await t.close();
    }
  });
});

await describeStores('no account enumeration', (store) => {
  const server = useServer(store, { config: { web: webConfig({ LETHE_RATE_LIMIT_AUTH: '0' }) } });

  it('answers an unknown address, a wrong password, a disabled account and an unfinished invite alike', async () => {
    const t = server();
    const known = await makeUser(t);
    const disabled = await makeUser(t);
    await people(t).setDisabled(disabled.id, true, 'test');
    const ws = (await t.server.context.home.workspaces.byName('default'))!;
    const invited = uniqueEmail('invited');
    await people(t).invite({ workspaceId: ws.id, email: invited, role: 'viewer' }, 'test');
    const replies = [
      await signIn(t, uniqueEmail('nobody'), 'plum kettle orbit 42'),
      await signIn(t, known.email, 'plum kettle orbit 43'),
      await signIn(t, disabled.email, disabled.password),
      await signIn(t, invited, 'plum kettle orbit 42'),
      await signIn(t, 'not an address', 'plum kettle orbit 42'),
    ];
    const first = answer(replies[0]!);
    expect(first.status).toBe(401);
    expect(JSON.parse(first.text)).toEqual({
      error: { code: 'SIGNIN_FAILED', message: 'the e-mail address or the password is not right' },
    });
    for (const reply of replies) {
      expect(answer(reply)).toEqual(first);
      expect(reply.headers.get('set-cookie')).toBeNull();
    }
  });

  it('does the same work for an unknown address: a hash is checked either way', async () => {
    const t = server();
    const known = await makeUser(t);
    const verify = vi.spyOn(passwords, 'verifyPassword');
    await people(t).signIn(uniqueEmail('nobody'), 'plum kettle orbit 42', '192.0.2.1');
    await people(t).signIn(known.email, 'plum kettle orbit 43', '192.0.2.1');
    expect(verify).toHaveBeenCalledTimes(2);
    const [unknownHash] = verify.mock.calls[0]!;
    const [knownHash] = verify.mock.calls[1]!;
    // The same algorithm and parameters, so the same cost.
    expect(unknownHash.split('$').slice(0, 4)).toEqual(knownHash.split('$').slice(0, 4));
    expect(unknownHash).not.toBe(knownHash);
  });

  it('records failures with ids only: an unknown address leaves no trace of itself', async () => {
    const t = server();
    const known = await makeUser(t);
    const ghost = uniqueEmail('ghost');
    await signIn(t, ghost, 'plum kettle orbit 42');
    await signIn(t, known.email, 'plum kettle orbit 43');
    const failures = await auditEntries(t, 'signin.failed');
    expect(failures.some((entry) => entry.actor === 'anonymous' && entry.reason === 'unknown_account')).toBe(
      true,
    );
    expect(
      failures.some((entry) => entry.actor === `user:${known.id}` && entry.reason === 'wrong_password'),
    ).toBe(true);
    const all = JSON.stringify(await t.server.context.home.db.selectFrom('audit_log').selectAll().execute());
    expect(all).not.toContain(ghost);
    expect(all).not.toContain(known.email);
    expect(t.logs.join('\n')).not.toContain(ghost);
  });
});
