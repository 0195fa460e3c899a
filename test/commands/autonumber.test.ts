import { afterEach, describe, expect, it, vi } from 'vitest';
import { MemoryCounterStore } from '../../src/counters/memory-counter-store.js';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { pipeline, runInline, tempDir } from '../helpers/engine.js';

const key = (counter: string, period = '', workspace = 'default') => ({ workspace, counter, period });

/** Records `{ i: 1 }, { i: 2 }, …`. */
const numbered = (n: number) => Array.from({ length: n }, (_, i) => ({ i: i + 1 }));

async function autonumber(values: unknown[], body: string, store = new MemoryCounterStore(), yamlHead = '') {
  let yaml = pipeline(values, `autonumber: { from: source, ${body} }`);
  if (yamlHead) yaml = yaml.replace('name: test\n', `name: test\n${yamlHead}\n`);
  const run = await runInline(yaml, { counters: store });
  if (run.result.status !== 'succeeded') throw run.result.error;
  return { columns: run.columns, records: run.records };
}

afterEach(() => {
  vi.useRealTimers();
});

describe('autonumber', () => {
  it('numbers rows in order from 1; without a format the field is a number, appended', async () => {
    const out = await autonumber([{ name: 'a' }, { name: null }, { name: 'c' }], 'field: no, counter: c');
    expect(out.columns).toEqual(['name', 'no']);
    expect(out.records).toEqual([
      { name: 'a', no: 1 },
      { name: null, no: 2 },
      { name: 'c', no: 3 },
    ]);
  });

  it.each([
    ['{seq}', ['1', '2']],
    ['N-{seq:5}', ['N-00001', 'N-00002']],
    ['{seq:1}', ['1', '2']],
    ['{seq:0}/{seq}', ['1/1', '2/2']],
    ['{{seq}}={seq}', ['{seq}=1', '{seq}=2']],
    ['請求-{seq:3}-😀', ['請求-001-😀', '請求-002-😀']],
  ])('format %s', async (format, expected) => {
    const out = await autonumber(numbered(2), `field: no, counter: c, format: ${JSON.stringify(format)}`);
    expect(out.records.map((r) => r.no)).toEqual(expected);
  });

  it('a number wider than {seq:N} is not cut', async () => {
    const store = new MemoryCounterStore();
    await store.reserve(key('c'), 998);
    const out = await autonumber(numbered(3), 'field: no, counter: c, format: "{seq:3}"', store);
    expect(out.records.map((r) => r.no)).toEqual(['999', '1000', '1001']);
  });

  it('replaces an existing field in place, keeping the other values', async () => {
    const out = await autonumber(
      [
        { no: 'old', 名前: '山田' },
        { no: null, 名前: '😀' },
      ],
      'field: no, counter: c, format: "#{seq}"',
    );
    expect(out.columns).toEqual(['no', '名前']);
    expect(out.records).toEqual([
      { no: '#1', 名前: '山田' },
      { no: '#2', 名前: '😀' },
    ]);
  });

  it('accepts a unicode field name', async () => {
    const out = await autonumber([{ a: 1 }], 'field: 番号, counter: c');
    expect(out).toEqual({ columns: ['a', '番号'], records: [{ a: 1, 番号: 1 }] });
  });

  it('formats {yyyy}{mm}{dd} from the run start in the flow time zone (default UTC)', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    vi.setSystemTime(new Date('2024-12-31T20:30:00Z'));
    const format = 'format: "R-{yyyy}{mm}{dd}-{seq:3}"';
    const utc = await autonumber(numbered(1), `field: no, counter: c, ${format}`);
    expect(utc.records).toEqual([{ i: 1, no: 'R-20241231-001' }]);
    const tokyo = await autonumber(
      numbered(1),
      `field: no, counter: c, ${format}`,
      undefined,
      'timezone: Asia/Tokyo',
    );
    expect(tokyo.records).toEqual([{ i: 1, no: 'R-20250101-001' }]);
    const ny = await autonumber(
      numbered(1),
      `field: no, counter: c, ${format}`,
      undefined,
      'timezone: America/New_York',
    );
    expect(ny.records).toEqual([{ i: 1, no: 'R-20241231-001' }]);
    vi.setSystemTime(new Date('2025-03-01T03:00:00Z'));
    const la = await autonumber(
      numbered(1),
      `field: no, counter: c, format: "{yyyy}-{mm}-{dd}/{seq}"`,
      undefined,
      'timezone: America/Los_Angeles',
    );
    expect(la.records).toEqual([{ i: 1, no: '2025-02-28/1' }]);
  });

  it('reset restarts the sequence per period (in the flow time zone)', async () => {
    vi.useFakeTimers({ toFake: ['Date'] });
    const store = new MemoryCounterStore();
    const run = (reset: string) =>
      autonumber(
        numbered(2),
        `field: no, counter: c-${reset}, reset: ${reset}, format: "{yyyy}{mm}{dd}-{seq}"`,
        store,
        'timezone: Asia/Tokyo',
      );
    vi.setSystemTime(new Date('2024-12-31T10:00:00Z')); // 19:00 on Dec 31 in Tokyo
    expect((await run('daily')).records.map((r) => r.no)).toEqual(['20241231-1', '20241231-2']);
    expect((await run('never')).records.map((r) => r.no)).toEqual(['20241231-1', '20241231-2']);
    vi.setSystemTime(new Date('2024-12-31T14:59:59Z')); // still Dec 31 in Tokyo
    expect((await run('daily')).records.map((r) => r.no)).toEqual(['20241231-3', '20241231-4']);
    vi.setSystemTime(new Date('2024-12-31T15:00:00Z')); // Jan 1 in Tokyo
    expect((await run('daily')).records.map((r) => r.no)).toEqual(['20250101-1', '20250101-2']);
    expect((await run('yearly')).records.map((r) => r.no)).toEqual(['20250101-1', '20250101-2']);
    expect((await run('never')).records.map((r) => r.no)).toEqual(['20250101-3', '20250101-4']);
    expect(await store.current(key('c-daily', '2024-12-31'))).toBe(4);
    expect(await store.current(key('c-daily', '2025-01-01'))).toBe(2);
  });

  it('counters persist across runs with the same store, per counter name and workspace', async () => {
    const store = new MemoryCounterStore();
    const first = await autonumber(numbered(3), 'field: no, counter: orders', store);
    const second = await autonumber(numbered(2), 'field: no, counter: orders', store);
    const other = await autonumber(numbered(1), 'field: no, counter: invoices', store);
    expect(first.records.map((r) => r.no)).toEqual([1, 2, 3]);
    expect(second.records.map((r) => r.no)).toEqual([4, 5]);
    expect(other.records.map((r) => r.no)).toEqual([1]);
    const elsewhere = await runInline(
      pipeline(numbered(1), 'autonumber: { from: source, field: no, counter: orders }'),
      {
        counters: store,
        workspace: 'other',
      },
    );
    expect(elsewhere.records).toEqual([{ i: 1, no: 1 }]);
    expect(await store.current(key('orders'))).toBe(5);
    expect(await store.current(key('orders', '', 'other'))).toBe(1);
  });

  it('zero rows take no numbers and keep the columns (with the field)', async () => {
    const store = new MemoryCounterStore();
    const run = await runInline(
      pipeline(
        numbered(3),
        'filter: { from: source, where: "false" }',
        'autonumber: { from: s1, field: no, counter: c }',
      ),
      { counters: store },
    );
    expect(run.result.status).toBe('succeeded');
    expect(run.columns).toEqual(['i', 'no']);
    expect(run.records).toEqual([]);
    expect(await store.current(key('c'))).toBe(0);
    const next = await autonumber(numbered(1), 'field: no, counter: c', store);
    expect(next.records).toEqual([{ i: 1, no: 1 }]);
  });

  /** source → n (autonumber) → bad (a filter that fails on row 2) → out. */
  const failing = pipeline(
    [{ v: 1 }, { v: 'abc' }],
    'autonumber: { from: source, field: no, counter: c }',
    'filter: { from: s1, where: "v > 0" }',
  );

  it('a failed run gives its numbers back when nothing was taken after them', async () => {
    const store = new MemoryCounterStore();
    await autonumber(numbered(2), 'field: no, counter: c', store);
    const failed = await runInline(failing, { counters: store });
    expect(failed.result.status).toBe('failed');
    expect(failed.result.error?.details.step).toBe('s2');
    expect(await store.current(key('c'))).toBe(2);
    const next = await autonumber(numbered(2), 'field: no, counter: c', store);
    expect(next.records.map((r) => r.no)).toEqual([3, 4]);
  });

  it('a failed run keeps its numbers taken when an output depending on them has committed', async () => {
    const store = new MemoryCounterStore();
    const dir = tempDir();
    const yaml = [
      'version: 1',
      'name: t',
      'steps:',
      '  - id: source',
      '    input: { values: [{ v: 1 }, { v: "abc" }] }',
      '  - id: n',
      '    autonumber: { from: source, field: no, counter: c }',
      '  - id: out',
      '    output: { from: n, file: numbered.json }',
      '  - id: bad',
      '    filter: { from: out, where: "v > 0" }',
      '',
    ].join('\n');
    try {
      const failed = await runInline(yaml, { counters: store, baseDir: dir.path });
      expect(failed.result.status).toBe('failed');
      expect(failed.result.error?.details.step).toBe('bad');
      // The numbers were written to a file, so they are never handed out again.
      const written = JSON.parse(readFileSync(join(dir.path, 'numbered.json'), 'utf8')) as { no: number }[];
      expect(written.map((r) => r.no)).toEqual([1, 2]);
      expect(await store.current(key('c'))).toBe(2);
      const next = await autonumber(numbered(1), 'field: no, counter: c', store);
      expect(next.records.map((r) => r.no)).toEqual([3]);
    } finally {
      dir.cleanup();
    }
  });

  it('a response does not commit numbers: a failed run gives them back', async () => {
    const store = new MemoryCounterStore();
    const yaml = [
      'version: 1',
      'name: t',
      'steps:',
      '  - id: source',
      '    input: { values: [{ v: 1 }, { v: "abc" }] }',
      '  - id: n',
      '    autonumber: { from: source, field: no, counter: c }',
      '  - id: out',
      '    output: { from: n, respond: true }',
      '  - id: bad',
      '    filter: { from: out, where: "v > 0" }',
      '',
    ].join('\n');
    const failed = await runInline(yaml, { counters: store });
    expect(failed.result.status).toBe('failed');
    // A failed run delivers no response, so its numbers went nowhere and are given back.
    expect(failed.records).toEqual([]);
    expect(await store.current(key('c'))).toBe(0);
  });

  it('a failed block is not given back when numbers were taken after it (a gap, never a reuse)', async () => {
    const store = new MemoryCounterStore();
    const dir = tempDir();
    // n1 reserves 1–2 first, n2 then 3–4 and commits through `out`; `bad` fails after that.
    const yaml = [
      'version: 1',
      'name: t',
      'steps:',
      '  - id: source',
      '    input: { values: [{ v: 1 }, { v: "abc" }] }',
      '  - id: n1',
      '    autonumber: { from: source, field: no, counter: c }',
      '  - id: n2',
      '    autonumber: { from: source, field: no, counter: c }',
      '  - id: out',
      '    output: { from: n2, file: numbered.json }',
      '  - id: u',
      '    union: { from: [n1, out] }',
      '  - id: bad',
      '    filter: { from: u, where: "v > 0" }',
      '',
    ].join('\n');
    try {
      const failed = await runInline(yaml, { counters: store, baseDir: dir.path });
      expect(failed.result.status).toBe('failed');
      const written = JSON.parse(readFileSync(join(dir.path, 'numbered.json'), 'utf8')) as { no: number }[];
      expect(written.map((r) => r.no)).toEqual([3, 4]);
      expect(await store.current(key('c'))).toBe(4);
      const next = await autonumber(numbered(1), 'field: no, counter: c', store);
      expect(next.records.map((r) => r.no)).toEqual([5]);
    } finally {
      dir.cleanup();
    }
  });

  it('concurrent runs sharing a store get disjoint, gap-free blocks in row order', async () => {
    const store = new MemoryCounterStore();
    const sizes = [3, 1, 5, 2, 4, 7, 1, 6];
    const runs = await Promise.all(
      sizes.map((n) =>
        runInline(
          pipeline(
            numbered(n),
            'autonumber: { from: source, field: no, counter: shared, format: "{seq:4}" }',
          ),
          {
            counters: store,
          },
        ),
      ),
    );
    const blocks = runs.map((run, r) => {
      expect(run.result.status).toBe('succeeded');
      const numbers = run.records.map((record) => Number(record.no));
      expect(numbers).toHaveLength(sizes[r]!);
      // Each run's block is consecutive, in row order.
      numbers.forEach((n, i) => expect(n).toBe(numbers[0]! + i));
      return numbers;
    });
    const all = blocks.flat().sort((a, b) => a - b);
    const total = sizes.reduce((a, b) => a + b, 0);
    expect(all).toEqual(Array.from({ length: total }, (_, i) => i + 1));
    expect(await store.current(key('shared'))).toBe(total);
  });

  it('concurrent runs where some fail: survivors never share numbers', async () => {
    const store = new MemoryCounterStore();
    const good = pipeline(numbered(3), 'autonumber: { from: source, field: no, counter: c }');
    const runs = await Promise.all(
      [good, failing, good, failing, good].map((yaml) => runInline(yaml, { counters: store })),
    );
    expect(runs.map((r) => r.result.status)).toEqual([
      'succeeded',
      'failed',
      'succeeded',
      'failed',
      'succeeded',
    ]);
    const numbers = runs.flatMap((r) => r.records.map((record) => record.no as number));
    expect(numbers).toHaveLength(9);
    expect(new Set(numbers).size).toBe(9);
    expect(await store.current(key('c'))).toBeGreaterThanOrEqual(Math.max(...numbers));
  });

  it.each([
    ['"no-seq"', /must contain \{seq\}/],
    ['"{seq"', /unclosed "\{"/],
    ['"{seq}}"', /unmatched "\}"/],
    ['"{year}-{seq}"', /unknown placeholder "\{year\}"/],
  ])('rejects the format %s at validation', async (format, message) => {
    await expect(
      runInline(
        pipeline(numbered(1), `autonumber: { from: source, field: no, counter: c, format: ${format} }`),
      ),
    ).rejects.toThrow(message);
  });
});
