/**
 * Crash safety of webhook intake: a server under webhook load is killed (SIGKILL) or stopped
 * (SIGTERM) and restarted on the same store. Every webhook that got a 2xx must be accounted
 * for — its run succeeded, or is still queued, or is in the dead-letter queue — none lost and
 * none made twice for one Idempotency-Key; a graceful stop dead-letters nothing.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Store } from '../../src/store/index.js';

const root = join(import.meta.dirname, '..', '..');
const bin = join(root, 'bin', 'lethe.js');

const FLOW = `version: 1
name: intake
trigger: { webhook: { path: intake, respond: accepted } }
retry: { attempts: 3, backoff: fixed, delay: 100ms }
steps:
  - id: order
    input: { trigger: true }
  - id: work
    compute: { from: order, columns: { total: "$sum([1..2000])" } }
`;

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
    server.on('error', reject);
  });
}

interface Server {
  child: ChildProcess;
  url: string;
  exited: Promise<number | null>;
}

async function startServer(dataDir: string, port: number): Promise<Server> {
  const child = spawn(
    process.execPath,
    [bin, 'serve', '--port', String(port), '--data-dir', dataDir, '--concurrency', '2'],
    {
      env: {
        ...process.env,
        LETHE_SEED_EXAMPLES: '0',
        LETHE_LOG_LEVEL: 'warn',
        LETHE_SHUTDOWN_GRACE_MS: '2000',
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    },
  );
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 200; i++) {
    try {
      if ((await fetch(`${url}/readyz`)).status === 200) return { child, url, exited };
    } catch {
      // not listening yet
    }
    if (child.exitCode !== null) throw new Error(`the server exited while starting: ${stderr}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  child.kill('SIGKILL');
  throw new Error('the server did not become ready');
}

async function token(dataDir: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const maker = spawn(process.execPath, [
      bin,
      'token',
      'create',
      '--workspace',
      'default',
      '--role',
      'admin',
      '--data-dir',
      dataDir,
    ]);
    let out = '';
    maker.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    maker.on('exit', (code) =>
      code === 0 ? resolve(out.trim()) : reject(new Error(`token create exited ${code}`)),
    );
  });
}

/** Post webhooks with unique keys from `senders` loops until `target` were acknowledged. */
async function load(
  url: string,
  target: number,
  senders: number,
  prefix: string,
  onAck: (count: number) => void = () => undefined,
): Promise<Map<string, string>> {
  const acked = new Map<string, string>();
  let next = 0;
  let stop = false;
  const sender = async () => {
    while (!stop) {
      const key = `${prefix}-order-${next++}`;
      try {
        const response = await fetch(`${url}/hooks/default/intake`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'idempotency-key': key },
          body: JSON.stringify({ key, amount: next }),
          signal: AbortSignal.timeout(10_000),
        });
        if (response.status >= 200 && response.status < 300) {
          acked.set(key, ((await response.json()) as { runId: string }).runId);
          onAck(acked.size);
          if (acked.size >= target) stop = true;
        } else {
          await response.body?.cancel();
          // 503: the server is shutting down.
          if (response.status === 503) stop = true;
        }
      } catch {
        // The server went away mid-request: this request was not acknowledged.
        stop = true;
      }
    }
  };
  await Promise.all(Array.from({ length: senders }, sender));
  return acked;
}

/** Runs by status, read from the store's file (SQLite lets another process read while the server writes). */
async function counts(dataDir: string): Promise<Record<string, number>> {
  const store = await Store.open({ dataDir });
  try {
    return await store.runs.countByStatus();
  } finally {
    await store.close();
  }
}

/** Wait (bounded) until the server has no queued or running run left. */
async function drained(dataDir: string): Promise<void> {
  for (let i = 0; i < 600; i++) {
    const byStatus = await counts(dataDir);
    if ((byStatus.queued ?? 0) + (byStatus.running ?? 0) === 0) return;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error('runs did not drain');
}

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function scenario(signal: 'SIGKILL' | 'SIGTERM') {
  const dataDir = mkdtempSync(join(tmpdir(), 'lethe-crash-'));
  cleanups.push(() => rmSync(dataDir, { recursive: true, force: true }));
  const port = await freePort();
  let server = await startServer(dataDir, port);
  cleanups.push(() => {
    server.child.kill('SIGKILL');
  });
  const bearer = await token(dataDir);
  const put = await fetch(`${server.url}/api/v1/workspaces/default/flows/intake`, {
    method: 'PUT',
    headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/yaml' },
    body: FLOW,
  });
  expect(put.status).toBe(201);

  // Under load, stop the server while requests are in flight — several times, since each stop
  // hits the intake at a random moment.
  const acked = new Map<string, string>();
  for (let cycle = 0; cycle < 3; cycle++) {
    if (cycle > 0) server = await startServer(dataDir, port);
    // Stop it once a good number of requests were acknowledged, with many more in flight.
    const running = server;
    let stopped = false;
    const stopServer = () => {
      if (!stopped) running.child.kill(signal);
      stopped = true;
    };
    const acknowledged = await load(server.url, 1000, 32, `c${cycle}`, (count) => {
      if (count === 200) stopServer();
    });
    stopServer();
    for (const [key, runId] of acknowledged) acked.set(key, runId);
    const code = await server.exited;
    if (signal === 'SIGTERM') expect(code).toBe(0);
  }
  expect(acked.size).toBeGreaterThan(0);

  // Restart on the same store; repeat some acknowledged requests with their keys.
  server = await startServer(dataDir, port);
  const repeated = [...acked].slice(0, 25);
  for (const [key, runId] of repeated) {
    const response = await fetch(`${server.url}/hooks/default/intake`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'idempotency-key': key },
      body: JSON.stringify({ key }),
    });
    expect(response.status).toBe(202);
    expect(await response.json()).toEqual({ runId, duplicate: true });
  }
  await drained(dataDir);
  server.child.kill('SIGTERM');
  expect(await server.exited).toBe(0);

  const store = await Store.open({ dataDir });
  try {
    const runs = await store.db.selectFrom('runs').select(['id', 'idempotency_key', 'status']).execute();
    const byKey = new Map<string, typeof runs>();
    for (const run of runs) {
      const list = byKey.get(run.idempotency_key!) ?? [];
      list.push(run);
      byKey.set(run.idempotency_key!, list);
    }
    for (const [key, runId] of acked) {
      const found = byKey.get(key) ?? [];
      expect(found, `run of acknowledged webhook ${key}`).toHaveLength(1);
      expect(found[0]!.id).toBe(runId);
      expect(['succeeded', 'incomplete']).toContain(found[0]!.status);
    }
    for (const [key, list] of byKey) expect(list, `runs for key ${key}`).toHaveLength(1);
    return { acked: acked.size, runs };
  } finally {
    await store.close();
  }
}

describe('crash safety of webhook intake', () => {
  it('SIGKILL under load: every acknowledged webhook has exactly one run after restart', async () => {
    const { acked, runs } = await scenario('SIGKILL');
    const succeeded = runs.filter((run) => run.status === 'succeeded').length;
    expect(succeeded).toBeGreaterThanOrEqual(
      acked - runs.filter((run) => run.status === 'incomplete').length,
    );
  });

  it('SIGTERM under load: a graceful stop loses nothing and dead-letters nothing', async () => {
    const { acked, runs } = await scenario('SIGTERM');
    expect(runs.filter((run) => run.status === 'incomplete')).toEqual([]);
    expect(runs.filter((run) => run.status === 'succeeded').length).toBe(runs.length);
    expect(runs.length).toBeGreaterThanOrEqual(acked);
  });
});
