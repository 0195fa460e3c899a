/**
 * `npm run bench -- purge`: the retention engine purging 1,000,000 expired records from a
 * SQLite store while webhook intake runs, against the same intake without purging.
 *
 *  1. Seed: runs, their inputs and gateway log entries, 40–100 days old (expired under the
 *     default retention), written straight into the store's file (BENCH_PURGE_RECORDS, default
 *     1,000,000).
 *  2. Without purge: `lethe serve` (LETHE_PURGE=0) on that store; autocannon at 20
 *     connections POSTs ~1 KB of JSON to a `respond: accepted` webhook (the 202 comes after the
 *     run, its input and the gateway entry are committed) for BENCH_SECONDS (default 10).
 *  3. With purge: the same, on a server that starts purging as it starts listening; the same
 *     load runs while it purges. Then the purge is waited for to its end.
 *
 * Prints the purge rate (records/s) during the load and over the whole purge, intake req/s and
 * p99 with and without the purge (target: p99 with ≤ 2× without), and the file's size before
 * and after.
 */
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import Sqlite from 'better-sqlite3';
import { newId } from '../../src/store/ids.js';
import { Store } from '../../src/store/index.js';
import { freePort, INTAKE_FLOW, orderBody, postLoad, stop, waitFor, type Measured } from '../support.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..');
const DAY = 86_400_000;
const CONNECTIONS = 20;

/** Write `total` expired records: 40 % runs, 20 % their inputs, 40 % gateway log entries. */
async function seed(
  dataDir: string,
  total: number,
): Promise<{ runs: number; inputs: number; gateway: number }> {
  // Migrate (and make the default workspace) the way the server does, then write directly.
  const store = await Store.open({ dataDir });
  const workspace = await store.workspaces.ensure('default');
  await store.close();
  const db = new Sqlite(join(dataDir, 'lethe.db'));
  db.pragma('synchronous = OFF');
  const runs = Math.round(total * 0.4);
  const inputs = Math.round(total * 0.2);
  const gateway = total - runs - inputs;
  const now = Date.now();
  const insertRun =
    db.prepare(`insert into runs (id, workspace_id, flow_name, flow_version, trigger, privacy, status,
    attempt, max_attempts, queued_at, available_at, started_at, finished_at, duration_ms, rows_read, rows_written,
    error_code, error_step, idempotency_key, input_kept)
    values (?, ?, 'intake', 1, 'webhook', 'standard', 'succeeded', 1, 1, ?, ?, ?, ?, 3, 8, 0, null, null, null, 1)`);
  const insertInput = db.prepare(
    'insert into run_inputs (run_id, workspace_id, input, created_at) values (?, ?, ?, ?)',
  );
  const insertGateway =
    db.prepare(`insert into gateway_log (id, workspace_id, path, flow_name, received_at, method,
    content_type, size, status, run_id, body) values (?, ?, 'intake', 'intake', ?, 'POST', 'application/json', ?, 202, ?, ?)`);
  const body = orderBody();
  const input = JSON.stringify({ params: {}, payload: JSON.parse(body) as unknown });
  const age = (i: number, n: number) => now - 100 * DAY + Math.floor((60 * DAY * i) / n);
  const chunk = 50_000;
  const write = db.transaction((from: number, to: number, kind: 'runs' | 'gateway') => {
    for (let i = from; i < to; i++) {
      if (kind === 'runs') {
        const at = age(i, runs);
        const id = newId(at);
        insertRun.run(id, workspace.id, at, at, at, at + 3);
        if (i < inputs) insertInput.run(id, workspace.id, input, at);
      } else {
        const at = age(i, gateway);
        insertGateway.run(newId(at), workspace.id, at, body.length, newId(at), body);
      }
    }
  });
  for (let i = 0; i < runs; i += chunk) write(i, Math.min(runs, i + chunk), 'runs');
  for (let i = 0; i < gateway; i += chunk) write(i, Math.min(gateway, i + chunk), 'gateway');
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
  return { runs, inputs, gateway };
}

function cli(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<string> {
  return new Promise((resolveOut, reject) => {
    const child = spawn(process.execPath, [join(root, 'bin', 'lethe.js'), ...args], { env });
    let out = '';
    child.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => process.stderr.write(chunk));
    child.on('exit', (code) => (code === 0 ? resolveOut(out) : reject(new Error(`lethe ${args[0]} failed`))));
  });
}

function load(url: string, seconds: number): Promise<Measured> {
  return postLoad(`${url}/hooks/default/intake`, { connections: CONNECTIONS, seconds, body: orderBody() });
}

/** The server's purged-records counter, summed over classes. */
async function purged(url: string, token: string): Promise<number> {
  const text = await (
    await fetch(`${url}/metrics`, { headers: { authorization: `Bearer ${token}` } })
  ).text();
  let sum = 0;
  for (const match of text.matchAll(/^lethe_purged_records_total\{[^}]*\} (\d+(?:\.\d+)?)/gm))
    sum += Number(match[1]);
  return sum;
}

async function withServer<T>(
  dataDir: string,
  env: Record<string, string>,
  work: (url: string, token: string) => Promise<T>,
): Promise<T> {
  // The token first, so the server does not stop to say how to make one.
  const token = (
    await cli(['token', 'create', '--workspace', 'default', '--role', 'admin', '--data-dir', dataDir])
  ).trim();
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [join(root, 'bin', 'lethe.js'), 'serve', '--port', String(port), '--data-dir', dataDir],
    {
      env: { ...process.env, LETHE_SEED_EXAMPLES: '0', LETHE_LOG_LEVEL: 'warn', ...env },
      stdio: ['ignore', 'ignore', 'inherit'],
    },
  );
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitFor(`${url}/healthz`, 400);
    const response = await fetch(`${url}/api/v1/workspaces/default/flows/intake`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${token}`, 'content-type': 'application/yaml' },
      body: INTAKE_FLOW,
    });
    if (response.status >= 300) throw new Error(`could not store the flow: ${await response.text()}`);
    return await work(url, token);
  } finally {
    await stop(child);
  }
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
const mb = (bytes: number) => `${(bytes / 1048576).toFixed(0)} MB`;

/** Pages of the file that hold nothing (what incremental vacuum still has to give back). */
function freePages(dataDir: string): number {
  const db = new Sqlite(join(dataDir, 'lethe.db'), { readonly: true, fileMustExist: true });
  try {
    return Number(db.pragma('freelist_count', { simple: true }));
  } finally {
    db.close();
  }
}

function fileSize(dataDir: string): number {
  const file = join(dataDir, 'lethe.db');
  const size = (f: string) => (existsSync(f) ? statSync(f).size : 0);
  return size(file) + size(`${file}-wal`);
}

export async function purgeBenchmark(): Promise<void> {
  const total = Number(process.env.BENCH_PURGE_RECORDS ?? 1_000_000);
  const seconds = Number(process.env.BENCH_SECONDS ?? 10);
  const dataDir = mkdtempSync(join(tmpdir(), 'lethe-bench-purge-'));
  try {
    console.log(
      `purge benchmark: ${fmt(total)} expired records, intake at ${CONNECTIONS} connections for ${seconds} s`,
    );
    console.log(`node ${process.version}, ${(await import('node:os')).cpus().length} cores\n`);
    let started = performance.now();
    const seeded = await seed(dataDir, total);
    console.log(
      `seeded ${fmt(seeded.runs)} runs, ${fmt(seeded.inputs)} inputs, ${fmt(seeded.gateway)} gateway entries in ${((performance.now() - started) / 1000).toFixed(1)} s; file ${mb(fileSize(dataDir))}`,
    );

    const without = await withServer(dataDir, { LETHE_PURGE: '0' }, (url) => load(url, seconds));
    const sizeBefore = fileSize(dataDir);

    const withPurge = await withServer(
      dataDir,
      { LETHE_PURGE: '1', LETHE_PURGE_INITIAL_DELAY_MS: '0', LETHE_PURGE_INTERVAL_MS: '1000' },
      async (url, token) => {
        // The purge starts as the server listens: wait until it is under way, then load.
        started = performance.now();
        while ((await purged(url, token)) === 0 && performance.now() - started < 60_000)
          await new Promise((r) => setTimeout(r, 20));
        const atLoadStart = await purged(url, token);
        const loadStarted = performance.now();
        const measured = await load(url, seconds);
        const loadSeconds = (performance.now() - loadStarted) / 1000;
        const duringLoad = (await purged(url, token)) - atLoadStart;
        const stillRunning = duringLoad + atLoadStart < total;
        // Then the rest of the purge, alone.
        const deadline = performance.now() + 30 * 60_000;
        let done = await purged(url, token);
        while (done < total && performance.now() < deadline) {
          await new Promise((r) => setTimeout(r, 200));
          done = await purged(url, token);
        }
        const purgeSeconds = (performance.now() - started) / 1000;
        // Then the space comes back (incremental vacuum in small chunks, then checkpoints):
        // wait until no free page is left in the file and its size has settled.
        const reclaimStarted = performance.now();
        let last = fileSize(dataDir);
        let stableSince = performance.now();
        while (performance.now() - reclaimStarted < 10 * 60_000) {
          await new Promise((r) => setTimeout(r, 250));
          const size = fileSize(dataDir);
          if (size !== last) stableSince = performance.now();
          last = size;
          if (freePages(dataDir) === 0 && performance.now() - stableSince > 2000) break;
        }
        const reclaimSeconds = (stableSince - reclaimStarted) / 1000;
        return { measured, duringLoad, loadSeconds, stillRunning, done, purgeSeconds, reclaimSeconds };
      },
    );
    const sizeAfter = fileSize(dataDir);

    console.log('\ncase                         req/s    p50 ms   p99 ms   errors  non-2xx');
    for (const [name, m] of [
      ['intake, no purge', without],
      ['intake, purge running', withPurge.measured],
    ] as const) {
      console.log(
        `${name.padEnd(26)} ${fmt(m.requests).padStart(7)} ${String(m.p50).padStart(8)} ${String(m.p99).padStart(8)} ${String(m.errors).padStart(8)} ${String(m.non2xx).padStart(8)}`,
      );
    }
    const ratio = withPurge.measured.p99 / Math.max(1, without.p99);
    console.log(
      `\npurge rate while intake runs: ${fmt(withPurge.duringLoad / withPurge.loadSeconds)} records/s` +
        (withPurge.stillRunning ? '' : ' (the purge ended before the load did)'),
    );
    console.log(
      `whole purge: ${fmt(withPurge.done)} records in ${withPurge.purgeSeconds.toFixed(1)} s = ${fmt(withPurge.done / withPurge.purgeSeconds)} records/s`,
    );
    console.log(`intake p99 with purge ÷ without: ${ratio.toFixed(2)} (target ≤ 2)`);
    console.log(
      `store file (with -wal): ${mb(sizeBefore)} before the purge, ${mb(sizeAfter)} after (space given back within ${withPurge.reclaimSeconds.toFixed(1)} s of the purge's end)`,
    );
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}
