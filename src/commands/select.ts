/**
 * select — project, rename and drop columns. Applied in this order: `columns` (a list
 * projects; a map `{new: old}` projects and renames), then `rename` (`{new: old}`, keeps the
 * rest in place), then `drop`.
 */
import Type, { type Static } from 'typebox';
import { orderedEntries, type Row, type Table } from '../table/index.js';
import type { CommandDefinition, StepContext } from './command.js';
import { ColumnList, ColumnMap, StepRef } from './shared.js';

const schema = Type.Object(
  {
    from: StepRef,
    columns: Type.Optional(Type.Union([ColumnList, ColumnMap])),
    rename: Type.Optional(ColumnMap),
    drop: Type.Optional(ColumnList),
  },
  { additionalProperties: false, description: 'Project, rename or drop columns.' },
);
type Body = Static<typeof schema>;

/** A projection: output column names and, for each, the input index it takes. */
interface Projection {
  names: string[];
  sources: number[];
}

function unique(names: readonly string[], path: readonly (string | number)[], context: StepContext): void {
  const seen = new Set<string>();
  for (const name of names) {
    if (seen.has(name)) {
      throw context.error('FLOW_INVALID', `the output would have two columns named "${name}"`, { path });
    }
    seen.add(name);
  }
}

export const select: CommandDefinition<Body> = {
  name: 'select',
  summary: 'Project, rename or drop columns.',
  schema,
  references: (body) => [{ path: ['from'], step: body.from }],
  check(body, context) {
    if (body.columns === undefined && body.rename === undefined && body.drop === undefined) {
      context.error([], 'select needs at least one of "columns", "rename" or "drop"');
    }
    // `rename: {x: a, y: a}` would silently keep only one of the two new names.
    const renamed = new Map<string, string>();
    for (const [newName, old] of orderedEntries(body.rename ?? {})) {
      const before = renamed.get(old);
      if (before !== undefined) {
        context.error(
          ['rename', newName],
          `column "${old}" is already renamed to "${before}"`,
          'to copy a column, use columns: { new: old } or compute',
        );
      }
      renamed.set(old, newName);
    }
  },
  async run(body, [input], context) {
    const table = input as Table;
    let projection: Projection = { names: [...table.columns], sources: table.columns.map((_, i) => i) };
    const current = (): Table => ({ columns: projection.names, rows: [] });

    if (body.columns !== undefined) {
      const entries: [string, string][] = Array.isArray(body.columns)
        ? body.columns.map((name) => [name, name])
        : orderedEntries(body.columns);
      const listed = Array.isArray(body.columns);
      const sources = entries.map(([newName, old], i) =>
        context.column(table, old, listed ? ['columns', i] : ['columns', newName]),
      );
      projection = { names: entries.map(([newName]) => newName), sources };
      unique(projection.names, ['columns'], context);
    }
    if (body.rename !== undefined) {
      const names = [...projection.names];
      for (const [newName, old] of orderedEntries(body.rename)) {
        const index = context.column(current(), old, ['rename', newName]);
        names[index] = newName;
      }
      unique(names, ['rename'], context);
      projection = { names, sources: projection.sources };
    }
    if (body.drop !== undefined) {
      const dropped = new Set(body.drop.map((name, i) => context.column(current(), name, ['drop', i])));
      const keep = projection.names.map((_, i) => i).filter((i) => !dropped.has(i));
      projection = {
        names: keep.map((i) => projection.names[i]!),
        sources: keep.map((i) => projection.sources[i]!),
      };
    }

    const identity =
      projection.sources.length === table.columns.length &&
      projection.sources.every((source, i) => source === i);
    // Rows are immutable, so a pure rename can share them.
    if (identity) return { columns: projection.names, rows: table.rows };
    const { sources } = projection;
    const rows: Row[] = new Array<Row>(table.rows.length);
    for (let r = 0; r < table.rows.length; r++) {
      const row = table.rows[r]!;
      const out = new Array(sources.length);
      for (let c = 0; c < sources.length; c++) out[c] = row[sources[c]!];
      rows[r] = out;
    }
    return { columns: projection.names, rows };
  },
};
