/**
 * union — the rows of all inputs in order, columns aligned by name (a column an input lacks
 * is null there), in order of first appearance; `distinct: true` keeps the first of equal rows.
 */
import Type, { type Static } from 'typebox';
import { rowKeyFunction, type Row, type Table } from '../table/index.js';
import type { CommandDefinition } from './command.js';
import { StepRef } from './shared.js';

const schema = Type.Object(
  {
    from: Type.Array(StepRef, { minItems: 1, description: 'The steps whose rows are concatenated.' }),
    distinct: Type.Optional(Type.Boolean({ default: false, description: 'Remove duplicate rows.' })),
  },
  { additionalProperties: false, description: 'Concatenate tables, aligning columns by name.' },
);
type Body = Static<typeof schema>;

export const union: CommandDefinition<Body> = {
  name: 'union',
  summary: 'Concatenate tables, aligning columns by name; optionally remove duplicates.',
  schema,
  references: (body) => body.from.map((step, i) => ({ path: ['from', i], step })),
  async run(body, inputs, context) {
    const columns: string[] = [];
    const position = new Map<string, number>();
    for (const table of inputs) {
      for (const name of table.columns) {
        if (!position.has(name)) {
          position.set(name, columns.length);
          columns.push(name);
        }
      }
    }
    const rows: Row[] = [];
    const keyOf = body.distinct ? rowKeyFunction(columns.map((_, i) => i)) : undefined;
    const seen = new Set<unknown>();
    for (const table of inputs as Table[]) {
      const map = table.columns.map((name) => position.get(name)!);
      const aligned = map.length === columns.length && map.every((to, from) => to === from);
      for (const row of table.rows) {
        let out = row;
        if (!aligned) {
          out = new Array(columns.length).fill(null);
          for (let c = 0; c < map.length; c++) out[map[c]!] = row[c] ?? null;
        }
        if (keyOf) {
          const key = keyOf(out);
          if (seen.has(key)) continue;
          seen.add(key);
        }
        rows.push(out);
      }
      await context.checkpoint();
    }
    return { columns, rows };
  },
};
