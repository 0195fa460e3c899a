/**
 * Sending a table to an HTTP API: rows as JSON, one request per row (the row as an object,
 * `{column}` placeholders in the path filled from the row) or per batch of rows (an array), in
 * row order. An answer outside 2xx stops the output and names the row(s); the rows before them
 * were sent — HTTP has no transaction to roll back.
 */
import { LetheError } from '../../errors/index.js';
import { rowToRecord, valueToText, type Table } from '../../table/index.js';
import type { IoContext, WriteResult } from '../connector.js';
import { describeRows } from '../sql/errors.js';
import { statusError } from './read.js';
import type { HttpWriteRequest } from './request.js';
import type { HttpSession } from './session.js';

const PLACEHOLDER = /\{([^{}]+)\}/g;

/** The columns a path's `{column}` placeholders name. */
export function pathPlaceholders(path: string): string[] {
  return [...path.matchAll(PLACEHOLDER)].map((match) => match[1]!);
}

export async function writeHttp(
  session: HttpSession,
  request: HttpWriteRequest,
  table: Table,
  context: IoContext,
): Promise<WriteResult> {
  const method = request.method ?? 'POST';
  const batch = request.batch;
  const placeholders = pathPlaceholders(request.path);
  if (batch !== undefined && placeholders.length > 0) {
    throw new LetheError(
      'SINK_ERROR',
      `${session.label}: the path has {${placeholders[0]}}, which only a request per row can fill`,
      {
        hint: 'leave out batch, or use a path without placeholders',
      },
    );
  }
  const indexes = new Map<string, number>();
  for (const name of placeholders) {
    const index = table.columns.indexOf(name);
    if (index === -1) {
      throw new LetheError(
        'SINK_ERROR',
        `${session.label}: the path has {${name}}, but the table has no column "${name}"`,
        {
          hint: `its columns are: ${table.columns.join(', ')}`,
        },
      );
    }
    indexes.set(name, index);
  }
  const size = batch ?? 1;
  const total = table.rows.length;
  for (let first = 0; first < total; first += size) {
    if (context.signal.aborted) throw new LetheError('CANCELLED', 'the run was cancelled');
    const rows = table.rows.slice(first, first + size);
    const records = rows.map((row) => rowToRecord(table.columns, row));
    let path = request.path;
    if (batch === undefined && placeholders.length > 0) {
      const row = rows[0]!;
      path = request.path.replace(PLACEHOLDER, (_whole, name: string) => {
        const value = row[indexes.get(name)!] ?? null;
        if (value === null) {
          throw new LetheError(
            'SINK_ERROR',
            `${session.label}: ${describeRows(first, 1)} has no value for {${name}} in the path`,
          );
        }
        return encodeURIComponent(valueToText(value));
      });
    }
    const body = JSON.stringify(batch === undefined ? records[0] : records);
    const result = await session
      .call(
        {
          method,
          target: path,
          ...(request.query ? { query: request.query } : {}),
          ...(request.headers ? { headers: request.headers } : {}),
          body,
        },
        context,
      )
      .catch((error: unknown) => {
        if (!(error instanceof LetheError) || error.code === 'CANCELLED') throw error;
        throw new LetheError(
          error.code === 'CONNECTION_ERROR' ? 'CONNECTION_ERROR' : 'SINK_ERROR',
          `${error.message} (sending ${describeRows(first, rows.length)})`,
          {
            hint: error.details.hint,
            cause: error,
          },
        );
      });
    if (result.response.status < 200 || result.response.status >= 300) {
      const error = statusError(session, result, 'SINK_ERROR', ` for ${describeRows(first, rows.length)}`);
      throw new LetheError('SINK_ERROR', error.message, {
        hint: `${error.details.hint ? `${error.details.hint}; ` : ''}${first === 0 ? 'nothing was sent before' : `${describeRows(0, first)} were sent before (HTTP outputs are not transactional)`}`,
      });
    }
    context.progress(Math.min(first + size, total), total);
  }
  return { affected: total };
}
