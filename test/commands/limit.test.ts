import { describe, expect, it } from 'vitest';
import { pipeline, runInline } from '../helpers/engine.js';

const rows = [
  { n: 1, 名前: '一' },
  { n: 2, 名前: '二' },
  { n: 3, 名前: null },
  { n: 4, 名前: '😀' },
];

async function limit(values: unknown[], body: string, ...before: string[]) {
  const from = before.length === 0 ? 'source' : `s${before.length}`;
  const run = await runInline(pipeline(values, ...before, `limit: { from: ${from}, ${body} }`));
  if (run.result.status !== 'succeeded') throw run.result.error;
  return { columns: run.columns, records: run.records };
}

describe('limit', () => {
  it.each([
    { body: 'count: 2', ns: [1, 2] },
    { body: 'count: 2, offset: 0', ns: [1, 2] },
    { body: 'count: 2, offset: 1', ns: [2, 3] },
    { body: 'count: 10', ns: [1, 2, 3, 4] },
    { body: 'count: 10, offset: 3', ns: [4] },
    { body: 'count: 0', ns: [] },
    { body: 'count: 0, offset: 2', ns: [] },
    { body: 'count: 1, offset: 4', ns: [] },
    { body: 'count: 5, offset: 100', ns: [] },
  ])('$body', async ({ body, ns }) => {
    const out = await limit(rows, body);
    expect(out.columns).toEqual(['n', '名前']);
    expect(out.records).toEqual(rows.filter((r) => ns.includes(r.n)));
  });

  it('keeps the rows whole (nulls, unicode, nested values, types)', async () => {
    const values = [{ a: '00123', b: null, c: [1, { x: '😀' }], d: false }, { a: 123 }];
    const out = await limit(values, 'count: 1');
    expect(out.records).toEqual([{ a: '00123', b: null, c: [1, { x: '😀' }], d: false }]);
  });

  it('keeps the columns of an empty input', async () => {
    const out = await limit(rows, 'count: 3, offset: 1', 'filter: { from: source, where: "false" }');
    expect(out).toEqual({ columns: ['n', '名前'], records: [] });
  });

  it.each([
    ['{ from: source }', /count/],
    ['{ from: source, count: -1 }', /count/],
    ['{ from: source, count: 1.5 }', /count/],
    ['{ from: source, count: 1, offset: -1 }', /offset/],
  ])('rejects %s at validation', async (body, message) => {
    await expect(runInline(pipeline(rows, `limit: ${body}`))).rejects.toThrow(message);
  });
});
