/**
 * Messages shared by the SQL connectors, so that every one names the connection, the table
 * and what to do in the same words — and never a value or a password.
 */
import { LetheError, type ErrorCode } from '../../errors/index.js';
import { didYouMean } from '../../errors/suggest.js';

/** How many names a hint lists before it stops. */
const LISTED_NAMES = 20;

/** `PostgreSQL connection "crm"` */
export function connectionLabel(database: string, connectionName: string): string {
  return `${database} connection "${connectionName}"`;
}

/** `a, b, c` or `a, b, … (42 in all)` */
export function listNames(names: readonly string[]): string {
  if (names.length <= LISTED_NAMES) return names.join(', ');
  return `${names.slice(0, LISTED_NAMES).join(', ')}, … (${names.length} in all)`;
}

export function noSuchTable(
  code: ErrorCode,
  table: string,
  known: readonly string[],
  connection: string,
): LetheError {
  return new LetheError(code, `no table "${table}" in ${connection}${didYouMean(table, known)}`, {
    hint:
      known.length > 0
        ? `its tables are: ${listNames(known)}`
        : 'it has no tables you can see; check the database name and your privileges',
  });
}

export function cancelled(): LetheError {
  return new LetheError('CANCELLED', 'the run was cancelled');
}

/** `input row 7` or `input rows 1–500`, from a 0-based first row and a count. */
export function describeRows(firstRow: number, rowCount: number): string {
  return rowCount === 1 ? `input row ${firstRow + 1}` : `input rows ${firstRow + 1}–${firstRow + rowCount}`;
}

/** `line 2, column 7` for a 1-based character position in a query, as PostgreSQL reports it. */
export function describePosition(sql: string, position: number): string {
  let line = 1;
  let column = 1;
  let seen = 1;
  for (const character of sql) {
    if (seen >= position) break;
    seen++;
    if (character === '\n') {
      line++;
      column = 1;
    } else {
      column++;
    }
  }
  return `line ${line}, column ${column}`;
}

/** An SQL identifier in double quotes, for hints that show a statement to run. */
export function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}
