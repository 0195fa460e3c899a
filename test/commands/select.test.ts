import { describe, expect, it } from 'vitest';
import { pipeline, runInline } from '../helpers/engine.js';

const rows = [
  { id: 1, name: 'Ann', city: 'Oslo', amount: 10 },
  { id: 2, name: null, city: '東京', amount: null },
];

async function select(values: unknown[], body: string) {
  const run = await runInline(pipeline(values, `select: { from: source, ${body} }`));
  if (run.result.status !== 'succeeded') throw run.result.error;
  return { columns: run.columns, records: run.records };
}

async function selectFails(values: unknown[], body: string) {
  const run = await runInline(pipeline(values, `select: { from: source, ${body} }`));
  expect(run.result.status).toBe('failed');
  return run.result.error!;
}

describe('select', () => {
  it.each([
    {
      body: 'columns: [name, id]',
      columns: ['name', 'id'],
      records: [
        { name: 'Ann', id: 1 },
        { name: null, id: 2 },
      ],
    },
    {
      body: 'columns: { who: name, n: id }',
      columns: ['who', 'n'],
      records: [
        { who: 'Ann', n: 1 },
        { who: null, n: 2 },
      ],
    },
    {
      body: 'columns: { id: id, copy: id }',
      columns: ['id', 'copy'],
      records: [
        { id: 1, copy: 1 },
        { id: 2, copy: 2 },
      ],
    },
    {
      body: 'rename: { town: city }',
      columns: ['id', 'name', 'town', 'amount'],
      records: [
        { id: 1, name: 'Ann', town: 'Oslo', amount: 10 },
        { id: 2, name: null, town: '東京', amount: null },
      ],
    },
    {
      body: 'rename: { name: city, city: name }',
      columns: ['id', 'city', 'name', 'amount'],
      records: [
        { id: 1, city: 'Ann', name: 'Oslo', amount: 10 },
        { id: 2, city: null, name: '東京', amount: null },
      ],
    },
    {
      // Renames look up the names before any rename, whatever the order of the map.
      body: 'rename: { city: name, name: city }',
      columns: ['id', 'city', 'name', 'amount'],
      records: [
        { id: 1, city: 'Ann', name: 'Oslo', amount: 10 },
        { id: 2, city: null, name: '東京', amount: null },
      ],
    },
    {
      body: 'rename: { key: id, id: name, name: city, city: amount }',
      columns: ['key', 'id', 'name', 'city'],
      records: [
        { key: 1, id: 'Ann', name: 'Oslo', city: 10 },
        { key: 2, id: null, name: '東京', city: null },
      ],
    },
    {
      body: 'drop: [city, id]',
      columns: ['name', 'amount'],
      records: [
        { name: 'Ann', amount: 10 },
        { name: null, amount: null },
      ],
    },
    {
      // columns, then rename (new names of the projection), then drop (names after rename)
      body: 'columns: { n: id, city: city, amount: amount }, rename: { place: city }, drop: [amount]',
      columns: ['n', 'place'],
      records: [
        { n: 1, place: 'Oslo' },
        { n: 2, place: '東京' },
      ],
    },
    {
      body: 'rename: { total: amount }, drop: [total, name]',
      columns: ['id', 'city'],
      records: [
        { id: 1, city: 'Oslo' },
        { id: 2, city: '東京' },
      ],
    },
    {
      body: 'drop: [id, name, city, amount]',
      columns: [],
      records: [{}, {}],
    },
  ])('$body', async ({ body, columns, records }) => {
    const out = await select(rows, body);
    expect(out.columns).toEqual(columns);
    expect(out.records).toEqual(records);
    // Keys of each record follow the column order.
    for (const record of out.records) expect(Object.keys(record)).toEqual(columns);
  });

  it('keeps the column list for an empty input', async () => {
    const run = await runInline(
      pipeline(
        rows,
        'filter: { from: source, where: "false" }',
        'select: { from: s1, columns: { n: id, who: name }, rename: { person: who } }',
      ),
    );
    expect(run.result.status).toBe('succeeded');
    expect(run.columns).toEqual(['n', 'person']);
    expect(run.records).toEqual([]);
  });

  it('does not change values or types (leading zeros, numbers, booleans, nested)', async () => {
    const values = [{ code: '00123', n: 123, b: false, arr: [1, '1'], obj: { k: null } }];
    const out = await select(values, 'columns: [obj, arr, b, n, code]');
    expect(out.records).toEqual([{ obj: { k: null }, arr: [1, '1'], b: false, n: 123, code: '00123' }]);
  });

  it('handles unicode column names (Japanese, emoji, combining marks)', async () => {
    const values = [{ 名前: '山田', '😀': 'smile', 'e\u0301': 'combining', '\u00e9': 'precomposed' }];
    // Swap the two spellings of "é": they are different column names.
    const out = await select(
      values,
      'columns: { "😀": "😀", "氏名": "名前", "e\u0301": "\u00e9", "\u00e9": "e\u0301" }',
    );
    expect(out.columns).toEqual(['😀', '氏名', 'e\u0301', '\u00e9']);
    expect(out.records).toEqual([
      { '😀': 'smile', 氏名: '山田', 'e\u0301': 'precomposed', '\u00e9': 'combining' },
    ]);
  });

  it('renames a unicode column with rename', async () => {
    const out = await select([{ 名前: '山田', '😀': 1 }], 'rename: { "笑顔": "😀" }');
    expect(out.columns).toEqual(['名前', '笑顔']);
    expect(out.records).toEqual([{ 名前: '山田', 笑顔: 1 }]);
  });

  it.each([
    ['columns: [id, nmae]', 'nmae', 'name'],
    ['columns: { x: ammount }', 'ammount', 'amount'],
    ['rename: { x: citty }', 'citty', 'city'],
    ['drop: [Name]', 'Name', 'name'],
  ])('fails on an unknown column with did-you-mean: %s', async (body, missing, suggestion) => {
    const error = await selectFails(rows, body);
    expect(error.code).toBe('COLUMN_UNKNOWN');
    expect(error.details.step).toBe('s1');
    expect(error.message).toContain(`"${missing}"`);
    expect(error.message).toContain(`did you mean "${suggestion}"?`);
  });

  it('fails on an unknown column even when the input has no rows', async () => {
    const run = await runInline(
      pipeline(rows, 'filter: { from: source, where: "false" }', 'select: { from: s1, columns: [idd] }'),
    );
    expect(run.result.status).toBe('failed');
    expect(run.result.error?.code).toBe('COLUMN_UNKNOWN');
    expect(run.result.error?.message).toContain('did you mean "id"?');
  });

  it('drop refers to names after rename: the old name is gone', async () => {
    const error = await selectFails(rows, 'rename: { town: city }, drop: [city]');
    expect(error.code).toBe('COLUMN_UNKNOWN');
    expect(error.message).toContain('"city"');
  });

  it('fails when a rename would duplicate a column name', async () => {
    const error = await selectFails(rows, 'rename: { id: name }');
    expect(error.code).toBe('FLOW_INVALID');
    expect(error.message).toContain('two columns named "id"');
  });

  it('rejects renaming one column twice (one of the new names would be lost)', async () => {
    await expect(
      runInline(pipeline(rows, 'select: { from: source, rename: { x: name, y: name } }')),
    ).rejects.toThrow(/rename\.y: column "name" is already renamed to "x"/);
  });

  it('fails validation when no option is given', async () => {
    await expect(runInline(pipeline(rows, 'select: { from: source }'))).rejects.toThrow(
      /at least one of "columns", "rename" or "drop"/,
    );
  });
});
