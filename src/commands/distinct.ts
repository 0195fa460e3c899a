/**
 * distinct — remove duplicate rows, comparing the `by` columns (default: all) by value and
 * type. `keep: first` (default) or `last` chooses which of each set survives, at its own
 * position.
 */
import Type, { type Static } from 'typebox';
import { rowKeyFunction, type Row, type Table } from '../table/index.js';
import type { CommandDefinition } from './command.js';
import { ColumnList, columnIndexes, StepRef } from './shared.js';

const schema = Type.Object(
  {
    from: StepRef,
    by: Type.Optional(ColumnList),
    keep: Type.Optional(Type.Enum(['first', 'last'], { default: 'first' })),
  },
  { additionalProperties: false, description: 'Remove duplicate rows.' },
);
type Body = Static<typeof schema>;

export const distinct: CommandDefinition<Body> = {
  name: 'distinct',
  summary: 'Remove duplicate rows (by some or all columns), keeping the first or last.',
  schema,
  references: (body) => [{ path: ['from'], step: body.from }],
  async run(body, [input], context) {
    const table = input as Table;
    const indexes = body.by ? columnIndexes(table, body.by, ['by'], context) : table.columns.map((_, i) => i);
    if (indexes.length === 0) return { columns: table.columns, rows: table.rows.slice(0, 1) };
    const keyOf = rowKeyFunction(indexes);
    const rows: Row[] = [];
    if ((body.keep ?? 'first') === 'first') {
      const seen = new Set<unknown>();
      for (const row of table.rows) {
        const key = keyOf(row);
        if (!seen.has(key)) {
          seen.add(key);
          rows.push(row);
        }
      }
    } else {
      const last = new Map<unknown, number>();
      table.rows.forEach((row, i) => last.set(keyOf(row), i));
      table.rows.forEach((row, i) => {
        if (last.get(keyOf(row)) === i) rows.push(row);
      });
    }
    await context.checkpoint();
    return { columns: table.columns, rows };
  },
};
