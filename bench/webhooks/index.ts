/**
 * `npm run bench -- webhooks`: webhook intake and end-to-end throughput of a Lethe server,
 * side by side with a bare Fastify server that only parses and answers (the floor), in the
 * same run, with autocannon at 50 connections.
 *
 *  (a) intake: POST ~1 KB of JSON to a `respond: accepted` webhook — the 202 comes only after
 *      the run, its input and the gateway log entry are committed (group commit, SQLite FULL);
 *  (b) end to end: webhook → compute → group → `respond: result`.
 *
 * Prints req/s, p50 and p99 latency, the ratios to the floor, and the server's RSS idle and
 * after load.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { freePort, INTAKE_FLOW, orderBody, postLoad, stop, waitFor, type Measured } from '../support.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..');

const RESULT_FLOW = `version: 1
name: totals
trigger: { webhook: { path: totals, respond: result, timeout: 10s } }
steps:
  - id: lines
    input: { trigger: true }
  - id: priced
    compute: { from: lines, columns: { amount: "qty * price" } }
  - id: per-category
    group: { from: priced, by: [category], aggregate: { lines: count(), amount: sum(amount) } }
  - id: answer
    output: { from: per-category, respond: true }
`;

function rssOf(child: ChildProcess): number {
  const status = readFileSync(`/proc/${child.pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0) * 1024;
}

function load(url: string, body: string): Promise<Measured> {
  return postLoad(url, { connections: 50, seconds: Number(process.env.BENCH_SECONDS ?? 10), body });
}

async function withLethe<T>(work: (url: string, child: ChildProcess) => Promise<T>): Promise<T> {
  const dataDir = mkdtempSync(join(tmpdir(), 'lethe-bench-'));
  const port = await freePort();
  const child = spawn(
    process.execPath,
    [join(root, 'bin', 'lethe.js'), 'serve', '--port', String(port), '--data-dir', dataDir],
    {
      env: { ...process.env, LETHE_SEED_EXAMPLES: '0', LETHE_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'ignore', 'inherit'],
    },
  );
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitFor(`${url}/healthz`);
    const token = await new Promise<string>((resolveToken, reject) => {
      const maker = spawn(process.execPath, [
        join(root, 'bin', 'lethe.js'),
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
        code === 0 ? resolveToken(out.trim()) : reject(new Error('token create failed')),
      );
    });
    for (const [name, flow] of [
      ['intake', INTAKE_FLOW],
      ['totals', RESULT_FLOW],
    ]) {
      const response = await fetch(`${url}/api/v1/workspaces/default/flows/${name}`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/yaml' },
        body: flow,
      });
      if (response.status >= 300) throw new Error(`could not store flow ${name}: ${await response.text()}`);
    }
    return await work(url, child);
  } finally {
    await stop(child);
    rmSync(dataDir, { recursive: true, force: true });
  }
}

async function withBare<T>(mode: 'accept' | 'result', work: (url: string) => Promise<T>): Promise<T> {
  const port = await freePort();
  const child = spawn(process.execPath, [join(here, 'bare-server.mjs'), mode, String(port)], {
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const url = `http://127.0.0.1:${port}`;
  try {
    await waitFor(`${url}/nope`);
    return await work(url);
  } finally {
    await stop(child);
  }
}

const fmt = (n: number) => Math.round(n).toLocaleString('en-US');
const mb = (bytes: number) => `${Math.round(bytes / 1048576)} MB`;

export async function webhooksBenchmark(): Promise<void> {
  const body = orderBody();
  console.log(
    `webhooks benchmark: 50 connections, ${process.env.BENCH_SECONDS ?? 10} s each, body ${body.length} bytes`,
  );
  console.log(`node ${process.version}, ${(await import('node:os')).cpus().length} cores\n`);

  const bareAccept = await withBare('accept', (url) => load(`${url}/hooks/default/intake`, body));
  const bareResult = await withBare('result', (url) => load(`${url}/hooks/default/totals`, body));
  // Each Lethe case on a fresh server, so that (b) does not wait behind (a)'s queued runs.
  const intake = await withLethe(async (url, child) => {
    const idle = rssOf(child);
    const measured = await load(`${url}/hooks/default/intake`, body);
    return { idle, measured, after: rssOf(child) };
  });
  const endToEnd = await withLethe(async (url, child) => {
    const measured = await load(`${url}/hooks/default/totals`, body);
    return { measured, after: rssOf(child) };
  });
  const lethe = {
    idle: intake.idle,
    intake: intake.measured,
    afterIntake: intake.after,
    endToEnd: endToEnd.measured,
    afterAll: endToEnd.after,
  };

  const rows = [
    ['(a) intake, bare Fastify', bareAccept],
    ['(a) intake, Lethe (durable)', lethe.intake],
    ['(b) end to end, bare Fastify', bareResult],
    ['(b) end to end, Lethe', lethe.endToEnd],
  ] as const;
  console.log('case                              req/s    p50 ms   p99 ms   errors  non-2xx');
  for (const [name, m] of rows) {
    console.log(
      `${name.padEnd(32)} ${fmt(m.requests).padStart(7)} ${String(m.p50).padStart(8)} ${String(m.p99).padStart(8)} ${String(m.errors).padStart(8)} ${String(m.non2xx).padStart(8)}`,
    );
  }
  console.log(
    `\nintake: Lethe does ${((100 * lethe.intake.requests) / bareAccept.requests).toFixed(1)}% of bare Fastify's req/s (target ≥ 40%), p99 ${lethe.intake.p99} ms (target < 20 ms)`,
  );
  console.log(
    `end to end: Lethe does ${((100 * lethe.endToEnd.requests) / bareResult.requests).toFixed(1)}% of bare Fastify's req/s, ${fmt(lethe.endToEnd.requests)} req/s (target ≥ 5,000)`,
  );
  console.log(
    `server RSS: idle ${mb(lethe.idle)}, after intake load ${mb(lethe.afterIntake)}, after end-to-end load ${mb(lethe.afterAll)} (targets: idle ≤ 100 MB, under load ≤ 200 MB)`,
  );
}
