/**
 * TLS for HTTP connections: the four modes and client certificates (PEM, PKCS#12 with a
 * passphrase) for mutual TLS, against local HTTPS servers with certificates made by openssl
 * for this test. The API's name (api.lethe.test) is answered by a local DNS server the egress
 * layer is pointed at (LETHE_EGRESS_DNS), so SNI and verify-full see a real name while the
 * connection goes to the checked address.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server, type ServerOptions } from 'node:https';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import type { TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConnectionPool } from '../../src/connectors/connections-file.js';
import { formatError } from '../../src/errors/index.js';
import { startDnsServer, type DnsServer } from '../egress/support.js';
import { runInline, tempDir } from '../helpers/engine.js';

function hasOpenssl(): boolean {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

const folder = tempDir('lethe-tls-');
const file = (name: string) => join(folder.path, name);
const saved = { allow: process.env.LETHE_EGRESS_ALLOW, dns: process.env.LETHE_EGRESS_DNS };
let dns: DnsServer;
const servers: Server[] = [];
const ports: Record<string, number> = {};
const seen: { server: string; servername: string | false | undefined; client: string | undefined }[] = [];

function openssl(...args: string[]): void {
  execFileSync('openssl', args, { cwd: folder.path, stdio: 'ignore' });
}

/** A key and a certificate for `name`, signed by the test CA. */
function issue(name: string, san: string, extension: 'serverAuth' | 'clientAuth'): void {
  writeFileSync(file(`${name}.ext`), `subjectAltName=${san}\nextendedKeyUsage=${extension}\n`);
  openssl(
    'req',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    `${name}.key`,
    '-out',
    `${name}.csr`,
    '-subj',
    `/CN=${name}`,
  );
  openssl(
    'x509',
    '-req',
    '-in',
    `${name}.csr`,
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-days',
    '2',
    '-out',
    `${name}.pem`,
    '-extfile',
    `${name}.ext`,
  );
}

async function serve(name: string, options: ServerOptions): Promise<void> {
  const server = createServer(options, (request, response) => {
    if (request.url === '/downgrade') {
      response.writeHead(302, { location: `http://api.lethe.test:${ports.api}/x` });
      response.end();
      return;
    }
    const socket = request.socket as TLSSocket;
    const cn = socket.getPeerCertificate()?.subject?.CN;
    const client = Array.isArray(cn) ? cn.join(',') : cn;
    seen.push({
      server: name,
      servername: (socket as TLSSocket & { servername?: string | false }).servername,
      client,
    });
    response.writeHead(200, { 'content-type': 'application/json' });
    response.end(JSON.stringify([{ server: name, client: client ?? null }]));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.push(server);
  ports[name] = (server.address() as AddressInfo).port;
}

beforeAll(async () => {
  if (!hasOpenssl()) return;
  openssl(
    'req',
    '-x509',
    '-newkey',
    'rsa:2048',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-days',
    '2',
    '-subj',
    '/CN=Lethe Test CA',
  );
  issue('api', 'DNS:api.lethe.test', 'serverAuth');
  issue('other', 'DNS:other.lethe.test', 'serverAuth');
  issue('robot', 'DNS:robot.lethe.test', 'clientAuth');
  openssl(
    'pkcs12',
    '-export',
    '-in',
    'robot.pem',
    '-inkey',
    'robot.key',
    '-out',
    'robot.p12',
    '-passout',
    'pass:p12-passphrase',
  );
  const pem = (name: string) => readFileSync(file(name));
  await serve('api', { key: pem('api.key'), cert: pem('api.pem') });
  await serve('wrong-name', { key: pem('other.key'), cert: pem('other.pem') });
  await serve('mutual', {
    key: pem('api.key'),
    cert: pem('api.pem'),
    ca: pem('ca.pem'),
    requestCert: true,
    rejectUnauthorized: true,
  });
  dns = await startDnsServer({ 'api.lethe.test': { A: ['127.0.0.1'] } });
  process.env.LETHE_EGRESS_DNS = dns.address;
  process.env.LETHE_EGRESS_ALLOW = Object.values(ports)
    .map((port) => `api.lethe.test:${port}`)
    .join(',');
});

afterAll(async () => {
  for (const [name, value] of Object.entries({
    LETHE_EGRESS_ALLOW: saved.allow,
    LETHE_EGRESS_DNS: saved.dns,
  })) {
    if (value === undefined) delete process.env[name];
    else process.env[name] = value;
  }
  await Promise.all(servers.map((server) => new Promise((resolve) => server.close(resolve))));
  await dns?.close();
  folder.cleanup();
});

async function fetchFrom(server: string, settings: Record<string, unknown>, path = '/x') {
  const pool = new ConnectionPool([
    {
      name: 'api',
      type: 'http',
      settings: { baseUrl: `https://api.lethe.test:${ports[server]}`, retries: 0, ...settings },
      baseDir: folder.path,
    },
  ]);
  try {
    const run = await runInline(
      `version: 1\nname: t\nsteps:\n  - id: a\n    input: { connection: api, request: { path: ${path} } }\n  - id: out\n    output: { from: a, respond: true }\n`,
      { connections: pool },
    );
    return { records: run.records, error: run.result.error };
  } finally {
    await pool.closeAll();
  }
}

describe.skipIf(!hasOpenssl())('http connector: TLS modes and client certificates', () => {
  it('verify-full (the default) checks the chain and the name, with SNI set to the name', async () => {
    const ok = await fetchFrom('api', { caCertFile: 'ca.pem' });
    expect(ok.error && formatError(ok.error)).toBeUndefined();
    expect(ok.records).toEqual([{ server: 'api', client: null }]);
    expect(seen.at(-1)).toMatchObject({ server: 'api', servername: 'api.lethe.test' });

    const untrusted = await fetchFrom('api', {});
    expect(untrusted.error!.message).toMatch(
      /^HTTP connection "api": cannot reach https:\/\/api\.lethe\.test:\d+: .*self[- ]signed|unable to verify/i,
    );
    expect(untrusted.error!.details.hint).toMatch(/certificate could not be verified/);

    const wrongName = await fetchFrom('wrong-name', { caCertFile: 'ca.pem', tls: 'verify-full' });
    expect(wrongName.error!.message).toMatch(
      /ERR_TLS_CERT_ALTNAME_INVALID|does not match certificate's altnames/,
    );
  });

  it('refuses a redirect from https to http', async () => {
    const before = seen.length;
    const downgrade = await fetchFrom('api', { caCertFile: 'ca.pem' }, '/downgrade');
    expect(downgrade.error!.message).toBe(
      `HTTP connection "api": refused a redirect from https to http (https://api.lethe.test:${ports.api} → http://api.lethe.test:${ports.api}): it would send the request unencrypted`,
    );
    expect(seen.length).toBe(before);
  });

  it('verify-ca accepts a certificate for another name; require accepts any certificate', async () => {
    const ca = await fetchFrom('wrong-name', { caCertFile: 'ca.pem', tls: 'verify-ca' });
    expect(ca.records).toEqual([{ server: 'wrong-name', client: null }]);
    const caUnknown = await fetchFrom('wrong-name', { tls: 'verify-ca' });
    expect(caUnknown.error!.message).toMatch(/self[- ]signed|unable to verify/i);
    const require = await fetchFrom('api', { tls: 'require' });
    expect(require.records).toEqual([{ server: 'api', client: null }]);
    expect((await fetchFrom('api', { tls: 'require', caCertFile: 'ca.pem' })).error!.message).toMatch(
      /gives a CA certificate, but tls is require/,
    );
  });

  it('mutual TLS with a PEM certificate and key, given as files or inline', async () => {
    const none = await fetchFrom('mutual', { caCertFile: 'ca.pem' });
    expect(none.error).toBeDefined();
    const files = await fetchFrom('mutual', {
      caCertFile: 'ca.pem',
      clientCertFile: 'robot.pem',
      clientKeyFile: 'robot.key',
    });
    expect(files.records).toEqual([{ server: 'mutual', client: 'robot' }]);
    const inline = await fetchFrom('mutual', {
      caCert: readFileSync(file('ca.pem'), 'utf8'),
      clientCert: readFileSync(file('robot.pem'), 'utf8'),
      clientKey: readFileSync(file('robot.key'), 'utf8'),
    });
    expect(inline.records).toEqual([{ server: 'mutual', client: 'robot' }]);
  });

  it('mutual TLS with a PKCS#12 bundle and its passphrase; a wrong passphrase fails before connecting', async () => {
    const bundle = await fetchFrom('mutual', {
      caCertFile: 'ca.pem',
      pkcs12File: 'robot.p12',
      passphrase: 'p12-passphrase',
    });
    expect(bundle.records).toEqual([{ server: 'mutual', client: 'robot' }]);
    const inline = await fetchFrom('mutual', {
      caCertFile: 'ca.pem',
      pkcs12: readFileSync(file('robot.p12')).toString('base64'),
      passphrase: 'p12-passphrase',
    });
    expect(inline.records).toEqual([{ server: 'mutual', client: 'robot' }]);
    const before = seen.length;
    const wrong = await fetchFrom('mutual', {
      caCertFile: 'ca.pem',
      pkcs12File: 'robot.p12',
      passphrase: 'not-it',
    });
    expect(wrong.error!.message).toBe(
      'the client certificate of HTTP connection "api" cannot be used: the passphrase is wrong',
    );
    expect(wrong.error!.message).not.toContain('not-it');
    expect(seen.length).toBe(before);
    const half = await fetchFrom('mutual', { caCertFile: 'ca.pem', clientCertFile: 'robot.pem' });
    expect(half.error!.message).toBe('HTTP connection "api" has a client certificate without its key');
    const mismatch = await fetchFrom('mutual', {
      caCertFile: 'ca.pem',
      clientCertFile: 'robot.pem',
      clientKeyFile: 'api.key',
    });
    expect(mismatch.error!.message).toBe(
      'the client certificate of HTTP connection "api" cannot be used: the key does not belong to the certificate',
    );
  });
});
