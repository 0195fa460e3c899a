/**
 * unnest — one row per element of an array column, the element replacing the array. An empty
 * array or null drops the row; any other value (a scalar or an object) stays one row.
 */
import Type, { type Static } from 'typebox';
import { toValue, type Row, type Table } from '../table/index.js';
import { CHUNK, type CommandDefinition } from './command.js';
import { ColumnName, StepRef } from './shared.js';

const schema = Type.Object(
  {
    from: StepRef,
    column: ColumnName,
  },
  { additionalProperties: false, description: 'One row per element of an array column.' },
);
type Body = Static<typeof schema>;

export const unnest: CommandDefinition<Body> = {
  name: 'unnest',
  summary: 'One row per element of an array column; empty arrays and nulls drop the row.',
  schema,
  references: (body) => [{ path: ['from'], step: body.from }],
  async run(body, [input], context) {
    const table = input as Table;
    const at = context.column(table, body.column, ['column']);
    const rows: Row[] = [];
    const source = table.rows;
    for (let start = 0; start < source.length; start += CHUNK) {
      const end = Math.min(start + CHUNK, source.length);
      for (let r = start; r < end; r++) {
        const row = source[r]!;
        const value = row[at] ?? null;
        if (value === null) continue;
        if (!Array.isArray(value)) {
          rows.push(row);
          continue;
        }
        for (const element of value) {
          const out = row.slice();
          out[at] = toValue(element);
          rows.push(out);
        }
      }
      context.progress(end, source.length);
      await context.checkpoint();
    }
    return { columns: table.columns, rows };
  },
};
