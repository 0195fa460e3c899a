import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { pipeline, runInline, tempDir } from '../helpers/engine.js';

/** Run `filter` over inline values and return the responded table. */
async function filter(values: unknown[], where: string) {
  const run = await runInline(pipeline(values, `filter: { from: source, where: ${JSON.stringify(where)} }`));
  if (run.result.status !== 'succeeded') throw run.result.error;
  return { columns: run.columns, records: run.records };
}

async function filterFails(values: unknown[], where: string) {
  const run = await runInline(pipeline(values, `filter: { from: source, where: ${JSON.stringify(where)} }`));
  expect(run.result.status).toBe('failed');
  return run.result.error!;
}

const dir = tempDir();
afterAll(() => dir.cleanup());

describe('filter', () => {
  it('keeps the rows where the condition is true, in order, with all columns', async () => {
    const out = await filter(
      [
        { id: 1, status: 'paid', amount: 20 },
        { id: 2, status: 'open', amount: 50 },
        { id: 3, status: 'paid', amount: 5 },
        { id: 4, status: 'paid', amount: 11 },
      ],
      "status = 'paid' and amount > 10",
    );
    expect(out.columns).toEqual(['id', 'status', 'amount']);
    expect(out.records).toEqual([
      { id: 1, status: 'paid', amount: 20 },
      { id: 4, status: 'paid', amount: 11 },
    ]);
  });

  it.each([
    ['amount > 10', [1, 4]],
    ['amount = null', []],
    ['amount != 5', [1, 4]],
    ['$exists(amount)', [1, 2, 4]],
    ['$not($exists(amount))', [3]],
    ['amount > 10 or id = 3', [1, 3, 4]],
  ])('treats a null column as absent: %s', async (where, ids) => {
    const out = await filter(
      [
        { id: 1, amount: 20 },
        { id: 2, amount: 5 },
        { id: 3, amount: null },
        { id: 4, amount: 11 },
      ],
      where,
    );
    expect(out.records.map((r) => r.id)).toEqual(ids);
  });

  it('drops rows where the condition yields nothing (a key missing from a record is null)', async () => {
    const out = await filter(
      [{ id: 1, flag: true }, { id: 2 }, { id: 3, flag: false }, { id: 4, flag: null }],
      'flag',
    );
    expect(out.columns).toEqual(['id', 'flag']);
    expect(out.records).toEqual([{ id: 1, flag: true }]);
  });

  it('keeps the column list when no row survives', async () => {
    const out = await filter([{ a: 1, b: 'x' }], 'a > 100');
    expect(out.columns).toEqual(['a', 'b']);
    expect(out.records).toEqual([]);
  });

  it('keeps the column list of an empty input', async () => {
    const run = await runInline(
      pipeline(
        [{ a: 1, b: 'x' }],
        'filter: { from: source, where: "false" }',
        'filter: { from: s1, where: "a > 0" }',
      ),
    );
    expect(run.result.status).toBe('succeeded');
    expect(run.columns).toEqual(['a', 'b']);
    expect(run.records).toEqual([]);
  });

  it('accepts an input with no rows and no columns', async () => {
    const out = await filter([], 'true');
    expect(out).toEqual({ columns: [], records: [] });
  });

  it('compares by type: 1 is not "1"', async () => {
    const out = await filter([{ k: 1 }, { k: '1' }, { k: 2 }], 'k = 1');
    expect(out.records).toEqual([{ k: 1 }]);
    const text = await filter([{ k: 1 }, { k: '1' }, { k: 2 }], "k = '1'");
    expect(text.records).toEqual([{ k: '1' }]);
  });

  it('matches Japanese, emoji and combining marks exactly (no normalisation)', async () => {
    const values = [
      { 名前: '東京', v: 'caf\u00e9' },
      { 名前: '大阪', v: 'cafe\u0301' },
      { 名前: '😀', v: '👍🏽' },
    ];
    expect((await filter(values, "名前 = '東京'")).records).toEqual([values[0]]);
    expect((await filter(values, "v = 'cafe\u0301'")).records).toEqual([values[1]]);
    expect((await filter(values, "`名前` = '😀'")).records).toEqual([values[2]]);
    expect((await filter(values, '$length(v) = 5')).records).toEqual([values[1]]);
  });

  it('fails naming step, row and expression on a real type error', async () => {
    const error = await filterFails([{ a: 5 }, { a: 'abc' }], 'a > 3');
    expect(error.code).toBe('EXPRESSION_ERROR');
    expect(error.details.step).toBe('s1');
    expect(error.details.row).toBe(2);
    expect(error.details.expression).toBe('a > 3');
  });

  it('fails when the condition is not a boolean, naming the row', async () => {
    const error = await filterFails([{ a: true }, { a: 'yes' }], 'a');
    expect(error.code).toBe('EXPRESSION_ERROR');
    expect(error.details.row).toBe(2);
    expect(error.message).toContain('"yes"');
  });

  it('shortens a long value in the message without splitting an emoji', async () => {
    const long = `${'x'.repeat(36)}😀😀😀😀😀`;
    const error = await filterFails([{ a: long }], 'a');
    expect(error.message).toBe(`"where" must be true or false, but gave "${'x'.repeat(36)}..."`);
    const split = await filterFails([{ a: `${'x'.repeat(35)}😀😀😀😀😀` }], 'a');
    expect(split.message).toBe(`"where" must be true or false, but gave "${'x'.repeat(35)}😀..."`);
  });

  it('fails on an unknown column with a suggestion', async () => {
    const error = await filterFails([{ amount: 1 }], 'amuont > 0');
    expect(error.code).toBe('COLUMN_UNKNOWN');
    expect(error.message).toContain('did you mean "amount"?');
  });

  it('works on CSV types: leading zeros stay strings, numbers compare numerically', async () => {
    writeFileSync(join(dir.path, 'f.csv'), 'code,n\n00123,10\n123,9\n0042,100\n');
    const run = await runInline(
      [
        'version: 1',
        'name: t',
        'steps:',
        '  - id: source',
        '    input: { file: f.csv }',
        '  - id: a',
        `    filter: { from: source, where: "code = '00123' or n > 50" }`,
        '  - id: out',
        '    output: { from: a, respond: true }',
        '',
      ].join('\n'),
      { baseDir: dir.path },
    );
    expect(run.result.status).toBe('succeeded');
    expect(run.columns).toEqual(['code', 'n']);
    expect(run.records).toEqual([
      { code: '00123', n: 10 },
      { code: '0042', n: 100 },
    ]);
  });

  it('keeps nested values and rows untouched', async () => {
    const out = await filter(
      [
        { a: [1, 2], o: { x: 1 }, keep: true },
        { a: [], o: null, keep: false },
      ],
      'keep',
    );
    expect(out.records).toEqual([{ a: [1, 2], o: { x: 1 }, keep: true }]);
  });
});
