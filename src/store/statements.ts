/**
 * Statements compiled once. Kysely builds and compiles a query object on every call, which on
 * the webhook hot path costs more than SQLite takes to run it. Here a statement is compiled
 * the first time with Slot markers where its values go; later calls reuse the SQL text and
 * put the values in the marked places. Only values are ever parameters: the SQL never
 * changes with the data.
 */
import { CompiledQuery, type Compilable, type Kysely } from 'kysely';
import type { Database, Db } from './schema.js';

/** Stands for the value at `index` of a call's arguments while a statement is compiled. */
export class Slot {
  constructor(readonly index: number) {}
}

interface Template {
  sql: string;
  /** For each parameter: a slot index, or a constant the query builder put there. */
  parameters: readonly (Slot | unknown)[];
}

export class Statements {
  private readonly templates = new Map<string, Template>();

  constructor(private readonly db: Kysely<Database>) {}

  private template(key: string, build: (db: Kysely<Database>) => Compilable): Template {
    let template = this.templates.get(key);
    if (!template) {
      const compiled = build(this.db).compile();
      template = { sql: compiled.sql, parameters: compiled.parameters };
      this.templates.set(key, template);
    }
    return template;
  }

  private query(template: Template, values: readonly unknown[]): CompiledQuery {
    const parameters = template.parameters.map((parameter) =>
      parameter instanceof Slot ? values[parameter.index] : parameter,
    );
    return CompiledQuery.raw(template.sql, parameters);
  }

  /**
   * Run a statement built once by `build` (with Slot(i) standing for `values[i]`) on `db`.
   * `key` names the statement's shape.
   */
  async execute<R>(
    db: Db,
    key: string,
    build: (db: Kysely<Database>) => Compilable,
    values: readonly unknown[],
  ): Promise<R[]> {
    const result = await db.executeQuery<R>(this.query(this.template(key, build), values));
    return result.rows;
  }

  /** Rows changed by a statement built once by `build`. */
  async changes(
    db: Db,
    key: string,
    build: (db: Kysely<Database>) => Compilable,
    values: readonly unknown[],
  ): Promise<number> {
    const result = await db.executeQuery(this.query(this.template(key, build), values));
    return Number(result.numAffectedRows ?? 0);
  }

  /** Insert one row; rows of the same table with the same columns share one statement. */
  async insert<T extends keyof Database & string>(db: Db, table: T, row: Database[T]): Promise<void> {
    const columns = Object.keys(row) as (keyof Database[T] & string)[];
    const values = columns.map((column) => row[column]);
    await this.execute(
      db,
      `insert:${table}:${columns.join(',')}`,
      (kysely) =>
        kysely
          .insertInto(table)
          .values(Object.fromEntries(columns.map((column, i) => [column, new Slot(i)])) as never),
      values,
    );
  }
}
