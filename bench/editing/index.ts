/**
 * `npm run bench -- editing`: the data-editing benchmark. The same flow (filter, join, group
 * with four aggregates, sort, CSV out) runs through `lethe run` and, as the reference, as one
 * query in DuckDB, on the same generated files, each in its own process, at several sizes.
 * Prints wall times, the ratio and peak RSS, and checks that both produced the same totals.
 */
import { spawn } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'csv-parse/sync';
import { generateCustomers, generateOrders } from './generate.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '..', '..');
const dataDir = join(root, 'bench', 'data');
const outDir = join(root, 'bench', 'out');

interface Timing {
  wallMs: number;
  peakRssBytes: number;
  engineMs?: number;
}

function run(command: string, args: string[]): Promise<{ stdout: string; wallMs: number }> {
  return new Promise((resolvePromise, reject) => {
    const started = performance.now();
    const child = spawn(command, args, { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
    let stdout = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code) => {
      const wallMs = performance.now() - started;
      if (code === 0) resolvePromise({ stdout, wallMs });
      else reject(new Error(`${command} ${args.join(' ')} exited with ${code}\n${stdout}`));
    });
  });
}

async function runLethe(flow: string): Promise<Timing> {
  const { stdout, wallMs } = await run(process.execPath, [
    join(root, 'bin', 'lethe.js'),
    'run',
    flow,
    '--json',
  ]);
  const result = JSON.parse(stdout) as { status: string; durationMs: number; peakRssBytes: number };
  if (result.status !== 'succeeded') throw new Error(`lethe run failed: ${stdout}`);
  return { wallMs, peakRssBytes: result.peakRssBytes, engineMs: result.durationMs };
}

async function runDuckdb(orders: string, customers: string, out: string): Promise<Timing> {
  const { stdout, wallMs } = await run(process.execPath, [join(here, 'duckdb.mjs'), orders, customers, out]);
  const result = JSON.parse(stdout) as { ms: number; peakRssBytes: number };
  return { wallMs, peakRssBytes: result.peakRssBytes, engineMs: result.ms };
}

/** Both outputs must hold the same groups with the same figures (floating sums to 1e-9). */
function compareOutputs(lethePath: string, duckdbPath: string): string | undefined {
  const read = (path: string) =>
    new Map(
      (parse(readFileSync(path), { columns: true }) as Record<string, string>[]).map((row) => [
        `${row.region}|${row.segment}`,
        row,
      ]),
    );
  const a = read(lethePath);
  const b = read(duckdbPath);
  if (a.size !== b.size) return `group count differs: lethe ${a.size}, duckdb ${b.size}`;
  for (const [key, row] of a) {
    const other = b.get(key);
    if (!other) return `group ${key} missing from DuckDB's output`;
    for (const column of ['orders', 'total', 'average', 'largest']) {
      const x = Number(row[column]);
      const y = Number(other[column]);
      if (Math.abs(x - y) > 1e-9 * Math.max(1, Math.abs(y)))
        return `${key} ${column}: lethe ${x}, duckdb ${y}`;
    }
  }
  return undefined;
}

function median(values: number[]): number {
  const sorted = [...values].sort((x, y) => x - y);
  return sorted[Math.floor(sorted.length / 2)]!;
}

const mb = (bytes: number) => `${Math.round(bytes / 1048576)} MB`;
const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

export async function editingBenchmark(args: string[]): Promise<void> {
  const option = (name: string) => {
    const at = args.indexOf(name);
    return at === -1 ? undefined : args[at + 1];
  };
  const sizes = (option('--sizes') ?? '10000,100000,1000000').split(',').map(Number);
  const runs = Number(option('--runs') ?? 3);
  mkdirSync(dataDir, { recursive: true });
  mkdirSync(outDir, { recursive: true });
  const customers = join(dataDir, 'customers.csv');
  await generateCustomers(customers);
  const template = readFileSync(join(here, 'flow.template.yaml'), 'utf8');

  console.log(
    `editing benchmark: filter → join → group (4 aggregates) → sort → CSV; median of ${runs} runs each`,
  );
  console.log(`node ${process.version}, ${(await import('node:os')).cpus().length} cores\n`);
  const rows: string[][] = [];
  for (const size of sizes) {
    const orders = join(dataDir, `orders-${size}.csv`);
    process.stderr.write(`generating ${size} orders… `);
    await generateOrders(orders, size);
    process.stderr.write('done\n');
    const letheOut = join(outDir, `editing-${size}-lethe.csv`);
    const duckdbOut = join(outDir, `editing-${size}-duckdb.csv`);
    const flow = join(outDir, `editing-${size}.yaml`);
    writeFileSync(
      flow,
      template.replace('{{orders}}', orders).replace('{{customers}}', customers).replace('{{out}}', letheOut),
    );
    const lethe: Timing[] = [];
    const duckdb: Timing[] = [];
    for (let i = 0; i < runs; i++) {
      lethe.push(await runLethe(flow));
      duckdb.push(await runDuckdb(orders, customers, duckdbOut));
    }
    const mismatch = compareOutputs(letheOut, duckdbOut);
    if (mismatch) throw new Error(`results differ at ${size} rows: ${mismatch}`);
    const l = median(lethe.map((t) => t.wallMs));
    const d = median(duckdb.map((t) => t.wallMs));
    rows.push([
      size.toLocaleString('en-US'),
      seconds(l),
      seconds(median(lethe.map((t) => t.engineMs!))),
      seconds(d),
      seconds(median(duckdb.map((t) => t.engineMs!))),
      `${(l / d).toFixed(2)}×`,
      mb(Math.max(...lethe.map((t) => t.peakRssBytes))),
      mb(Math.max(...duckdb.map((t) => t.peakRssBytes))),
    ]);
  }
  const header = [
    'orders',
    'lethe wall',
    'lethe engine',
    'duckdb wall',
    'duckdb query',
    'ratio (wall)',
    'lethe peak RSS',
    'duckdb peak RSS',
  ];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) =>
    cells.map((c, i) => (i === 0 ? c.padStart(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  console.log(line(header));
  console.log(widths.map((w) => '─'.repeat(w)).join('  '));
  for (const row of rows) console.log(line(row));
  console.log('\nresults identical (groups, counts, sums, averages, maxima) at every size');
  console.log('target: ratio ≤ 3× at 1,000,000 rows, Lethe peak RSS ≤ 1.5 GB (goals, not tests)');
}
