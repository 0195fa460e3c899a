/**
 * join — SQL join semantics by hash. Keys compare by value and type (1 ≠ "1"); a null key never
 * matches. Output columns are the left's, then the right's; a right column whose name collides
 * with a left one (the key included) is renamed `<name>_<rightStepId>`.
 *
 * Row order: inner and left joins follow the left rows, each with its matches in right order;
 * a right join follows the right rows; a full join gives the left join's rows, then the right
 * rows that matched nothing.
 */
import Type, { type Static } from 'typebox';
import { KeyMaker, orderedEntries, type Row, type Table, type Value } from '../table/index.js';
import { CHUNK, type CommandDefinition } from './command.js';
import { ColumnName, StepRef } from './shared.js';

const schema = Type.Object(
  {
    left: StepRef,
    right: StepRef,
    on: Type.Record(Type.String({ minLength: 1 }), ColumnName, {
      minProperties: 1,
      description: 'Map of left column → right column; rows match when all pairs are equal.',
    }),
    type: Type.Optional(
      Type.Enum(['inner', 'left', 'right', 'full'], {
        default: 'inner',
      }),
    ),
  },
  { additionalProperties: false, description: 'Join two tables on equal keys.' },
);
type Body = Static<typeof schema>;

/** Build key → row positions, skipping rows with a null key. */
function index(rows: readonly Row[], keyOf: (row: Row) => unknown): Map<unknown, number[]> {
  const map = new Map<unknown, number[]>();
  for (let i = 0; i < rows.length; i++) {
    const key = keyOf(rows[i]!);
    if (key === NULL_KEY) continue;
    const list = map.get(key);
    if (list === undefined) map.set(key, [i]);
    else list.push(i);
  }
  return map;
}

const NULL_KEY: unique symbol = Symbol('null-key');

/** `keys` must be shared by both sides: nested key values are interned per KeyMaker. */
function keyFunction(indexes: readonly number[], keys: KeyMaker): (row: Row) => unknown {
  if (indexes.length === 1) {
    const at = indexes[0]!;
    return (row) => {
      const value = row[at] ?? null;
      return value === null ? NULL_KEY : keys.single(value);
    };
  }
  return (row) => {
    for (const at of indexes) if ((row[at] ?? null) === null) return NULL_KEY;
    return keys.composite(row, indexes);
  };
}

export const join: CommandDefinition<Body> = {
  name: 'join',
  summary: 'Join two tables on equal keys (inner, left, right or full).',
  schema,
  references: (body) => [
    { path: ['left'], step: body.left },
    { path: ['right'], step: body.right },
  ],
  check(body, context) {
    if (body.left === body.right) {
      context.error(
        ['right'],
        'a step cannot be joined with itself here',
        'add a select step to copy it first',
      );
    }
  },
  async run(body, [leftInput, rightInput], context) {
    const left = leftInput as Table;
    const right = rightInput as Table;
    const type = body.type ?? 'inner';
    const pairs = orderedEntries(body.on);
    const leftKeys = pairs.map(([l]) => context.column(left, l, ['on', l]));
    const rightKeys = pairs.map(([l, r]) => context.column(right, r, ['on', l]));

    // Only right columns named like a left one are renamed; a right column that merely looks
    // like a renamed one keeps its name, and a renamed name that is already taken (by a left
    // or a right column) is an error, whatever the column order.
    const leftNames = new Set(left.columns);
    const taken = new Set([...left.columns, ...right.columns]);
    const rightNames = right.columns.map((name) => {
      if (!leftNames.has(name)) return name;
      const renamed = `${name}_${body.right}`;
      if (taken.has(renamed)) {
        throw context.error('FLOW_INVALID', `the renamed column "${renamed}" collides with an existing one`, {
          path: ['right'],
          hint: `rename "${name}" with a select step before the join`,
        });
      }
      taken.add(renamed);
      return renamed;
    });
    const columns = [...left.columns, ...rightNames];
    const leftWidth = left.columns.length;
    const rightWidth = right.columns.length;
    const nullsLeft: Value[] = new Array<Value>(leftWidth).fill(null);
    const nullsRight: Value[] = new Array<Value>(rightWidth).fill(null);
    const combine = (l: Row | undefined, r: Row | undefined): Row => (l ?? nullsLeft).concat(r ?? nullsRight);

    const rows: Row[] = [];
    const keys = new KeyMaker();
    const leftKeyOf = keyFunction(leftKeys, keys);
    const rightKeyOf = keyFunction(rightKeys, keys);
    if (type === 'right') {
      const byKey = index(left.rows, leftKeyOf);
      for (let start = 0; start < right.rows.length; start += CHUNK) {
        const end = Math.min(start + CHUNK, right.rows.length);
        for (let i = start; i < end; i++) {
          const r = right.rows[i]!;
          const key = rightKeyOf(r);
          const matches = key === NULL_KEY ? undefined : byKey.get(key);
          if (matches === undefined) rows.push(combine(undefined, r));
          else for (const m of matches) rows.push(combine(left.rows[m], r));
        }
        context.progress(end, right.rows.length);
        await context.checkpoint();
      }
      return { columns, rows };
    }

    const byKey = index(right.rows, rightKeyOf);
    const matched = type === 'full' ? new Uint8Array(right.rows.length) : undefined;
    for (let start = 0; start < left.rows.length; start += CHUNK) {
      const end = Math.min(start + CHUNK, left.rows.length);
      for (let i = start; i < end; i++) {
        const l = left.rows[i]!;
        const key = leftKeyOf(l);
        const matches = key === NULL_KEY ? undefined : byKey.get(key);
        if (matches === undefined) {
          if (type !== 'inner') rows.push(combine(l, undefined));
          continue;
        }
        for (const m of matches) {
          rows.push(combine(l, right.rows[m]));
          if (matched) matched[m] = 1;
        }
      }
      context.progress(end, left.rows.length);
      await context.checkpoint();
    }
    if (matched) {
      for (let m = 0; m < right.rows.length; m++)
        if (!matched[m]) rows.push(combine(undefined, right.rows[m]));
    }
    return { columns, rows };
  },
};
