/**
 * autonumber — give every row the next number of a persistent per-workspace counter, in row
 * order. The whole table's numbers are reserved in one atomic step, so concurrent runs never
 * share or interleave numbers. If the run then fails before any output that depends on this
 * step has committed, the block is given back — but only when no later block was taken, so a
 * number is never handed out twice (a failed run followed by another leaves a gap instead).
 *
 * `format` places the number in text: {seq}, {seq:N} (zero-padded to N digits), {yyyy}, {mm},
 * {dd} (the run's start date in the flow's time zone); `{{` and `}}` are literal braces.
 * Without a format the field is the number itself. `reset` restarts the sequence each year,
 * month or day.
 */
import Type, { type Static } from 'typebox';
import { LetheError } from '../errors/index.js';
import type { Row, Table, Value } from '../table/index.js';
import type { CommandDefinition } from './command.js';
import { ColumnName, StepRef } from './shared.js';

const schema = Type.Object(
  {
    from: StepRef,
    field: ColumnName,
    counter: Type.String({
      pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]*$',
      description: 'Counter name; flows naming the same counter share its sequence.',
    }),
    format: Type.Optional(
      Type.String({
        minLength: 1,
        description: 'e.g. "R-{yyyy}-{seq:5}"; without it the field is a number.',
      }),
    ),
    reset: Type.Optional(
      Type.Enum(['never', 'yearly', 'monthly', 'daily'], {
        default: 'never',
        description: 'Restart the sequence at 1 each year, month or day (in the flow time zone).',
      }),
    ),
  },
  { additionalProperties: false, description: 'Number rows from a persistent, gap-free counter.' },
);
type Body = Static<typeof schema>;

type Part = { literal: string } | { token: 'seq'; width: number } | { token: 'yyyy' | 'mm' | 'dd' };

/** Parse a format into parts, or return a message. */
export function parseFormat(format: string): Part[] | string {
  const parts: Part[] = [];
  let literal = '';
  let hasSeq = false;
  for (let i = 0; i < format.length; i++) {
    const ch = format[i]!;
    if ((ch === '{' || ch === '}') && format[i + 1] === ch) {
      literal += ch;
      i++;
      continue;
    }
    if (ch === '}')
      return `unmatched "}" at character ${i + 1} of the format (write "}}" for a literal brace)`;
    if (ch !== '{') {
      literal += ch;
      continue;
    }
    const close = format.indexOf('}', i);
    if (close === -1) return `unclosed "{" at character ${i + 1} of the format`;
    const token = format.slice(i + 1, close);
    const seq = /^seq(?::(\d{1,2}))?$/.exec(token);
    if (literal) parts.push({ literal });
    literal = '';
    if (seq) {
      parts.push({ token: 'seq', width: seq[1] === undefined ? 0 : Number(seq[1]) });
      hasSeq = true;
    } else if (token === 'yyyy' || token === 'mm' || token === 'dd') {
      parts.push({ token });
    } else {
      return `unknown placeholder "{${token}}" in the format; use {seq}, {seq:N}, {yyyy}, {mm} or {dd}`;
    }
    i = close;
  }
  if (literal) parts.push({ literal });
  if (!hasSeq) return 'the format must contain {seq} or {seq:N}';
  return parts;
}

/** The calendar date of an instant in a time zone. */
export function datePartsIn(date: Date, timeZone: string): { yyyy: string; mm: string; dd: string } {
  const parts = new Intl.DateTimeFormat('en-CA', {
    timeZone,
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
  }).formatToParts(date);
  const get = (type: string) => parts.find((p) => p.type === type)?.value ?? '';
  return { yyyy: get('year').padStart(4, '0'), mm: get('month'), dd: get('day') };
}

export const autonumber: CommandDefinition<Body> = {
  name: 'autonumber',
  summary: 'Number rows from a persistent counter: gap-free, never reused, safe across concurrent runs.',
  schema,
  references: (body) => [{ path: ['from'], step: body.from }],
  check(body, context) {
    if (body.format !== undefined) {
      const parsed = parseFormat(body.format);
      if (typeof parsed === 'string') context.error(['format'], parsed);
    }
  },
  async run(body, [input], context) {
    const table = input as Table;
    const parts = body.format === undefined ? undefined : (parseFormat(body.format) as Part[]);
    const date = datePartsIn(context.runStartedAt, context.timezone);
    const reset = body.reset ?? 'never';
    const period =
      reset === 'yearly'
        ? date.yyyy
        : reset === 'monthly'
          ? `${date.yyyy}-${date.mm}`
          : reset === 'daily'
            ? `${date.yyyy}-${date.mm}-${date.dd}`
            : '';
    let index = table.columns.indexOf(body.field);
    const columns = index === -1 ? [...table.columns, body.field] : table.columns;
    if (index === -1) index = table.columns.length;
    if (table.rows.length === 0) return { columns, rows: [] };

    const key = { workspace: context.workspace, counter: body.counter, period };
    let reservation;
    try {
      reservation = await context.counters.reserve(key, table.rows.length);
    } catch (error) {
      if (error instanceof LetheError)
        throw error.withContext({ step: context.stepId, command: 'autonumber' });
      throw context.error('COUNTER_ERROR', `could not reserve numbers from counter "${body.counter}"`, {
        path: ['counter'],
        cause: error,
      });
    }
    const taken = reservation;
    context.undoOnFailure(async () => {
      await context.counters.release(key, taken);
    });

    const render = (seq: number): Value => {
      if (parts === undefined) return seq;
      let text = '';
      for (const part of parts) {
        if ('literal' in part) text += part.literal;
        else if (part.token === 'seq') text += String(seq).padStart(part.width, '0');
        else text += date[part.token];
      }
      return text;
    };
    const rows: Row[] = table.rows.map((row, i) => {
      const out = row.slice();
      out.length = columns.length;
      out[index] = render(taken.first + i);
      return out;
    });
    return { columns, rows };
  },
};
