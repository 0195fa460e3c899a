/**
 * XLSX with exceljs's streaming reader and writer. The first row of the sheet is the header.
 * Cells keep their types: numbers, text, booleans; dates become ISO text (a date at midnight
 * as YYYY-MM-DD, otherwise YYYY-MM-DDTHH:mm:ss — Excel dates carry no time zone); formulas
 * give their cached result; rich text and hyperlinks their text; error cells are null.
 */
import type { Writable } from 'node:stream';
import type ExcelJS from 'exceljs';
import { LetheError } from '../../errors/index.js';
import { valueToText, type Row, type Table, type Value } from '../../table/index.js';
import type { IoContext } from '../connector.js';
import {
  PROGRESS_EVERY,
  type FileFormat,
  type FileReadOptions,
  type FileWriteOptions,
  type OpenSource,
} from './format.js';

/** exceljs is large; it loads only when a flow reads or writes XLSX. */
const loadExcel = () => import('exceljs');

function dateText(date: Date): string {
  const iso = date.toISOString();
  return iso.endsWith('T00:00:00.000Z') ? iso.slice(0, 10) : iso.slice(0, 19);
}

function cellValue(raw: unknown): Value {
  if (raw === null || raw === undefined) return null;
  if (typeof raw === 'string' || typeof raw === 'boolean') return raw;
  if (typeof raw === 'number') return Number.isFinite(raw) ? raw : null;
  if (raw instanceof Date) return Number.isNaN(raw.getTime()) ? null : dateText(raw);
  if (typeof raw === 'object') {
    const cell = raw as Record<string, unknown>;
    if (Array.isArray(cell.richText)) {
      return (cell.richText as { text?: string }[]).map((part) => part.text ?? '').join('');
    }
    if ('error' in cell) return null;
    if ('result' in cell) return cellValue(cell.result);
    if ('formula' in cell || 'sharedFormula' in cell) return null;
    if (typeof cell.text === 'string') return cell.text;
  }
  return null;
}

async function read(open: OpenSource, options: FileReadOptions, context: IoContext): Promise<Table> {
  const { default: excel } = await loadExcel();
  const workbook = new excel.stream.xlsx.WorkbookReader(open(), {
    worksheets: 'emit',
    sharedStrings: 'cache',
    styles: 'cache',
    hyperlinks: 'ignore',
    entries: 'ignore',
  });
  let columns: string[] | undefined;
  const rows: Row[] = [];
  const seenSheets: string[] = [];
  let found = false;
  try {
    for await (const worksheet of workbook) {
      const name = (worksheet as unknown as { name?: string }).name ?? '';
      seenSheets.push(name);
      if (found || (options.sheet !== undefined && name !== options.sheet)) {
        // The reader needs every sheet consumed before it moves on.
        for await (const _row of worksheet) void _row;
        continue;
      }
      found = true;
      for await (const row of worksheet) {
        const values = (row as unknown as { values: unknown[] }).values;
        if (columns === undefined) {
          columns = [];
          for (let c = 1; c < values.length; c++) {
            const header = cellValue(values[c]);
            columns.push(header === null || header === '' ? `column_${c}` : valueToText(header));
          }
          const duplicate = columns.find((name, i) => columns!.indexOf(name) !== i);
          if (duplicate !== undefined) {
            throw new LetheError('SOURCE_ERROR', `the header names column "${duplicate}" twice`, {
              location: { file: options.displayName, line: 1 },
            });
          }
          continue;
        }
        const out: Row = new Array<Value>(columns.length).fill(null);
        for (let c = 1; c < values.length && c <= columns.length; c++) out[c - 1] = cellValue(values[c]);
        rows.push(out);
        if (rows.length % PROGRESS_EVERY === 0) {
          context.progress(rows.length);
          if (context.signal.aborted) throw context.signal.reason;
        }
      }
    }
  } catch (error) {
    if (error instanceof LetheError || context.signal.aborted) throw error;
    throw new LetheError(
      'SOURCE_ERROR',
      `invalid XLSX: ${error instanceof Error ? error.message : String(error)}`,
      {
        location: { file: options.displayName },
        cause: error,
      },
    );
  }
  if (options.sheet !== undefined && !found) {
    throw new LetheError('SOURCE_ERROR', `the workbook has no sheet "${options.sheet}"`, {
      location: { file: options.displayName },
      hint: seenSheets.length > 0 ? `its sheets are: ${seenSheets.join(', ')}` : undefined,
    });
  }
  context.progress(rows.length, rows.length);
  return { columns: columns ?? [], rows };
}

function excelValue(value: Value): ExcelJS.CellValue {
  if (value === null) return null;
  if (typeof value === 'object') return JSON.stringify(value);
  return value;
}

async function write(
  table: Table,
  sink: Writable,
  options: FileWriteOptions,
  context: IoContext,
): Promise<void> {
  const { default: excel } = await loadExcel();
  const workbook = new excel.stream.xlsx.WorkbookWriter({
    stream: sink,
    useStyles: false,
    useSharedStrings: false,
  });
  const sheet = workbook.addWorksheet(options.sheet ?? 'Sheet1');
  sheet.addRow([...table.columns]).commit();
  let written = 0;
  for (const row of table.rows) {
    sheet.addRow(row.map(excelValue)).commit();
    written++;
    if (written % PROGRESS_EVERY === 0) {
      context.progress(written, table.rows.length);
      if (context.signal.aborted) throw context.signal.reason;
      await new Promise((resolve) => setImmediate(resolve));
    }
  }
  sheet.commit();
  await workbook.commit();
  context.progress(written, table.rows.length);
}

export const xlsx: FileFormat = { name: 'xlsx', extensions: ['.xlsx'], read, write };
