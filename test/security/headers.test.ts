import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, fetch as undiciFetch } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/server/config.js';
import { startTestServer, type TestServer } from '../helpers/server.js';
import { describeStores, useServer, WS } from '../server/api-support.js';
import { makeUser, session, webConfig } from './people-support.js';

const PAGES = ['/login', '/invite', '/reset'];
const HSTS = 'max-age=31536000; includeSubDomains';

/** A self-signed certificate for 127.0.0.1 and localhost, made with openssl for this run. */
function selfSigned(dir: string): { cert: string; key: string } {
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      key,
      '-out',
      cert,
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
    ],
    { stdio: 'pipe' },
  );
  return { cert, key };
}

/** The nonces a CSP header allows for scripts and styles. */
function nonces(csp: string): { script: string; style: string } {
  const script = /script-src [^;]*'nonce-([0-9a-f]+)'/.exec(csp)?.[1];
  const style = /style-src [^;]*'nonce-([0-9a-f]+)'/.exec(csp)?.[1];
  if (!script || !style) throw new Error(`no nonces in ${csp}`);
  return { script, style };
}

function expectStrictPageCsp(csp: string): void {
  const directives = Object.fromEntries(
    csp.split(';').map((part) => {
      const [name, ...values] = part.trim().split(/\s+/);
      return [name!, values];
    }),
  );
  expect(directives['default-src']).toEqual(["'none'"]);
  expect(directives['script-src']).toContain("'strict-dynamic'");
  expect(directives['object-src']).toEqual(["'none'"]);
  expect(directives['base-uri']).toEqual(["'none'"]);
  expect(directives['frame-ancestors']).toEqual(["'none'"]);
  expect(csp).not.toMatch(/unsafe-inline|unsafe-eval|\*/);
}

function expectHelmetHeaders(headers: Headers): void {
  expect(headers.get('x-content-type-options')).toBe('nosniff');
  expect(headers.get('x-frame-options')).toBe('DENY');
  expect(headers.get('referrer-policy')).toBe('no-referrer');
  expect(headers.get('cross-origin-opener-policy')).toBe('same-origin');
  expect(headers.get('x-powered-by')).toBeNull();
}

await describeStores('security headers over plain HTTP', (store) => {
  const server = useServer(store);

  it('serves every console page with a strict CSP whose nonce differs per response and is the page’s', async () => {
    const t = server();
    const seen = new Set<string>();
    for (const path of PAGES) {
      for (let i = 0; i < 2; i++) {
        const response = await fetch(`${t.url}${path}`);
        const text = await response.text();
        expect(response.status).toBe(200);
        expect(response.headers.get('content-type')).toBe('text/html; charset=utf-8');
        const csp = response.headers.get('content-security-policy')!;
        expectStrictPageCsp(csp);
        const { script, style } = nonces(csp);
        expect(seen.has(script)).toBe(false);
        seen.add(script);
        expect(script).toMatch(/^[0-9a-f]{32}$/); // 128 bits
        // Every script and style element carries the nonce; nothing inline runs without it.
        expect(text.match(/<script\b[^>]*>/g)).toEqual([`<script nonce="${script}">`]);
        expect(text.match(/<style\b[^>]*>/g)).toEqual([`<style nonce="${style}">`]);
        expect(text).not.toMatch(/\son[a-z]+=/i);
        expectHelmetHeaders(response.headers);
        // No TLS, no trusted proxy: no HSTS.
        expect(response.headers.get('strict-transport-security')).toBeNull();
      }
    }
  });

  it('escapes what it shows and sends an anonymous visitor of /account to /login', async () => {
    const t = server();
    const anonymous = await fetch(`${t.url}/account`, { redirect: 'manual' });
    expect(anonymous.status).toBe(303);
    expect(anonymous.headers.get('location')).toBe('/login');
    const user = await makeUser(t, { role: 'viewer', email: `"><script>alert(1)</script>@example.test` });
    const s = await session(t, user.email.toLowerCase());
    const page = await fetch(`${t.url}/account`, { headers: { cookie: `__Host-lethe_session=${s.cookie}` } });
    const text = await page.text();
    expect(text).toContain('&quot;&gt;&lt;script&gt;alert(1)&lt;/script&gt;@example.test');
    expect(text.match(/<script\b/g)).toHaveLength(1);
    expect(text).toContain(`<meta name="csrf-token" content="${s.csrf}" />`);
    expectStrictPageCsp(page.headers.get('content-security-policy')!);
  });

  it('gives JSON answers a CSP that allows nothing, and the same headers', async () => {
    const t = server();
    const response = await fetch(`${t.url}/healthz`);
    expect(response.headers.get('content-security-policy')).toBe(
      "default-src 'none';base-uri 'none';frame-ancestors 'none';form-action 'none'",
    );
    expectHelmetHeaders(response.headers);
  });

  it('ignores X-Forwarded-Proto from a proxy that is not trusted', async () => {
    const t = server();
    const response = await fetch(`${t.url}/login`, { headers: { 'x-forwarded-proto': 'https' } });
    expect(response.headers.get('strict-transport-security')).toBeNull();
  });
});

describe('HSTS', () => {
  let dir: string;
  let tls: { cert: string; key: string };
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'lethe-tls-'));
    tls = selfSigned(dir);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('is sent on every response, HTML ones included, when serving TLS (--tls-cert/--tls-key)', async () => {
    const config = loadConfig({ dataDir: dir, port: 0, tlsCert: tls.cert, tlsKey: tls.key }, {});
    expect(config.web.tlsCert).toBe(tls.cert);
    const t = await startTestServer({ config: { web: config.web } });
    const agent = new Agent({ connect: { ca: readFileSync(tls.cert) } });
    try {
      expect(t.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
      const admin = await makeUser(t, { role: 'admin' });
      const token = await t.token('admin');
      const get = (path: string, headers: Record<string, string> = {}) =>
        undiciFetch(`${t.url}${path}`, { dispatcher: agent, headers });
      const responses = [
        ...(await Promise.all(PAGES.map((path) => get(path)))),
        await get(`${WS}/inventory?format=html`, { authorization: `Bearer ${token}` }),
        await get('/healthz'),
        await get(`${WS}/runs`),
      ];
      for (const response of responses) {
        await response.arrayBuffer();
        expect(response.headers.get('strict-transport-security'), response.url).toBe(HSTS);
        expect(response.headers.get('content-security-policy'), response.url).toBeTruthy();
      }
      // The inventory report keeps its own policy (no script at all), with the other headers.
      const inventory = responses[PAGES.length]!;
      expect(inventory.status).toBe(200);
      expect(inventory.headers.get('content-type')).toMatch(/^text\/html/);
      expect(inventory.headers.get('content-security-policy')).toMatch(
        /^default-src 'none'; style-src 'sha256-/,
      );
      expect(inventory.headers.get('x-frame-options')).toBe('DENY');
      // Sign-in works over TLS; the cookie is the same __Host- cookie.
      const login = await undiciFetch(`${t.url}/api/v1/auth/login`, {
        dispatcher: agent,
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ email: admin.email, password: admin.password }),
      });
      expect(login.status).toBe(200);
      expect(login.headers.get('set-cookie')).toMatch(
        /^__Host-lethe_session=.*; Secure; HttpOnly; SameSite=Strict$/,
      );
      expect(login.headers.get('strict-transport-security')).toBe(HSTS);
    } finally {
      await agent.close();
      await t.close();
    }
  });

  it('is sent behind a trusted proxy that says X-Forwarded-Proto: https, and only then', async () => {
    const t: TestServer = await startTestServer({
      config: { web: webConfig({ LETHE_TRUST_PROXY: 'true' }) },
    });
    try {
      const forwarded = await fetch(`${t.url}/login`, { headers: { 'x-forwarded-proto': 'https' } });
      expect(forwarded.headers.get('strict-transport-security')).toBe(HSTS);
      expect(nonces(forwarded.headers.get('content-security-policy')!).script).toBeTruthy();
      const plain = await fetch(`${t.url}/login`, { headers: { 'x-forwarded-proto': 'http' } });
      expect(plain.headers.get('strict-transport-security')).toBeNull();
      const none = await fetch(`${t.url}/login`);
      expect(none.headers.get('strict-transport-security')).toBeNull();
    } finally {
      await t.close();
    }
  });

  it('needs both a certificate and a key', () => {
    expect(() => loadConfig({ tlsCert: tls.cert }, {})).toThrow(/both a certificate and a key/);
    expect(webConfig({ LETHE_TLS_CERT: tls.cert, LETHE_TLS_KEY: tls.key }).tlsKey).toBe(tls.key);
    expect(webConfig({ LETHE_TRUST_PROXY: '10.0.0.0/8' }).trustProxy).toBe('10.0.0.0/8');
    expect(webConfig({}, { trustProxy: true }).trustProxy).toBe(true);
  });
});
