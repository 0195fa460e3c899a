/**
 * compute — add or replace columns, evaluated per row from left to right: each expression
 * sees the columns computed before it. A replaced column keeps its position; new ones are
 * appended in the order given.
 */
import Type, { type Static } from 'typebox';
import { NEEDS_JSONATA, type BoundExpression } from '../expr/expression.js';
import { orderedEntries, orderedKeys, type Row, type Table } from '../table/index.js';
import { CHUNK, type CommandDefinition } from './command.js';
import { evaluateWithJsonata, ExpressionText, StepRef } from './shared.js';

const schema = Type.Object(
  {
    from: StepRef,
    columns: Type.Record(Type.String({ minLength: 1 }), ExpressionText, {
      minProperties: 1,
      description: 'Map of column name → expression, evaluated left to right.',
    }),
  },
  { additionalProperties: false, description: 'Add or replace columns computed per row.' },
);
type Body = Static<typeof schema>;

export const compute: CommandDefinition<Body> = {
  name: 'compute',
  summary: 'Add or replace columns, evaluated per row from left to right.',
  schema,
  references: (body) => [{ path: ['from'], step: body.from }],
  check(body, context) {
    for (const [name, text] of orderedEntries(body.columns)) context.expression(['columns', name], text);
  },
  async run(body, [input], context) {
    const table = input as Table;
    const columns = [...table.columns];
    const targets: number[] = [];
    const expressions: BoundExpression[] = [];
    for (const [name, text] of orderedEntries(body.columns)) {
      // Each expression sees the input columns plus those computed before it: a prefix of the output.
      expressions.push(context.expression(['columns', name], text, columns.slice()));
      let index = columns.indexOf(name);
      if (index === -1) {
        index = columns.length;
        columns.push(name);
      }
      targets.push(index);
    }
    const names = orderedKeys(body.columns);
    const width = columns.length;
    const source = table.rows;
    const rows: Row[] = new Array<Row>(source.length);
    for (let start = 0; start < source.length; start += CHUNK) {
      const end = Math.min(start + CHUNK, source.length);
      for (let r = start; r < end; r++) {
        const row = source[r]!.slice();
        row.length = width;
        for (let c = table.columns.length; c < width; c++) row[c] = null;
        for (let e = 0; e < expressions.length; e++) {
          const bound = expressions[e]!;
          let value = bound.trySync(row);
          if (value === NEEDS_JSONATA) {
            value = await evaluateWithJsonata(bound, row, r + 1, context, ['columns', names[e]!]);
          }
          row[targets[e]!] = value;
        }
        rows[r] = row;
      }
      context.progress(end, source.length);
      await context.checkpoint();
    }
    return { columns, rows };
  },
};
