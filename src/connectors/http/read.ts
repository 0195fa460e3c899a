/**
 * Reading a table from an HTTP API: JSON answers, the records at a dotted path, page after
 * page (page number, offset, cursor, or next links) up to a bounded number of pages. Columns
 * are the union of the records' keys in order of first appearance, as for JSON files.
 */
import { LetheError } from '../../errors/index.js';
import { tableFromRecords, type Table } from '../../table/index.js';
import type { IoContext } from '../connector.js';
import { DEFAULT_MAX_PAGES, type HttpReadRequest, type QueryValue } from './request.js';
import type { CallResult, HttpSession } from './session.js';

/** The value at a dotted path, or `missing` naming the first absent key. */
export function valueAtPath(document: unknown, path: string): { value: unknown } | { missing: string } {
  let value = document;
  for (const key of path.split('.')) {
    if (value === null || typeof value !== 'object' || !Object.prototype.hasOwnProperty.call(value, key)) {
      return { missing: key };
    }
    value = (value as Record<string, unknown>)[key];
  }
  return { value };
}

function parseAnswer(result: CallResult, label: string): unknown {
  const { response, described } = result;
  const text = response.body.toString('utf8');
  if (text.trim() === '') return null;
  try {
    return JSON.parse(text);
  } catch {
    const type = response.headers['content-type'];
    throw new LetheError(
      'SOURCE_ERROR',
      `${label}: the answer to ${described} is not JSON${type ? ` (content-type ${String(type)})` : ''}`,
      {
        hint: 'check the path; this input reads JSON answers',
      },
    );
  }
}

function recordsOf(document: unknown, request: HttpReadRequest, described: string, label: string): unknown[] {
  let value = document;
  if (request.records !== undefined && document !== null) {
    const found = valueAtPath(document, request.records);
    if ('missing' in found) {
      throw new LetheError(
        'SOURCE_ERROR',
        `${label}: the answer to ${described} has no "${request.records}" (missing "${found.missing}")`,
        {
          hint: 'records is the dotted path to the list of records in the answer, e.g. data.items',
        },
      );
    }
    value = found.value;
  }
  if (value === null || value === undefined) return [];
  const list = Array.isArray(value) ? value : [value];
  list.forEach((item, i) => {
    if (item === null || typeof item !== 'object' || Array.isArray(item)) {
      throw new LetheError(
        'SOURCE_ERROR',
        `${label}: item ${i + 1} of the answer to ${described} is not a record (a JSON object)`,
        {
          hint:
            request.records === undefined
              ? 'if the records are inside the answer, set records (e.g. records: data.items)'
              : undefined,
        },
      );
    }
  });
  return list;
}

/** The `rel="next"` target of a Link header (RFC 8288). */
export function nextLink(header: string | string[] | undefined): string | undefined {
  const text = Array.isArray(header) ? header.join(', ') : header;
  if (!text) return undefined;
  for (const match of text.matchAll(/<([^>]*)>((?:\s*;\s*[^;,<]+)*)/g)) {
    const rel = /;\s*rel\s*=\s*(?:"([^"]*)"|([^\s;,"]+))/i.exec(match[2] ?? '');
    const types = (rel?.[1] ?? rel?.[2] ?? '').toLowerCase().split(/\s+/);
    if (types.includes('next')) return match[1];
  }
  return undefined;
}

export function statusError(
  session: HttpSession,
  result: CallResult,
  code: 'SOURCE_ERROR' | 'SINK_ERROR',
  where = '',
): LetheError {
  const { response, described, retries } = result;
  const after = retries > 0 ? ` (after ${retries} ${retries === 1 ? 'retry' : 'retries'})` : '';
  const hint =
    response.status === 401 || response.status === 403
      ? "check the connection's credentials and their permissions"
      : response.status === 404
        ? "check the path and the connection's baseUrl"
        : response.status === 429 || response.status >= 500
          ? 'the service is busy or failing; retries are set on the connection (retries, retryDelayMs)'
          : response.status >= 300 && response.status < 400
            ? 'a redirect without a usable Location; point the connection at the final address'
            : undefined;
  return new LetheError(
    code,
    `${session.label} answered ${response.status}${response.statusText ? ` ${response.statusText}` : ''} to ${described}${where}${after}`,
    {
      hint,
    },
  );
}

export async function readHttp(
  session: HttpSession,
  request: HttpReadRequest,
  context: IoContext,
): Promise<Table> {
  const label = session.label;
  const paginate = request.paginate ?? { style: 'none' };
  const maxPages = paginate.maxPages ?? DEFAULT_MAX_PAGES;
  const method = request.method ?? 'GET';
  const body = request.body === undefined ? undefined : JSON.stringify(request.body);
  const records: unknown[] = [];
  const seen = new Set<string>();
  const pageParam =
    paginate.param ??
    (paginate.style === 'page' ? 'page' : paginate.style === 'offset' ? 'offset' : 'cursor');
  const size = paginate.size ?? (paginate.style === 'offset' ? 100 : undefined);
  const sizeParam = paginate.sizeParam ?? (paginate.style === 'offset' ? 'limit' : undefined);
  let position = paginate.start ?? (paginate.style === 'page' ? 1 : 0);
  let cursor: string | undefined;
  let target: string | URL = request.path;
  for (let page = 1; ; page++) {
    const query: Record<string, QueryValue> = target instanceof URL ? {} : { ...request.query };
    if (!(target instanceof URL)) {
      if (paginate.style === 'page' || paginate.style === 'offset') query[pageParam] = position;
      if (
        (paginate.style === 'page' || paginate.style === 'offset') &&
        sizeParam !== undefined &&
        size !== undefined
      ) {
        query[sizeParam] = size;
      }
      if (paginate.style === 'cursor' && cursor !== undefined) query[pageParam] = cursor;
    }
    const result = await session.call(
      {
        method,
        target,
        query,
        ...(request.headers ? { headers: request.headers } : {}),
        ...(body !== undefined ? { body } : {}),
      },
      context,
    );
    if (result.response.status < 200 || result.response.status >= 300)
      throw statusError(session, result, 'SOURCE_ERROR');
    const document = parseAnswer(result, label);
    const items = recordsOf(document, request, result.described, label);
    for (const item of items) records.push(item);
    context.progress(records.length);

    let more: boolean;
    switch (paginate.style) {
      case 'none':
        more = false;
        break;
      case 'page':
        more = items.length > 0 && (size === undefined || items.length >= size);
        position += 1;
        break;
      case 'offset':
        more = items.length > 0 && items.length >= size!;
        position += items.length;
        break;
      case 'cursor': {
        const found =
          document === null ? { missing: paginate.cursorPath! } : valueAtPath(document, paginate.cursorPath!);
        const next = 'value' in found ? found.value : undefined;
        more = next !== undefined && next !== null && next !== '';
        if (more) {
          if (typeof next === 'object') {
            throw new LetheError(
              'SOURCE_ERROR',
              `${label}: the cursor at "${paginate.cursorPath}" in the answer to ${result.described} is not a string or number`,
            );
          }
          cursor = String(next);
          if (seen.has(cursor)) throw loop(label, result.described);
          seen.add(cursor);
        }
        break;
      }
      case 'link': {
        let next: unknown = nextLink(result.response.headers.link);
        if (paginate.nextPath !== undefined) {
          const found = document === null ? undefined : valueAtPath(document, paginate.nextPath);
          next = found && 'value' in found ? found.value : undefined;
        }
        more = typeof next === 'string' && next !== '';
        if (more) {
          let url: URL;
          try {
            url = new URL(next as string, result.response.url);
          } catch {
            throw new LetheError(
              'SOURCE_ERROR',
              `${label}: the next-page link in the answer to ${result.described} is not a URL`,
            );
          }
          if (seen.has(url.href)) throw loop(label, result.described);
          seen.add(url.href);
          target = url;
        }
        break;
      }
    }
    if (!more) break;
    if (page >= maxPages) {
      throw new LetheError(
        'SOURCE_ERROR',
        `${label}: more pages remain after ${maxPages} pages (paginate.maxPages)`,
        {
          hint: 'raise paginate.maxPages, or narrow the request with query parameters',
        },
      );
    }
  }
  return tableFromRecords(records);
}

function loop(label: string, described: string): LetheError {
  return new LetheError(
    'SOURCE_ERROR',
    `${label}: the answer to ${described} points back to a page already read`,
    {
      hint: 'the API repeats its cursor or next link; check paginate',
    },
  );
}
