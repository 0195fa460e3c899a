import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { pipeline, runInline, tempDir } from '../helpers/engine.js';

async function sort(values: unknown[], by: string, ...before: string[]) {
  const from = before.length === 0 ? 'source' : `s${before.length}`;
  const run = await runInline(pipeline(values, ...before, `sort: { from: ${from}, by: ${by} }`));
  if (run.result.status !== 'succeeded') throw run.result.error;
  return { columns: run.columns, records: run.records };
}

/** Sort single-column rows and return the values. */
async function sortValues(values: unknown[], descending = false): Promise<unknown[]> {
  const out = await sort(
    values.map((v, i) => ({ v, i })),
    descending ? '[-v]' : '[v]',
  );
  return out.records.map((r) => r.v);
}

const dir = tempDir();
afterAll(() => dir.cleanup());

describe('sort', () => {
  it('sorts numbers numerically, ascending and descending', async () => {
    expect(await sortValues([10, 9, -1, 100, 2.5, 0])).toEqual([-1, 0, 2.5, 9, 10, 100]);
    expect(await sortValues([10, 9, -1, 100, 2.5, 0], true)).toEqual([100, 10, 9, 2.5, 0, -1]);
  });

  it('is stable: ties keep their input order, in both directions', async () => {
    const rows = [
      { k: 2, id: 'a' },
      { k: 1, id: 'b' },
      { k: 2, id: 'c' },
      { k: 1, id: 'd' },
      { k: 2, id: 'e' },
    ];
    expect((await sort(rows, '[k]')).records.map((r) => r.id)).toEqual(['b', 'd', 'a', 'c', 'e']);
    expect((await sort(rows, '[-k]')).records.map((r) => r.id)).toEqual(['a', 'c', 'e', 'b', 'd']);
  });

  it('puts nulls last in both directions, keeping their input order', async () => {
    const rows = [{ v: 2, id: 1 }, { v: null, id: 2 }, { v: 1, id: 3 }, { id: 4 }, { v: 3, id: 5 }];
    expect((await sort(rows, '[v]')).records.map((r) => r.id)).toEqual([3, 1, 5, 2, 4]);
    expect((await sort(rows, '[-v]')).records.map((r) => r.id)).toEqual([5, 1, 3, 2, 4]);
  });

  it('orders across types: numbers, strings, booleans, nested values; descending reverses (nulls still last)', async () => {
    const mixed = [true, 'b', [1], null, 2, { a: 1 }, 'a', false, 1];
    expect(await sortValues(mixed)).toEqual([1, 2, 'a', 'b', false, true, [1], { a: 1 }, null]);
    expect(await sortValues(mixed, true)).toEqual([{ a: 1 }, [1], true, false, 'b', 'a', 2, 1, null]);
  });

  it('compares strings by code point, not UTF-16 units or locale', async () => {
    // U+FF5E (a BMP character above the surrogates) sorts before U+1F600 (astral, a surrogate pair).
    expect(await sortValues(['😀', '\uFF5E', '\uE000', 'z', 'Z', 'é', 'e\u0301', 'a', '', 'ab'])).toEqual([
      '',
      'Z',
      'a',
      'ab',
      'e\u0301',
      'z',
      'é',
      '\uE000',
      '\uFF5E',
      '😀',
    ]);
    expect(await sortValues(['\uFF5E', '😀', '𠮷', '\uFFFF'], true)).toEqual([
      '𠮷',
      '😀',
      '\uFFFF',
      '\uFF5E',
    ]);
  });

  it('sorts Japanese by code point', async () => {
    expect(await sortValues(['東京', 'あい', 'アイ', 'ア', '大阪'])).toEqual([
      'あい',
      'ア',
      'アイ',
      '大阪',
      '東京',
    ]);
  });

  it('sorts by several keys, each with its own direction, and keeps all columns', async () => {
    const rows = [
      { region: 'n', total: 5, id: 1 },
      { region: 's', total: 7, id: 2 },
      { region: 'n', total: 9, id: 3 },
      { region: null, total: 9, id: 4 },
      { region: 's', total: 7, id: 5 },
      { region: 'n', total: null, id: 6 },
    ];
    const out = await sort(rows, '[-total, region]');
    expect(out.columns).toEqual(['region', 'total', 'id']);
    expect(out.records).toEqual([
      { region: 'n', total: 9, id: 3 },
      { region: null, total: 9, id: 4 },
      { region: 's', total: 7, id: 2 },
      { region: 's', total: 7, id: 5 },
      { region: 'n', total: 5, id: 1 },
      { region: 'n', total: null, id: 6 },
    ]);
  });

  it('leading-zero codes from CSV sort as strings; numeric columns numerically', async () => {
    writeFileSync(join(dir.path, 's.csv'), 'code,n\n0100,10\n099,9\n00123,100\n5,-2\n');
    const run = await runInline(
      [
        'version: 1',
        'name: t',
        'steps:',
        '  - id: source',
        '    input: { file: s.csv }',
        '  - id: a',
        '    sort: { from: source, by: [code] }',
        '  - id: b',
        '    sort: { from: source, by: [n] }',
        '  - id: u',
        '    union: { from: [a, b] }',
        '  - id: out',
        '    output: { from: u, respond: true }',
        '',
      ].join('\n'),
      { baseDir: dir.path },
    );
    expect(run.result.status).toBe('succeeded');
    expect(run.records.slice(0, 4).map((r) => r.code)).toEqual(['00123', '0100', '099', '5']);
    expect(run.records.slice(4).map((r) => r.n)).toEqual([-2, 9, 10, 100]);
  });

  it('keeps the columns of an empty input', async () => {
    const out = await sort([{ a: 1, b: 2 }], '[-b, a]', 'filter: { from: source, where: "false" }');
    expect(out).toEqual({ columns: ['a', 'b'], records: [] });
  });

  it('sorts on unicode column names', async () => {
    const out = await sort(
      [
        { 名前: 'b', '😀': 1 },
        { 名前: 'a', '😀': 2 },
      ],
      '["-😀"]',
    );
    expect(out.records).toEqual([
      { 名前: 'a', '😀': 2 },
      { 名前: 'b', '😀': 1 },
    ]);
    const byName = await sort([{ 名前: 'b' }, { 名前: 'a' }], '[名前]');
    expect(byName.records).toEqual([{ 名前: 'a' }, { 名前: 'b' }]);
  });

  it('fails on an unknown column with did-you-mean (also with "-")', async () => {
    for (const by of ['[amout]', '[-amout]']) {
      const run = await runInline(pipeline([{ amount: 1 }], `sort: { from: source, by: ${by} }`));
      expect(run.result.status).toBe('failed');
      expect(run.result.error?.code).toBe('COLUMN_UNKNOWN');
      expect(run.result.error?.message).toContain('no column "amout"');
      expect(run.result.error?.message).toContain('did you mean "amount"?');
    }
  });
});
