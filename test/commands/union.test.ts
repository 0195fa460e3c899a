import { describe, expect, it } from 'vitest';
import { runInline } from '../helpers/engine.js';

/** A flow with inputs a, b, c… (inline values or input bodies) and a union over `from`. */
function flow(inputs: (unknown[] | string)[], body: string): string {
  const lines = ['version: 1', 'name: t', 'steps:'];
  inputs.forEach((input, i) => {
    lines.push(`  - id: ${String.fromCharCode(97 + i)}`);
    lines.push(`    input: ${typeof input === 'string' ? input : `{ values: ${JSON.stringify(input)} }`}`);
  });
  lines.push(
    '  - id: u',
    `    union: { ${body} }`,
    '  - id: out',
    '    output: { from: u, respond: true }',
    '',
  );
  return lines.join('\n');
}

async function union(inputs: (unknown[] | string)[], body: string) {
  const run = await runInline(flow(inputs, body));
  if (run.result.status !== 'succeeded') throw run.result.error;
  return { columns: run.columns, records: run.records };
}

describe('union', () => {
  it('concatenates rows in input order, aligning columns by name; missing → null', async () => {
    const out = await union(
      [[{ id: 1, name: 'a' }], [{ name: 'b', id: 2, extra: true }], [{ extra: false }, { id: 4 }]],
      'from: [a, b, c]',
    );
    expect(out.columns).toEqual(['id', 'name', 'extra']);
    expect(out.records).toEqual([
      { id: 1, name: 'a', extra: null },
      { id: 2, name: 'b', extra: true },
      { id: null, name: null, extra: false },
      { id: 4, name: null, extra: null },
    ]);
  });

  it('follows the order of `from`, not of the steps', async () => {
    const out = await union([[{ x: 'a' }], [{ y: 'b' }]], 'from: [b, a]');
    expect(out.columns).toEqual(['y', 'x']);
    expect(out.records).toEqual([
      { y: 'b', x: null },
      { y: null, x: 'a' },
    ]);
  });

  it('keeps duplicates by default, and the same step may be listed twice', async () => {
    const out = await union([[{ v: 1 }, { v: 1 }]], 'from: [a, a]');
    expect(out.records).toEqual([{ v: 1 }, { v: 1 }, { v: 1 }, { v: 1 }]);
  });

  it('distinct keeps the first of equal rows, comparing by value and type after alignment', async () => {
    const out = await union(
      [
        [
          { k: 1, s: 'x' },
          { k: '1', s: 'x' },
          { k: 1, s: 'x' },
          { k: null, s: null },
        ],
        [
          { s: 'x', k: 1 },
          { k: null },
          { s: 'x' },
          { k: 2, s: 'x' },
          { k: '00123', s: 'x' },
          { k: 123, s: 'x' },
        ],
      ],
      'from: [a, b], distinct: true',
    );
    expect(out.columns).toEqual(['k', 's']);
    expect(out.records).toEqual([
      { k: 1, s: 'x' },
      { k: '1', s: 'x' },
      { k: null, s: null },
      { k: null, s: 'x' },
      { k: 2, s: 'x' },
      { k: '00123', s: 'x' },
      { k: 123, s: 'x' },
    ]);
  });

  it('distinct with one column and nested values', async () => {
    const out = await union(
      [
        [{ v: [1, 2] }, { v: { a: 1 } }],
        [{ v: [1, 2] }, { v: [2, 1] }, { v: { a: 1 } }],
      ],
      'from: [a, b], distinct: true',
    );
    expect(out.records).toEqual([{ v: [1, 2] }, { v: { a: 1 } }, { v: [2, 1] }]);
  });

  it('distinct: false keeps duplicates', async () => {
    const out = await union([[{ v: 1 }], [{ v: 1 }]], 'from: [a, b], distinct: false');
    expect(out.records).toEqual([{ v: 1 }, { v: 1 }]);
  });

  it('keeps the columns of empty inputs', async () => {
    const out = await union(
      ['{ values: [], types: { a: number, b: string } }', '{ values: [], types: { c: number, a: number } }'],
      'from: [a, b]',
    );
    expect(out).toEqual({ columns: ['a', 'b', 'c'], records: [] });
    const mixed = await union(
      ['{ values: [], types: { z: string } }', [{ a: 1 }]],
      'from: [a, b], distinct: true',
    );
    expect(mixed).toEqual({ columns: ['z', 'a'], records: [{ z: null, a: 1 }] });
  });

  it('aligns unicode column names exactly (no normalisation)', async () => {
    const out = await union(
      [[{ 名前: '山田', 'caf\u00e9': 1 }], [{ 'cafe\u0301': 2, 名前: '😀' }]],
      'from: [a, b]',
    );
    expect(out.columns).toEqual(['名前', 'caf\u00e9', 'cafe\u0301']);
    expect(out.records).toEqual([
      { 名前: '山田', 'caf\u00e9': 1, 'cafe\u0301': null },
      { 名前: '😀', 'caf\u00e9': null, 'cafe\u0301': 2 },
    ]);
  });

  it('keeps values and their types as they are', async () => {
    const out = await union(
      [
        [{ v: '00123' }, { v: 123 }],
        [{ v: true }, { v: [1] }],
      ],
      'from: [a, b]',
    );
    expect(out.records).toEqual([{ v: '00123' }, { v: 123 }, { v: true }, { v: [1] }]);
  });
});
