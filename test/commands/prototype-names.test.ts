import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { runInline, tempDir } from '../helpers/engine.js';

/** Records whose keys are `__proto__`, `constructor` and `prototype` as own keys (as JSON.parse makes them). */
const hostile = JSON.parse(
  '[{"__proto__": {"polluted": "yes"}, "constructor": "c1", "prototype": 10, "id": 1},' +
    ' {"__proto__": {"polluted": "yes"}, "constructor": {"prototype": {"polluted": "yes"}}, "prototype": 5, "id": 2},' +
    ' {"__proto__": "p3", "constructor": "c1", "prototype": null, "id": 3}]',
) as Record<string, unknown>[];

const dir = tempDir();
afterAll(() => dir.cleanup());

let before: string[];
beforeEach(() => {
  before = Object.getOwnPropertyNames(Object.prototype).sort();
});
afterEach(() => {
  // Nothing leaked onto Object.prototype (or Array.prototype, Function.prototype).
  expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  expect(([] as unknown as Record<string, unknown>).polluted).toBeUndefined();
  expect((Object as unknown as Record<string, unknown>).polluted).toBeUndefined();
  expect(Object.getOwnPropertyNames(Object.prototype).sort()).toEqual(before);
  expect(Object.getPrototypeOf(Object.prototype)).toBeNull();
  expect(Object.prototype.constructor).toBe(Object);
});

function flow(steps: string[], output = 'output: { from: last, respond: true }'): string {
  return [
    'version: 1',
    'name: t',
    'steps:',
    '  - id: source',
    `    input: { values: ${JSON.stringify(hostile)} }`,
    ...steps.map((s) => `  ${s}`),
    '  - id: out',
    `    ${output}`,
    '',
  ].join('\n');
}

async function run(steps: string[], output?: string) {
  const result = await runInline(flow(steps, output), { baseDir: dir.path });
  if (result.result.status !== 'succeeded') throw result.result.error;
  return result;
}

/** Own keys in order, with `__proto__` checked as an own data property. */
function ownKeys(record: Record<string, unknown>): string[] {
  return Reflect.ownKeys(record) as string[];
}

describe('column names __proto__, constructor and prototype', () => {
  it('round-trip through input and output as ordinary columns', async () => {
    const out = await run(['- id: last', '  select: { from: source, drop: [id] }']);
    expect(out.columns).toEqual(['__proto__', 'constructor', 'prototype']);
    expect(ownKeys(out.records[0]!)).toEqual(['__proto__', 'constructor', 'prototype']);
    expect(Object.getOwnPropertyDescriptor(out.records[0], '__proto__')?.value).toEqual({ polluted: 'yes' });
    expect(out.records[2]!['__proto__']).toBe('p3');
    expect(Object.getPrototypeOf(out.records[0])).toBe(Object.prototype);
  });

  it('select: project, map and rename them', async () => {
    const out = await run([
      '- id: last',
      '  select: { from: source, columns: { prototype: __proto__, __proto__: prototype, constructor: constructor }, rename: { ctor: constructor } }',
    ]);
    expect(out.columns).toEqual(['prototype', '__proto__', 'ctor']);
    expect(
      out.records.map((r) => [r.prototype, Object.getOwnPropertyDescriptor(r, '__proto__')?.value, r.ctor]),
    ).toEqual([
      [{ polluted: 'yes' }, 10, 'c1'],
      [{ polluted: 'yes' }, 5, { prototype: { polluted: 'yes' } }],
      ['p3', null, 'c1'],
    ]);
  });

  it('compute: read and write them in expressions', async () => {
    const out = await run([
      '- id: last',
      '  compute: { from: source, columns: { __proto__: "prototype * 2", constructor: "$string(id)", x: "__proto__ + 1", y: "`constructor` & \'!\'" } }',
    ]);
    expect(out.columns).toEqual(['__proto__', 'constructor', 'prototype', 'id', 'x', 'y']);
    expect(
      out.records.map((r) => ownKeys(r).map((k) => Object.getOwnPropertyDescriptor(r, k)?.value)),
    ).toEqual([
      [20, '1', 10, 1, 21, '1!'],
      [10, '2', 5, 2, 11, '2!'],
      [null, '3', null, 3, null, '3!'],
    ]);
  });

  it('compute: building objects with those keys keeps them as data', async () => {
    const out = await run([
      '- id: last',
      "  compute: { from: source, columns: { o: \"{ '__proto__': { 'polluted': 'yes' }, 'constructor': id }\", m: \"$type(__proto__) = 'object' ? $merge([{}, __proto__])\" } }",
    ]);
    expect(out.records.map((r) => r.m)).toEqual([{ polluted: 'yes' }, { polluted: 'yes' }, null]);
    const o = out.records[0]!.o as object;
    expect(Reflect.ownKeys(o)).toEqual(['__proto__', 'constructor']);
    expect(Object.getOwnPropertyDescriptor(o, '__proto__')?.value).toEqual({ polluted: 'yes' });
    expect(Object.getOwnPropertyDescriptor(o, 'constructor')?.value).toBe(1);
  });

  it('group: by and aggregate over them, and name aggregates after them', async () => {
    const out = await run([
      '- id: last',
      '  group: { from: source, by: [constructor], aggregate: { __proto__: "sum(prototype)", prototype: "count(__proto__)", n: "first(__proto__)" } }',
    ]);
    expect(out.columns).toEqual(['constructor', '__proto__', 'prototype', 'n']);
    expect(
      out.records.map((r) => ownKeys(r).map((k) => Object.getOwnPropertyDescriptor(r, k)?.value)),
    ).toEqual([
      ['c1', 10, 2, { polluted: 'yes' }],
      [{ prototype: { polluted: 'yes' } }, 5, 1, { polluted: 'yes' }],
    ]);
  });

  it('join: on them, with collisions renamed', async () => {
    const out = await run([
      '- id: other',
      '  select: { from: source, columns: [constructor, __proto__] }',
      '- id: last',
      '  join: { left: source, right: other, on: { constructor: constructor } }',
    ]);
    expect(out.columns).toEqual([
      '__proto__',
      'constructor',
      'prototype',
      'id',
      'constructor_other',
      '__proto___other',
    ]);
    expect(out.records.map((r) => [r.id, r['__proto___other']])).toEqual([
      [1, { polluted: 'yes' }],
      [1, 'p3'],
      [2, { polluted: 'yes' }],
      [3, { polluted: 'yes' }],
      [3, 'p3'],
    ]);
  });

  it('sort, distinct, union and unnest: by them', async () => {
    const out = await run([
      '- id: sorted',
      '  sort: { from: source, by: [-prototype, __proto__] }',
      '- id: d',
      '  distinct: { from: sorted, by: [constructor] }',
      '- id: last',
      '  union: { from: [d, sorted], distinct: true }',
    ]);
    expect(out.records.map((r) => r.id)).toEqual([1, 2, 3]);
    const unnested = await run([
      '- id: w',
      '  compute: { from: source, columns: { __proto__: "[1, 2]" } }',
      '- id: last',
      '  unnest: { from: w, column: __proto__ }',
    ]);
    expect(unnested.records.map((r) => Object.getOwnPropertyDescriptor(r, '__proto__')?.value)).toEqual([
      1, 2, 1, 2, 1, 2,
    ]);
  });

  it.each(['json', 'ndjson', 'csv'])('file output (%s) writes them as plain keys', async (ext) => {
    await run(
      ['- id: last', '  select: { from: source, columns: [__proto__, constructor] }'],
      `output: { from: last, file: out.${ext} }`,
    );
    const text = readFileSync(join(dir.path, `out.${ext}`), 'utf8');
    if (ext === 'csv') {
      expect(text).toBe(
        '__proto__,constructor\n"{""polluted"":""yes""}",c1\n"{""polluted"":""yes""}","{""prototype"":{""polluted"":""yes""}}"\np3,c1\n',
      );
    } else {
      const records = (
        ext === 'json'
          ? JSON.parse(text)
          : text
              .trim()
              .split('\n')
              .map((line) => JSON.parse(line))
      ) as Record<string, unknown>[];
      expect(records.map((r) => Object.getOwnPropertyDescriptor(r, '__proto__')?.value)).toEqual([
        { polluted: 'yes' },
        { polluted: 'yes' },
        'p3',
      ]);
    }
  });
});
