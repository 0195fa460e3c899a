/** filter — keep the rows where an expression is true; null and false drop the row. */
import Type, { type Static } from 'typebox';
import { NEEDS_JSONATA } from '../expr/expression.js';
import { describeValue, type Row, type Table, type Value } from '../table/index.js';
import { CHUNK, type CommandDefinition, type StepContext } from './command.js';
import { evaluateWithJsonata, ExpressionText, StepRef } from './shared.js';

const schema = Type.Object(
  {
    from: StepRef,
    where: ExpressionText,
  },
  { additionalProperties: false, description: 'Keep the rows where `where` is true.' },
);
type Body = Static<typeof schema>;

function keep(value: Value, rowNumber: number, context: StepContext): boolean {
  if (value === true) return true;
  if (value === false || value === null) return false;
  throw context.error('EXPRESSION_ERROR', `"where" must be true or false, but gave ${describeValue(value)}`, {
    row: rowNumber,
    path: ['where'],
    hint: 'compare explicitly (e.g. `amount > 0`) or wrap the value in $boolean(…)',
  });
}

export const filter: CommandDefinition<Body> = {
  name: 'filter',
  summary: 'Keep the rows where an expression is true; null and false drop the row.',
  schema,
  references: (body) => [{ path: ['from'], step: body.from }],
  check(body, context) {
    context.expression(['where'], body.where);
  },
  async run(body, [input], context) {
    const table = input as Table;
    const bound = context.expression(['where'], body.where, table.columns);
    const rows: Row[] = [];
    const source = table.rows;
    for (let start = 0; start < source.length; start += CHUNK) {
      const end = Math.min(start + CHUNK, source.length);
      for (let i = start; i < end; i++) {
        const row = source[i]!;
        let value = bound.trySync(row);
        if (value === NEEDS_JSONATA) value = await evaluateWithJsonata(bound, row, i + 1, context, ['where']);
        if (keep(value, i + 1, context)) rows.push(row);
      }
      context.progress(end, source.length);
      await context.checkpoint();
    }
    return { columns: table.columns, rows };
  },
};
