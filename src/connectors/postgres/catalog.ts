/**
 * What a PostgreSQL database holds, from pg_catalog: the table a name refers to (a bare name
 * is looked up along the search_path, as PostgreSQL itself does), its columns, and the names
 * "did you mean" picks from. Names are taken as written, case included, as quoted identifiers.
 */
import type { PoolClient } from 'pg';
import { noSuchTable } from '../sql/errors.js';
import type { WriteTarget } from '../sql/write.js';

export interface TableName {
  schema: string | undefined;
  name: string;
}

/** `schema.table` or `table`; the schema ends at the first dot. */
export function parseTableName(text: string): TableName {
  const dot = text.indexOf('.');
  return dot === -1
    ? { schema: undefined, name: text }
    : { schema: text.slice(0, dot), name: text.slice(dot + 1) };
}

interface CatalogTable {
  oid: string;
  schema: string;
  name: string;
}

/** Tables, views and the like in one schema, or along the search_path (first schema first). */
const TABLES = `
  select c.oid, n.nspname, c.relname
  from pg_catalog.pg_class c join pg_catalog.pg_namespace n on n.oid = c.relnamespace
  where c.relkind in ('r', 'p', 'v', 'm', 'f')
    and case when $1::text is null then n.nspname = any (current_schemas(false)) else n.nspname = $1 end
  order by array_position(current_schemas(false), n.nspname), c.relname`;

const COLUMNS = `
  select a.attname, t.typcategory = 'A'
  from pg_catalog.pg_attribute a join pg_catalog.pg_type t on t.oid = a.atttypid
  where a.attrelid = $1 and a.attnum > 0 and not a.attisdropped
  order by a.attnum`;

async function catalogTables(client: PoolClient, schema: string | undefined): Promise<CatalogTable[]> {
  const result = await client.query<[string, string, string]>({
    text: TABLES,
    values: [schema ?? null],
    rowMode: 'array',
  });
  return result.rows.map(([oid, schema, name]) => ({ oid, schema, name }));
}

/** Names to suggest for a misspelt table, written the way the user wrote theirs. */
function suggestions(tables: readonly CatalogTable[], wanted: TableName): string[] {
  return [
    ...new Set(
      tables.map((table) => (wanted.schema === undefined ? table.name : `${table.schema}.${table.name}`)),
    ),
  ];
}

export async function tableSuggestions(client: PoolClient, wanted: TableName): Promise<string[]> {
  return suggestions(await catalogTables(client, wanted.schema), wanted);
}

export async function postgresTableExists(client: PoolClient, wanted: TableName): Promise<boolean> {
  const tables = await catalogTables(client, wanted.schema);
  return tables.some((table) => table.name === wanted.name);
}

export interface PostgresWriteTarget extends WriteTarget {
  /** Columns of array types: arrays bind to them as PostgreSQL arrays, not JSON text. */
  readonly arrayColumns: ReadonlySet<string>;
}

export async function postgresWriteTarget(
  client: PoolClient,
  text: string,
  connection: string,
): Promise<PostgresWriteTarget> {
  const wanted = parseTableName(text);
  const tables = await catalogTables(client, wanted.schema);
  const found = tables.find((table) => table.name === wanted.name);
  if (found === undefined) throw noSuchTable('SINK_ERROR', text, suggestions(tables, wanted), connection);
  const result = await client.query<[string, boolean]>({
    text: COLUMNS,
    values: [found.oid],
    rowMode: 'array',
  });
  return {
    schema: found.schema,
    name: found.name,
    columns: result.rows.map(([name]) => name),
    arrayColumns: new Set(result.rows.filter(([, isArray]) => isArray).map(([name]) => name)),
  };
}
