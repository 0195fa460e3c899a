/**
 * JSON and NDJSON in and out: an array of records, one record, or the array at a dotted `path`;
 * columns are the union of keys in order of first appearance; `__proto__` is an ordinary
 * column; errors name the file and, for syntax errors, the line and column.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Table } from '../../src/table/index.js';
import { plain, readFile, readText, rejection, useTempDir, writeFile } from './support.js';

const dir = useTempDir();

describe('JSON in', () => {
  it('reads an array of records; columns are the union of keys in order of first appearance', async () => {
    const table = await readText(
      dir(),
      'a.json',
      '[{"b":1,"a":"x"},{"c":true,"a":null},{"d":{"k":[1,2]},"b":2.5}]',
    );
    expect(plain(table)).toEqual({
      columns: ['b', 'a', 'c', 'd'],
      rows: [
        [1, 'x', null, null],
        [null, null, true, null],
        [2.5, null, null, { k: [1, 2] }],
      ],
    });
  });

  it('reads a single record as one row', async () => {
    const table = await readText(dir(), 'one.json', '{"id":7,"tags":["a","b"]}');
    expect(plain(table)).toEqual({ columns: ['id', 'tags'], rows: [[7, ['a', 'b']]] });
  });

  it('reads the array at a dotted path', async () => {
    const table = await readText(
      dir(),
      'export.json',
      '{"meta":{"count":2},"data":{"items":[{"id":1},{"id":2,"x":"y"}]}}',
      { path: 'data.items' },
    );
    expect(plain(table)).toEqual({
      columns: ['id', 'x'],
      rows: [
        [1, null],
        [2, 'y'],
      ],
    });
  });

  it('a path that is not in the document is an error naming the missing key', async () => {
    const error = await rejection(
      readText(dir(), 'export.json', '{"data":{"items":[]}}', { path: 'data.rows' }),
    );
    expect(error.code).toBe('SOURCE_ERROR');
    expect(error.message).toBe('the document has no "data.rows" (missing "rows")');
    expect(error.details.location?.file).toMatch(/export\.json$/);
  });

  it('a path through a non-object is an error', async () => {
    const error = await rejection(
      readText(dir(), 'export.json', '{"data":[{"a":1}]}', { path: 'data.items.x' }),
    );
    expect(error.message).toBe('the document has no "data.items.x" (missing "items")');
  });

  it('items that are not records are an error naming the item', async () => {
    const error = await rejection(readText(dir(), 'n.json', '[{"a":1},2,{"a":3}]'));
    expect(error.code).toBe('SOURCE_ERROR');
    expect(error.message).toBe('item 2 is not a record (a JSON object)');
    expect(error.details.hint).toMatch(/path/);
    for (const text of ['[1,2]', '["a"]', '[[1]]', '[null]', '"text"', '42']) {
      const each = await rejection(readText(dir(), 'x.json', text));
      expect(each.message).toBe('item 1 is not a record (a JSON object)');
    }
  });

  it('a syntax error names line and column ("Expected …" errors)', async () => {
    const error = await rejection(readText(dir(), 'bad.json', '[{"a":1},\n {"a": 2,,}]'));
    expect(error.code).toBe('SOURCE_ERROR');
    expect(error.message).toMatch(/^invalid JSON: /);
    expect(error.details.location).toMatchObject({ line: 2, column: 10 });
    expect(error.details.location?.file).toMatch(/bad\.json$/);
  });

  it('a syntax error after a BOM still names the right line and column', async () => {
    const error = await rejection(readText(dir(), 'bad.json', '\uFEFF[\n  {"a" 1}\n]'));
    expect(error.details.location).toMatchObject({ line: 2, column: 8 });
  });

  // V8's "Unexpected token" messages carry no "position N" and quote the file's text instead.
  it('a syntax error names line and column ("Unexpected token" errors), without quoting the file', async () => {
    const error = await rejection(readText(dir(), 'bad.json', '{"a":\n  1,\n  "b": }'));
    expect(error.details.location).toMatchObject({ line: 3, column: 8 });
    expect(error.message).toBe('invalid JSON: unexpected character');
  });

  it('strips a BOM', async () => {
    expect(plain(await readText(dir(), 'bom.json', '\uFEFF[{"a":1}]'))).toEqual({
      columns: ['a'],
      rows: [[1]],
    });
  });

  it('makes __proto__ and constructor ordinary columns, polluting nothing', async () => {
    const table = await readText(
      dir(),
      'p.json',
      '[{"__proto__":{"polluted":true},"constructor":"c","a":1},{"toString":"t","__proto__":2}]',
    );
    expect(plain(table)).toEqual({
      columns: ['__proto__', 'constructor', 'a', 'toString'],
      rows: [
        [{ polluted: true }, 'c', 1, null],
        [2, null, null, 't'],
      ],
    });
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('an empty file or an empty array is a table with no columns', async () => {
    expect(plain(await readText(dir(), 'e.json', ''))).toEqual({ columns: [], rows: [] });
    expect(plain(await readText(dir(), 'a.json', '[]'))).toEqual({ columns: [], rows: [] });
  });

  it('reads a .txt file as JSON when format says so', async () => {
    expect(plain(await readText(dir(), 'data.txt', '[{"a":1}]', { format: 'json' }))).toEqual({
      columns: ['a'],
      rows: [[1]],
    });
  });
});

describe('NDJSON in', () => {
  it('reads one record per line, skipping blank and whitespace-only lines (LF and CRLF)', async () => {
    const table = await readText(dir(), 'a.ndjson', '{"a":1}\n\n{"b":"x","a":2}\r\n   \r\n{"c":null}\n\n');
    expect(plain(table)).toEqual({
      columns: ['a', 'b', 'c'],
      rows: [
        [1, null, null],
        [2, 'x', null],
        [null, null, null],
      ],
    });
  });

  it('a line that is not JSON is an error with its line number', async () => {
    const error = await rejection(readText(dir(), 'bad.ndjson', '{"a":1}\n\n{"a":\n{"a":3}\n'));
    expect(error.code).toBe('SOURCE_ERROR');
    expect(error.message).toMatch(/^invalid JSON: /);
    expect(error.details.location?.line).toBe(3);
    expect(error.details.location?.file).toMatch(/bad\.ndjson$/);
  });

  it('a syntax error in a line names the line and the column in it', async () => {
    const error = await rejection(readText(dir(), 'bad.ndjson', '{"a":1}\n{"a" 2}\n'));
    expect(error.details.location).toMatchObject({ line: 2, column: 6 });
  });

  it('a line that is not a record is an error with its line number', async () => {
    const error = await rejection(readText(dir(), 'bad.ndjson', '{"a":1}\n[1,2]\n'));
    expect(error.message).toBe('the line is not a record (a JSON object)');
    expect(error.details.location?.line).toBe(2);
  });

  it('reads .jsonl too, and strips a BOM', async () => {
    expect(plain(await readText(dir(), 'a.jsonl', '\uFEFF{"a":1}\n{"a":2}'))).toEqual({
      columns: ['a'],
      rows: [[1], [2]],
    });
  });

  it('an empty file is a table with no columns', async () => {
    expect(plain(await readText(dir(), 'e.ndjson', ''))).toEqual({ columns: [], rows: [] });
  });
});

const mixed: Table = {
  columns: ['id', 'name', 'score', 'ok', 'meta', '__proto__'],
  rows: [
    [1, 'Ann', 0.1 + 0.2, true, { tags: ['a'], n: null }, 'p'],
    [2, '', null, false, [1, 'two'], null],
    [3, 'line\n"q"', 1e21, null, null, { x: 1 }],
  ],
};

describe('JSON out', () => {
  it('writes one array of records, nulls and nested values kept', async () => {
    const file = join(dir(), 'out.json');
    await writeFile(file, mixed);
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as Record<string, unknown>[];
    expect(parsed).toEqual([
      JSON.parse(
        '{"id":1,"name":"Ann","score":0.30000000000000004,"ok":true,"meta":{"tags":["a"],"n":null},"__proto__":"p"}',
      ),
      JSON.parse('{"id":2,"name":"","score":null,"ok":false,"meta":[1,"two"],"__proto__":null}'),
      JSON.parse('{"id":3,"name":"line\\n\\"q\\"","score":1e21,"ok":null,"meta":null,"__proto__":{"x":1}}'),
    ]);
    expect(Object.keys(parsed[0]!)).toEqual(['id', 'name', 'score', 'ok', 'meta', '__proto__']);
  });

  it('writes [] for zero rows', async () => {
    const file = join(dir(), 'out.json');
    await writeFile(file, { columns: ['a'], rows: [] });
    expect(JSON.parse(readFileSync(file, 'utf8'))).toEqual([]);
  });

  it('round-trips: read(write(t)) = t', async () => {
    const file = join(dir(), 'rt.json');
    await writeFile(file, mixed);
    expect(plain(await readFile(file))).toEqual(plain(mixed));
  });

  it('round-trips many rows (written in several buffers)', async () => {
    const rows = Array.from({ length: 20_000 }, (_, i) => [i, `name ${i} "é"`, i % 3 === 0 ? null : i / 7]);
    const table: Table = { columns: ['i', 's', 'x'], rows };
    const file = join(dir(), 'big.json');
    await writeFile(file, table);
    expect(plain(await readFile(file))).toEqual(plain(table));
  });
});

describe('NDJSON out', () => {
  it('writes one record per line, each line ending in a line break', async () => {
    const file = join(dir(), 'out.ndjson');
    await writeFile(file, mixed);
    const text = readFileSync(file, 'utf8');
    const lines = text.split('\n');
    expect(lines.length).toBe(4);
    expect(lines[3]).toBe('');
    expect(lines[0]).toBe(
      '{"id":1,"name":"Ann","score":0.30000000000000004,"ok":true,"meta":{"tags":["a"],"n":null},"__proto__":"p"}',
    );
    expect(lines[1]).toBe('{"id":2,"name":"","score":null,"ok":false,"meta":[1,"two"],"__proto__":null}');
  });

  it('writes an empty file for zero rows', async () => {
    const file = join(dir(), 'out.ndjson');
    await writeFile(file, { columns: ['a'], rows: [] });
    expect(readFileSync(file, 'utf8')).toBe('');
  });

  it('round-trips: read(write(t)) = t', async () => {
    const file = join(dir(), 'rt.jsonl');
    await writeFile(file, mixed);
    expect(plain(await readFile(file))).toEqual(plain(mixed));
  });

  it('a file written by hand with CRLF reads the same as LF', async () => {
    writeFileSync(join(dir(), 'crlf.ndjson'), '{"a":1}\r\n{"a":2}\r\n');
    expect(plain(await readFile(join(dir(), 'crlf.ndjson')))).toEqual({ columns: ['a'], rows: [[1], [2]] });
  });
});
