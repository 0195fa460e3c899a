import { describe, expect, it } from 'vitest';
import { pipeline, runInline } from '../helpers/engine.js';

async function distinct(values: unknown[], body = '', ...before: string[]) {
  const from = before.length === 0 ? 'source' : `s${before.length}`;
  const run = await runInline(
    pipeline(values, ...before, `distinct: { from: ${from}${body ? `, ${body}` : ''} }`),
  );
  if (run.result.status !== 'succeeded') throw run.result.error;
  return { columns: run.columns, records: run.records };
}

const rows = [
  { id: 1, k: 'a', v: 1 },
  { id: 2, k: 'b', v: 1 },
  { id: 3, k: 'a', v: 2 },
  { id: 4, k: null, v: 1 },
  { id: 5, k: 'b', v: 1 },
  { id: 6, k: null, v: 3 },
  { id: 7, k: 'c', v: 1 },
];

describe('distinct', () => {
  it.each([
    { body: 'by: [k]', ids: [1, 2, 4, 7] },
    { body: 'by: [k], keep: first', ids: [1, 2, 4, 7] },
    // The last of each set, at that row's own position.
    { body: 'by: [k], keep: last', ids: [3, 5, 6, 7] },
    { body: 'by: [k, v]', ids: [1, 2, 3, 4, 6, 7] },
    { body: 'by: [k, v], keep: last', ids: [1, 3, 4, 5, 6, 7] },
    { body: 'by: [v]', ids: [1, 3, 6] },
    { body: 'by: [v], keep: last', ids: [3, 6, 7] },
  ])('$body keeps rows $ids (null keys are one set)', async ({ body, ids }) => {
    const out = await distinct(rows, body);
    expect(out.columns).toEqual(['id', 'k', 'v']);
    expect(out.records.map((r) => r.id)).toEqual(ids);
    // Whole rows are kept, not just the key columns.
    for (const record of out.records) expect(record).toEqual(rows.find((r) => r.id === record.id));
  });

  it('compares all columns by default', async () => {
    const values = [
      { a: 1, b: 'x' },
      { a: 1, b: 'y' },
      { a: 1, b: 'x' },
      { a: null, b: null },
      { a: null, b: null },
      { a: 1, b: 'y' },
    ];
    expect((await distinct(values)).records).toEqual([
      { a: 1, b: 'x' },
      { a: 1, b: 'y' },
      { a: null, b: null },
    ]);
    expect((await distinct(values, 'keep: last')).records).toEqual([
      { a: 1, b: 'x' },
      { a: null, b: null },
      { a: 1, b: 'y' },
    ]);
  });

  it('keep: last keeps each survivor at its own position, with its own other values', async () => {
    const values = [
      { k: 'x', n: 1 },
      { k: 'y', n: 2 },
      { k: 'x', n: 3 },
      { k: 'z', n: 4 },
    ];
    expect((await distinct(values, 'by: [k], keep: last')).records).toEqual([
      { k: 'y', n: 2 },
      { k: 'x', n: 3 },
      { k: 'z', n: 4 },
    ]);
  });

  it('compares by value and type: 1 ≠ "1", "00123" ≠ 123, true ≠ "true", equal nested values are equal', async () => {
    const values = [
      { v: 1 },
      { v: '1' },
      { v: '00123' },
      { v: 123 },
      { v: true },
      { v: 'true' },
      { v: [1, 2] },
      { v: [1, 2] },
      { v: { a: 1 } },
      { v: { a: 1 } },
      { v: 1 },
    ];
    expect((await distinct(values)).records).toEqual([
      { v: 1 },
      { v: '1' },
      { v: '00123' },
      { v: 123 },
      { v: true },
      { v: 'true' },
      { v: [1, 2] },
      { v: { a: 1 } },
    ]);
    // The same through the composite key of two columns.
    const two = values.map((r) => ({ ...r, w: 'same' }));
    expect((await distinct(two, 'by: [v, w]')).records.map((r) => r.v)).toEqual([
      1,
      '1',
      '00123',
      123,
      true,
      'true',
      [1, 2],
      { a: 1 },
    ]);
  });

  it('does not normalise unicode: precomposed and combining é differ; Japanese and emoji keys work', async () => {
    const values = [
      { 名前: 'caf\u00e9' },
      { 名前: 'cafe\u0301' },
      { 名前: '😀' },
      { 名前: 'caf\u00e9' },
      { 名前: '😀' },
      { 名前: '東京' },
    ];
    const out = await distinct(values, 'by: [名前]');
    expect(out.columns).toEqual(['名前']);
    expect(out.records).toEqual([
      { 名前: 'caf\u00e9' },
      { 名前: 'cafe\u0301' },
      { 名前: '😀' },
      { 名前: '東京' },
    ]);
  });

  it('keeps the columns of an empty input', async () => {
    const out = await distinct(rows, 'by: [k], keep: last', 'filter: { from: source, where: "false" }');
    expect(out).toEqual({ columns: ['id', 'k', 'v'], records: [] });
  });

  it('fails on an unknown column with did-you-mean', async () => {
    const run = await runInline(pipeline(rows, 'distinct: { from: source, by: [v, kk] }'));
    expect(run.result.status).toBe('failed');
    expect(run.result.error?.code).toBe('COLUMN_UNKNOWN');
    expect(run.result.error?.message).toContain('no column "kk"');
    expect(run.result.error?.details.location?.path).toBe('steps[1].distinct.by[1]');
  });
});
