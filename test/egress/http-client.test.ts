/**
 * The egress HTTP client beyond the SSRF checks: a fixed source address, a proxy reached with
 * CONNECT tunnels to the checked address, redirect rules (method changes, limits), the answer
 * size limit, and cancellation. (The https → http downgrade is refused in
 * test/connectors/http-tls.test.ts, which has certificates.)
 */
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Egress, EgressRefusal, type EgressOptions } from '../../src/egress/index.js';
import { json, rejection, startHttpServer, type TestHttpServer } from './support.js';

let api: TestHttpServer;
let proxy: Server;
let proxyPort: number;
const tunnels: { target: string; auth: string | undefined; host: string | undefined }[] = [];

beforeAll(async () => {
  api = await startHttpServer((request, response) => {
    const url = new URL(request.url, 'http://x');
    if (url.pathname === '/see-other') {
      response.writeHead(303, { location: '/landed' });
      return response.end();
    }
    if (url.pathname === '/moved') {
      response.writeHead(301, { location: '/landed' });
      return response.end();
    }
    if (url.pathname === '/keep') {
      response.writeHead(307, { location: '/landed' });
      return response.end();
    }
    if (url.pathname === '/to-plain') {
      response.writeHead(302, { location: 'http://example.com/' });
      return response.end();
    }
    if (url.pathname === '/loop') {
      response.writeHead(302, { location: '/loop' });
      return response.end();
    }
    if (url.pathname === '/big') return json(response, 200, 'x'.repeat(10_000));
    if (url.pathname === '/slow') return void setTimeout(() => json(response, 200, {}), 5000);
    return json(response, 200, { method: request.method, body: request.body, from: request.remoteAddress });
  });
  // A CONNECT-only forward proxy that records the tunnels it opens.
  proxy = createServer((_request, response) => {
    response.writeHead(405);
    response.end();
  });
  proxy.on('connect', (request, client: Socket, head: Buffer) => {
    tunnels.push({
      target: request.url ?? '',
      auth: request.headers['proxy-authorization'],
      host: request.headers.host,
    });
    const [host, port] = (request.url ?? '').split(/:(?=\d+$)/);
    const upstream = connect(Number(port), host!.replace(/^\[|\]$/g, ''), () => {
      client.write('HTTP/1.1 200 Connection Established\r\n\r\n');
      upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
    });
    upstream.on('error', () => client.destroy());
    client.on('error', () => upstream.destroy());
  });
  await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
  proxyPort = (proxy.address() as AddressInfo).port;
});

afterAll(async () => {
  await api.close();
  proxy.closeAllConnections();
  await new Promise((resolve) => proxy.close(resolve));
});

function client(options: EgressOptions = {}) {
  return new Egress({ allow: `127.0.0.1:${api.port}`, ...options }).httpClient({
    label: 'HTTP connection "api"',
  });
}

async function send(
  options: EgressOptions,
  path: string,
  init: {
    method?: string;
    body?: string;
    signal?: AbortSignal;
    maxResponseBytes?: number;
    maxRedirects?: number;
  } = {},
) {
  const http = client(options);
  try {
    const response = await http.send({
      method: init.method ?? 'GET',
      url: new URL(`${api.url}${path}`),
      ...init,
    });
    return { ...response, json: JSON.parse(response.body.toString()) as Record<string, unknown> };
  } finally {
    await http.close();
  }
}

describe('egress HTTP client', () => {
  it('binds connections to the fixed source address', async () => {
    const answer = await send({ sourceAddress: '127.0.0.2' }, '/');
    expect(answer.json.from).toBe('127.0.0.2');
  });

  it('goes through the proxy by CONNECT to the checked address, with proxy credentials', async () => {
    tunnels.length = 0;
    const answer = await send({ proxy: `http://robot:s%40cret@127.0.0.1:${proxyPort}` }, '/via-proxy');
    expect(answer.status).toBe(200);
    expect(tunnels).toEqual([
      {
        target: `127.0.0.1:${api.port}`,
        host: `127.0.0.1:${api.port}`,
        auth: `Basic ${Buffer.from('robot:s@cret').toString('base64')}`,
      },
    ]);
    // The policy still decides: a destination it refuses never reaches the proxy.
    const error = await rejection(send({ proxy: `http://127.0.0.1:${proxyPort}`, allow: [] }, '/'));
    expect(error).toBeInstanceOf(EgressRefusal);
    expect(tunnels).toHaveLength(1);
  });

  it('follows 303 (and 301 after POST) with GET and no body; 307 keeps the method and body', async () => {
    expect((await send({}, '/see-other', { method: 'POST', body: '{"a":1}' })).json).toMatchObject({
      method: 'GET',
      body: '',
    });
    expect((await send({}, '/moved', { method: 'POST', body: '{"a":1}' })).json).toMatchObject({
      method: 'GET',
      body: '',
    });
    expect((await send({}, '/keep', { method: 'PUT', body: '{"a":1}' })).json).toMatchObject({
      method: 'PUT',
      body: '{"a":1}',
    });
  });

  it('bounds redirects', async () => {
    const error = await rejection(send({}, '/loop', { maxRedirects: 3 }));
    expect(error.message).toBe(`HTTP connection "api": more than 3 redirects, starting at ${api.url}`);
  });

  it('bounds the answer size', async () => {
    const error = await rejection(send({}, '/big', { maxResponseBytes: 1000 }));
    expect(error.message).toBe(`HTTP connection "api": the answer of ${api.url} is larger than 1000 bytes`);
  });

  it('stops at once when cancelled', async () => {
    const controller = new AbortController();
    setTimeout(() => controller.abort(), 100);
    const started = Date.now();
    const error = await rejection(send({}, '/slow', { signal: controller.signal }));
    expect(error.code).toBe('CANCELLED');
    expect(Date.now() - started).toBeLessThan(2000);
  });
});
