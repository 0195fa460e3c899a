import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { pipeline, runInline, tempDir } from '../helpers/engine.js';

async function group(values: unknown[], body: string, ...before: string[]) {
  const from = before.length === 0 ? 'source' : `s${before.length}`;
  const run = await runInline(pipeline(values, ...before, `group: { from: ${from}, ${body} }`));
  if (run.result.status !== 'succeeded') throw run.result.error;
  return { columns: run.columns, records: run.records };
}

async function groupFails(values: unknown[], body: string) {
  const run = await runInline(pipeline(values, `group: { from: source, ${body} }`));
  expect(run.result.status).toBe('failed');
  return run.result.error!;
}

const sales = [
  { region: 'north', rep: 'ann', amount: 10 },
  { region: 'south', rep: 'bo', amount: 5 },
  { region: null, rep: 'cy', amount: 7 },
  { region: 'north', rep: null, amount: null },
  { region: 'south', rep: 'bo', amount: 2.5 },
  { region: null, rep: 'dee', amount: 1 },
  { region: 'north', rep: 'eve', amount: 3 },
];

const dir = tempDir();
afterAll(() => dir.cleanup());

describe('group', () => {
  it('gives one row per group, groups in order of first appearance, null keys as one group', async () => {
    const out = await group(sales, 'by: [region], aggregate: { n: count(), total: sum(amount) }');
    expect(out.columns).toEqual(['region', 'n', 'total']);
    expect(out.records).toEqual([
      { region: 'north', n: 3, total: 13 },
      { region: 'south', n: 2, total: 7.5 },
      { region: null, n: 2, total: 8 },
    ]);
  });

  it('computes every aggregate per group, ignoring nulls where documented', async () => {
    const out = await group(
      sales,
      [
        'by: [region], aggregate: {',
        'rows: "count()", reps: "count(rep)", distinct_reps: "count_distinct(rep)",',
        'sum: "sum(amount)", avg: "avg(amount)", min: "min(amount)", max: "max(amount)",',
        'first: "first(rep)", last: "last(rep)", all: "concat(rep, \\"; \\")", plain: "concat(rep)" }',
      ].join(' '),
      'sort: { from: source, by: [rep] }',
    );
    // Sorted by rep first (nulls last), so north's rows come in order ann, eve, null.
    expect(out.columns).toEqual([
      'region',
      'rows',
      'reps',
      'distinct_reps',
      'sum',
      'avg',
      'min',
      'max',
      'first',
      'last',
      'all',
      'plain',
    ]);
    expect(out.records).toEqual([
      {
        region: 'north',
        rows: 3,
        reps: 2,
        distinct_reps: 2,
        sum: 13,
        avg: 6.5,
        min: 3,
        max: 10,
        first: 'ann',
        last: 'eve',
        all: 'ann; eve',
        plain: 'ann, eve',
      },
      {
        region: 'south',
        rows: 2,
        reps: 2,
        distinct_reps: 1,
        sum: 7.5,
        avg: 3.75,
        min: 2.5,
        max: 5,
        first: 'bo',
        last: 'bo',
        all: 'bo; bo',
        plain: 'bo, bo',
      },
      {
        region: null,
        rows: 2,
        reps: 2,
        distinct_reps: 2,
        sum: 8,
        avg: 4,
        min: 1,
        max: 7,
        first: 'cy',
        last: 'dee',
        all: 'cy; dee',
        plain: 'cy, dee',
      },
    ]);
  });

  it('an aggregate with no non-null input is null; count is 0', async () => {
    const out = await group(
      [
        { k: 'a', v: null },
        { k: 'a', v: null },
      ],
      'by: [k], aggregate: { rows: "count()", c: "count(v)", cd: "count_distinct(v)", s: "sum(v)", a: "avg(v)", mn: "min(v)", mx: "max(v)", f: "first(v)", l: "last(v)", j: "concat(v)" }',
    );
    expect(out.records).toEqual([
      { k: 'a', rows: 2, c: 0, cd: 0, s: null, a: null, mn: null, mx: null, f: null, l: null, j: null },
    ]);
  });

  it('by: [] on zero rows gives one row of empty aggregates', async () => {
    const out = await group(
      [{ v: 1 }],
      'by: [], aggregate: { rows: "count()", c: "count(v)", s: "sum(v)", a: "avg(v)", f: "first(v)", j: "concat(v)" }',
      'filter: { from: source, where: "false" }',
    );
    expect(out.columns).toEqual(['rows', 'c', 's', 'a', 'f', 'j']);
    expect(out.records).toEqual([{ rows: 0, c: 0, s: null, a: null, f: null, j: null }]);
  });

  it('by: [] makes one group of all rows', async () => {
    const out = await group(
      sales,
      'by: [], aggregate: { n: "count()", total: "sum(amount)", regions: "count_distinct(region)" }',
    );
    expect(out).toEqual({ columns: ['n', 'total', 'regions'], records: [{ n: 7, total: 28.5, regions: 2 }] });
  });

  it('by columns on zero rows give zero rows with the columns', async () => {
    const out = await group(
      sales,
      'by: [rep, region], aggregate: { n: "count()" }',
      'filter: { from: source, where: "false" }',
    );
    expect(out).toEqual({ columns: ['rep', 'region', 'n'], records: [] });
  });

  it('groups without aggregates are the distinct keys in order of first appearance', async () => {
    const out = await group(sales, 'by: [rep, region]');
    expect(out.columns).toEqual(['rep', 'region']);
    expect(out.records).toEqual([
      { rep: 'ann', region: 'north' },
      { rep: 'bo', region: 'south' },
      { rep: 'cy', region: null },
      { rep: null, region: 'north' },
      { rep: 'dee', region: null },
      { rep: 'eve', region: 'north' },
    ]);
  });

  it('multi-column keys with nulls: (null, x) is one group, distinct from (x, null)', async () => {
    const out = await group(
      [
        { a: null, b: 'x' },
        { a: 'x', b: null },
        { a: null, b: 'x' },
        { a: null, b: null },
        { a: 'x', b: null },
        { a: null, b: null },
      ],
      'by: [a, b], aggregate: { n: "count()" }',
    );
    expect(out.records).toEqual([
      { a: null, b: 'x', n: 2 },
      { a: 'x', b: null, n: 2 },
      { a: null, b: null, n: 2 },
    ]);
  });

  it('group keys compare by value and type (1 ≠ "1", "00123" ≠ 123, true ≠ "true")', async () => {
    const out = await group(
      [
        { k: 1 },
        { k: '1' },
        { k: 1 },
        { k: '00123' },
        { k: 123 },
        { k: true },
        { k: 'true' },
        { k: [1] },
        { k: [1] },
      ],
      'by: [k], aggregate: { n: "count()" }',
    );
    expect(out.records).toEqual([
      { k: 1, n: 2 },
      { k: '1', n: 1 },
      { k: '00123', n: 1 },
      { k: 123, n: 1 },
      { k: true, n: 1 },
      { k: 'true', n: 1 },
      { k: [1], n: 2 },
    ]);
  });

  it('count_distinct compares by value and type', async () => {
    const out = await group(
      [{ v: 1 }, { v: '1' }, { v: 1 }, { v: null }, { v: 'a' }, { v: [1] }, { v: [1] }],
      'by: [], aggregate: { n: "count_distinct(v)" }',
    );
    expect(out.records).toEqual([{ n: 4 }]);
  });

  it('min and max follow sort order across types: numbers < strings < booleans; strings by code point', async () => {
    const out = await group(
      [
        { k: 'mixed', v: 'b' },
        { k: 'mixed', v: 10 },
        { k: 'mixed', v: true },
        { k: 'mixed', v: 2 },
        { k: 'text', v: '\uFF5E' },
        { k: 'text', v: '😀' },
        { k: 'text', v: 'Z' },
        { k: 'num', v: 10 },
        { k: 'num', v: 9 },
        { k: 'num', v: -1.5 },
      ],
      'by: [k], aggregate: { mn: "min(v)", mx: "max(v)" }',
    );
    expect(out.records).toEqual([
      { k: 'mixed', mn: 2, mx: true },
      { k: 'text', mn: 'Z', mx: '😀' },
      { k: 'num', mn: -1.5, mx: 10 },
    ]);
  });

  it('first and last take the first and last non-null value in row order, of any type', async () => {
    const out = await group(
      [{ v: null }, { v: '00123' }, { v: 0 }, { v: false }, { v: null }],
      'by: [], aggregate: { f: "first(v)", l: "last(v)" }',
    );
    expect(out.records).toEqual([{ f: '00123', l: false }]);
  });

  it('concat renders numbers, booleans and nested values as text and keeps empty strings', async () => {
    const out = await group(
      [{ v: 1.5 }, { v: true }, { v: null }, { v: '' }, { v: [1, 'a'] }, { v: '東京' }],
      'by: [], aggregate: { j: \'concat(v, "|")\' }',
    );
    expect(out.records).toEqual([{ j: '1.5|true||[1,"a"]|東京' }]);
  });

  it('sum of a string fails naming the row and the column', async () => {
    const error = await groupFails(
      [{ v: 1 }, { v: 2 }, { v: 'abc' }],
      'by: [], aggregate: { total: "sum(v)" }',
    );
    expect(error.code).toBe('DATA_INVALID');
    expect(error.details.step).toBe('s1');
    expect(error.details.row).toBe(3);
    expect(error.details.column).toBe('v');
    expect(error.message).toContain('"abc"');
  });

  it.each([
    ['avg', '12'],
    ['sum', true],
    ['avg', [1]],
    ['sum', { n: 1 }],
  ])('%s of a non-number (%j) fails', async (fn, value) => {
    const error = await groupFails([{ v: 1 }, { v: value }], `by: [], aggregate: { x: "${fn}(v)" }`);
    expect(error.code).toBe('DATA_INVALID');
    expect(error.details.row).toBe(2);
    expect(error.details.column).toBe('v');
  });

  it('sums CSV numbers, but a leading-zero column is text and fails', async () => {
    writeFileSync(join(dir.path, 'g.csv'), 'code,n\n00123,1.5\n0042,2\n0042,\n');
    const yaml = (aggregate: string) =>
      [
        'version: 1',
        'name: t',
        'steps:',
        '  - id: source',
        '    input: { file: g.csv }',
        '  - id: g',
        `    group: { from: source, by: [code], aggregate: { ${aggregate} } }`,
        '  - id: out',
        '    output: { from: g, respond: true }',
        '',
      ].join('\n');
    const ok = await runInline(yaml('total: "sum(n)", c: "count(n)"'), { baseDir: dir.path });
    expect(ok.records).toEqual([
      { code: '00123', total: 1.5, c: 1 },
      { code: '0042', total: 2, c: 1 },
    ]);
    const bad = await runInline(yaml('total: "sum(code)"'), { baseDir: dir.path });
    expect(bad.result.status).toBe('failed');
    expect(bad.result.error?.details.row).toBe(1);
    expect(bad.result.error?.details.column).toBe('code');
  });

  it('groups unicode keys exactly (combining marks are not normalised)', async () => {
    const out = await group(
      [
        { 都市: '東京', '😀': 1 },
        { 都市: 'caf\u00e9', '😀': 2 },
        { 都市: 'cafe\u0301', '😀': 3 },
        { 都市: '東京', '😀': 4 },
      ],
      'by: [都市], aggregate: { 合計: "sum(`😀`)", 件数: "count()" }',
    );
    expect(out.columns).toEqual(['都市', '合計', '件数']);
    expect(out.records).toEqual([
      { 都市: '東京', 合計: 5, 件数: 2 },
      { 都市: 'caf\u00e9', 合計: 2, 件数: 1 },
      { 都市: 'cafe\u0301', 合計: 3, 件数: 1 },
    ]);
  });

  it('unknown columns fail with did-you-mean', async () => {
    const byError = await groupFails(sales, 'by: [regoin], aggregate: { n: "count()" }');
    expect(byError.code).toBe('COLUMN_UNKNOWN');
    expect(byError.message).toContain('did you mean "region"?');
    const aggError = await groupFails(sales, 'by: [region], aggregate: { n: "sum(amont)" }');
    expect(aggError.code).toBe('COLUMN_UNKNOWN');
    expect(aggError.message).toContain('did you mean "amount"?');
  });

  it.each([
    ['aggregate: { n: "median(amount)" }', /unknown aggregate function "median"/],
    ['aggregate: { n: "sum()" }', /sum\(\) needs a column/],
    ['aggregate: { n: "amount" }', /is not an aggregate/],
    ['aggregate: { n: \'sum(amount, ",")\' }', /only concat takes a separator/],
    ['aggregate: { region: "count()" }', /"region" is already a group column/],
  ])('rejects a bad aggregate at validation: %s', async (aggregate, message) => {
    await expect(
      runInline(pipeline(sales, `group: { from: source, by: [region], ${aggregate} }`)),
    ).rejects.toThrow(message);
  });
});
