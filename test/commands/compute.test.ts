import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { pipeline, runInline, tempDir } from '../helpers/engine.js';

async function compute(values: unknown[], columns: string) {
  const run = await runInline(pipeline(values, `compute: { from: source, columns: ${columns} }`));
  if (run.result.status !== 'succeeded') throw run.result.error;
  return { columns: run.columns, records: run.records };
}

async function computeFails(values: unknown[], columns: string) {
  const run = await runInline(pipeline(values, `compute: { from: source, columns: ${columns} }`));
  expect(run.result.status).toBe('failed');
  return run.result.error!;
}

const dir = tempDir();
afterAll(() => dir.cleanup());

describe('compute', () => {
  it('appends new columns in the order given', async () => {
    const out = await compute(
      [
        { price: 2, qty: 3 },
        { price: 1.5, qty: 4 },
      ],
      '{ total: "price * qty", label: "\'n=\' & qty" }',
    );
    expect(out.columns).toEqual(['price', 'qty', 'total', 'label']);
    expect(out.records).toEqual([
      { price: 2, qty: 3, total: 6, label: 'n=3' },
      { price: 1.5, qty: 4, total: 6, label: 'n=4' },
    ]);
  });

  it('evaluates left to right: later columns see earlier ones', async () => {
    const out = await compute([{ a: 1 }, { a: 10 }], '{ b: "a + 1", c: "b * 10", d: "c & \'/\' & b" }');
    expect(out.columns).toEqual(['a', 'b', 'c', 'd']);
    expect(out.records).toEqual([
      { a: 1, b: 2, c: 20, d: '20/2' },
      { a: 10, b: 11, c: 110, d: '110/11' },
    ]);
  });

  it('replacing a column keeps its position; its expression sees the old value, later ones the new', async () => {
    const out = await compute([{ x: 'k', a: 2, z: true }], '{ n: "a", a: "a * 100", m: "a + 1" }');
    expect(out.columns).toEqual(['x', 'a', 'z', 'n', 'm']);
    expect(out.records).toEqual([{ x: 'k', a: 200, z: true, n: 2, m: 201 }]);
  });

  it('an expression cannot read a column computed after it', async () => {
    const error = await computeFails([{ a: 1 }], '{ b: "c + 1", c: "a" }');
    expect(error.code).toBe('COLUMN_UNKNOWN');
    expect(error.message).toContain('"c"');
  });

  it.each([
    ['amount > 10', null],
    ['amount + 1', null],
    ['amount = null', false],
    ['$exists(amount)', false],
    ["$exists(amount) ? 'has' : 'none'", 'none'],
    ["amount & 'x'", 'x'],
  ])('a null column is absent: %s on null gives %j without error', async (expression, expected) => {
    const out = await compute([{ id: 1, amount: null }], `{ r: ${JSON.stringify(expression)} }`);
    expect(out.columns).toEqual(['id', 'amount', 'r']);
    expect(out.records).toEqual([{ id: 1, amount: null, r: expected }]);
  });

  it.each([
    ["a > 5 ? 'big'", null],
    ['$lookup(o, "missing")', null],
    ['items[$ > 100]', null],
    ['null', null],
  ])('an expression that yields nothing gives null: %s', async (expression, expected) => {
    const out = await compute([{ a: 1, o: { k: 1 }, items: [1, 2] }], `{ r: ${JSON.stringify(expression)} }`);
    expect(out.records[0]!.r).toBe(expected);
    expect(Object.keys(out.records[0]!)).toEqual(['a', 'o', 'items', 'r']);
  });

  it('a missing key in a record is null, so it is absent as well', async () => {
    const out = await compute([{ a: 1, b: 2 }, { a: 3 }], '{ s: "a + b" }');
    expect(out.records).toEqual([
      { a: 1, b: 2, s: 3 },
      { a: 3, b: null, s: null },
    ]);
  });

  it('keeps the column list for an empty input, including new columns', async () => {
    const run = await runInline(
      pipeline(
        [{ a: 1, b: 2 }],
        'filter: { from: source, where: "false" }',
        'compute: { from: s1, columns: { c: "a + b", a: "0" } }',
      ),
    );
    expect(run.result.status).toBe('succeeded');
    expect(run.columns).toEqual(['a', 'b', 'c']);
    expect(run.records).toEqual([]);
  });

  it('produces nested values (arrays and objects) and keeps them as values', async () => {
    const out = await compute(
      [{ a: 1, b: 'x', list: [3, 1, 2] }],
      '{ arr: "[a, b]", obj: "{ \'k\': a, \'v\': b }", sorted: "$sort(list)", sum: "$sum(list)" }',
    );
    expect(out.records).toEqual([
      { a: 1, b: 'x', list: [3, 1, 2], arr: [1, 'x'], obj: { k: 1, v: 'x' }, sorted: [1, 2, 3], sum: 6 },
    ]);
  });

  it('fails on a real type error, naming step, row, column and expression', async () => {
    const error = await computeFails([{ a: 1 }, { a: 2 }, { a: 'abc' }], '{ ok: "a", bad: "a * 2" }');
    expect(error.code).toBe('EXPRESSION_ERROR');
    expect(error.details.step).toBe('s1');
    expect(error.details.row).toBe(3);
    expect(error.details.expression).toBe('a * 2');
    expect(error.details.location?.path).toBe('steps[1].compute.columns.bad');
  });

  it('fails on an unknown column with did-you-mean', async () => {
    const error = await computeFails([{ amount: 1 }], '{ x: "amout * 2" }');
    expect(error.code).toBe('COLUMN_UNKNOWN');
    expect(error.message).toContain('did you mean "amount"?');
  });

  it('handles unicode names and values (Japanese, emoji, combining marks)', async () => {
    const out = await compute(
      [{ 名前: '山田', 'e\u0301': 'cafe\u0301', '😀': '👍🏽' }],
      '{ "挨拶": "\'こんにちは、\' & 名前", "len": "$length(`e\u0301`)", "絵": "`😀` & `😀`" }',
    );
    expect(out.columns).toEqual(['名前', 'e\u0301', '😀', '挨拶', 'len', '絵']);
    expect(out.records).toEqual([
      { 名前: '山田', 'e\u0301': 'cafe\u0301', '😀': '👍🏽', 挨拶: 'こんにちは、山田', len: 5, 絵: '👍🏽👍🏽' },
    ]);
  });

  it('keeps types: leading-zero strings stay strings, numbers stay numbers (CSV input)', async () => {
    writeFileSync(join(dir.path, 'c.csv'), 'code,n\n00123,7\n0042,8\n');
    const run = await runInline(
      [
        'version: 1',
        'name: t',
        'steps:',
        '  - id: source',
        '    input: { file: c.csv }',
        '  - id: c',
        '    compute: { from: source, columns: { same: "code", text: "code & \'\'", twice: "n * 2", asText: "$string(n)" } }',
        '  - id: out',
        '    output: { from: c, respond: true }',
        '',
      ].join('\n'),
      { baseDir: dir.path },
    );
    expect(run.result.status).toBe('succeeded');
    expect(run.columns).toEqual(['code', 'n', 'same', 'text', 'twice', 'asText']);
    expect(run.records).toEqual([
      { code: '00123', n: 7, same: '00123', text: '00123', twice: 14, asText: '7' },
      { code: '0042', n: 8, same: '0042', text: '0042', twice: 16, asText: '8' },
    ]);
  });

  // JavaScript objects list integer-like keys ("2024") first; flow documents keep their order.
  it('evaluates left to right even with integer-like column names', async () => {
    const out = await compute([{ a: 1 }], '{ total: "a + 1", "2024": "total * 2" }');
    expect(out.columns).toEqual(['a', 'total', '2024']);
    expect(out.records).toEqual([{ a: 1, total: 2, 2024: 4 }]);
  });

  it('reads $params', async () => {
    const yaml = [
      'version: 1',
      'name: t',
      'params: { rate: { type: number, default: 2 } }',
      'steps:',
      '  - id: source',
      '    input: { values: [{ a: 5 }] }',
      '  - id: c',
      '    compute: { from: source, columns: { b: "a * $params.rate" } }',
      '  - id: out',
      '    output: { from: c, respond: true }',
      '',
    ].join('\n');
    expect((await runInline(yaml)).records).toEqual([{ a: 5, b: 10 }]);
    expect((await runInline(yaml, { givenParams: { rate: '3' } })).records).toEqual([{ a: 5, b: 15 }]);
  });
});
