/**
 * What a flow asks of an HTTP connection: the `request` of an input (read a table from JSON
 * answers, page by page) or of an output (send rows as JSON, one request per row or per
 * batch). The commands reach an HTTP session through these types only.
 */
import type { Table } from '../../table/index.js';
import type { ConnectorSession, IoContext, WriteResult } from '../connector.js';

export const HTTP_METHODS = ['GET', 'POST', 'PUT', 'PATCH', 'DELETE'] as const;
export type HttpMethod = (typeof HTTP_METHODS)[number];

export const PAGINATE_STYLES = ['none', 'page', 'offset', 'cursor', 'link'] as const;
export type PaginateStyle = (typeof PAGINATE_STYLES)[number];

export type QueryValue = string | number | boolean;

/**
 * - page: `param` (default "page") counts from `start` (default 1); `sizeParam` + `size` ask
 *   for a page size; stops at an empty page, or a page shorter than `size`.
 * - offset: `param` (default "offset") from `start` (default 0), `sizeParam` (default "limit")
 *   = `size` (default 100); stops at a page shorter than `size`.
 * - cursor: the next cursor is at `cursorPath` in the answer, sent as `param` (default
 *   "cursor"); stops when it is missing, null or "".
 * - link: the next page's URL is in the `Link: <…>; rel="next"` header, or at `nextPath` in the
 *   answer; it must stay on the connection's origin.
 * At most `maxPages` (default 100) pages: more is an error, never a silent cut.
 */
export interface Paginate {
  style: PaginateStyle;
  param?: string;
  start?: number;
  sizeParam?: string;
  size?: number;
  cursorPath?: string;
  nextPath?: string;
  maxPages?: number;
}

interface RequestBase {
  method?: HttpMethod;
  /** Relative to the connection's baseUrl. */
  path: string;
  query?: Record<string, QueryValue>;
  headers?: Record<string, string>;
}

export interface HttpReadRequest extends RequestBase {
  /** Sent as JSON (a search body for POST). */
  body?: unknown;
  /** Dotted path to the records in the JSON answer, e.g. data.items. */
  records?: string;
  paginate?: Paginate;
}

export interface HttpWriteRequest extends RequestBase {
  /** Rows per request, sent as a JSON array; without it each row is one request (a JSON object). */
  batch?: number;
}

/** A session of an `http` connection: reads and writes tables through requests. */
export interface HttpSessionApi extends ConnectorSession {
  readonly kind: 'http';
  fetchTable(request: HttpReadRequest, context: IoContext): Promise<Table>;
  send(request: HttpWriteRequest, table: Table, context: IoContext): Promise<WriteResult>;
}

export const DEFAULT_MAX_PAGES = 100;
