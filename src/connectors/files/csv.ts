/**
 * CSV (RFC 4180, UTF-8) with csv-parse and csv-stringify, streamed. Reading: the BOM is
 * stripped, CRLF or LF; an unquoted empty field is null and a quoted one (`""`) the empty
 * string; a column whose every non-null value is a JSON number becomes numeric (integers past
 * 2^53 keep the column as text, so ids never lose digits). Writing: a header row always, null
 * as an empty unquoted field, the empty string as `""`, numbers in shortest round-trip form,
 * nested values as JSON text.
 */
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { parse, type Options as ParseOptions } from 'csv-parse';
import { parse as parseSync } from 'csv-parse/sync';
import { stringify } from 'csv-stringify';
import { LetheError } from '../../errors/index.js';
import { isInferableNumber } from '../../table/types.js';
import type { Row, Table, Value } from '../../table/index.js';
import type { IoContext } from '../connector.js';
import {
  PROGRESS_EVERY,
  tableRows,
  type FileFormat,
  type FileReadOptions,
  type FileWriteOptions,
  type OpenSource,
} from './format.js';

interface CsvParseError {
  code?: string;
  lines?: number;
  message: string;
}

function sourceError(error: unknown, options: FileReadOptions): LetheError {
  const e = error as CsvParseError;
  const line = typeof e.lines === 'number' ? e.lines : undefined;
  const message = (e.message ?? String(error)).replace(/\s*(at|on) line \d+\s*$/, '');
  return new LetheError('SOURCE_ERROR', `invalid CSV: ${message}`, {
    location: { file: options.displayName, ...(line === undefined ? {} : { line }) },
    hint:
      e.code === 'CSV_RECORD_INCONSISTENT_FIELDS_LENGTH'
        ? 'every row must have as many fields as the header'
        : undefined,
    cause: error,
  });
}

/** Which empty fields of one record were quoted (`""`), by re-parsing that record alone. */
function quotedEmptyFields(raw: string, delimiter: string): boolean[] {
  const [record] = parseSync(raw, {
    delimiter,
    cast: (value: string, context: { quoting: boolean }) => value === '' && context.quoting,
  }) as unknown as boolean[][];
  return record ?? [];
}

function headerNames(record: string[], options: FileReadOptions): string[] {
  const seen = new Map<string, number>();
  return record.map((name, i) => {
    const column = name === '' ? `column_${i + 1}` : name;
    const before = seen.get(column);
    if (before !== undefined) {
      throw new LetheError(
        'SOURCE_ERROR',
        `the header names column "${column}" twice (fields ${before + 1} and ${i + 1})`,
        { location: { file: options.displayName, line: 1 } },
      );
    }
    seen.set(column, i);
    return column;
  });
}

/**
 * Feed a byte stream through a parser, calling `onRecord` for each record. Also tells whether
 * the bytes contain `""` anywhere (the only way a quoted empty field can be written).
 */
function parseStream(
  source: Readable,
  options: ParseOptions,
  onRecord: (record: unknown) => void,
  context: IoContext,
): Promise<{ sawDoubleQuote: boolean }> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const parser = parse({
      ...options,
      // Ragged records come to on_skip instead of ending the parse: a blank line in a file of
      // several columns (often the last line of an export) is skipped, anything else fails.
      skip_records_with_error: true,
      on_skip: (error) => {
        const record = (error as { record?: unknown[] } | undefined)?.record;
        const blank = record?.length === 1 && record[0] === '';
        if (error?.code === 'CSV_RECORD_INCONSISTENT_FIELDS_LENGTH' && blank) return undefined;
        fail(error);
        return undefined;
      },
    });
    let sawDoubleQuote = false;
    let lastByte = -1;
    const fail = (error: unknown) => {
      if (settled) return;
      settled = true;
      source.destroy();
      parser.destroy();
      reject(error);
    };
    source.on('data', (chunk: Buffer) => {
      if (!sawDoubleQuote) {
        sawDoubleQuote = (lastByte === 0x22 && chunk[0] === 0x22) || chunk.includes('""');
        lastByte = chunk[chunk.length - 1] ?? lastByte;
      }
    });
    source.on('error', fail);
    parser.on('error', fail);
    parser.on('data', (record: unknown) => {
      if (settled) return;
      try {
        onRecord(record);
      } catch (error) {
        fail(error);
      }
    });
    parser.on('end', () => {
      if (settled) return;
      settled = true;
      resolve({ sawDoubleQuote });
    });
    const abort = () => fail(context.signal.reason);
    if (context.signal.aborted) abort();
    context.signal.addEventListener('abort', abort, { once: true });
    parser.on('close', () => context.signal.removeEventListener('abort', abort));
    source.pipe(parser);
  });
}

/**
 * Read CSV. Empty fields are taken as null in one fast pass; only if the file contains `""`
 * somewhere *and* has empty fields is it read a second time, keeping each record's raw text,
 * to find which empty fields were quoted (those are empty strings).
 */
async function read(open: OpenSource, options: FileReadOptions, context: IoContext): Promise<Table> {
  const delimiter = options.delimiter ?? ',';
  let columns: string[] | undefined;
  const rows: Row[] = [];
  // Per column: still possibly numeric (undeclared columns only).
  let numeric: boolean[] = [];
  // Records (by row index) that have at least one empty field.
  const withEmpty: number[] = [];
  let pass;
  try {
    pass = await parseStream(
      open(),
      { bom: true, delimiter },
      (record) => {
        const row = record as Value[];
        if (columns === undefined) {
          columns = headerNames(row as string[], options);
          numeric = columns.map((name) => !options.declared.has(name));
          return;
        }
        let empty = false;
        for (let c = 0; c < row.length; c++) {
          const value = row[c] as string;
          if (value === '') {
            row[c] = null;
            empty = true;
          } else if (numeric[c] && !isInferableNumber(value)) {
            numeric[c] = false;
          }
        }
        if (empty) withEmpty.push(rows.length);
        rows.push(row);
        if (rows.length % PROGRESS_EVERY === 0) context.progress(rows.length);
      },
      context,
    );
    if (pass.sawDoubleQuote && withEmpty.length > 0)
      await restoreQuotedEmpties(open, rows, withEmpty, numeric, delimiter, context);
  } catch (error) {
    if (error instanceof LetheError || context.signal.aborted) throw error;
    throw sourceError(error, options);
  }
  if (columns === undefined) return { columns: [], rows: [] };
  const numericColumns = numeric.flatMap((isNumeric, c) => (isNumeric ? [c] : []));
  if (numericColumns.length > 0) {
    for (const row of rows) {
      for (const c of numericColumns) {
        const value = row[c];
        if (value !== null) row[c] = Number(value);
      }
    }
  }
  context.progress(rows.length, rows.length);
  return { columns, rows };
}

/** Second pass: set quoted empty fields (`""`) back to the empty string. */
async function restoreQuotedEmpties(
  open: OpenSource,
  rows: Row[],
  withEmpty: readonly number[],
  numeric: boolean[],
  delimiter: string,
  context: IoContext,
): Promise<void> {
  let record = -1; // -1 is the header
  let next = 0;
  await parseStream(
    open(),
    { bom: true, delimiter, raw: true },
    (item) => {
      const index = record++;
      if (index !== withEmpty[next]) return;
      next++;
      const { raw } = item as { raw: string };
      if (!raw.includes('""')) return;
      const quoted = quotedEmptyFields(raw, delimiter);
      const row = rows[index]!;
      for (let c = 0; c < row.length; c++) {
        if (quoted[c]) {
          row[c] = '';
          numeric[c] = false;
        }
      }
    },
    context,
  );
}

/** Options for csv-stringify that give SPEC 4.2's output rules. */
export function stringifyOptions(columns: readonly string[], delimiter: string) {
  return {
    delimiter,
    header: true,
    columns: columns.map((_, i) => ({ key: String(i), header: columns[i]! })),
    cast: {
      // Only the empty *string* is quoted; null stays an empty unquoted field.
      string: (value: string) => (value === '' ? { value: '', quoted_empty: true } : value),
      number: (value: number) => String(value),
      boolean: (value: boolean) => (value ? 'true' : 'false'),
      object: (value: object) => JSON.stringify(value),
    },
  };
}

async function write(
  table: Table,
  sink: Writable,
  options: FileWriteOptions,
  context: IoContext,
): Promise<void> {
  // A table without columns is an empty file (a header line of nothing would read back as a column).
  if (table.columns.length === 0) {
    await pipeline(Readable.from([]), sink, { signal: context.signal });
    return;
  }
  const stringifier = stringify(stringifyOptions(table.columns, options.delimiter ?? ','));
  await pipeline(Readable.from(tableRows(table, context)), stringifier, sink, { signal: context.signal });
}

export const csv: FileFormat = { name: 'csv', extensions: ['.csv', '.tsv'], read, write };
