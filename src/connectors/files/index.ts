/**
 * files — read and write tables as CSV, JSON, NDJSON or XLSX files on the local file system.
 * The format comes from `format` or the file's extension. Writes go to a temporary file beside
 * the target and are renamed into place, so a failed run never leaves half a file.
 */
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createReadStream, createWriteStream } from 'node:fs';
import { mkdir, rename, stat, unlink } from 'node:fs/promises';
import { basename, dirname, extname, join } from 'node:path';
import { LetheError } from '../../errors/index.js';
import type { Table } from '../../table/index.js';
import type { IoContext } from '../connector.js';
import { csv } from './csv.js';
import {
  FILE_FORMATS,
  type FileFormat,
  type FileFormatName,
  type FileReadOptions,
  type FileWriteOptions,
} from './format.js';
import { json, ndjson } from './json.js';
import { xlsx } from './xlsx.js';

export { FILE_FORMATS, type FileFormatName } from './format.js';

const FORMATS: Record<FileFormatName, FileFormat> = { csv, json, ndjson, xlsx };

/** The format for a path, or a message saying why there is none. */
export function resolveFormat(path: string, format: FileFormatName | undefined): FileFormat | string {
  if (format !== undefined) return FORMATS[format];
  const extension = extname(path).toLowerCase();
  const found = Object.values(FORMATS).find((f) => f.extensions.includes(extension));
  if (found) return found;
  return `cannot tell the format of "${basename(path)}" from its extension; set format: ${FILE_FORMATS.join(' | ')}`;
}

/** TSV files are CSV with tabs unless a delimiter is given. */
function defaultDelimiter(path: string, delimiter: string | undefined): string | undefined {
  if (delimiter !== undefined) return delimiter;
  return extname(path).toLowerCase() === '.tsv' ? '\t' : undefined;
}

function fileError(error: unknown, path: string, action: 'read' | 'write'): LetheError {
  const code = (error as NodeJS.ErrnoException).code;
  const reason =
    code === 'ENOENT'
      ? 'no such file'
      : code === 'EACCES' || code === 'EPERM'
        ? 'permission denied'
        : code === 'EISDIR'
          ? 'it is a folder'
          : error instanceof Error
            ? error.message
            : String(error);
  return new LetheError(
    action === 'read' ? 'SOURCE_ERROR' : 'SINK_ERROR',
    `cannot ${action} "${path}": ${reason}`,
    {
      cause: error,
    },
  );
}

export async function readTableFile(
  path: string,
  format: FileFormatName | undefined,
  options: Omit<FileReadOptions, 'displayName'> & { displayName?: string },
  context: IoContext,
): Promise<Table> {
  const handler = resolveFormat(path, format);
  if (typeof handler === 'string') throw new LetheError('SOURCE_ERROR', handler);
  try {
    const info = await stat(path);
    if (info.isDirectory()) throw Object.assign(new Error('is a directory'), { code: 'EISDIR' });
  } catch (error) {
    throw fileError(error, options.displayName ?? path, 'read');
  }
  const opened: ReturnType<typeof createReadStream>[] = [];
  const open = () => {
    const stream = createReadStream(path, { highWaterMark: 1 << 20 });
    opened.push(stream);
    return stream;
  };
  try {
    return await handler.read(
      open,
      {
        ...options,
        delimiter: defaultDelimiter(path, options.delimiter),
        displayName: options.displayName ?? path,
      },
      context,
    );
  } catch (error) {
    if (error instanceof LetheError || context.signal.aborted) throw error;
    throw fileError(error, options.displayName ?? path, 'read');
  } finally {
    for (const stream of opened) stream.destroy();
  }
}

export async function writeTableFile(
  path: string,
  format: FileFormatName | undefined,
  table: Table,
  options: Omit<FileWriteOptions, 'displayName'> & { displayName?: string },
  context: IoContext,
): Promise<void> {
  const handler = resolveFormat(path, format);
  if (typeof handler === 'string') throw new LetheError('SINK_ERROR', handler);
  const folder = dirname(path);
  const temporary = join(folder, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    await mkdir(folder, { recursive: true });
  } catch (error) {
    throw fileError(error, dirname(options.displayName ?? path), 'write');
  }
  const sink = createWriteStream(temporary);
  try {
    await handler.write(
      table,
      sink,
      {
        ...options,
        delimiter: defaultDelimiter(path, options.delimiter),
        displayName: options.displayName ?? path,
      },
      context,
    );
    await rename(temporary, path);
  } catch (error) {
    // The file may not even be open yet: wait for the stream to close before removing it.
    if (!sink.closed) {
      const closed = once(sink, 'close').catch(() => undefined);
      sink.destroy();
      await closed;
    }
    await unlink(temporary).catch(() => undefined);
    if (context.signal.aborted) throw context.signal.reason;
    if (error instanceof LetheError) throw error;
    throw fileError(error, options.displayName ?? path, 'write');
  }
}
