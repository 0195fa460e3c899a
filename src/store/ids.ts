/**
 * Ids that sort by creation time (12 hex digits of epoch milliseconds, then 16 random hex
 * digits), so "newest first" is "id descending" and a page cursor is simply the last id seen.
 */
import { randomBytes } from 'node:crypto';
import { LetheError } from '../errors/index.js';

/** Random bytes drawn in blocks: one call into the system's generator per 512 ids. */
let pool = Buffer.alloc(0);
let offset = 0;

export function newId(now: number = Date.now()): string {
  if (offset + 8 > pool.length) {
    pool = randomBytes(4096);
    offset = 0;
  }
  const random = pool.toString('hex', offset, offset + 8);
  offset += 8;
  return now.toString(16).padStart(12, '0') + random;
}

/** A list page, as every list route returns it. */
export interface Page<T> {
  items: T[];
  next: string | null;
}

export const DEFAULT_PAGE_SIZE = 50;
export const MAX_PAGE_SIZE = 500;

export function encodeCursor(lastId: string): string {
  return Buffer.from(lastId, 'utf8').toString('base64url');
}

export function decodeCursor(cursor: string | undefined): string | undefined {
  if (cursor === undefined || cursor === '') return undefined;
  const id = Buffer.from(cursor, 'base64url').toString('utf8');
  if (!/^[\x20-\x7e]{1,200}$/.test(id))
    throw new LetheError('USAGE', 'invalid cursor: pass the "next" value of the previous page');
  return id;
}

/** Turn limit+1 rows into a page: the extra row only says that there is a next page. */
export function toPage<T>(rows: T[], limit: number, idOf: (row: T) => string): Page<T> {
  if (rows.length <= limit) return { items: rows, next: null };
  const items = rows.slice(0, limit);
  return { items, next: encodeCursor(idOf(items[items.length - 1]!)) };
}

export function pageLimit(limit: number | undefined): number {
  if (limit === undefined) return DEFAULT_PAGE_SIZE;
  if (!Number.isInteger(limit) || limit < 1 || limit > MAX_PAGE_SIZE) {
    throw new LetheError('USAGE', `limit must be a whole number from 1 to ${MAX_PAGE_SIZE}`);
  }
  return limit;
}
