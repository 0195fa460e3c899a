/**
 * Zero telemetry (security issue, item 10; SPEC 7): the server opens no outbound connection
 * that no flow asked for. The test records, in this process, every TCP/TLS connect, every UDP
 * send and every name lookup while a server starts, takes API calls, answers a webhook, fires a
 * schedule, runs a flow that calls an HTTP API through a connection, idles, and shuts down.
 * Everything recorded must be one of: the test's own calls to the server, the store
 * (PostgreSQL, when it is the store), and the API the flow's connection names.
 *
 * The recorder is checked too: a deliberate connection made during the window is caught, so a
 * broken recorder cannot pass the test by seeing nothing.
 */
import dgram from 'node:dgram';
import dns from 'node:dns';
import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { json, startHttpServer, type TestHttpServer } from '../egress/support.js';
import { startTestServer, type StoreKind, type TestServer } from '../helpers/server.js';
import { pgAvailable, pgUrl } from '../helpers/services.js';

type Restore = () => void;

/** Every outbound attempt, as `tcp host:port`, `unix path`, `udp host:port` or `dns name`. */
function startRecording(): { events: string[]; stop: Restore } {
  const events: string[] = [];
  const restores: Restore[] = [];
  const patch = <T extends object, K extends keyof T>(target: T, key: K, wrap: (original: T[K]) => T[K]) => {
    const original = target[key];
    target[key] = wrap(original);
    restores.push(() => {
      target[key] = original;
    });
  };

  patch(
    net.Socket.prototype,
    'connect',
    (original) =>
      function (this: net.Socket, ...args: unknown[]) {
        let first = args[0];
        // net.connect() hands the socket its arguments already normalised: [options, callback].
        if (Array.isArray(first)) first = first[0];
        if (typeof first === 'object' && first !== null) {
          const options = first as { port?: number | string; host?: string; path?: string };
          events.push(
            options.path !== undefined
              ? `unix ${options.path}`
              : `tcp ${options.host ?? 'localhost'}:${options.port}`,
          );
        } else if (typeof first === 'number' || typeof first === 'string') {
          events.push(
            /^\d+$/.test(String(first))
              ? `tcp ${typeof args[1] === 'string' ? args[1] : 'localhost'}:${first}`
              : `unix ${first}`,
          );
        }
        return (original as (...a: unknown[]) => net.Socket).apply(this, args);
      } as never,
  );
  patch(
    dgram.Socket.prototype,
    'send',
    (original) =>
      function (this: dgram.Socket, ...args: unknown[]) {
        const port = args.find(
          (a, i) => i > 0 && typeof a === 'number' && a > 0 && a < 65536 && args[i + 1] !== undefined,
        );
        events.push(
          `udp ${String(args.find((a, i) => i > 1 && typeof a === 'string') ?? '?')}:${String(port ?? '?')}`,
        );
        return (original as (...a: unknown[]) => void).apply(this, args);
      } as never,
  );
  patch(
    dgram.Socket.prototype,
    'connect',
    (original) =>
      function (this: dgram.Socket, ...args: unknown[]) {
        events.push(`udp ${typeof args[1] === 'string' ? args[1] : 'localhost'}:${String(args[0])}`);
        return (original as (...a: unknown[]) => void).apply(this, args);
      } as never,
  );
  patch(
    dns,
    'lookup',
    (original) =>
      function (this: unknown, hostname: string, ...rest: unknown[]) {
        events.push(`dns ${hostname}`);
        return (original as (...a: unknown[]) => void).call(this, hostname, ...rest);
      } as never,
  );
  patch(
    dns.promises,
    'lookup',
    (original) =>
      function (this: unknown, hostname: string, ...rest: unknown[]) {
        events.push(`dns ${hostname}`);
        return (original as (...a: unknown[]) => Promise<unknown>).call(this, hostname, ...rest);
      } as never,
  );
  for (const method of [
    'resolve',
    'resolve4',
    'resolve6',
    'resolveAny',
    'resolveCname',
    'resolveTxt',
    'resolveSrv',
    'reverse',
  ] as const) {
    for (const target of [
      dns,
      dns.promises,
      dns.Resolver.prototype,
      dns.promises.Resolver.prototype,
    ] as Record<string, unknown>[]) {
      if (typeof target[method] !== 'function') continue;
      patch(
        target,
        method,
        (original) =>
          function (this: unknown, name: string, ...rest: unknown[]) {
            events.push(`dns ${name}`);
            return (original as (...a: unknown[]) => unknown).call(this, name, ...rest);
          },
      );
    }
  }
  return {
    events,
    stop: () => {
      for (const restore of restores.reverse()) restore();
    },
  };
}

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1', '::ffff:127.0.0.1']);

function hostPort(event: string): { host: string; port: number } | undefined {
  const match = /^tcp (.+):(\d+)$/.exec(event);
  return match ? { host: match[1]!.replace(/^\[|\]$/g, ''), port: Number(match[2]) } : undefined;
}

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const stores: StoreKind[] = ['sqlite', ...((await pgAvailable()) ? (['postgres'] as const) : [])];

describe.each(stores)('zero telemetry (%s store)', (store) => {
  let recording: ReturnType<typeof startRecording>;
  let server: TestServer;
  let api: TestHttpServer;
  const savedAllow = process.env.LETHE_EGRESS_ALLOW;
  let canaryPort: number;

  beforeAll(async () => {
    // The API a flow calls through a connection, and a canary no one may call.
    api = await startHttpServer((_request, response) => json(response, 200, [{ sku: 'TEA-01', qty: 3 }]));
    const canary = await startHttpServer((_request, response) => response.end());
    canaryPort = canary.port;
    await canary.close();
    process.env.LETHE_EGRESS_ALLOW = `127.0.0.1:${api.port}`;
    recording = startRecording();
    server = await startTestServer({ store });
  });

  afterAll(async () => {
    recording?.stop();
    await server?.close();
    await api?.close();
    if (savedAllow === undefined) delete process.env.LETHE_EGRESS_ALLOW;
    else process.env.LETHE_EGRESS_ALLOW = savedAllow;
  });

  it('starts, serves a webhook, fires a schedule, runs an HTTP flow, idles and stops without unasked connections', async () => {
    const put = (path: string, body: string, type = 'application/yaml') =>
      server.api(`/api/v1/workspaces/default${path}`, {
        method: 'PUT',
        headers: { 'content-type': type },
        body,
      });

    expect(
      (
        await put(
          '/flows/echo',
          'version: 1\nname: echo\ntrigger: { webhook: { path: echo, respond: result } }\nsteps:\n  - id: in\n    input: { trigger: true }\n  - id: out\n    output: { from: in, respond: true }\n',
        )
      ).status,
    ).toBe(201);
    const hook = await fetch(`${server.url}/hooks/default/echo`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '{"a":1}',
    });
    expect(hook.status).toBe(200);
    expect(await hook.json()).toEqual({ a: 1 });

    expect(
      (
        await put(
          '/flows/tick',
          'version: 1\nname: tick\ntrigger: { schedule: { cron: "* * * * * *" } }\nsteps:\n  - id: v\n    input: { values: [{ n: 1 }] }\n',
        )
      ).status,
    ).toBe(201);
    await until('a scheduled run', async () => {
      const page = (await (await server.api('/api/v1/workspaces/default/runs?flow=tick')).json()) as {
        items: { status: string }[];
      };
      return page.items.find((run) => run.status === 'succeeded');
    });
    await put(
      '/flows/tick',
      'version: 1\nname: tick\nsteps:\n  - id: v\n    input: { values: [{ n: 1 }] }\n',
    );

    const connection = await put(
      '/connections/shop',
      JSON.stringify({ type: 'http', settings: { baseUrl: api.url } }),
      'application/json',
    );
    expect(connection.status, await connection.clone().text()).toBe(201);
    expect(
      (
        await put(
          '/flows/stock',
          'version: 1\nname: stock\nsteps:\n  - id: in\n    input: { connection: shop, request: { path: /stock } }\n',
        )
      ).status,
    ).toBe(201);
    const started = (await (
      await server.api('/api/v1/workspaces/default/flows/stock/runs', {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: '{}',
      })
    ).json()) as { runId: string };
    const run = await until('the HTTP flow run', async () => {
      const detail = (await (
        await server.api(`/api/v1/workspaces/default/runs/${started.runId}`)
      ).json()) as { run: { status: string; rowsRead: number } };
      return detail.run.status === 'queued' || detail.run.status === 'running' ? undefined : detail.run;
    });
    expect(run).toMatchObject({ status: 'succeeded', rowsRead: 1 });
    expect(api.requests.map((r) => r.url)).toEqual(['/stock']);

    // Idle: any background timer that phones home gets its chance.
    await new Promise((resolve) => setTimeout(resolve, 1500));
    // The recorder sees what it must: a connection made now is caught.
    await new Promise<void>((resolve) => {
      const socket = net.connect(canaryPort, '127.0.0.1');
      socket.on('error', () => resolve());
      socket.on('connect', () => socket.destroy());
      socket.on('close', () => resolve());
    });
    expect(recording.events).toContain(`tcp 127.0.0.1:${canaryPort}`);

    await server.close();
    recording.stop();

    const serverPort = Number(new URL(server.url).port);
    const storeUrl = store === 'postgres' ? new URL(pgUrl()) : undefined;
    const allowed = (event: string): boolean => {
      // Looking up an address (Fastify looks up the one it listens on) asks no server.
      if (event.startsWith('dns ')) return net.isIP(event.slice(4)) !== 0;
      const target = hostPort(event);
      if (!target) return false;
      if (LOOPBACK.has(target.host) && target.port === serverPort) return true; // the test's own calls
      if (target.host === '127.0.0.1' && target.port === api.port) return true; // asked for by the flow
      if (storeUrl && target.host === storeUrl.hostname && target.port === Number(storeUrl.port || 5432))
        return true;
      return false;
    };
    const unasked = recording.events.filter(
      (event) => event !== `tcp 127.0.0.1:${canaryPort}` && !allowed(event),
    );
    expect(unasked).toEqual([]);
    // And the flow's connection was opened through the egress layer to the checked address.
    expect(recording.events).toContain(`tcp 127.0.0.1:${api.port}`);
  });
});
