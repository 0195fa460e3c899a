/**
 * SSRF acceptance (security issue, item 6): bypass attempts against the egress layer — address
 * spellings, IPv6 forms, metadata endpoints, names a local DNS server resolves to private
 * addresses, user-info tricks, other schemes, and redirects — are all refused with a message
 * naming the host and the reason, and nothing reaches the servers behind them; allow-listed
 * destinations work.
 *
 * The attempts go through EgressHttpClient, the client the HTTP connector uses. A loopback
 * server listens on the port the loopback attempts aim at, so a guard that let one through
 * would be answered (and the test would fail on the missing refusal and on the server's log).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  Egress,
  EgressRefusal,
  resolverUsingServers,
  type EgressHttpClient,
  type EgressOptions,
} from '../../src/egress/index.js';
import {
  rejection,
  startDnsServer,
  startHttpServer,
  type DnsServer,
  type TestHttpServer,
} from './support.js';

let dns: DnsServer;
let target: TestHttpServer;
let other: TestHttpServer;
let redirector: TestHttpServer;
let P: number;
const clients: EgressHttpClient[] = [];

beforeAll(async () => {
  dns = await startDnsServer({
    'loopback.lethe.test': { A: ['127.0.0.1'] },
    'private.lethe.test': { A: ['10.1.2.3'] },
    'mixed.lethe.test': { A: ['93.184.216.34', '192.168.0.10'] },
    'six.lethe.test': { AAAA: ['::1'] },
    'mapped.lethe.test': { AAAA: ['::ffff:127.0.0.1'] },
    'ula.lethe.test': { AAAA: ['fd12:3456::1'] },
    'imds.lethe.test': { A: ['169.254.169.254'] },
    'cgnat.lethe.test': { A: ['100.64.1.1'] },
    'allowed.lethe.test': { A: ['127.0.0.1'] },
  });
  target = await startHttpServer((_request, response) => response.end('reached'));
  other = await startHttpServer((_request, response) => response.end('reached the other server'));
  P = target.port;
  redirector = await startHttpServer((request, response) => {
    const to = decodeURIComponent(request.url.replace(/^\/to\//, ''));
    response.writeHead(302, {
      location: to.replaceAll('{P}', String(P)).replaceAll('{Q}', String(other.port)),
    });
    response.end();
  });
});

afterAll(async () => {
  await Promise.all(clients.map((client) => client.close()));
  await Promise.all([dns.close(), target.close(), other.close(), redirector.close()]);
});

function client(options: EgressOptions = {}): EgressHttpClient {
  const egress = new Egress({ resolve: resolverUsingServers([dns.address]), ...options });
  const made = egress.httpClient({ label: 'HTTP connection "api"' });
  clients.push(made);
  return made;
}

function get(http: EgressHttpClient, url: string) {
  return http.send({ method: 'GET', url: new URL(url.replaceAll('{P}', String(P))), timeoutMs: 5000 });
}

const LOOPBACK =
  /it is a loopback address; allow-list it with LETHE_EGRESS_ALLOW=127\.0\.0\.1:\d+ \(or in the workspace's egress allow-list\) if intended/;

/** [what is tried, URL ({P}: the loopback server's port), the expected message]. */
const ATTEMPTS: [string, string, RegExp][] = [
  ['plain loopback', 'http://127.0.0.1:{P}/', LOOPBACK],
  [
    'decimal IPv4',
    'http://2130706433:{P}/',
    /refused to connect to 127\.0\.0\.1:\d+: it is a loopback address/,
  ],
  ['hexadecimal IPv4', 'http://0x7f000001:{P}/', /127\.0\.0\.1:\d+: it is a loopback address/],
  ['octal IPv4', 'http://0177.0.0.1:{P}/', /127\.0\.0\.1:\d+: it is a loopback address/],
  ['octal IPv4 in one number', 'http://017700000001:{P}/', /127\.0\.0\.1:\d+: it is a loopback address/],
  ['short IPv4 (127.1)', 'http://127.1:{P}/', /127\.0\.0\.1:\d+: it is a loopback address/],
  ['mixed hex and decimal parts', 'http://0x7f.0.0.1:{P}/', /127\.0\.0\.1:\d+: it is a loopback address/],
  ['percent-encoded host', 'http://%31%32%37.0.0.1:{P}/', /127\.0\.0\.1:\d+: it is a loopback address/],
  [
    'full-width digits and dots',
    'http://１２７。０。０。１:{P}/',
    /127\.0\.0\.1:\d+: it is a loopback address/,
  ],
  ['another loopback address', 'http://127.42.0.7:{P}/', /127\.42\.0\.7:\d+: it is a loopback address/],
  [
    'IPv4-mapped IPv6',
    'http://[::ffff:127.0.0.1]:{P}/',
    /\[::ffff:7f00:1\]:\d+: it is the IPv4-mapped form of 127\.0\.0\.1, a loopback address/,
  ],
  [
    'IPv4-mapped IPv6, long form',
    'http://[0:0:0:0:0:ffff:127.0.0.1]:{P}/',
    /the IPv4-mapped form of 127\.0\.0\.1, a loopback address/,
  ],
  [
    'IPv4-compatible IPv6',
    'http://[::127.0.0.1]:{P}/',
    /the IPv4-compatible form of 127\.0\.0\.1, a loopback address/,
  ],
  ['NAT64 IPv6', 'http://[64:ff9b::127.0.0.1]:{P}/', /the NAT64 form of 127\.0\.0\.1, a loopback address/],
  ['6to4 IPv6', 'http://[2002:7f00:1::1]:{P}/', /the 6to4 form of 127\.0\.0\.1, a loopback address/],
  ['IPv6 loopback', 'http://[::1]:{P}/', /\[::1\]:\d+: it is a loopback address/],
  ['IPv6 unspecified', 'http://[::]:{P}/', /\[::\]:\d+: it is an unspecified \("this host"\) address/],
  ['0.0.0.0', 'http://0.0.0.0:{P}/', /0\.0\.0\.0:\d+: it is an unspecified \("this host"\) address/],
  ['0 (= 0.0.0.0)', 'http://0:{P}/', /0\.0\.0\.0:\d+: it is an unspecified/],
  ['localhost', 'http://localhost:{P}/', /"localhost" \(port \d+\): it is a loopback name/],
  [
    'LOCALHOST. with a final dot',
    'http://LOCALHOST.:{P}/',
    /"localhost" \(port \d+\): it is a loopback name/,
  ],
  [
    'a name under .localhost',
    'http://app.localhost:{P}/',
    /"app\.localhost" \(port \d+\): it is a loopback name/,
  ],
  [
    'AWS/GCP/Azure metadata',
    'http://169.254.169.254/latest/meta-data/',
    /169\.254\.169\.254:80: it is a cloud metadata address; only the deployment allow-list \(LETHE_EGRESS_ALLOW\) can open it/,
  ],
  [
    'AWS IPv6 metadata',
    'http://[fd00:ec2::254]/latest/meta-data/',
    /\[fd00:ec2::254\]:80: it is a cloud metadata address/,
  ],
  [
    'metadata through IPv4-mapped IPv6',
    'http://[::ffff:169.254.169.254]/',
    /the IPv4-mapped form of 169\.254\.169\.254, a cloud metadata address/,
  ],
  ['metadata in decimal', 'http://2852039166/', /169\.254\.169\.254:80: it is a cloud metadata address/],
  [
    'Alibaba metadata',
    'http://100.100.100.200/latest/meta-data/',
    /100\.100\.100\.200:80: it is a cloud metadata address/,
  ],
  [
    'GCP metadata name',
    'http://metadata.google.internal/computeMetadata/v1/',
    /"metadata\.google\.internal" \(port 80\): it is a cloud metadata service name/,
  ],
  [
    'ECS task metadata',
    'http://169.254.170.2/v2/credentials',
    /169\.254\.170\.2:80: it is a cloud metadata address/,
  ],
  [
    'private 10/8',
    'http://10.0.0.1/',
    /10\.0\.0\.1:80: it is a private address; allow-list it with LETHE_EGRESS_ALLOW=10\.0\.0\.1:80/,
  ],
  ['private 172.16/12', 'http://172.31.255.1/', /172\.31\.255\.1:80: it is a private address/],
  ['private 192.168/16', 'https://192.168.1.1/', /192\.168\.1\.1:443: it is a private address/],
  ['CGNAT', 'http://100.64.0.1/', /100\.64\.0\.1:80: it is a carrier-grade NAT/],
  ['link-local IPv4', 'http://169.254.10.1/', /169\.254\.10\.1:80: it is a link-local address/],
  ['link-local IPv6', 'http://[fe80::1]/', /\[fe80::1\]:80: it is a link-local address/],
  ['unique local IPv6', 'http://[fc00::1]/', /\[fc00::1\]:80: it is a unique local \(fc00::\/7\) address/],
  ['multicast', 'http://224.0.0.1/', /224\.0\.0\.1:80: it is a multicast address/],
  ['broadcast', 'http://255.255.255.255/', /255\.255\.255\.255:80: it is the broadcast address/],
  ['documentation range', 'http://192.0.2.10/', /192\.0\.2\.10:80: it is a documentation address/],
  ['benchmarking range', 'http://198.18.0.1/', /198\.18\.0\.1:80: it is a benchmarking address/],
  [
    'DNS name → 127.0.0.1',
    'http://loopback.lethe.test:{P}/',
    /"loopback\.lethe\.test" \(port \d+\): it resolves to 127\.0\.0\.1, which is a loopback address; allow-list it with LETHE_EGRESS_ALLOW=127\.0\.0\.1:\d+/,
  ],
  [
    'DNS name → 10.1.2.3',
    'http://private.lethe.test/',
    /"private\.lethe\.test" \(port 80\): it resolves to 10\.1\.2\.3, which is a private address/,
  ],
  [
    'DNS name with one private address among public ones',
    'http://mixed.lethe.test/',
    /it resolves to 93\.184\.216\.34, 192\.168\.0\.10, and 192\.168\.0\.10 is a private address/,
  ],
  [
    'DNS name → ::1 (AAAA)',
    'http://six.lethe.test:{P}/',
    /"six\.lethe\.test" \(port \d+\): it resolves to ::1, which is a loopback address/,
  ],
  [
    'DNS name → ::ffff:127.0.0.1 (AAAA)',
    'http://mapped.lethe.test:{P}/',
    /it resolves to ::ffff:(7f00:1|127\.0\.0\.1), which is the IPv4-mapped form of 127\.0\.0\.1, a loopback address/,
  ],
  ['DNS name → ULA (AAAA)', 'http://ula.lethe.test/', /it resolves to fd12:3456::1, which is a unique local/],
  [
    'DNS name → metadata',
    'http://imds.lethe.test/latest/meta-data/',
    /it resolves to 169\.254\.169\.254, which is a cloud metadata address/,
  ],
  [
    'DNS name → CGNAT',
    'http://cgnat.lethe.test/',
    /it resolves to 100\.64\.1\.1, which is a carrier-grade NAT/,
  ],
  [
    'user info before a loopback host',
    'http://user@127.0.0.1:{P}/',
    /refused a URL to "127\.0\.0\.1" with user info \("…@" before the host\): it can disguise the real host/,
  ],
  [
    'a public-looking name as user info',
    'http://api.example.com@127.0.0.1:{P}/',
    /refused a URL to "127\.0\.0\.1" with user info/,
  ],
  [
    'user:password@',
    'http://127.0.0.1:{P}@loopback.lethe.test/',
    /refused a URL to "loopback\.lethe\.test" with user info/,
  ],
  ['file: scheme', 'file:///etc/passwd', /refused the scheme "file:": only http and https are allowed/],
  [
    'gopher: scheme',
    'gopher://127.0.0.1:{P}/_GET',
    /refused the scheme "gopher:" \(a URL to "127\.0\.0\.1"\): only http and https are allowed/,
  ],
];

describe('SSRF: bypass attempts are refused with a clear error', () => {
  it(`has at least 30 attempts (${ATTEMPTS.length})`, () => {
    expect(ATTEMPTS.length).toBeGreaterThanOrEqual(30);
  });

  it.each(ATTEMPTS)('%s: %s', async (_what, url, message) => {
    const error = await rejection(get(client(), url));
    expect(error).toBeInstanceOf(EgressRefusal);
    expect(error.code).toBe('CONNECTION_ERROR');
    expect(error.message).toMatch(/^HTTP connection "api": refused /);
    expect(error.message).toMatch(message);
  });

  it('a metadata address stays closed when only a workspace allow-lists it', async () => {
    const egress = new Egress({}).withWorkspaceAllow(['169.254.0.0/16', 'fd00:ec2::/32']);
    const http = egress.httpClient({ label: 'HTTP connection "api"' });
    clients.push(http);
    const error = await rejection(get(http, 'http://169.254.169.254/'));
    expect(error.message).toMatch(/it is a cloud metadata address; only the deployment allow-list/);
  });

  it('a redirect to loopback is refused at the hop, although the first server is allow-listed (host and port)', async () => {
    const http = client({ allow: `127.0.0.1:${redirector.port}` });
    const cases: [string, RegExp][] = [
      ['http://127.0.0.1:{Q}/secret', /refused to connect to 127\.0\.0\.1:\d+: it is a loopback address/],
      ['http://127.0.0.1/', /refused to connect to 127\.0\.0\.1:80: it is a loopback address/],
      ['http://[::ffff:127.0.0.1]:{Q}/', /the IPv4-mapped form of 127\.0\.0\.1, a loopback address/],
      ['http://loopback.lethe.test:{Q}/', /it resolves to 127\.0\.0\.1, which is a loopback address/],
      ['http://169.254.169.254/latest/meta-data/iam/', /it is a cloud metadata address/],
      ['http://2130706433:{Q}/', /127\.0\.0\.1:\d+: it is a loopback address/],
      ['http://user@127.0.0.1:{Q}/', /with user info/],
      ['file:///etc/passwd', /refused the scheme "file:"/],
    ];
    for (const [to, message] of cases) {
      const error = await rejection(get(http, `${redirector.url}/to/${encodeURIComponent(to)}`));
      expect(error, to).toBeInstanceOf(EgressRefusal);
      expect(error.message, to).toMatch(message);
      expect(error.message, to).toContain(`(redirected to by http://127.0.0.1:${redirector.port})`);
    }
    expect(redirector.requests).toHaveLength(cases.length);
  });

  it('nothing reached the servers behind the refused attempts', () => {
    expect(target.requests).toEqual([]);
    expect(other.requests).toEqual([]);
  });
});

describe('SSRF: what is allowed', () => {
  it('an allow-listed address and port is reached; the same address on another port is not', async () => {
    const http = client({ allow: `127.0.0.1:${P}` });
    const response = await get(http, 'http://127.0.0.1:{P}/ok');
    expect(response.status).toBe(200);
    expect(response.body.toString()).toBe('reached');
    const error = await rejection(get(http, `http://127.0.0.1:${other.port}/`));
    expect(error.message).toMatch(LOOPBACK);
    target.requests.length = 0;
  });

  it('an allow-listed network, an allow-listed name, and a workspace allow-list each open the way', async () => {
    const byNetwork = await get(client({ allow: '127.0.0.0/8' }), 'http://127.0.0.1:{P}/');
    expect(byNetwork.status).toBe(200);
    const byName = await get(client({ allow: `allowed.lethe.test:${P}` }), 'http://allowed.lethe.test:{P}/');
    expect(byName.status).toBe(200);
    // The name is allowed, not the address: the same address by another name stays closed.
    const error = await rejection(
      get(client({ allow: `allowed.lethe.test:${P}` }), 'http://loopback.lethe.test:{P}/'),
    );
    expect(error.message).toMatch(/it resolves to 127\.0\.0\.1, which is a loopback address/);
    const workspace = new Egress({ resolve: resolverUsingServers([dns.address]) }).withWorkspaceAllow([
      `127.0.0.1:${P}`,
    ]);
    const http = workspace.httpClient({ label: 'x' });
    clients.push(http);
    expect((await get(http, 'http://127.0.0.1:{P}/')).status).toBe(200);
    // Host names are kept for the Host header even though the connection goes to the checked address.
    expect(target.requests.map((r) => r.headers.host)).toEqual([
      `127.0.0.1:${P}`,
      `allowed.lethe.test:${P}`,
      `127.0.0.1:${P}`,
    ]);
    target.requests.length = 0;
  });

  it('the deny-list wins over the workspace, and deny-all + allow makes an allow-list-only deployment', async () => {
    const denied = new Egress({
      deny: '127.0.0.0/8',
      resolve: resolverUsingServers([dns.address]),
    }).withWorkspaceAllow([`127.0.0.1:${P}`]);
    const http = denied.httpClient({ label: 'x' });
    clients.push(http);
    expect((await rejection(get(http, 'http://127.0.0.1:{P}/'))).message).toMatch(
      /it is on the deployment's deny-list \(LETHE_EGRESS_DENY entry "127\.0\.0\.0\/8"\)/,
    );
    const only = client({ deny: '0.0.0.0/0, ::/0', allow: `127.0.0.1:${P}` });
    expect((await get(only, 'http://127.0.0.1:{P}/')).status).toBe(200);
    expect((await rejection(get(only, 'http://93.184.216.34/'))).message).toMatch(/deny-list/);
    target.requests.length = 0;
  });
});

describe('SSRF: no DNS rebinding', () => {
  it('connects to the address that was checked, resolving the name once', async () => {
    // First answer: 127.0.0.2 (allow-listed). Any later answer: 127.0.0.1 (not allow-listed),
    // where a second lookup at connect time would send the request.
    const rebinding = await startDnsServer({
      'rebind.lethe.test': (n) => (n === 1 ? { A: ['127.0.0.2'] } : { A: ['127.0.0.1'] }),
    });
    const allowedServer = await startHttpServer(
      (_request, response) => response.end('checked address'),
      '127.0.0.2',
    );
    try {
      const egress = new Egress({ allow: '127.0.0.2', resolve: resolverUsingServers([rebinding.address]) });
      const http = egress.httpClient({ label: 'x' });
      clients.push(http);
      const response = await http.send({
        method: 'GET',
        url: new URL(`http://rebind.lethe.test:${allowedServer.port}/`),
      });
      expect(response.body.toString()).toBe('checked address');
      expect(rebinding.queries.filter((q) => q.endsWith(' A'))).toEqual(['rebind.lethe.test A']);
      expect(allowedServer.requests[0]!.headers.host).toBe(`rebind.lethe.test:${allowedServer.port}`);
    } finally {
      await Promise.all([rebinding.close(), allowedServer.close()]);
    }
  });
});
