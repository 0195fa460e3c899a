/** limit — keep `count` rows after skipping `offset` (0 allowed for both). */
import Type, { type Static } from 'typebox';
import type { Table } from '../table/index.js';
import type { CommandDefinition } from './command.js';
import { StepRef } from './shared.js';

const schema = Type.Object(
  {
    from: StepRef,
    count: Type.Integer({ minimum: 0, description: 'How many rows to keep.' }),
    offset: Type.Optional(
      Type.Integer({ minimum: 0, default: 0, description: 'How many rows to skip first.' }),
    ),
  },
  { additionalProperties: false, description: 'Slice the table.' },
);
type Body = Static<typeof schema>;

export const limit: CommandDefinition<Body> = {
  name: 'limit',
  summary: 'Keep `count` rows after skipping `offset`.',
  schema,
  references: (body) => [{ path: ['from'], step: body.from }],
  async run(body, [input]) {
    const table = input as Table;
    const offset = body.offset ?? 0;
    return { columns: table.columns, rows: table.rows.slice(offset, offset + body.count) };
  },
};
