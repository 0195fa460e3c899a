/**
 * sort — stable; `-col` sorts descending; nulls last in both directions. Across types:
 * numbers, then strings (by code point), then booleans, then nested values.
 */
import Type, { type Static } from 'typebox';
import { compareValues, type Row, type Table } from '../table/index.js';
import type { CommandDefinition } from './command.js';
import { StepRef } from './shared.js';

const schema = Type.Object(
  {
    from: StepRef,
    by: Type.Array(Type.String({ minLength: 1, description: 'A column; prefix "-" for descending.' }), {
      minItems: 1,
    }),
  },
  { additionalProperties: false, description: 'Stable sort; nulls last.' },
);
type Body = Static<typeof schema>;

export interface SortKey {
  column: string;
  descending: boolean;
}

export function parseSortKey(text: string): SortKey {
  return text.startsWith('-') && text.length > 1
    ? { column: text.slice(1), descending: true }
    : { column: text, descending: false };
}

/** A comparator over rows for the given column indexes and directions. */
export function rowComparator(
  keys: readonly { index: number; descending: boolean }[],
): (a: Row, b: Row) => number {
  return (a, b) => {
    for (const { index, descending } of keys) {
      const x = a[index] ?? null;
      const y = b[index] ?? null;
      if (x === y) continue;
      if (x === null) return 1;
      if (y === null) return -1;
      const order = compareValues(x, y);
      if (order !== 0) return descending ? -order : order;
    }
    return 0;
  };
}

export const sort: CommandDefinition<Body> = {
  name: 'sort',
  summary: 'Stable sort by columns ("-col" descending); nulls last in both directions.',
  schema,
  references: (body) => [{ path: ['from'], step: body.from }],
  async run(body, [input], context) {
    const table = input as Table;
    const keys = body.by.map((text, i) => {
      const { column, descending } = parseSortKey(text);
      return { index: context.column(table, column, ['by', i]), descending };
    });
    await context.checkpoint();
    // Array.prototype.sort is stable (ES2019).
    const rows = table.rows.slice().sort(rowComparator(keys));
    context.progress(rows.length, rows.length);
    return { columns: table.columns, rows };
  },
};
