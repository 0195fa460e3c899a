/**
 * The egress policy's parts: address classes, allow/deny entries, precedence, the deployment's
 * environment, the per-run scope that carries a workspace's allow-list, and the TCP helper
 * database connectors use.
 */
import { afterEach, describe, expect, it } from 'vitest';
import {
  checkTcpTarget,
  classifyAddress,
  currentEgress,
  Egress,
  egressFromEnvironment,
  embeddedIPv4,
  EgressPolicy,
  EgressRefusal,
  parseRules,
  runWithEgress,
} from '../../src/egress/index.js';
import { LetheError } from '../../src/errors/index.js';
import { postgresConnector } from '../../src/connectors/postgres/index.js';
import { pgAvailable, pgUrl } from '../helpers/services.js';
import { rejection, startHttpServer } from './support.js';

const noDns = async (host: string) => {
  throw Object.assign(new Error(`no DNS in this test (${host})`), { code: 'ENOTFOUND' });
};
const fixed =
  (answers: Record<string, string[]>) =>
  async (host: string): Promise<{ address: string; family: 4 | 6 }[]> =>
    (answers[host] ?? []).map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));

describe('address classes', () => {
  it.each([
    ['127.0.0.1', 'loopback'],
    ['10.255.0.1', 'private'],
    ['172.16.0.1', 'private'],
    ['172.32.0.1', undefined],
    ['192.168.0.1', 'private'],
    ['100.64.0.1', 'CGNAT'],
    ['100.128.0.1', undefined],
    ['169.254.0.1', 'link-local'],
    ['169.254.169.254', 'metadata'],
    ['168.63.129.16', 'metadata'],
    ['0.1.2.3', 'unspecified'],
    ['224.1.1.1', 'multicast'],
    ['240.0.0.1', 'reserved'],
    ['255.255.255.255', 'broadcast'],
    ['203.0.113.9', 'documentation'],
    ['8.8.8.8', undefined],
    ['::1', 'loopback'],
    ['::', 'unspecified'],
    ['fe80::1', 'link-local'],
    ['fe80::1%eth0', 'link-local'],
    ['fd00::1', 'unique-local'],
    ['fd00:ec2::254', 'metadata'],
    ['ff02::1', 'multicast'],
    ['2001:db8::1', 'documentation'],
    ['2001:0:4136:e378:8000:63bf:3fff:fdd2', 'tunnel'],
    ['::ffff:10.0.0.1', 'private'],
    ['::ffff:8.8.8.8', undefined],
    ['64:ff9b::a00:1', 'private'],
    ['64:ff9b::808:808', undefined],
    ['64:ff9b:1::1', 'tunnel'],
    ['2002:c0a8:101::1', 'private'],
    ['2002:808:808::1', undefined],
    ['::808:808', 'reserved'],
    ['2606:4700::1111', undefined],
  ])('%s → %s', (address, kind) => {
    expect(classifyAddress(address)?.kind).toBe(kind);
  });

  it('names the IPv4 address an IPv6 form carries', () => {
    expect(embeddedIPv4('::ffff:7f00:1')).toEqual({ ipv4: '127.0.0.1', form: 'IPv4-mapped' });
    expect(embeddedIPv4('2002:a9fe:a9fe::')).toEqual({ ipv4: '169.254.169.254', form: '6to4' });
    expect(embeddedIPv4('::1')).toBeUndefined();
    expect(embeddedIPv4('2606:4700::1111')).toBeUndefined();
    expect(classifyAddress('2002:a9fe:a9fe::')?.description).toBe(
      'the 6to4 form of 169.254.169.254, a cloud metadata address',
    );
  });
});

describe('allow and deny entries', () => {
  it('parses addresses, networks, names, ports and socket folders', () => {
    const rules = parseRules(
      '10.0.0.0/8, 127.0.0.1:8080 [::1]:443 [fd00::/8]:5432 fd00::/8 api.internal *.corp.example:443 /var/run/postgresql 127.1',
      'X',
    );
    expect(rules.map((rule) => rule.kind)).toEqual([
      'network',
      'network',
      'network',
      'network',
      'network',
      'host',
      'host',
      'socket',
      'network',
    ]);
    expect(rules.map((rule) => ('port' in rule ? rule.port : undefined))).toEqual([
      undefined,
      8080,
      443,
      5432,
      undefined,
      undefined,
      443,
      undefined,
      undefined,
    ]);
    expect(rules[6]).toMatchObject({ name: 'corp.example', wildcard: true });
  });

  it.each([
    ['10.0.0.0/33', /"\/33" is not a prefix length for IPv4/],
    ['10.0.0.1:0', /"0" is not a port/],
    ['10.0.0.1:99999', /"99999" is not a port/],
    ['[zz::1]', /"zz::1" is not an IP address/],
    ['bad!host', /not an address, a network or a host name/],
    ['*.*.example', /not an address, a network or a host name/],
  ])('refuses %s with a message naming the setting and the entry', (entry, message) => {
    let error: unknown;
    try {
      parseRules(entry, 'LETHE_EGRESS_ALLOW');
    } catch (caught) {
      error = caught;
    }
    expect(error).toBeInstanceOf(LetheError);
    expect((error as Error).message).toContain(`LETHE_EGRESS_ALLOW has an invalid entry "${entry}"`);
    expect((error as Error).message).toMatch(message);
  });

  it('matches wildcard names below the domain only, and ports exactly', async () => {
    const policy = new EgressPolicy({
      allow: '*.corp.example:443',
      resolve: fixed({ 'a.corp.example': ['10.0.0.5'], 'corp.example': ['10.0.0.6'] }),
    });
    await expect(policy.check('a.corp.example', 443)).resolves.toMatchObject({
      addresses: [{ address: '10.0.0.5' }],
    });
    await expect(policy.check('A.Corp.Example.', 443)).resolves.toMatchObject({
      servername: 'a.corp.example',
    });
    await expect(policy.check('a.corp.example', 80)).rejects.toThrow(
      /10\.0\.0\.5, which is a private address/,
    );
    await expect(policy.check('corp.example', 443)).rejects.toThrow(
      /10\.0\.0\.6, which is a private address/,
    );
  });

  it('a workspace may not open Unix sockets; the deployment may', () => {
    expect(() => new EgressPolicy({ workspaceAllow: ['/var/run/postgresql'] })).toThrow(
      /may not open Unix sockets/,
    );
    const policy = new EgressPolicy({ allow: '/var/run/postgresql' });
    expect(() => policy.checkSocket('/var/run/postgresql/')).not.toThrow();
    expect(() => policy.checkSocket('/var/run/postgresql/.s.PGSQL.5432')).not.toThrow();
    expect(() => new EgressPolicy().checkSocket('/tmp', 'PostgreSQL connection "db"')).toThrow(
      'PostgreSQL connection "db": refused to connect to the Unix socket /tmp: local sockets reach services on this machine; allow-list it with LETHE_EGRESS_ALLOW=/tmp if intended',
    );
  });

  it('public addresses are open by default; unresolvable names fail clearly (not as a refusal)', async () => {
    const policy = new EgressPolicy({
      resolve: fixed({ 'api.example': ['93.184.216.34', '2606:2800:220:1::1'] }),
    });
    const destination = await policy.check('api.example', 443);
    expect(destination.addresses.map((a) => a.address)).toEqual(['93.184.216.34', '2606:2800:220:1::1']);
    const error = await rejection(
      new EgressPolicy({ resolve: noDns }).check('nowhere.example', 443, 'HTTP connection "x"'),
    );
    expect(error).not.toBeInstanceOf(EgressRefusal);
    expect(error.message).toBe('HTTP connection "x": cannot resolve "nowhere.example" (ENOTFOUND)');
  });
});

describe('the deployment environment and the run scope', () => {
  const saved = { ...process.env };
  afterEach(() => {
    for (const name of Object.keys(process.env))
      if (name.startsWith('LETHE_EGRESS_')) delete process.env[name];
    Object.assign(
      process.env,
      Object.fromEntries(Object.entries(saved).filter(([name]) => name.startsWith('LETHE_EGRESS_'))),
    );
  });

  it('reads LETHE_EGRESS_* and parses again only when they change', async () => {
    const env = {
      LETHE_EGRESS_ALLOW: '127.0.0.1:1234',
      LETHE_EGRESS_SOURCE_ADDRESS: '127.0.0.1',
      LETHE_EGRESS_PROXY: 'http://proxy.internal:3128',
    };
    const egress = egressFromEnvironment(env);
    expect(egressFromEnvironment({ ...env })).toBe(egress);
    expect(egress.sourceAddress).toBe('127.0.0.1');
    expect(egress.proxy?.host).toBe('proxy.internal:3128');
    await expect(egress.check('127.0.0.1', 1234)).resolves.toMatchObject({ host: '127.0.0.1' });
    expect(egressFromEnvironment({ ...env, LETHE_EGRESS_ALLOW: '' })).not.toBe(egress);
    expect(() => egressFromEnvironment({ LETHE_EGRESS_ALLOW: '10.0.0.0/40' })).toThrow(
      /LETHE_EGRESS_ALLOW has an invalid entry "10\.0\.0\.0\/40"/,
    );
    expect(() => egressFromEnvironment({ LETHE_EGRESS_SOURCE_ADDRESS: 'eth0' })).toThrow(
      /source address "eth0" is not an IP address/,
    );
    expect(() => egressFromEnvironment({ LETHE_EGRESS_PROXY: 'socks5://p:1080' })).toThrow(
      /must be an http:\/\/ or https:\/\/ URL/,
    );
  });

  it('a run scope carries the workspace allow-list; outside it the deployment policy applies', async () => {
    process.env.LETHE_EGRESS_ALLOW = '';
    const workspace = egressFromEnvironment().withWorkspaceAllow(['127.0.0.1:4321']);
    await runWithEgress(workspace, async () => {
      await Promise.resolve();
      expect(currentEgress()).toBe(workspace);
      await expect(currentEgress().check('127.0.0.1', 4321)).resolves.toBeDefined();
    });
    expect(currentEgress()).not.toBe(workspace);
    await expect(currentEgress().check('127.0.0.1', 4321)).rejects.toThrow(/loopback/);
  });
});

describe('the TCP helper for database connectors', () => {
  it('returns the checked address to connect to and the name for TLS', async () => {
    const egress = new Egress({
      allow: 'db.internal:5432',
      resolve: fixed({ 'db.internal': ['10.9.8.7', '10.9.8.6'] }),
    });
    const target = await checkTcpTarget(egress, 'db.internal', 5432, 'PostgreSQL connection "db"');
    expect(target).toMatchObject({
      host: '10.9.8.7',
      servername: 'db.internal',
      addresses: ['10.9.8.7', '10.9.8.6'],
    });
    expect(target.socket).toBeUndefined();
    const literal = await checkTcpTarget(new Egress({ allow: '10.0.0.0/8' }), '10.1.1.1', 5432, 'x');
    expect(literal.servername).toBeUndefined();
    const closed = new Egress({ resolve: fixed({ 'db.internal': ['10.9.8.7'] }) });
    await expect(checkTcpTarget(closed, 'db.internal', 5432, 'PostgreSQL connection "db"')).rejects.toThrow(
      /PostgreSQL connection "db": refused to connect to "db\.internal" \(port 5432\): it resolves to/,
    );
  });

  it('binds sockets to the fixed source address', async () => {
    const server = await startHttpServer((_request, response) => response.end('ok'));
    try {
      const egress = new Egress({ allow: `127.0.0.1:${server.port}`, sourceAddress: '127.0.0.3' });
      const target = await checkTcpTarget(egress, '127.0.0.1', server.port, 'x');
      const socket = target.socket!();
      await new Promise<void>((resolve, reject) => {
        socket.once('error', reject);
        // node-postgres calls connect(port, host).
        socket.connect(target.port, target.host, () => {
          socket.end('GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n');
        });
        socket.once('close', () => resolve());
        socket.resume();
      });
      expect(server.requests[0]!.remoteAddress).toBe('127.0.0.3');
    } finally {
      await server.close();
    }
  });
});

// The test's PostgreSQL, when it is at an address (a name would need the system resolver).
const pgHost = new URL(pgUrl()).hostname.replace(/^\[|\]$/g, '');
const pgAtAddress = (await pgAvailable()) && classifyAddress(pgHost) !== undefined && !pgHost.includes(':');

describe.skipIf(!pgAtAddress)('the PostgreSQL connector goes through the egress layer', () => {
  const url = new URL(pgUrl());
  const port = Number(url.port || 5432);
  const connection = (host: string) => ({
    name: 'warehouse',
    type: 'postgres',
    settings: { url: pgUrl(), host },
    baseDir: process.cwd(),
  });

  it('is refused on a loopback or private address unless allow-listed, before any connection', async () => {
    const egress = new Egress({ resolve: fixed({ 'pg.lethe.test': [url.hostname] }) });
    const error = await rejection(
      runWithEgress(egress, () => postgresConnector.open(connection('pg.lethe.test'))),
    );
    expect(error).toBeInstanceOf(EgressRefusal);
    expect(error.message).toBe(
      `PostgreSQL connection "warehouse": refused to connect to "pg.lethe.test" (port ${port}): it resolves to ${url.hostname}, which is ${classifyAddress(url.hostname)!.description}; allow-list it with LETHE_EGRESS_ALLOW=${url.hostname}:${port} (or in the workspace's egress allow-list) if intended`,
    );
  });

  it('connects to the checked address of an allow-listed name (a name only the egress resolver knows)', async () => {
    const egress = new Egress({ resolve: fixed({ 'pg.lethe.test': [url.hostname] }) }).withWorkspaceAllow([
      `pg.lethe.test:${port}`,
    ]);
    const session = await runWithEgress(egress, () => postgresConnector.open(connection('pg.lethe.test')));
    try {
      const table = await session.read(
        { kind: 'query', sql: 'select 42 as answer', parameters: [] },
        { signal: new AbortController().signal, progress: () => undefined },
      );
      expect(table.rows).toEqual([[42]]);
    } finally {
      await session.close();
    }
  });
});
