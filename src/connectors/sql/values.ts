/**
 * How Lethe values cross into SQL drivers and back, and how driver messages are kept free of
 * the data they were given.
 *
 * Binding rules (documented for users in the connector summaries):
 * - strings, numbers and null bind as they are;
 * - SQLite: booleans bind as 1/0 (better-sqlite3 rejects booleans), integers as 64-bit
 *   integers (a JS number would bind as REAL, so 3 would become 3.0 — and '3.0' in a TEXT
 *   column), nested values as JSON text;
 * - PostgreSQL: booleans bind natively, arrays bind as PostgreSQL arrays where an array is
 *   expected (array columns, query parameters such as `= any($1)`), every other nested value
 *   as JSON text, which json and jsonb columns accept.
 */
import type { Value } from '../../table/index.js';

export type SqliteParameter = string | number | bigint | null;

export function toSqliteParameter(value: Value): SqliteParameter {
  if (value === null || typeof value === 'string') return value;
  if (typeof value === 'number') return Number.isSafeInteger(value) ? BigInt(value) : value;
  if (typeof value === 'boolean') return value ? 1n : 0n;
  return JSON.stringify(value);
}

export type PostgresParameter = string | number | boolean | null | Value[];

/** `arraysAsArrays`: whether the parameter stands where PostgreSQL expects an array. */
export function toPostgresParameter(value: Value, arraysAsArrays: boolean): PostgresParameter {
  if (value === null || typeof value !== 'object') return value;
  if (Array.isArray(value) && arraysAsArrays) return value;
  return JSON.stringify(value);
}

/** A 64-bit integer from a driver: a number when exact, otherwise its digits as text. */
export function fromBigInt(value: bigint): number | string {
  return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER)
    ? Number(value)
    : value.toString();
}

/** Shorter values are redacted only where the database quotes them, so names stay readable. */
const REDACT_ANYWHERE_FROM = 6;

/**
 * A driver message with the statement's parameter values taken out. Databases quote offending
 * input in their messages (`invalid input syntax for type integer: "abc"`), and a value must
 * never reach a log or an error report.
 */
export function redactValues(message: string, parameters: Iterable<unknown>): string {
  let text = message;
  for (const parameter of parameters) {
    const shown =
      typeof parameter === 'string'
        ? parameter
        : typeof parameter === 'number' || typeof parameter === 'bigint'
          ? String(parameter)
          : '';
    if (shown === '' || !text.includes(shown)) continue;
    text =
      shown.length >= REDACT_ANYWHERE_FROM
        ? text.split(shown).join('…')
        : text.split(`"${shown}"`).join('"…"');
  }
  return text;
}
