import { describe, expect, it } from 'vitest';
import { pipeline, runInline } from '../helpers/engine.js';

async function unnest(values: unknown[], column: string, ...before: string[]) {
  const from = before.length === 0 ? 'source' : `s${before.length}`;
  const run = await runInline(
    pipeline(values, ...before, `unnest: { from: ${from}, column: ${JSON.stringify(column)} }`),
  );
  if (run.result.status !== 'succeeded') throw run.result.error;
  return { columns: run.columns, records: run.records };
}

describe('unnest', () => {
  it('gives one row per element, the element replacing the array in place', async () => {
    const out = await unnest(
      [
        { id: 1, tags: ['a', 'b'], after: 'x' },
        { id: 2, tags: ['c'], after: 'y' },
      ],
      'tags',
    );
    expect(out.columns).toEqual(['id', 'tags', 'after']);
    expect(out.records).toEqual([
      { id: 1, tags: 'a', after: 'x' },
      { id: 1, tags: 'b', after: 'x' },
      { id: 2, tags: 'c', after: 'y' },
    ]);
  });

  it('drops rows whose value is an empty array or null (or missing); a scalar stays one row', async () => {
    const out = await unnest(
      [
        { id: 1, v: [] },
        { id: 2, v: null },
        { id: 3 },
        { id: 4, v: 'scalar' },
        { id: 5, v: 0 },
        { id: 6, v: false },
        { id: 7, v: '' },
        { id: 8, v: [1] },
      ],
      'v',
    );
    expect(out.records).toEqual([
      { id: 4, v: 'scalar' },
      { id: 5, v: 0 },
      { id: 6, v: false },
      { id: 7, v: '' },
      { id: 8, v: 1 },
    ]);
  });

  it('an object value (not in an array) stays one row', async () => {
    const out = await unnest([{ id: 1, v: { a: 1, b: [2] } }], 'v');
    expect(out.records).toEqual([{ id: 1, v: { a: 1, b: [2] } }]);
  });

  it('keeps objects, nested arrays and nulls as elements, with their types', async () => {
    const out = await unnest(
      [{ id: 1, v: [{ sku: 'A', qty: 2 }, [1, 2], null, '00123', 123, true, { 名前: '😀' }] }],
      'v',
    );
    expect(out.records).toEqual([
      { id: 1, v: { sku: 'A', qty: 2 } },
      { id: 1, v: [1, 2] },
      { id: 1, v: null },
      { id: 1, v: '00123' },
      { id: 1, v: 123 },
      { id: 1, v: true },
      { id: 1, v: { 名前: '😀' } },
    ]);
  });

  it('objects as elements can be read by later expressions', async () => {
    const run = await runInline(
      pipeline(
        [
          {
            order: 'o1',
            lines: [
              { sku: 'A', qty: 2 },
              { sku: 'B', qty: 1 },
            ],
          },
          { order: 'o2', lines: [] },
        ],
        'unnest: { from: source, column: lines }',
        'compute: { from: s1, columns: { sku: "lines.sku", qty: "lines.qty" } }',
        'select: { from: s2, drop: [lines] }',
      ),
    );
    expect(run.result.status).toBe('succeeded');
    expect(run.columns).toEqual(['order', 'sku', 'qty']);
    expect(run.records).toEqual([
      { order: 'o1', sku: 'A', qty: 2 },
      { order: 'o1', sku: 'B', qty: 1 },
    ]);
  });

  it('handles unicode column names and values', async () => {
    const out = await unnest([{ 名前: '山田', タグ: ['東京', '😀', 'cafe\u0301'] }], 'タグ');
    expect(out.columns).toEqual(['名前', 'タグ']);
    expect(out.records).toEqual([
      { 名前: '山田', タグ: '東京' },
      { 名前: '山田', タグ: '😀' },
      { 名前: '山田', タグ: 'cafe\u0301' },
    ]);
  });

  it('keeps the columns of an empty input, and when every row is dropped', async () => {
    expect(await unnest([{ a: 1, v: [1] }], 'v', 'filter: { from: source, where: "false" }')).toEqual({
      columns: ['a', 'v'],
      records: [],
    });
    expect(
      await unnest(
        [
          { a: 1, v: [] },
          { a: 2, v: null },
        ],
        'v',
      ),
    ).toEqual({ columns: ['a', 'v'], records: [] });
  });

  it('does not change its input: another step reading the same table sees the arrays', async () => {
    const yaml = [
      'version: 1',
      'name: t',
      'steps:',
      '  - id: source',
      '    input: { values: [{ v: [1, 2] }] }',
      '  - id: flat',
      '    unnest: { from: source, column: v }',
      '  - id: both',
      '    union: { from: [flat, source] }',
      '  - id: out',
      '    output: { from: both, respond: true }',
      '',
    ].join('\n');
    expect((await runInline(yaml)).records).toEqual([{ v: 1 }, { v: 2 }, { v: [1, 2] }]);
  });

  it('fails on an unknown column with did-you-mean', async () => {
    const run = await runInline(pipeline([{ tags: [1] }], 'unnest: { from: source, column: tag }'));
    expect(run.result.status).toBe('failed');
    expect(run.result.error?.code).toBe('COLUMN_UNKNOWN');
    expect(run.result.error?.message).toContain('did you mean "tags"?');
  });
});
