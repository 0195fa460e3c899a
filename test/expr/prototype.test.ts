/**
 * Prototype safety: no expression may pollute Object.prototype, reach `process` or hand back a
 * function, whatever names it reads (`constructor`, `__proto__`…) and whatever objects it
 * builds ($merge, object constructors, the transform operator). Column names like `__proto__`
 * are ordinary data.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { LetheError } from '../../src/errors/index.js';
import { Expression, NEEDS_JSONATA } from '../../src/expr/expression.js';
import type { Value } from '../../src/table/index.js';
import { pipeline, runInline } from '../helpers/engine.js';

const COLUMNS = ['a', '__proto__', 'constructor', 'prototype', 'obj'];
const ROW: Value[] = [1, 'p', 'c', 'q', { x: 1 }];
const PARAMS = { params: { x: 1 } as Record<string, Value> };

const objectNames = Object.getOwnPropertyNames(Object.prototype).sort();
const arrayNames = Object.getOwnPropertyNames(Array.prototype).sort();
const functionNames = Object.getOwnPropertyNames(Function.prototype).sort();

function assertPrototypesIntact(): void {
  expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  expect(([] as unknown as Record<string, unknown>).polluted).toBeUndefined();
  expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(objectNames);
  expect(Object.getOwnPropertyNames(Array.prototype).sort()).toEqual(arrayNames);
  expect(Object.getOwnPropertyNames(Function.prototype).sort()).toEqual(functionNames);
}

/** Every part of a value is plain data: no function, no `process`, no foreign prototype. */
function assertPlainData(value: unknown, path = '$'): void {
  expect(value, path).not.toBe(process);
  expect(typeof value, path).not.toBe('function');
  if (value === null || typeof value !== 'object') return;
  if (Array.isArray(value)) {
    expect(Object.getPrototypeOf(value), path).toBe(Array.prototype);
    value.forEach((item, i) => assertPlainData(item, `${path}[${i}]`));
    return;
  }
  expect(Object.getPrototypeOf(value), `${path} has a prototype`).toBe(null);
  for (const key of Object.keys(value))
    assertPlainData((value as Record<string, unknown>)[key], `${path}.${key}`);
}

const HOSTILE = [
  'constructor',
  '__proto__',
  'prototype',
  '$.constructor',
  '$.__proto__',
  '$.constructor.constructor("return process")()',
  '$.__proto__.constructor.constructor("return process")()',
  'obj.constructor',
  'obj.constructor.constructor("return process")()',
  'obj.__proto__',
  '$params.constructor',
  '$params.constructor.constructor("return process")()',
  '$params.__proto__',
  '$params.toString',
  '$params.hasOwnProperty("x")',
  '{}.constructor',
  '{}.constructor.constructor("return process")()',
  '{"a": 1}.constructor.constructor("return process")()',
  '[1].constructor',
  '"x".constructor',
  '(1).constructor',
  '$string.constructor',
  '$string.constructor("return process")()',
  '$lookup($string, "constructor")',
  '$lookup({}, "constructor")',
  '$lookup($params, "constructor")',
  '$abs.constructor',
  '$now.constructor',
  '(function($x){ $x }).constructor',
  '(function($x){ $x }).constructor("return process")()',
  '$merge([{"__proto__": {"polluted": 1}}])',
  '$merge([{"__proto__": {"polluted": 1}}]).polluted',
  '$merge([obj, {"constructor": {"prototype": {"polluted": 1}}}])',
  '{"__proto__": {"polluted": 1}}',
  '{"__proto__": {"polluted": 1}}.polluted',
  '{"constructor": {"prototype": {"polluted": 1}}}',
  '[{"__proto__": {"polluted": 1}}]',
  '$ ~> | $ | {"__proto__": {"polluted": 1}} |',
  '$ ~> | $ | {"constructor": {"prototype": {"polluted": 1}}} |',
  '$ ~> | $ | {"polluted": 1}, ["constructor"] |',
  'obj ~> | $ | {"__proto__": {"polluted": 1}} |',
  '{"a": {"b": 1}} ~> | a | {"__proto__": {"polluted": 1}} |',
  '$params ~> | $ | {"polluted": 1} |',
  '$spread({"__proto__": {"polluted": 1}})',
  '$sift({"__proto__": {"polluted": 1}}, function($v, $k){ true })',
  '$each({"__proto__": {"polluted": 1}}, function($v, $k){ $k })',
  '$keys({"__proto__": {"polluted": 1}})',
  '$keys($params)',
  '$eval("constructor")',
  '$eval("{\\"__proto__\\": {\\"polluted\\": 1}}")',
  '$eval("$params.constructor.constructor(\\"return process\\")()")',
  '[1, 2, 3]{$string($): {"__proto__": {"polluted": 1}}}',
  '$reduce([1, 2], function($acc, $v){ $merge([$acc, {"__proto__": {"polluted": $v}}]) }, {})',
  '$type($params.constructor)',
  '$string($params.constructor)',
  '$string({"__proto__": {"polluted": 1}})',
  '$single([{"__proto__": 1}])',
  '$zip([{"__proto__": 1}], [2])',
];

describe('prototype safety of expressions', () => {
  afterEach(assertPrototypesIntact);

  it.each(HOSTILE)('%s', async (text) => {
    let bound;
    try {
      bound = Expression.compile(text).bind(COLUMNS, PARAMS);
    } catch (error) {
      expect(error).toBeInstanceOf(LetheError);
      return;
    }
    const quick = bound.trySync(ROW);
    if (quick !== NEEDS_JSONATA) assertPlainData(quick);
    let value: Value;
    try {
      value = await bound.evaluate(ROW);
    } catch (error) {
      // Refusing is fine, as long as it is a clear LetheError.
      expect(error).toBeInstanceOf(LetheError);
      expect((error as LetheError).code).toMatch(/^EXPRESSION_/);
      return;
    }
    assertPlainData(value);
  });

  it('reaches no constructor through any path: the usual escapes give nothing', async () => {
    for (const text of [
      '$.constructor',
      '$params.constructor',
      '{}.constructor',
      '$string.constructor',
      'obj.constructor',
    ]) {
      const bound = Expression.compile(text).bind(['a', 'obj'], PARAMS);
      expect(await bound.evaluate([1, { x: 1 }]), text).toBe(null);
    }
  });

  it('keeps "__proto__" as an ordinary key of the objects it builds', async () => {
    const bound = Expression.compile('$merge([{"__proto__": {"polluted": 1}}, {"a": 2}])').bind([], {});
    const value = (await bound.evaluate([])) as Record<string, Value>;
    expect(Object.getPrototypeOf(value)).toBe(null);
    expect(Object.keys(value)).toEqual(['__proto__', 'a']);
    expect(Object.getOwnPropertyDescriptor(value, '__proto__')?.value).toEqual({ polluted: 1 });
  });

  it('reads columns named __proto__, constructor and prototype as data, on both paths', async () => {
    for (const [text, expected] of [
      ['__proto__', 'p'],
      ['constructor', 'c'],
      ['$.prototype', 'q'],
      ['__proto__ & constructor & prototype', 'pcq'],
      ['$uppercase(__proto__)', 'P'],
    ] as const) {
      const bound = Expression.compile(text).bind(COLUMNS, PARAMS);
      expect(bound.trySync(ROW), text).toBe(expected);
      expect(await bound.evaluate(ROW), text).toBe(expected);
    }
  });

  it('reads nothing from $params that was not given, on both paths', async () => {
    for (const text of ['$params.constructor', '$params.__proto__', '$params.toString', '$params.valueOf']) {
      const bound = Expression.compile(text).bind([], PARAMS);
      const quick = bound.trySync([]);
      expect(quick === NEEDS_JSONATA || quick === null, text).toBe(true);
      expect(await bound.evaluate([]), text).toBe(null);
    }
  });
});

describe('prototype safety in a run', () => {
  afterEach(assertPrototypesIntact);

  it('a compute that builds __proto__ keys keeps them as data, through to the response', async () => {
    const run = await runInline(
      pipeline(
        [{ a: 1 }],
        'compute: { from: source, columns: { x: "{\\"__proto__\\": {\\"polluted\\": 1}}", y: "$merge([{\\"__proto__\\": {\\"polluted\\": 2}}])" } }',
      ),
    );
    expect(run.result.status).toBe('succeeded');
    expect(run.columns).toEqual(['a', 'x', 'y']);
    const [record] = run.records;
    expect(Object.getOwnPropertyDescriptor(record!.x, '__proto__')?.value).toEqual({ polluted: 1 });
    expect(Object.getOwnPropertyDescriptor(record!.y, '__proto__')?.value).toEqual({ polluted: 2 });
  });

  it('$.constructor… to reach process is refused as an unknown column', async () => {
    const run = await runInline(
      pipeline(
        [{ amount: 5 }],
        `compute: { from: source, columns: { x: "$.constructor.constructor('return process')()" } }`,
      ),
    );
    expect(run.result.status).toBe('failed');
    expect(run.result.error?.code).toBe('COLUMN_UNKNOWN');
    expect(run.result.error?.message).toBe(
      'the expression reads column "constructor", which the input does not have',
    );
  });

  it('a column named __proto__ flows through filter and compute as data', async () => {
    const values = JSON.parse(
      '[{"__proto__": "v", "n": 1}, {"__proto__": "w", "n": 2}, {"__proto__": "v", "n": 3}]',
    ) as unknown[];
    const run = await runInline(
      pipeline(
        values,
        'filter: { from: source, where: "__proto__ = \'v\'" }',
        'compute: { from: s1, columns: { up: "$uppercase(__proto__)" } }',
      ),
    );
    expect(run.result.status).toBe('succeeded');
    expect(run.columns).toEqual(['__proto__', 'n', 'up']);
    expect(
      run.records.map((record) => [
        Object.getOwnPropertyDescriptor(record, '__proto__')?.value,
        record.n,
        record.up,
      ]),
    ).toEqual([
      ['v', 1, 'V'],
      ['v', 3, 'V'],
    ]);
  });
});
