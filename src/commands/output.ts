/**
 * output — write a table to exactly one sink: a file (format by extension), a connection's
 * table (`mode: insert | upsert | update | delete | replace`, in one transaction), an HTTP
 * API (`request`: rows as JSON, per row or in batches, in order), or the
 * run's response (`respond: true`: the webhook's answer, or what `lethe run` prints). The
 * step's own output is its input, so other steps may follow it.
 */
import Type, { type Static } from 'typebox';
import { resolveFormat, writeTableFile } from '../connectors/files/index.js';
import { WRITE_MODES } from '../connectors/connector.js';
import type { Table } from '../table/index.js';
import type { CommandDefinition } from './command.js';
import {
  ColumnName,
  ConnectionName,
  CsvDelimiter,
  FileFormatField,
  FilePath,
  HttpOutputRequest,
  StepRef,
  checkHttpRequest,
  httpSession,
} from './shared.js';

const schema = Type.Object(
  {
    from: StepRef,
    file: Type.Optional(FilePath),
    format: Type.Optional(FileFormatField),
    delimiter: Type.Optional(CsvDelimiter),
    sheet: Type.Optional(Type.String({ minLength: 1, description: 'XLSX worksheet name (default Sheet1).' })),
    connection: Type.Optional(ConnectionName),
    table: Type.Optional(Type.String({ minLength: 1, description: 'The table to write to.' })),
    mode: Type.Optional(
      Type.Enum(WRITE_MODES, {
        default: 'insert',
        description:
          'insert; upsert (insert or update by key); update or delete by key; replace (delete all rows, then insert).',
      }),
    ),
    key: Type.Optional(
      Type.Union([ColumnName, Type.Array(ColumnName, { minItems: 1, uniqueItems: true })], {
        description: 'Key column(s) for upsert, update and delete.',
      }),
    ),
    create: Type.Optional(
      Type.Boolean({
        default: false,
        description:
          'Create the table if it does not exist (column types from the data, the key as primary key).',
      }),
    ),
    request: Type.Optional(HttpOutputRequest),
    respond: Type.Optional(Type.Literal(true, { description: 'Make this table the run’s response.' })),
  },
  { additionalProperties: false, description: 'Write a table to one sink.' },
);
type Body = Static<typeof schema>;

const SINKS = ['file', 'connection', 'respond'] as const;

function keyColumns(body: Body): string[] {
  if (body.key === undefined) return [];
  return typeof body.key === 'string' ? [body.key] : body.key;
}

export const output: CommandDefinition<Body> = {
  name: 'output',
  summary: 'Write a table to a file, a database table, an HTTP API or the run’s response.',
  schema,
  references: (body) => [{ path: ['from'], step: body.from }],
  check(body, context) {
    const found = SINKS.filter((key) => body[key] !== undefined);
    if (found.length === 0)
      context.error([], 'output needs one sink: file, connection (with table or request) or respond');
    else if (found.length > 1) {
      context.error(
        [found[1]!],
        `output takes one sink, but has ${found.map((s) => `"${s}"`).join(' and ')}`,
      );
    }
    const onlyWith = (option: keyof Body, what: string, allowed: boolean) => {
      if (body[option] !== undefined && !allowed)
        context.error([option], `"${option}" applies only to ${what}`);
    };
    const format = body.file === undefined ? undefined : resolveFormat(body.file, body.format);
    if (typeof format === 'string') context.error(['file'], format);
    const formatName = typeof format === 'object' ? format.name : undefined;
    onlyWith('format', 'file outputs', body.file !== undefined);
    onlyWith('delimiter', 'CSV files', formatName === 'csv');
    onlyWith('sheet', 'XLSX files', formatName === 'xlsx');
    onlyWith('table', 'connection outputs', body.connection !== undefined);
    onlyWith('mode', 'connection outputs', body.connection !== undefined);
    onlyWith('key', 'connection outputs', body.connection !== undefined);
    onlyWith('create', 'connection outputs', body.connection !== undefined);
    onlyWith('request', 'connection outputs', body.connection !== undefined);
    if (body.connection !== undefined && body.request !== undefined) {
      for (const option of ['table', 'mode', 'key', 'create'] as const) {
        if (body[option] !== undefined)
          context.error([option], `"${option}" applies to table outputs, not to "request"`);
      }
      checkHttpRequest(body.request, 'output', context);
    } else if (body.connection !== undefined) {
      if (body.table === undefined) context.error([], 'a connection output needs "table" or "request"');
      const mode = body.mode ?? 'insert';
      const needsKey = mode === 'upsert' || mode === 'update' || mode === 'delete';
      if (needsKey && body.key === undefined) context.error(['mode'], `mode "${mode}" needs "key"`);
      if (!needsKey && body.key !== undefined) context.error(['key'], `mode "${mode}" does not use "key"`);
    }
  },
  async run(body, [input], context) {
    const table = input as Table;
    if (body.respond) {
      context.respond(table);
    } else if (body.file !== undefined) {
      await writeTableFile(
        context.resolvePath(body.file, ['file']),
        body.format,
        table,
        { delimiter: body.delimiter, sheet: body.sheet, displayName: body.file },
        context,
      );
    } else if (body.request !== undefined) {
      await (await httpSession(body.connection!, context)).send(body.request, table, context);
    } else {
      const key = keyColumns(body);
      key.forEach((name, i) =>
        context.column(table, name, typeof body.key === 'string' ? ['key'] : ['key', i]),
      );
      const session = await context.connections.session(body.connection!);
      await session.write(
        { table: body.table!, mode: body.mode ?? 'insert', key, create: body.create ?? false },
        table,
        context,
      );
    }
    context.progress(table.rows.length, table.rows.length);
    return table;
  },
};
