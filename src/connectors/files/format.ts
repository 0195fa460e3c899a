/** The shape of a file format: read a byte stream into a table, write a table to a byte stream. */
import type { Readable, Writable } from 'node:stream';
import type { Row, Table } from '../../table/index.js';
import type { IoContext } from '../connector.js';

export const FILE_FORMATS = ['csv', 'json', 'ndjson', 'xlsx'] as const;
export type FileFormatName = (typeof FILE_FORMATS)[number];

export interface FileReadOptions {
  /** Columns whose type is declared: text formats must not infer them. */
  declared: ReadonlySet<string>;
  /** CSV field delimiter (default ","). */
  delimiter?: string;
  /** XLSX worksheet name (default: the first). */
  sheet?: string;
  /** JSON: dotted path to the array of records inside the document. */
  path?: string;
  /** Shown in error messages. */
  displayName: string;
}

export interface FileWriteOptions {
  delimiter?: string;
  sheet?: string;
  displayName: string;
}

/** Opens the file's bytes; a format may read them twice (CSV does, rarely). */
export type OpenSource = () => Readable;

export interface FileFormat {
  readonly name: FileFormatName;
  readonly extensions: readonly string[];
  read(open: OpenSource, options: FileReadOptions, context: IoContext): Promise<Table>;
  write(table: Table, sink: Writable, options: FileWriteOptions, context: IoContext): Promise<void>;
}

/** Rows between two progress reports of a reader or writer. */
export const PROGRESS_EVERY = 50_000;

/**
 * The rows of a table for a writing pipeline, reporting progress as they go. Cancellation
 * reaches the pipeline through its signal, which tears down every stream in it.
 */
export async function* tableRows(table: Table, context: IoContext): AsyncGenerator<Row> {
  let written = 0;
  for (const row of table.rows) {
    yield row;
    if (++written % PROGRESS_EVERY === 0) context.progress(written, table.rows.length);
  }
  context.progress(written, table.rows.length);
}
