/**
 * JSON and NDJSON. JSON in is one document: an array of records, or a single record, or the
 * array found at a dotted `path` inside it (e.g. an API export's `data.items`); it is parsed
 * whole with the native parser, which is much faster than any streaming one. NDJSON is read
 * and written a line at a time. JSON out is one array of records, streamed row by row.
 * Columns are the union of keys in order of first appearance.
 */
import { createInterface } from 'node:readline';
import { Readable, type Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { LetheError } from '../../errors/index.js';
import { rowToRecord, tableFromRecords, type Table } from '../../table/index.js';
import type { IoContext } from '../connector.js';
import {
  PROGRESS_EVERY,
  tableRows,
  type FileFormat,
  type FileReadOptions,
  type FileWriteOptions,
  type OpenSource,
} from './format.js';

async function readText(source: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of source)
    chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  let text = Buffer.concat(chunks).toString('utf8');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  return text;
}

/** Line and column of a character offset. */
function position(text: string, offset: number): { line: number; column: number } {
  let line = 1;
  let start = 0;
  for (let i = 0; i < offset && i < text.length; i++) {
    if (text.charCodeAt(i) === 10) {
      line++;
      start = i + 1;
    }
  }
  return { line, column: offset - start + 1 };
}

/** Above this size an error without a position stays without one (finding it re-parses). */
const SEARCH_LIMIT = 16 * 1024 * 1024;

/**
 * Where JSON.parse fails, for the messages that do not say: the shortest prefix that fails for
 * another reason than ending early ends just past the bad character. Prefixes before it end
 * early (a complete value followed by more text gets a message with a position), so the
 * search is a binary one.
 */
function errorOffset(text: string): number | undefined {
  if (text.length > SEARCH_LIMIT) return undefined;
  const failsHere = (length: number) => {
    try {
      JSON.parse(text.slice(0, length));
      return false;
    } catch (error) {
      // Running out of text shows as "Unexpected end" or as an error positioned at the end.
      const message = (error as Error).message;
      const at = /at position (\d+)/.exec(message);
      return !/^Unexpected end/.test(message) && (at === null || Number(at[1]) < length);
    }
  };
  let low = 1;
  let high = text.length;
  if (!failsHere(high)) return undefined;
  while (low < high) {
    const middle = (low + high) >>> 1;
    if (failsHere(middle)) high = middle;
    else low = middle + 1;
  }
  return low - 1;
}

/**
 * A JSON syntax error as a LetheError with line and column. V8 gives the position in most
 * messages; where it does not, it quotes the file's content instead (which must not reach a
 * message), and errorOffset finds the position. The message says only what kind of mistake
 * it is.
 */
function parseError(error: unknown, text: string, file: string, lineOffset = 0): LetheError {
  const message = error instanceof Error ? error.message : String(error);
  const at = /at position (\d+)/.exec(message);
  let where: { line: number; column: number } | undefined;
  if (at) {
    where = position(text, Number(at[1]));
  } else {
    const offset = errorOffset(text);
    if (offset !== undefined) where = position(text, offset);
  }
  const kind = /^Unexpected end/.test(message)
    ? 'unexpected end of the document'
    : (/^((?:Expected|Unexpected non-whitespace|Bad)[^"']*?) in JSON/.exec(message)?.[1] ??
      'unexpected character');
  return new LetheError('SOURCE_ERROR', `invalid JSON: ${kind.charAt(0).toLowerCase()}${kind.slice(1)}`, {
    location: {
      file,
      ...(where
        ? { line: where.line + lineOffset, column: where.column }
        : lineOffset
          ? { line: lineOffset + 1 }
          : {}),
    },
    cause: error,
  });
}

function records(document: unknown, options: FileReadOptions): unknown[] {
  let value = document;
  if (options.path) {
    for (const key of options.path.split('.')) {
      if (value === null || typeof value !== 'object' || !Object.prototype.hasOwnProperty.call(value, key)) {
        throw new LetheError('SOURCE_ERROR', `the document has no "${options.path}" (missing "${key}")`, {
          location: { file: options.displayName },
        });
      }
      value = (value as Record<string, unknown>)[key];
    }
  }
  const list = Array.isArray(value) ? value : [value];
  list.forEach((item, i) => {
    if (item === null || typeof item !== 'object' || Array.isArray(item)) {
      throw new LetheError('SOURCE_ERROR', `item ${i + 1} is not a record (a JSON object)`, {
        location: { file: options.displayName },
        hint: options.path
          ? undefined
          : 'if the records are inside the document, set `path` (e.g. path: data.items)',
      });
    }
  });
  return list;
}

async function readJson(open: OpenSource, options: FileReadOptions, context: IoContext): Promise<Table> {
  const text = await readText(open());
  if (text.trim() === '') return { columns: [], rows: [] };
  let document: unknown;
  try {
    document = JSON.parse(text);
  } catch (error) {
    throw parseError(error, text, options.displayName);
  }
  const table = tableFromRecords(records(document, options));
  context.progress(table.rows.length, table.rows.length);
  return table;
}

async function readNdjson(open: OpenSource, options: FileReadOptions, context: IoContext): Promise<Table> {
  const lines = createInterface({ input: open(), crlfDelay: Infinity });
  const list: unknown[] = [];
  let lineNumber = 0;
  for await (const line of lines) {
    lineNumber++;
    const text = lineNumber === 1 && line.charCodeAt(0) === 0xfeff ? line.slice(1) : line;
    if (text.trim() === '') continue;
    let item: unknown;
    try {
      item = JSON.parse(text);
    } catch (error) {
      throw parseError(error, text, options.displayName, lineNumber - 1);
    }
    if (item === null || typeof item !== 'object' || Array.isArray(item)) {
      throw new LetheError('SOURCE_ERROR', 'the line is not a record (a JSON object)', {
        location: { file: options.displayName, line: lineNumber },
      });
    }
    list.push(item);
    if (list.length % PROGRESS_EVERY === 0) {
      context.progress(list.length);
      if (context.signal.aborted) throw context.signal.reason;
    }
  }
  const table = tableFromRecords(list);
  context.progress(table.rows.length, table.rows.length);
  return table;
}

/** The table as JSON text, in chunks of about 64 KiB. */
async function* jsonChunks(
  table: Table,
  context: IoContext,
  format: { open: string; separator: string; close: string },
): AsyncGenerator<string> {
  let buffer = format.open;
  let first = true;
  for await (const row of tableRows(table, context)) {
    buffer += (first ? '' : format.separator) + JSON.stringify(rowToRecord(table.columns, row));
    first = false;
    if (buffer.length > 1 << 16) {
      yield buffer;
      buffer = '';
    }
  }
  yield buffer + format.close;
}

function writeLines(
  table: Table,
  sink: Writable,
  context: IoContext,
  format: { open: string; separator: string; close: string },
): Promise<void> {
  return pipeline(Readable.from(jsonChunks(table, context, format)), sink, { signal: context.signal });
}

export const json: FileFormat = {
  name: 'json',
  extensions: ['.json'],
  read: readJson,
  write: (table, sink, _options: FileWriteOptions, context) =>
    writeLines(table, sink, context, {
      open: '[',
      separator: ',\n',
      close: ']\n',
    }),
};

export const ndjson: FileFormat = {
  name: 'ndjson',
  extensions: ['.ndjson', '.jsonl'],
  read: readNdjson,
  write: (table, sink, _options, context) =>
    writeLines(table, sink, context, {
      open: '',
      separator: '\n',
      close: table.rows.length === 0 ? '' : '\n',
    }),
};
