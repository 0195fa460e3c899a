/**
 * XLSX: the first row is the header; cells keep their types (numbers, text, booleans, empty →
 * null); nested values are written as JSON text; dates read as ISO text; `sheet` picks the
 * worksheet and a missing one is an error listing the sheets.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Table } from '../../src/table/index.js';
import { plain, readFile, rejection, useTempDir, writeFile } from './support.js';

const dir = useTempDir();

/** A workbook made by exceljs itself (as a user's spreadsheet program would). */
async function workbook(file: string, sheets: Record<string, unknown[][]>): Promise<void> {
  const { default: excel } = await import('exceljs');
  const book = new excel.Workbook();
  for (const [name, rows] of Object.entries(sheets)) {
    const sheet = book.addWorksheet(name);
    for (const row of rows) sheet.addRow(row);
  }
  await book.xlsx.writeFile(file);
}

describe('XLSX write then read', () => {
  it('keeps numbers, strings, booleans and nulls; nested values come back as JSON text', async () => {
    const table: Table = {
      columns: ['id', 'name', 'score', 'active', 'meta', 'note'],
      rows: [
        [1, 'Ann', 0.1 + 0.2, true, { tags: ['a', 'b'] }, null],
        [2, '東京 😀', -12.5, false, [1, 2], ''],
        [3, null, 1e21, null, null, 'say "hi", ok'],
      ],
    };
    const file = join(dir(), 'out.xlsx');
    await writeFile(file, table);
    expect(plain(await readFile(file))).toEqual({
      columns: ['id', 'name', 'score', 'active', 'meta', 'note'],
      rows: [
        [1, 'Ann', 0.30000000000000004, true, '{"tags":["a","b"]}', null],
        [2, '東京 😀', -12.5, false, '[1,2]', ''],
        [3, null, 1e21, null, null, 'say "hi", ok'],
      ],
    });
  });

  it('keeps numeric-looking text as text (no inference for XLSX)', async () => {
    const file = join(dir(), 'text.xlsx');
    await writeFile(file, { columns: ['zip'], rows: [['00123'], ['42']] });
    expect(plain(await readFile(file))).toEqual({ columns: ['zip'], rows: [['00123'], ['42']] });
  });

  it('keeps the header of a zero-row table', async () => {
    const file = join(dir(), 'empty.xlsx');
    await writeFile(file, { columns: ['a', 'b'], rows: [] });
    expect(plain(await readFile(file))).toEqual({ columns: ['a', 'b'], rows: [] });
  });

  it('writes the sheet named by `sheet` (default Sheet1)', async () => {
    const named = join(dir(), 'named.xlsx');
    await writeFile(named, { columns: ['a'], rows: [[1]] }, { sheet: 'Customers' });
    expect(plain(await readFile(named, { sheet: 'Customers' }))).toEqual({ columns: ['a'], rows: [[1]] });
    const error = await rejection(readFile(named, { sheet: 'Sheet1' }));
    expect(error.details.hint).toBe('its sheets are: Customers');

    const unnamed = join(dir(), 'unnamed.xlsx');
    await writeFile(unnamed, { columns: ['a'], rows: [[2]] });
    expect(plain(await readFile(unnamed, { sheet: 'Sheet1' }))).toEqual({ columns: ['a'], rows: [[2]] });
  });
});

describe('XLSX in', () => {
  it('reads the first sheet by default and another one with `sheet`', async () => {
    const file = join(dir(), 'book.xlsx');
    await workbook(file, {
      First: [['a'], [1]],
      Second: [
        ['b', 'c'],
        ['x', 2],
        ['y', 3],
      ],
    });
    expect(plain(await readFile(file))).toEqual({ columns: ['a'], rows: [[1]] });
    expect(plain(await readFile(file, { sheet: 'First' }))).toEqual({ columns: ['a'], rows: [[1]] });
    expect(plain(await readFile(file, { sheet: 'Second' }))).toEqual({
      columns: ['b', 'c'],
      rows: [
        ['x', 2],
        ['y', 3],
      ],
    });
  });

  it('a missing sheet is an error that lists the sheets', async () => {
    const file = join(dir(), 'book.xlsx');
    await workbook(file, { First: [['a'], [1]], Second: [['b'], [2]] });
    const error = await rejection(readFile(file, { sheet: 'Third' }));
    expect(error.code).toBe('SOURCE_ERROR');
    expect(error.message).toBe('the workbook has no sheet "Third"');
    expect(error.details.hint).toBe('its sheets are: First, Second');
    expect(error.details.location?.file).toMatch(/book\.xlsx$/);
  });

  it('reads dates as ISO text: a date at midnight as YYYY-MM-DD, otherwise with the time', async () => {
    const file = join(dir(), 'dates.xlsx');
    await workbook(file, {
      Dates: [
        ['day', 'moment'],
        [new Date(Date.UTC(2024, 0, 15)), new Date(Date.UTC(2024, 1, 29, 10, 30, 5))],
        [new Date(Date.UTC(1999, 11, 31)), new Date(Date.UTC(2000, 0, 1, 0, 0, 1))],
      ],
    });
    expect(plain(await readFile(file))).toEqual({
      columns: ['day', 'moment'],
      rows: [
        ['2024-01-15', '2024-02-29T10:30:05'],
        ['1999-12-31', '2000-01-01T00:00:01'],
      ],
    });
  });

  it('reads formulas as their cached result and rich text as its text', async () => {
    const file = join(dir(), 'cells.xlsx');
    await workbook(file, {
      Cells: [
        ['n', 'twice', 'rich'],
        [2, { formula: 'A2*2', result: 4 }, { richText: [{ text: 'ab' }, { text: 'c' }] }],
      ],
    });
    expect(plain(await readFile(file))).toEqual({ columns: ['n', 'twice', 'rich'], rows: [[2, 4, 'abc']] });
  });

  it('fills short rows with null and names empty header cells', async () => {
    const file = join(dir(), 'short.xlsx');
    await workbook(file, { S: [['a', null, 'c'], [1], [1, 2, 3]] });
    expect(plain(await readFile(file))).toEqual({
      columns: ['a', 'column_2', 'c'],
      rows: [
        [1, null, null],
        [1, 2, 3],
      ],
    });
  });

  it('a header naming a column twice is an error on line 1', async () => {
    const file = join(dir(), 'dup.xlsx');
    await workbook(file, {
      S: [
        ['a', 'a'],
        [1, 2],
      ],
    });
    const error = await rejection(readFile(file));
    expect(error.message).toBe('the header names column "a" twice');
    expect(error.details.location?.line).toBe(1);
  });

  it('a file that is not a workbook is a SOURCE_ERROR, not a crash', async () => {
    const { writeFileSync } = await import('node:fs');
    const file = join(dir(), 'fake.xlsx');
    writeFileSync(file, 'a,b\n1,2\n');
    const error = await rejection(readFile(file));
    expect(error.code).toBe('SOURCE_ERROR');
    expect(error.details.location?.file).toMatch(/fake\.xlsx$/);
  });
});
