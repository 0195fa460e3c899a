/**
 * JSON and NDJSON. JSON in is one document: an array of records, or a single record, or the
 * array found at a dotted `path` inside it (e.g. an API export's `data.items`); it is parsed
 * whole with the native parser, which is much faster than any streaming one. NDJSON is read
 * and written a line at a time. JSON out is one array of records, streamed row by row.
 * Columns are the union of keys in order of first appearance.
 */
import { once } from 'node:events';
import { createInterface } from 'node:readline';
import type { Readable, Writable } from 'node:stream';
import { LetheError } from '../../errors/index.js';
import { rowToRecord, tableFromRecords, type Table } from '../../table/index.js';
import type { IoContext } from '../connector.js';
import type { FileFormat, FileReadOptions, FileWriteOptions, OpenSource } from './format.js';

const PROGRESS_EVERY = 50_000;

async function readText(source: Readable): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of source) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : (chunk as Buffer));
  let text = Buffer.concat(chunks).toString('utf8');
  if (text.charCodeAt(0) === 0xfeff) text = text.slice(1);
  return text;
}

/** Line and column of a character offset, for JSON syntax errors. */
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

function parseError(error: unknown, text: string, file: string, lineOffset = 0): LetheError {
  const message = error instanceof Error ? error.message : String(error);
  const match = /position (\d+)/.exec(message);
  const where = match ? position(text, Number(match[1])) : undefined;
  return new LetheError('SOURCE_ERROR', `invalid JSON: ${message.replace(/ in JSON at position \d+.*$/, '')}`, {
    location: {
      file,
      ...(where ? { line: where.line + lineOffset, column: where.column } : lineOffset ? { line: lineOffset + 1 } : {}),
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
        hint: options.path ? undefined : 'if the records are inside the document, set `path` (e.g. path: data.items)',
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

async function writeLines(
  table: Table,
  sink: Writable,
  context: IoContext,
  format: { open: string; separator: string; close: string },
): Promise<void> {
  const done = new Promise<void>((resolve, reject) => {
    sink.on('finish', resolve);
    sink.on('error', reject);
  });
  let buffer = format.open;
  let written = 0;
  for (const row of table.rows) {
    buffer += (written === 0 ? '' : format.separator) + JSON.stringify(rowToRecord(table.columns, row));
    written++;
    if (buffer.length > 1 << 16) {
      if (!sink.write(buffer)) await once(sink, 'drain');
      buffer = '';
    }
    if (written % PROGRESS_EVERY === 0) {
      context.progress(written, table.rows.length);
      if (context.signal.aborted) throw context.signal.reason;
    }
  }
  buffer += format.close;
  sink.end(buffer);
  await done;
  context.progress(written, table.rows.length);
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
    writeLines(table, sink, context, { open: '', separator: '\n', close: table.rows.length === 0 ? '' : '\n' }),
};
