/** Schema pieces shared by command definitions, and small helpers they share. */
import Type from 'typebox';
import { FILE_FORMATS } from '../connectors/files/format.js';
import { LetheError } from '../errors/index.js';
import type { BoundExpression } from '../expr/expression.js';
import type { Row, Table, Value } from '../table/index.js';
import type { Path, StepContext } from './command.js';

export const STEP_ID_PATTERN = '^[a-z][a-z0-9_-]*$';

export const STEP_ID_MESSAGE = 'must start with a lowercase letter and use only a-z, 0-9, "_" and "-"';

export const StepRef = Type.String({
  pattern: STEP_ID_PATTERN,
  errorMessage: STEP_ID_MESSAGE,
  description: 'The id of another step whose output this step reads.',
});

export const ExpressionText = Type.String({
  minLength: 1,
  description: 'A JSONata expression evaluated with the row as input; null columns are absent.',
});

export const ColumnName = Type.String({ minLength: 1, description: 'A column name.' });

export const ColumnList = Type.Array(ColumnName, { minItems: 1, uniqueItems: true });

/** `{new: old}` maps (select's column map, rename). */
export const ColumnMap = Type.Record(Type.String({ minLength: 1 }), ColumnName, {
  minProperties: 1,
  description: 'Map of new column name → existing column name.',
});

// Fields that input and output share.
export const FilePath = Type.String({ minLength: 1, description: 'A file path, relative to the flow file.' });

export const CsvDelimiter = Type.String({ minLength: 1, maxLength: 1, description: 'CSV field delimiter.' });

export const ConnectionName = Type.String({ minLength: 1, description: 'A connection name.' });

export const FileFormatField = Type.Enum(FILE_FORMATS, {
  description: 'File format; by default taken from the extension.',
});

export const HttpRequest = Type.Object(
  {
    method: Type.Optional(Type.Enum(['GET', 'POST', 'PUT', 'PATCH', 'DELETE'])),
    path: Type.String({ description: 'Path relative to the connection base URL.' }),
    query: Type.Optional(Type.Record(Type.String(), Type.String())),
    headers: Type.Optional(Type.Record(Type.String(), Type.String())),
  },
  { additionalProperties: true, description: 'An HTTP request through an http connection.' },
);

/** Resolve a list of column names to indexes, each failure located at its list position. */
export function columnIndexes(
  table: Table,
  names: readonly string[],
  path: Path,
  context: StepContext,
): number[] {
  return names.map((name, i) => context.column(table, name, [...path, i]));
}

/**
 * Evaluate a row with JSONata itself (after the fast path declined it); errors get the row
 * number and the step's location.
 */
export async function evaluateWithJsonata(
  bound: BoundExpression,
  row: Row,
  rowNumber: number,
  context: StepContext,
  path: Path,
): Promise<Value> {
  try {
    return await bound.evaluate(row);
  } catch (error) {
    if (error instanceof LetheError) {
      throw context.error(error.code, error.message, { ...error.details, row: rowNumber, path });
    }
    throw error;
  }
}
