import { writeFileSync } from 'node:fs';
import { join as joinPath } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { runInline, tempDir } from '../helpers/engine.js';

/** A flow joining inline tables `l` (left) and `r` (right); the join's body is given. */
function flow(left: unknown[] | string, right: unknown[] | string, body: string): string {
  const source = (s: unknown[] | string) => (typeof s === 'string' ? s : `{ values: ${JSON.stringify(s)} }`);
  return [
    'version: 1',
    'name: t',
    'steps:',
    '  - id: l',
    `    input: ${source(left)}`,
    '  - id: r',
    `    input: ${source(right)}`,
    '  - id: j',
    `    join: { left: l, right: r, ${body} }`,
    '  - id: out',
    '    output: { from: j, respond: true }',
    '',
  ].join('\n');
}

async function join(left: unknown[] | string, right: unknown[] | string, body: string, baseDir?: string) {
  const run = await runInline(flow(left, right, body), baseDir === undefined ? {} : { baseDir });
  if (run.result.status !== 'succeeded') throw run.result.error;
  return { columns: run.columns, records: run.records };
}

async function joinFails(left: unknown[], right: unknown[], body: string) {
  const run = await runInline(flow(left, right, body));
  expect(run.result.status).toBe('failed');
  return run.result.error!;
}

const orders = [
  { oid: 'o1', cust: 1 },
  { oid: 'o2', cust: 2 },
  { oid: 'o3', cust: null },
  { oid: 'o4', cust: 1 },
  { oid: 'o5', cust: 9 },
];
const customers = [
  { id: 1, name: 'Ann' },
  { id: 3, name: 'Cy' },
  { id: 1, name: 'Ann2' },
  { id: null, name: 'Nobody' },
  { id: 2, name: 'Bo' },
];
const columns = ['oid', 'cust', 'id', 'name'];
const o = (oid: string | null, cust: number | null, id: number | null, name: string | null) => ({
  oid,
  cust,
  id,
  name,
});

const dir = tempDir();
afterAll(() => dir.cleanup());

describe('join', () => {
  it.each([
    {
      type: 'inner',
      records: [
        o('o1', 1, 1, 'Ann'),
        o('o1', 1, 1, 'Ann2'),
        o('o2', 2, 2, 'Bo'),
        o('o4', 1, 1, 'Ann'),
        o('o4', 1, 1, 'Ann2'),
      ],
    },
    {
      type: 'left',
      records: [
        o('o1', 1, 1, 'Ann'),
        o('o1', 1, 1, 'Ann2'),
        o('o2', 2, 2, 'Bo'),
        o('o3', null, null, null),
        o('o4', 1, 1, 'Ann'),
        o('o4', 1, 1, 'Ann2'),
        o('o5', 9, null, null),
      ],
    },
    {
      // Follows the right rows, each with its left matches in left order.
      type: 'right',
      records: [
        o('o1', 1, 1, 'Ann'),
        o('o4', 1, 1, 'Ann'),
        o(null, null, 3, 'Cy'),
        o('o1', 1, 1, 'Ann2'),
        o('o4', 1, 1, 'Ann2'),
        o(null, null, null, 'Nobody'),
        o('o2', 2, 2, 'Bo'),
      ],
    },
    {
      // The left join's rows, then the right rows that matched nothing, in right order.
      type: 'full',
      records: [
        o('o1', 1, 1, 'Ann'),
        o('o1', 1, 1, 'Ann2'),
        o('o2', 2, 2, 'Bo'),
        o('o3', null, null, null),
        o('o4', 1, 1, 'Ann'),
        o('o4', 1, 1, 'Ann2'),
        o('o5', 9, null, null),
        o(null, null, 3, 'Cy'),
        o(null, null, null, 'Nobody'),
      ],
    },
  ])('$type join: SQL semantics, null keys never match, documented row order', async ({ type, records }) => {
    const out = await join(orders, customers, `on: { cust: id }, type: ${type}`);
    expect(out.columns).toEqual(columns);
    expect(out.records).toEqual(records);
  });

  it('defaults to inner', async () => {
    const out = await join(orders, customers, 'on: { cust: id }');
    expect(out.records.map((r) => [r.oid, r.name])).toEqual([
      ['o1', 'Ann'],
      ['o1', 'Ann2'],
      ['o2', 'Bo'],
      ['o4', 'Ann'],
      ['o4', 'Ann2'],
    ]);
  });

  it('null keys on both sides never match, even in a full join', async () => {
    const out = await join([{ k: null, a: 'L' }], [{ k: null, b: 'R' }], 'on: { k: k }, type: full');
    expect(out.columns).toEqual(['k', 'a', 'k_r', 'b']);
    expect(out.records).toEqual([
      { k: null, a: 'L', k_r: null, b: null },
      { k: null, a: null, k_r: null, b: 'R' },
    ]);
  });

  it.each([
    [1, '1'],
    ['00123', 123],
    [true, 'true'],
    [1, true],
    [0, false],
    [0, ''],
    ['caf\u00e9', 'cafe\u0301'],
  ])('keys compare by value and type: %j does not match %j', async (a, b) => {
    const out = await join([{ k: a, x: 'L' }], [{ k: b, y: 'R' }], 'on: { k: k }, type: left');
    expect(out.records).toEqual([{ k: a, x: 'L', k_r: null, y: null }]);
  });

  it.each([
    [1, 1],
    ['00123', '00123'],
    [false, false],
    ['東京', '東京'],
    ['😀', '😀'],
    [
      [1, 'a'],
      [1, 'a'],
    ],
    [{ p: 1 }, { p: 1 }],
  ])('equal keys match: %j', async (a, b) => {
    const out = await join([{ k: a, x: 'L' }], [{ k: b, y: 'R' }], 'on: { k: k }');
    expect(out.records).toEqual([{ k: a, x: 'L', k_r: b, y: 'R' }]);
  });

  it('CSV keys: "00123" (kept as a string) does not match the number 123', async () => {
    writeFileSync(joinPath(dir.path, 'codes.csv'), 'code,label\n00123,zeros\n123,plain\n');
    writeFileSync(joinPath(dir.path, 'nums.csv'), 'num,v\n123,n\n');
    const out = await join(
      '{ file: codes.csv }',
      '{ file: nums.csv }',
      'on: { code: num }, type: left',
      dir.path,
    );
    // "code" holds "00123", so the whole column stays text: "123" ≠ 123 too.
    expect(out.columns).toEqual(['code', 'label', 'num', 'v']);
    expect(out.records).toEqual([
      { code: '00123', label: 'zeros', num: null, v: null },
      { code: '123', label: 'plain', num: null, v: null },
    ]);
    const typed = await join(
      '{ file: codes.csv, types: { code: number } }',
      '{ file: nums.csv }',
      'on: { code: num }',
      dir.path,
    );
    expect(typed.records).toEqual([
      { code: 123, label: 'zeros', num: 123, v: 'n' },
      { code: 123, label: 'plain', num: 123, v: 'n' },
    ]);
  });

  it('multi-column keys: all pairs must be equal; a null in any part never matches', async () => {
    const left = [
      { a: 1, b: 'x', v: 'L1' },
      { a: 1, b: 'y', v: 'L2' },
      { a: 1, b: null, v: 'L3' },
      { a: '1', b: 'x', v: 'L4' },
    ];
    const right = [
      { c: 1, d: 'x', w: 'R1' },
      { c: 1, d: null, w: 'R2' },
      { c: 1, d: 'x', w: 'R3' },
      { c: 2, d: 'y', w: 'R4' },
    ];
    const out = await join(left, right, 'on: { a: c, b: d }, type: full');
    expect(out.columns).toEqual(['a', 'b', 'v', 'c', 'd', 'w']);
    expect(out.records).toEqual([
      { a: 1, b: 'x', v: 'L1', c: 1, d: 'x', w: 'R1' },
      { a: 1, b: 'x', v: 'L1', c: 1, d: 'x', w: 'R3' },
      { a: 1, b: 'y', v: 'L2', c: null, d: null, w: null },
      { a: 1, b: null, v: 'L3', c: null, d: null, w: null },
      { a: '1', b: 'x', v: 'L4', c: null, d: null, w: null },
      { a: null, b: null, v: null, c: 1, d: null, w: 'R2' },
      { a: null, b: null, v: null, c: 2, d: 'y', w: 'R4' },
    ]);
  });

  it('renames colliding right columns, the key included, to <name>_<rightStepId>', async () => {
    const out = await join(
      [{ id: 1, name: 'left', only_left: true }],
      [{ name: 'right', id: 1, extra: 'e' }],
      'on: { id: id }',
    );
    expect(out.columns).toEqual(['id', 'name', 'only_left', 'name_r', 'id_r', 'extra']);
    expect(out.records).toEqual([
      { id: 1, name: 'left', only_left: true, name_r: 'right', id_r: 1, extra: 'e' },
    ]);
  });

  it('keeps a right column that only looks like a renamed one, and fails on a real clash, whatever the order', async () => {
    for (const right of [[{ id: 1, id_r: 5 }], [{ id_r: 5, id: 1 }]]) {
      const error = await joinFails([{ id: 1 }], right, 'on: { id: id }');
      expect(error.code).toBe('FLOW_INVALID');
      expect(error.message).toContain('"id_r"');
    }
    const out = await join([{ id: 1 }], [{ other_r: 5, key: 1 }], 'on: { id: key }');
    expect(out.columns).toEqual(['id', 'other_r', 'key']);
    expect(out.records).toEqual([{ id: 1, other_r: 5, key: 1 }]);
  });

  it('fails when a renamed right column would collide with a left column', async () => {
    const error = await joinFails([{ id: 1, id_r: 'x' }], [{ id: 1 }], 'on: { id: id }');
    expect(error.code).toBe('FLOW_INVALID');
    expect(error.message).toContain('"id_r"');
  });

  describe('empty inputs keep both column lists', () => {
    // No rows, but columns k and v (declared by types).
    const empty = '{ values: [], types: { k: number, v: string } }';
    it.each(['inner', 'left', 'right', 'full'])('%s join with an empty left', async (type) => {
      const out = await join(empty, [{ k: 1, w: 'R' }], `on: { k: k }, type: ${type}`);
      expect(out.columns).toEqual(['k', 'v', 'k_r', 'w']);
      expect(out.records).toEqual(
        type === 'right' || type === 'full' ? [{ k: null, v: null, k_r: 1, w: 'R' }] : [],
      );
    });
    it.each(['inner', 'left', 'right', 'full'])('%s join with an empty right', async (type) => {
      const out = await join([{ k: 1, v: 'L' }], empty, `on: { k: k }, type: ${type}`);
      expect(out.columns).toEqual(['k', 'v', 'k_r', 'v_r']);
      expect(out.records).toEqual(
        type === 'left' || type === 'full' ? [{ k: 1, v: 'L', k_r: null, v_r: null }] : [],
      );
    });
  });

  it('joins on unicode column names and values', async () => {
    const out = await join(
      [
        { 都市: '東京', '😀': 'a' },
        { 都市: 'cafe\u0301', '😀': 'b' },
      ],
      [
        { 名前: '東京', 人口: 14 },
        { 名前: 'caf\u00e9', 人口: 1 },
      ],
      'on: { 都市: 名前 }, type: left',
    );
    expect(out.columns).toEqual(['都市', '😀', '名前', '人口']);
    expect(out.records).toEqual([
      { 都市: '東京', '😀': 'a', 名前: '東京', 人口: 14 },
      { 都市: 'cafe\u0301', '😀': 'b', 名前: null, 人口: null },
    ]);
  });

  it.each([
    ['on: { custt: id }', 'custt', 'cust'],
    ['on: { cust: idd }', 'idd', 'id'],
  ])('fails on an unknown key column with did-you-mean: %s', async (body, missing, suggestion) => {
    const error = await joinFails(orders, customers, body);
    expect(error.code).toBe('COLUMN_UNKNOWN');
    expect(error.message).toContain(`"${missing}"`);
    expect(error.message).toContain(`did you mean "${suggestion}"?`);
  });

  it('does not mutate its inputs: both tables can feed other steps', async () => {
    const yaml = [
      'version: 1',
      'name: t',
      'steps:',
      '  - id: l',
      '    input: { values: [{ k: 1, a: 1 }, { k: 2, a: 2 }] }',
      '  - id: r',
      '    input: { values: [{ k: 1, b: 1 }] }',
      '  - id: j',
      '    join: { left: l, right: r, on: { k: k }, type: full }',
      '  - id: u',
      '    union: { from: [l, j, r] }',
      '  - id: out',
      '    output: { from: u, respond: true }',
      '',
    ].join('\n');
    const run = await runInline(yaml);
    expect(run.columns).toEqual(['k', 'a', 'k_r', 'b']);
    expect(run.records).toEqual([
      { k: 1, a: 1, k_r: null, b: null },
      { k: 2, a: 2, k_r: null, b: null },
      { k: 1, a: 1, k_r: 1, b: 1 },
      { k: 2, a: 2, k_r: null, b: null },
      { k: 1, a: null, k_r: null, b: 1 },
    ]);
  });
});
