/**
 * SQL-like nulls (SPEC 4.2): a null column is absent when the row is given to JSONata, so
 * `amount > 10` on a null amount yields nothing (null; a filter drops the row), `amount = null`
 * is never true, and `$exists(amount)` tests for null. And in a run: an expression reading a
 * column the input does not have is COLUMN_UNKNOWN with did-you-mean; a real type error names
 * the step, the row and the expression.
 */
import { describe, expect, it } from 'vitest';
import { formatError } from '../../src/errors/index.js';
import { Expression, NEEDS_JSONATA } from '../../src/expr/expression.js';
import type { Value } from '../../src/table/index.js';
import { pipeline, runInline } from '../helpers/engine.js';

/** Evaluate on both paths; they must agree, and the value is returned. */
async function both(text: string, columns: string[], row: Value[]): Promise<Value> {
  const bound = Expression.compile(text).bind(columns, { params: {} });
  const slow = await bound.evaluate(row);
  const quick = bound.trySync(row);
  if (quick !== NEEDS_JSONATA) expect(quick, `fast path of ${text}`).toEqual(slow);
  return slow;
}

describe('SQL-like nulls in expressions', () => {
  it.each([
    ['amount > 10', null, null],
    ['amount > 10', 20, true],
    ['amount > 10', 5, false],
    ['amount = null', null, false],
    ['amount = null', 5, false],
    ['amount != null', null, false],
    ['amount != null', 5, true],
    ['$exists(amount)', null, false],
    ['$exists(amount)', 0, true],
    ['$not($exists(amount))', null, true],
    ['$not($exists(amount))', 5, false],
    ['amount + 1', null, null],
    ['amount * 2 > 10', null, null],
    ['-amount', null, null],
    ['$string(amount)', null, null],
    ["amount & 'x'", null, 'x'],
    ['amount in [1, 2]', null, false],
    ["amount ? 'yes' : 'no'", null, 'no'],
    ["$exists(amount) ? amount : 'none'", null, 'none'],
    ['amount > 10 or true', null, true],
    ['amount > 10 and true', null, false],
    ['$boolean(amount)', null, null],
  ] as const)('%s with amount = %s gives %s', async (text, amount, expected) => {
    expect(await both(text, ['amount', 'name'], [amount, 'n'])).toBe(expected);
  });

  it('an empty string is not null', async () => {
    expect(await both('$exists(name)', ['name'], [''])).toBe(true);
    expect(await both("name = ''", ['name'], [''])).toBe(true);
  });

  it('a real type error is an error, not null', async () => {
    const bound = Expression.compile('"abc" > 3').bind([], {});
    await expect(bound.evaluate([])).rejects.toMatchObject({ code: 'EXPRESSION_ERROR' });
  });
});

describe('nulls and expressions in a run', () => {
  it('a filter drops rows whose condition is null', async () => {
    const run = await runInline(
      pipeline(
        [{ id: 1, amount: 5 }, { id: 2, amount: null }, { id: 3, amount: 20 }, { id: 4 }],
        'filter: { from: source, where: "amount > 10" }',
      ),
    );
    expect(run.result.status).toBe('succeeded');
    expect(run.records).toEqual([{ id: 3, amount: 20 }]);
  });

  it('$not($exists(col)) finds the nulls, and = null finds nothing', async () => {
    const values = [{ id: 1, amount: 5 }, { id: 2, amount: null }, { id: 3 }];
    const missing = await runInline(
      pipeline(values, 'filter: { from: source, where: "$not($exists(amount))" }'),
    );
    expect(missing.records.map((record) => record.id)).toEqual([2, 3]);
    const equal = await runInline(pipeline(values, 'filter: { from: source, where: "amount = null" }'));
    expect(equal.result.status).toBe('succeeded');
    expect(equal.records).toEqual([]);
  });

  it('compute gives null where an expression yields nothing', async () => {
    const run = await runInline(
      pipeline(
        [{ amount: null }, { amount: 12 }],
        'compute: { from: source, columns: { big: "amount > 10", double: "amount * 2", has: "$exists(amount)" } }',
      ),
    );
    expect(run.records).toEqual([
      { amount: null, big: null, double: null, has: false },
      { amount: 12, big: true, double: 24, has: true },
    ]);
  });

  it('reading a column the input lacks is COLUMN_UNKNOWN, with did-you-mean, at the expression', async () => {
    const text = pipeline([{ amount: 5 }, { amount: null }], 'filter: { from: source, where: "amout > 1" }');
    expect(text.split('\n')[6]).toBe('    filter: { from: source, where: "amout > 1" }');
    const run = await runInline(text);
    expect(run.result.status).toBe('failed');
    const error = run.result.error!;
    expect(error.code).toBe('COLUMN_UNKNOWN');
    expect(formatError(error).split('\n')).toEqual([
      'flow.yaml:7:36: steps[1].filter.where: step "s1" (filter): the expression reads column "amout", which the input does not have (did you mean "amount"?) (in expression "amout > 1")',
      "  hint: the input's columns are: amount; a column a source may omit can be declared in the input's types",
    ]);
  });

  it('$.col is a column read too', async () => {
    const run = await runInline(
      pipeline([{ amount: 5 }], 'compute: { from: source, columns: { x: "$.amont * 2" } }'),
    );
    expect(run.result.error?.code).toBe('COLUMN_UNKNOWN');
    expect(run.result.error?.message).toBe(
      'the expression reads column "amont", which the input does not have (did you mean "amount"?)',
    );
  });

  it('names inside lambdas and predicates are not row columns', async () => {
    const run = await runInline(
      pipeline(
        [{ items: [{ qty: 2 }, { qty: 3 }] }],
        'compute: { from: source, columns: { total: "$sum(items.qty)", big: "$count(items[qty > 2])", m: "$map(items, function($i){ $i.qty })" } }',
      ),
    );
    expect(run.result.status).toBe('succeeded');
    expect(run.records).toEqual([{ items: [{ qty: 2 }, { qty: 3 }], total: 5, big: 1, m: [2, 3] }]);
  });

  it('a real type error fails the run, naming the step, the row and the expression', async () => {
    const run = await runInline(
      pipeline([{ amount: 5 }, { amount: 'abc' }], 'filter: { from: source, where: "amount > 3" }'),
    );
    expect(run.result.status).toBe('failed');
    expect(run.result.error?.code).toBe('EXPRESSION_ERROR');
    expect(formatError(run.result.error!)).toBe(
      'flow.yaml:7:36: steps[1].filter.where: step "s1" (filter), row 2: The values "abc" and 3 either side of operator ">" must be of the same data type [T2009] (in expression "amount > 3")',
    );
  });

  it('a hostile expression fails the run with a limit error, and the engine limits apply', async () => {
    const run = await runInline(
      pipeline(
        [{ a: 1 }],
        'compute: { from: source, columns: { x: "($f := function($n){ $f($n + 1) }; $f(0))" } }',
      ),
      {
        limits: { timeoutMs: 100 },
      },
    );
    expect(run.result.status).toBe('failed');
    expect(run.result.error?.code).toBe('EXPRESSION_LIMIT');
    expect(run.result.error?.message).toBe('the expression ran longer than the limit of 100 ms [D1012]');
    expect(run.result.error?.details.row).toBe(1);
  });
});
