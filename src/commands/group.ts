/**
 * group — one row per group: the group columns, then the aggregates. Groups come in order of
 * first appearance; null keys form one group; `by: []` makes one group (also of zero rows).
 *
 * Aggregates: count(), count(col) (non-null values), count_distinct(col), sum, avg, min, max,
 * first, last (first/last non-null value in row order), concat(col, "sep"). All but count()
 * ignore nulls; an aggregate with no non-null input is null, count is 0. sum and avg need
 * numbers; min and max follow sort's order across types.
 */
import Type, { type Static } from 'typebox';
import { didYouMean } from '../errors/suggest.js';
import {
  compareValues,
  describeValue,
  KeyMaker,
  orderedEntries,
  rowKeyFunction,
  valueToText,
  type Row,
  type Table,
  type Value,
} from '../table/index.js';
import { CHUNK, type CommandDefinition, type StepContext } from './command.js';
import { ColumnName, StepRef } from './shared.js';

export const AGGREGATE_FUNCTIONS = [
  'count',
  'count_distinct',
  'sum',
  'avg',
  'min',
  'max',
  'first',
  'last',
  'concat',
] as const;
type AggregateFunction = (typeof AGGREGATE_FUNCTIONS)[number];

export interface AggregateSpec {
  fn: AggregateFunction;
  column: string | undefined;
  separator: string;
}

const schema = Type.Object(
  {
    from: StepRef,
    by: Type.Array(ColumnName, { uniqueItems: true, description: 'Group columns; empty for one group.' }),
    aggregate: Type.Optional(
      Type.Record(
        Type.String({ minLength: 1 }),
        Type.String({
          minLength: 1,
          description:
            'count(), count(col), count_distinct(col), sum(col), avg(col), min(col), max(col), first(col), last(col) or concat(col, "sep"); quote odd column names with backticks.',
        }),
        { description: 'Map of output column → aggregate.' },
      ),
    ),
  },
  { additionalProperties: false, description: 'One row per group with aggregates.' },
);
type Body = Static<typeof schema>;

const AGGREGATE =
  /^\s*([A-Za-z_]+)\s*\(\s*(?:(`(?:[^`]|``)+`|[^\s(),"'`]+)\s*(?:,\s*("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')\s*)?)?\)\s*$/;

/** Parse `fn(col)`; returns a message on failure. */
export function parseAggregate(text: string): AggregateSpec | string {
  const match = AGGREGATE.exec(text);
  if (!match) {
    return `"${text}" is not an aggregate; write fn(column), e.g. sum(amount), count() or concat(name, ", ")`;
  }
  const [, name, rawColumn, rawSeparator] = match;
  const fn = name!.toLowerCase() as AggregateFunction;
  if (!AGGREGATE_FUNCTIONS.includes(fn)) {
    return `unknown aggregate function "${name}"${didYouMean(name!, AGGREGATE_FUNCTIONS)}; use one of ${AGGREGATE_FUNCTIONS.join(', ')}`;
  }
  const column = rawColumn?.startsWith('`') ? rawColumn.slice(1, -1).replaceAll('``', '`') : rawColumn;
  if (column === undefined && fn !== 'count') return `${fn}() needs a column, e.g. ${fn}(amount)`;
  if (rawSeparator !== undefined && fn !== 'concat') return `only concat takes a separator`;
  let separator = ', ';
  if (rawSeparator !== undefined) {
    const body = rawSeparator.slice(1, -1);
    separator = rawSeparator.startsWith('"')
      ? (JSON.parse(rawSeparator) as string)
      : body.replace(/\\(.)/g, '$1');
  }
  return { fn, column, separator };
}

/** Running state of one aggregate in one group. */
interface Accumulator {
  add(value: Value, rowNumber: number): void;
  result(): Value;
}

function accumulator(spec: AggregateSpec, name: string, context: StepContext): () => Accumulator {
  const needNumber = (value: Value, rowNumber: number): number => {
    if (typeof value === 'number') return value;
    throw context.error(
      'DATA_INVALID',
      `${spec.fn} needs numbers, but the value is ${describeValue(value)}`,
      {
        row: rowNumber,
        column: spec.column,
        path: ['aggregate', name],
        hint: `convert the column with the input's types (e.g. types: { ${spec.column}: number })`,
      },
    );
  };
  switch (spec.fn) {
    case 'count':
      return () => {
        let n = 0;
        return {
          add: (value) => {
            if (spec.column === undefined || value !== null) n++;
          },
          result: () => n,
        };
      };
    case 'count_distinct':
      return () => {
        const keys = new KeyMaker();
        const seen = new Set<unknown>();
        return {
          add: (value) => {
            if (value !== null) seen.add(keys.single(value));
          },
          result: () => seen.size,
        };
      };
    case 'sum':
    case 'avg':
      return () => {
        let total = 0;
        let n = 0;
        return {
          add: (value, rowNumber) => {
            if (value === null) return;
            total += needNumber(value, rowNumber);
            n++;
          },
          result: () => (n === 0 ? null : spec.fn === 'sum' ? total : total / n),
        };
      };
    case 'min':
    case 'max': {
      const sign = spec.fn === 'min' ? 1 : -1;
      return () => {
        let best: Value = null;
        return {
          add: (value) => {
            if (value !== null && (best === null || sign * compareValues(value, best) < 0)) best = value;
          },
          result: () => best,
        };
      };
    }
    case 'first':
      return () => {
        let first: Value = null;
        return {
          add: (value) => {
            if (first === null && value !== null) first = value;
          },
          result: () => first,
        };
      };
    case 'last':
      return () => {
        let last: Value = null;
        return {
          add: (value) => {
            if (value !== null) last = value;
          },
          result: () => last,
        };
      };
    case 'concat':
      return () => {
        const parts: string[] = [];
        return {
          add: (value) => {
            if (value !== null) parts.push(valueToText(value));
          },
          result: () => (parts.length === 0 ? null : parts.join(spec.separator)),
        };
      };
  }
}

export const group: CommandDefinition<Body> = {
  name: 'group',
  summary: 'One row per group: group columns, then aggregates (count, sum, avg, min, max, …).',
  schema,
  references: (body) => [{ path: ['from'], step: body.from }],
  check(body, context) {
    const by = new Set(body.by);
    for (const [name, text] of orderedEntries(body.aggregate ?? {})) {
      const parsed = parseAggregate(text);
      if (typeof parsed === 'string') context.error(['aggregate', name], parsed);
      if (by.has(name)) context.error(['aggregate', name], `"${name}" is already a group column`);
    }
    if (body.by.length === 0 && Object.keys(body.aggregate ?? {}).length === 0) {
      context.error([], 'group needs "by" columns or at least one aggregate');
    }
  },
  async run(body, [input], context) {
    const table = input as Table;
    const byIndexes = body.by.map((name, i) => context.column(table, name, ['by', i]));
    const aggregates = orderedEntries(body.aggregate ?? {}).map(([name, text]) => {
      const spec = parseAggregate(text) as AggregateSpec;
      const column = spec.column === undefined ? -1 : context.column(table, spec.column, ['aggregate', name]);
      return { name, column, create: accumulator(spec, name, context) };
    });
    const keyOf = byIndexes.length === 0 ? () => 0 : rowKeyFunction(byIndexes);
    const groups = new Map<unknown, { first: Row; accumulators: Accumulator[] }>();
    const newGroup = (row: Row) => ({ first: row, accumulators: aggregates.map((a) => a.create()) });
    if (byIndexes.length === 0) groups.set(0, newGroup([]));

    const rows = table.rows;
    for (let start = 0; start < rows.length; start += CHUNK) {
      const end = Math.min(start + CHUNK, rows.length);
      for (let r = start; r < end; r++) {
        const row = rows[r]!;
        const key = keyOf(row);
        let entry = groups.get(key);
        if (entry === undefined) {
          entry = newGroup(row);
          groups.set(key, entry);
        }
        const accumulators = entry.accumulators;
        for (let a = 0; a < aggregates.length; a++) {
          const column = aggregates[a]!.column;
          accumulators[a]!.add(column === -1 ? true : (row[column] ?? null), r + 1);
        }
      }
      context.progress(end, rows.length);
      await context.checkpoint();
    }

    const out: Row[] = [];
    for (const { first, accumulators } of groups.values()) {
      const row: Row = byIndexes.map((i) => first[i] ?? null);
      for (const accumulator of accumulators) row.push(accumulator.result());
      out.push(row);
    }
    return { columns: [...body.by, ...aggregates.map((a) => a.name)], rows: out };
  },
};
