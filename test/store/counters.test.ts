import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { CounterKey, CounterReservation } from '../../src/counters/counter-store.js';
import type { Store } from '../../src/store/index.js';
import { runInline } from '../helpers/engine.js';
import { describeStores, newPlace, type StorePlace } from './support.js';

const key = (counter = 'c', workspace = 'w', period = ''): CounterKey => ({ workspace, counter, period });

/** A deterministic pseudo-random sequence (so a failure can be replayed). */
function sizes(n: number, seed: number, max = 9): number[] {
  let x = seed;
  return Array.from({ length: n }, () => {
    x = (x * 1103515245 + 12345) % 2 ** 31;
    return 1 + (x % max);
  });
}

/** Every number of the blocks, in order; and whether each block has the size asked. */
function numbersOf(blocks: CounterReservation[]): number[] {
  return blocks.flatMap((block) =>
    Array.from({ length: block.last - block.first + 1 }, (_, i) => block.first + i),
  );
}

const oneTo = (n: number) => Array.from({ length: n }, (_, i) => i + 1);

/** Reserve blocks of the given sizes all at once, spread over the stores. */
async function reserveAll(stores: Store[], counts: number[], counter = key()) {
  return Promise.all(counts.map((count, i) => stores[i % stores.length]!.counters.reserve(counter, count)));
}

function expectBlocks(blocks: CounterReservation[], counts: number[]) {
  blocks.forEach((block, i) => expect(block.last - block.first + 1).toBe(counts[i]));
  const total = counts.reduce((a, b) => a + b, 0);
  // The union is exactly 1..N: nothing skipped, nothing handed out twice.
  expect(numbersOf(blocks).sort((a, b) => a - b)).toEqual(oneTo(total));
}

const autonumberFlow = (rows: number) =>
  [
    'version: 1',
    'name: numbered',
    'steps:',
    '  - id: source',
    `    input: { values: ${JSON.stringify(Array.from({ length: rows }, (_, i) => ({ i })))} }`,
    '  - id: n',
    '    autonumber: { from: source, field: no, counter: invoices, format: "INV-{seq:4}" }',
    '  - id: out',
    '    output: { from: n, respond: true }',
    '',
  ].join('\n');

/** Fails after numbering (the filter meets a string on row 2), so the block is given back. */
const failingFlow = [
  'version: 1',
  'name: failing',
  'steps:',
  '  - id: source',
  '    input: { values: [{ v: 1 }, { v: "abc" }] }',
  '  - id: n',
  '    autonumber: { from: source, field: no, counter: invoices, format: "INV-{seq:4}" }',
  '  - id: bad',
  '    filter: { from: n, where: "v > 0" }',
  '  - id: out',
  '    output: { from: bad, respond: true }',
  '',
].join('\n');

await describeStores('autonumber counters in the store', (kind) => {
  const places: StorePlace[] = [];
  afterEach(async () => {
    await Promise.all(places.splice(0).map((place) => place.cleanup()));
  });
  const place = async () => {
    const made = await newPlace(kind);
    places.push(made);
    return made;
  };

  it('reserve hands out consecutive blocks; current names the last number', async () => {
    const store = await (await place()).open();
    expect(await store.counters.current(key())).toBe(0);
    expect(await store.counters.reserve(key(), 3)).toEqual({ first: 1, last: 3 });
    expect(await store.counters.reserve(key(), 1)).toEqual({ first: 4, last: 4 });
    expect(await store.counters.reserve(key(), 10)).toEqual({ first: 5, last: 14 });
    expect(await store.counters.current(key())).toBe(14);
    // Counters are per workspace, name and period.
    expect(await store.counters.reserve(key('c', 'other'), 2)).toEqual({ first: 1, last: 2 });
    expect(await store.counters.reserve(key('d'), 2)).toEqual({ first: 1, last: 2 });
    expect(await store.counters.reserve(key('c', 'w', '2026'), 2)).toEqual({ first: 1, last: 2 });
    expect(await store.counters.current(key())).toBe(14);
    for (const bad of [0, -1, 1.5, Number.NaN]) {
      await expect(store.counters.reserve(key(), bad)).rejects.toThrow(RangeError);
    }
    expect(await store.counters.current(key())).toBe(14);
  });

  it('release gives back only the last block (compare-and-set), so nothing is reused', async () => {
    const store = await (await place()).open();
    const a = await store.counters.reserve(key(), 3);
    const b = await store.counters.reserve(key(), 2);
    expect(await store.counters.release(key(), a)).toBe(false);
    expect(await store.counters.current(key())).toBe(5);
    expect(await store.counters.release(key(), b)).toBe(true);
    expect(await store.counters.current(key())).toBe(3);
    expect(await store.counters.release(key(), b)).toBe(false);
    expect(await store.counters.reserve(key(), 4)).toEqual({ first: 4, last: 7 });
    expect(await store.counters.release(key('c', 'other'), { first: 1, last: 7 })).toBe(false);
    expect(await store.counters.current(key('c', 'other'))).toBe(0);
  });

  it('50 concurrent reservations from one store: blocks are exactly 1..N', async () => {
    const store = await (await place()).open();
    const counts = sizes(50, 7);
    const blocks = await reserveAll([store], counts);
    expectBlocks(blocks, counts);
    expect(await store.counters.current(key())).toBe(counts.reduce((a, b) => a + b, 0));
  });

  it('concurrent reservations from two stores on one database: exactly 1..N', async () => {
    const shared = await place();
    const stores = [await shared.open(), await shared.open()];
    const counts = sizes(80, 11);
    const blocks = await reserveAll(stores, counts);
    expectBlocks(blocks, counts);
    // Releases racing with reservations never make a number come out twice.
    const more = sizes(40, 13);
    const taken: CounterReservation[] = [];
    const released: CounterReservation[] = [];
    await Promise.all(
      more.map(async (count, i) => {
        const store = stores[i % 2]!;
        const block = await store.counters.reserve(key(), count);
        if (i % 3 === 0 && (await store.counters.release(key(), block))) released.push(block);
        else taken.push(block);
      }),
    );
    const kept = numbersOf([...blocks, ...taken]).sort((a, b) => a - b);
    expect(new Set(kept).size).toBe(kept.length);
    expect(await stores[0]!.counters.current(key())).toBe(Math.max(0, ...kept));
  });

  it('parallel flows with autonumber number every row once, gap-free', async () => {
    const shared = await place();
    const stores = [await shared.open(), await shared.open()];
    const rows = sizes(16, 3, 12);
    const runs = await Promise.all(
      rows.map((count, i) =>
        runInline(autonumberFlow(count), { counters: stores[i % 2]!.counters, workspace: 'acme' }),
      ),
    );
    const numbers: number[] = [];
    runs.forEach((run, i) => {
      expect(run.result.status).toBe('succeeded');
      const mine = run.records.map((record) => Number(String(record.no).slice('INV-'.length)));
      expect(mine).toHaveLength(rows[i]!);
      // One run's numbers are one block, in row order.
      expect(mine).toEqual(oneTo(mine.length).map((n) => n + mine[0]! - 1));
      expect(run.records[0]!.no).toMatch(/^INV-\d{4}$/);
      numbers.push(...mine);
    });
    const total = rows.reduce((a, b) => a + b, 0);
    expect(numbers.sort((a, b) => a - b)).toEqual(oneTo(total));
    expect(await stores[0]!.counters.current(key('invoices', 'acme'))).toBe(total);
    // Another workspace has its own sequence.
    const elsewhere = await runInline(autonumberFlow(2), {
      counters: stores[0]!.counters,
      workspace: 'other',
    });
    expect(elsewhere.records.map((record) => record.no)).toEqual(['INV-0001', 'INV-0002']);

    // A failed run that was the last to take numbers gives them back: no gap.
    const failed = await runInline(failingFlow, { counters: stores[1]!.counters, workspace: 'acme' });
    expect(failed.result.status).toBe('failed');
    expect(await stores[0]!.counters.current(key('invoices', 'acme'))).toBe(total);
    const next = await runInline(autonumberFlow(1), { counters: stores[0]!.counters, workspace: 'acme' });
    expect(next.records.map((record) => record.no)).toEqual([`INV-${String(total + 1).padStart(4, '0')}`]);
  });
});

describe('autonumber counters in the store (SQLite, several processes)', () => {
  let place: StorePlace | undefined;
  afterEach(async () => {
    await place?.cleanup();
  });

  /** A process that opens the store, says "ready", and on "go" reserves blocks of the given sizes. */
  function reserver(script: string, dataDir: string, counts: number[]) {
    const child = spawn(process.execPath, ['--import', 'tsx', script, dataDir, ...counts.map(String)], {
      cwd: resolve(import.meta.dirname, '../..'),
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    let out = '';
    let notifyReady: () => void = () => undefined;
    const ready = new Promise<void>((resolveReady) => (notifyReady = resolveReady));
    child.stdout.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.startsWith('ready\n')) notifyReady();
    });
    const done = new Promise<{ blocks: CounterReservation[]; span: [number, number] }>(
      (resolveDone, reject) => {
        child.on('error', reject);
        child.on('close', (code) => {
          if (code !== 0) reject(new Error(`reserver exited with ${code}`));
          else
            resolveDone(
              JSON.parse(out.slice('ready\n'.length)) as {
                blocks: CounterReservation[];
                span: [number, number];
              },
            );
        });
      },
    );
    return { ready, go: () => child.stdin.end('go\n'), done };
  }

  it('processes reserving at once on one file get exactly 1..N', async () => {
    place = await newPlace('sqlite');
    const store = await place.open();
    const script = join(place.dataDir, 'reserve.mjs');
    const storeModule = resolve(import.meta.dirname, '../../src/store/index.ts');
    writeFileSync(
      script,
      `const { Store } = await import(${JSON.stringify(storeModule)});
const [dataDir, ...counts] = process.argv.slice(2);
const store = await Store.open({ dataDir });
process.stdout.write('ready\\n');
for await (const _ of process.stdin) break;
const blocks = [];
const started = Date.now();
for (const count of counts) blocks.push(await store.counters.reserve({ workspace: 'w', counter: 'c', period: '' }, Number(count)));
await store.close();
process.stdout.write(JSON.stringify({ blocks, span: [started, Date.now()] }));
`,
    );
    const childCounts = [sizes(150, 21), sizes(150, 22)];
    const children = childCounts.map((counts) => reserver(script, place!.dataDir, counts));
    await Promise.all(children.map((child) => child.ready));
    for (const child of children) child.go();
    const ownCounts = sizes(150, 23);
    const own: CounterReservation[] = [];
    const ownSpan: [number, number] = [Date.now(), 0];
    for (const count of ownCounts) own.push(await store.counters.reserve(key(), count));
    ownSpan[1] = Date.now();
    const childResults = await Promise.all(children.map((child) => child.done));
    expectBlocks(
      [...own, ...childResults.flatMap((result) => result.blocks)],
      [...ownCounts, ...childCounts.flat()],
    );
    // The processes really did reserve at the same time (otherwise this test proves little).
    const spans = [ownSpan, ...childResults.map((result) => result.span)];
    expect(Math.max(...spans.map((span) => span[0]))).toBeLessThan(Math.min(...spans.map((span) => span[1])));
  });
});
