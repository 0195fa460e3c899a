/**
 * What the server benchmarks share: the intake flow, a request body, ports, waiting for a
 * server, load, stopping.
 */
import type { ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import autocannon from 'autocannon';

/** A webhook answered 202 once its run is durably queued; the run prices the order's lines. */
export const INTAKE_FLOW = `version: 1
name: intake
trigger: { webhook: { path: intake, respond: accepted } }
steps:
  - id: order
    input: { trigger: true }
  - id: priced
    compute: { from: order, columns: { total: "qty * price" } }
`;

/** ~1 KB of JSON: an order with a few lines. */
export function orderBody(): string {
  return JSON.stringify(
    Array.from({ length: 8 }, (_, i) => ({
      sku: `SKU-${1000 + i}`,
      category: i % 2 ? 'tea' : 'mugs',
      description: 'a line of an order, long enough to be realistic',
      qty: 1 + (i % 3),
      price: 4.5 + i,
    })),
  );
}

export function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolvePort(port));
    });
    server.on('error', reject);
  });
}

/** Poll `url` every 50 ms until it answers below 500. */
export async function waitFor(url: string, tries = 200): Promise<void> {
  for (let i = 0; i < tries; i++) {
    try {
      if ((await fetch(url)).status < 500) return;
    } catch {
      // not up yet
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${url} did not come up`);
}

/** SIGTERM, and wait for the exit. */
export async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await exited;
}

export interface Measured {
  requests: number;
  p50: number;
  p99: number;
  errors: number;
  non2xx: number;
}

/** POST `body` to `url` from `connections` connections for `seconds`. */
export async function postLoad(
  url: string,
  options: { connections: number; seconds: number; body: string; headers?: Record<string, string> },
): Promise<Measured> {
  const result = await autocannon({
    url,
    method: 'POST',
    connections: options.connections,
    duration: options.seconds,
    headers: { 'content-type': 'application/json', ...options.headers },
    body: options.body,
  });
  return {
    requests: result.requests.average,
    p50: result.latency.p50,
    p99: result.latency.p99,
    errors: result.errors + result.timeouts,
    non2xx: result.non2xx,
  };
}
