/**
 * input — read a table from exactly one source: a file, a connection (SQL query, whole table,
 * or an HTTP request's JSON answers), inline `values`, or the trigger's payload. `types` then
 * converts columns (SPEC 4.2); a declared column the source lacks is added as null, so a flow
 * can rely on it.
 */
import Type, { type Static } from 'typebox';
import { readTableFile, resolveFormat } from '../connectors/files/index.js';
import { orderedEntries, tableFromRecords, type Row, type Table, type Value } from '../table/index.js';
import { COLUMN_TYPES, ConversionError, convert, type ColumnType } from '../table/types.js';
import type { CheckContext, CommandDefinition, StepContext } from './command.js';
import {
  ConnectionName,
  CsvDelimiter,
  ExpressionText,
  FileFormatField,
  FilePath,
  HttpInputRequest,
  checkHttpRequest,
  httpSession,
} from './shared.js';

const ColumnTypes = Type.Record(
  Type.String({ minLength: 1 }),
  Type.Enum(COLUMN_TYPES, { description: 'string | number | integer | boolean | date | datetime' }),
  { description: 'Convert columns to these types; a value that does not convert fails the run.' },
);

const schema = Type.Object(
  {
    file: Type.Optional(FilePath),
    format: Type.Optional(FileFormatField),
    delimiter: Type.Optional(CsvDelimiter),
    sheet: Type.Optional(Type.String({ minLength: 1, description: 'XLSX worksheet (default: the first).' })),
    path: Type.Optional(
      Type.String({
        minLength: 1,
        description: 'JSON: dotted path to the array of records, e.g. data.items.',
      }),
    ),
    connection: Type.Optional(ConnectionName),
    sql: Type.Optional(Type.String({ minLength: 1, description: 'A query; bind values with parameters.' })),
    table: Type.Optional(Type.String({ minLength: 1, description: 'Read a whole table.' })),
    parameters: Type.Optional(
      Type.Array(ExpressionText, {
        description: 'Expressions (e.g. "$params.since") bound to the query placeholders ($1… or ?).',
      }),
    ),
    request: Type.Optional(HttpInputRequest),
    values: Type.Optional(
      Type.Array(Type.Record(Type.String(), Type.Unknown()), { description: 'Inline records.' }),
    ),
    trigger: Type.Optional(Type.Literal(true, { description: "The trigger's payload." })),
    types: Type.Optional(ColumnTypes),
  },
  { additionalProperties: false, description: 'Read a table from one source.' },
);
type Body = Static<typeof schema>;

const SOURCES = ['file', 'connection', 'values', 'trigger'] as const;

function sources(body: Body): string[] {
  return SOURCES.filter((key) => body[key] !== undefined);
}

/** Options that belong to one kind of source only: [option, allowed when]. */
function checkOptions(body: Body, context: CheckContext): void {
  const onlyWith = (option: keyof Body, source: string, allowed: boolean) => {
    if (body[option] !== undefined && !allowed)
      context.error([option], `"${option}" applies only to ${source}`);
  };
  const format = body.file === undefined ? undefined : resolveFormat(body.file, body.format);
  const formatName = typeof format === 'object' ? format.name : undefined;
  onlyWith('format', 'file inputs', body.file !== undefined);
  onlyWith('delimiter', 'CSV files', formatName === 'csv');
  onlyWith('sheet', 'XLSX files', formatName === 'xlsx');
  onlyWith('path', 'JSON files', formatName === 'json');
  onlyWith('sql', 'connection inputs', body.connection !== undefined);
  onlyWith('table', 'connection inputs', body.connection !== undefined);
  onlyWith('request', 'connection inputs', body.connection !== undefined);
  onlyWith('parameters', 'SQL queries', body.sql !== undefined);
  if (typeof format === 'string') context.error(['file'], format);
}

export function applyTypes(
  table: Table,
  types: Readonly<Record<string, ColumnType>>,
  context: StepContext,
): Table {
  const entries = orderedEntries(types);
  if (entries.length === 0) return table;
  const columns = [...table.columns];
  for (const [name] of entries) if (!columns.includes(name)) columns.push(name);
  const widen = columns.length !== table.columns.length;
  const conversions = entries.map(([name, type]) => ({ name, type, index: columns.indexOf(name) }));
  const rows: Row[] = new Array<Row>(table.rows.length);
  for (let r = 0; r < table.rows.length; r++) {
    const row = table.rows[r]!.slice();
    if (widen) for (let c = table.columns.length; c < columns.length; c++) row[c] = null;
    for (const { name, type, index } of conversions) {
      const value = row[index] ?? null;
      if (value === null) continue;
      try {
        row[index] = convert(value, type);
      } catch (error) {
        if (!(error instanceof ConversionError)) throw error;
        throw context.error('TYPE_CONVERSION', `${error.message} (declared ${type})`, {
          row: r + 1,
          column: name,
          path: ['types', name],
        });
      }
    }
    rows[r] = row;
  }
  return { columns, rows };
}

async function readSource(body: Body, context: StepContext): Promise<Table> {
  if (body.values !== undefined) return tableFromRecords(body.values);
  if (body.trigger) {
    if (context.trigger === undefined) {
      throw context.error('SOURCE_ERROR', 'this run has no trigger payload', {
        path: ['trigger'],
        hint: 'give one with `lethe run <flow> --input <file>`',
      });
    }
    return context.trigger.table;
  }
  if (body.file !== undefined) {
    const path = context.resolvePath(body.file, ['file']);
    const declared = new Set(Object.keys(body.types ?? {}));
    return readTableFile(
      path,
      body.format,
      { declared, delimiter: body.delimiter, sheet: body.sheet, path: body.path, displayName: body.file },
      context,
    );
  }
  const name = body.connection!;
  if (body.request !== undefined) {
    return (await httpSession(name, context)).fetchTable(body.request, context);
  }
  const session = await context.connections.session(name);
  if (body.sql !== undefined) {
    const parameters: Value[] = [];
    for (const [i, text] of (body.parameters ?? []).entries()) {
      parameters.push(await context.expression(['parameters', i], text, []).evaluate(undefined));
    }
    return session.read({ kind: 'query', sql: body.sql, parameters }, context);
  }
  return session.read({ kind: 'table', table: body.table! }, context);
}

export const input: CommandDefinition<Body> = {
  name: 'input',
  summary: 'Read a table from a file, a connection, inline values or the trigger payload.',
  schema,
  references: () => [],
  check(body, context) {
    const found = sources(body);
    if (found.length === 0) {
      context.error(
        [],
        'input needs one source: file, connection (with sql, table or request), values or trigger',
      );
    } else if (found.length > 1) {
      context.error(
        [found[1]!],
        `input takes one source, but has ${found.map((s) => `"${s}"`).join(' and ')}`,
      );
    }
    if (body.connection !== undefined) {
      const kinds = (['sql', 'table', 'request'] as const).filter((k) => body[k] !== undefined);
      if (kinds.length !== 1) {
        context.error(
          kinds.length === 0 ? [] : [kinds[1]!],
          'a connection input needs exactly one of "sql", "table" or "request"',
        );
      }
    }
    if (body.request !== undefined) checkHttpRequest(body.request, 'input', context);
    checkOptions(body, context);
    for (const [i, text] of (body.parameters ?? []).entries()) context.expression(['parameters', i], text);
  },
  async run(body, _inputs, context) {
    const table = await readSource(body, context);
    await context.checkpoint();
    const typed = applyTypes(table, body.types ?? {}, context);
    context.progress(typed.rows.length, typed.rows.length);
    return typed;
  },
};
