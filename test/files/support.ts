/** Shared helpers for the file-format tests: a temp folder per test, an IoContext, errors as values. */
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, expect } from 'vitest';
import type { IoContext } from '../../src/connectors/connector.js';
import { readTableFile, writeTableFile, type FileFormatName } from '../../src/connectors/files/index.js';
import { LetheError } from '../../src/errors/index.js';
import type { Table } from '../../src/table/index.js';
import { tempDir } from '../helpers/engine.js';

export function io(signal: AbortSignal = new AbortController().signal): IoContext {
  return { signal, progress: () => {} };
}

/** A fresh temporary folder for every test of the calling file; returns a getter for its path. */
export function useTempDir(): () => string {
  let dir: { path: string; cleanup: () => void } | undefined;
  beforeEach(() => {
    dir = tempDir('lethe-files-');
  });
  afterEach(() => {
    dir?.cleanup();
    dir = undefined;
  });
  return () => {
    if (!dir) throw new Error('no temp dir outside a test');
    return dir.path;
  };
}

export interface ReadOptions {
  declared?: string[];
  delimiter?: string;
  sheet?: string;
  path?: string;
  format?: FileFormatName;
}

/** Write `content` to `dir/name` and read it back as a table. */
export async function readText(
  dir: string,
  name: string,
  content: string | Buffer,
  options: ReadOptions = {},
): Promise<Table> {
  const file = join(dir, name);
  writeFileSync(file, content);
  return readFile(file, options);
}

export function readFile(file: string, options: ReadOptions = {}, context: IoContext = io()): Promise<Table> {
  return readTableFile(
    file,
    options.format,
    {
      declared: new Set(options.declared ?? []),
      delimiter: options.delimiter,
      sheet: options.sheet,
      path: options.path,
    },
    context,
  );
}

export function writeFile(
  file: string,
  table: Table,
  options: { delimiter?: string; sheet?: string; format?: FileFormatName } = {},
  context: IoContext = io(),
): Promise<void> {
  return writeTableFile(
    file,
    options.format,
    table,
    { delimiter: options.delimiter, sheet: options.sheet },
    context,
  );
}

/** The LetheError a promise rejects with (fails the test if it resolves or throws something else). */
export async function rejection(promise: Promise<unknown>): Promise<LetheError> {
  let resolved = false;
  try {
    await promise;
    resolved = true;
  } catch (error) {
    expect(error).toBeInstanceOf(LetheError);
    return error as LetheError;
  }
  expect(resolved, 'expected the promise to reject').toBe(false);
  throw new Error('unreachable');
}

/** Plain copy of a table (columns as a mutable array) for toEqual. */
export function plain(table: Table): { columns: string[]; rows: unknown[][] } {
  return { columns: [...table.columns], rows: table.rows.map((row) => [...row]) };
}

/** Files in a folder, sorted (to show that no temporary file is left behind). */
export function listing(dir: string): string[] {
  return readdirSync(dir).sort();
}
