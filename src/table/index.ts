/**
 * table — the data that moves between steps: an ordered list of rows with a fixed column list.
 *
 * A row is an array aligned to `columns`, not an object, so column names never become
 * property keys (a column called `__proto__` is just a string here) and wide tables stay
 * compact. Objects are built only at the edges (JSON output, expressions), always with a null
 * prototype. Rows are never mutated once a command has returned them: a table may feed
 * several steps.
 */

export type Scalar = string | number | boolean | null;
export type Value = Scalar | Value[] | { [key: string]: Value };
export type Row = Value[];

export interface Table {
  readonly columns: readonly string[];
  readonly rows: Row[];
}

export type NestedValue = Value[] | { [key: string]: Value };

export function isNested(value: Value | undefined): value is NestedValue {
  return value !== null && typeof value === 'object';
}

/**
 * Records parsed from flow files carry their keys in document order under this symbol:
 * JavaScript objects list integer-like keys ("2024") first, which would reorder columns.
 */
export const KEY_ORDER: unique symbol = Symbol('lethe.keyOrder');

/** A record's keys in the order they were written (document order when known). */
export function orderedKeys(record: object): string[] {
  const order = (record as { [KEY_ORDER]?: string[] })[KEY_ORDER];
  return order ?? Object.keys(record);
}

/** A record's entries in the order they were written. */
export function orderedEntries<T>(record: Readonly<Record<string, T>>): [string, T][] {
  return orderedKeys(record).map((key) => [key, record[key]!]);
}

/** A record with a null prototype: any column name, `__proto__` included, is an own key. */
export function rowToRecord(columns: readonly string[], row: Row): Record<string, Value> {
  const record = Object.create(null) as Record<string, Value>;
  for (let i = 0; i < columns.length; i++) record[columns[i]!] = row[i] ?? null;
  return record;
}

/**
 * Build a table from JSON-like records. Columns are the declared ones first, then every other
 * key in order of first appearance; a key a record lacks is null.
 */
export function tableFromRecords(records: readonly unknown[], declared: readonly string[] = []): Table {
  const index = new Map<string, number>();
  const columns: string[] = [];
  for (const name of declared) {
    if (!index.has(name)) {
      index.set(name, columns.length);
      columns.push(name);
    }
  }
  for (const record of records) {
    if (record === null || typeof record !== 'object' || Array.isArray(record)) continue;
    for (const key of orderedKeys(record)) {
      if (!index.has(key)) {
        index.set(key, columns.length);
        columns.push(key);
      }
    }
  }
  const rows: Row[] = [];
  for (const record of records) {
    const row: Row = new Array<Value>(columns.length).fill(null);
    if (record !== null && typeof record === 'object' && !Array.isArray(record)) {
      for (const key of orderedKeys(record)) {
        const value = (record as Record<string, unknown>)[key];
        row[index.get(key)!] = toValue(value);
      }
    }
    rows.push(row);
  }
  return { columns, rows };
}

/** Normalise anything JSON-like into a Value (undefined → null, Dates → ISO text). */
export function toValue(value: unknown): Value {
  if (value === undefined || value === null) return null;
  switch (typeof value) {
    case 'string':
    case 'boolean':
      return value;
    case 'number':
      return Number.isFinite(value) ? value : null;
    case 'bigint':
      return Number.isSafeInteger(Number(value)) ? Number(value) : value.toString();
    case 'object': {
      if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString();
      if (Array.isArray(value)) return value.map(toValue);
      if (Buffer.isBuffer(value) || value instanceof Uint8Array) return Buffer.from(value).toString('base64');
      const out = Object.create(null) as Record<string, Value>;
      for (const key of orderedKeys(value)) out[key] = toValue((value as Record<string, unknown>)[key]);
      return out;
    }
    default:
      return null;
  }
}

/** The text form of a value for CSV cells, concatenation and messages. */
export function valueToText(value: Value): string {
  if (value === null) return '';
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return JSON.stringify(value);
}

/** Short description of a value for error messages (never the whole of a long value). */
export function describeValue(value: Value | undefined): string {
  if (value === undefined || value === null) return 'null';
  if (typeof value === 'string') {
    // Cut at 37 UTF-16 units, but never between the two halves of a surrogate pair (emoji).
    const cut = /[\uD800-\uDBFF]/.test(value.charAt(36)) ? 36 : 37;
    const shown = value.length > 40 ? `${value.slice(0, cut)}...` : value;
    return JSON.stringify(shown);
  }
  if (typeof value === 'number' || typeof value === 'boolean') return String(value);
  return Array.isArray(value) ? 'an array' : 'an object';
}

/** Compare strings by Unicode code point (JavaScript's `<` compares UTF-16 code units). */
export function compareCodePoints(a: string, b: string): number {
  if (a === b) return 0;
  const length = Math.min(a.length, b.length);
  for (let i = 0; i < length; i++) {
    let x = a.charCodeAt(i);
    let y = b.charCodeAt(i);
    if (x !== y) {
      // Surrogates (D800–DFFF) encode code points above FFFF, so they sort after E000–FFFF.
      if (x >= 0xd800 && y >= 0xd800) {
        x = x >= 0xe000 ? x - 0x800 : x + 0x2000;
        y = y >= 0xe000 ? y - 0x800 : y + 0x2000;
      }
      return x < y ? -1 : 1;
    }
  }
  return a.length - b.length < 0 ? -1 : a.length === b.length ? 0 : 1;
}

/** Cross-type order used by sort, min and max: numbers, strings, booleans, nested values. */
function typeRank(value: Value): number {
  switch (typeof value) {
    case 'number':
      return 0;
    case 'string':
      return 1;
    case 'boolean':
      return 2;
    default:
      return 3;
  }
}

/** Total order on non-null values. */
export function compareValues(a: Value, b: Value): number {
  const ta = typeof a;
  if (ta === typeof b) {
    if (ta === 'number') return (a as number) < (b as number) ? -1 : (a as number) > (b as number) ? 1 : 0;
    if (ta === 'string') return compareCodePoints(a as string, b as string);
    if (ta === 'boolean') return a === b ? 0 : a ? 1 : -1;
  }
  const ra = typeRank(a);
  const rb = typeRank(b);
  if (ra !== rb) return ra - rb;
  return compareCodePoints(JSON.stringify(a), JSON.stringify(b));
}

/**
 * Hash keys for grouping, joining and de-duplication: equal by value *and* type (1 ≠ "1").
 * Scalars are their own Map keys (a Map already tells 1 from "1" and true from "true");
 * nested values are compared by their JSON text through an interned symbol.
 */
export class KeyMaker {
  private readonly nested = new Map<string, symbol>();

  single(value: Value): unknown {
    if (value === null || typeof value !== 'object') return value;
    const text = JSON.stringify(value);
    let key = this.nested.get(text);
    if (key === undefined) {
      key = Symbol(text);
      this.nested.set(text, key);
    }
    return key;
  }

  /**
   * A key for several values: each value is written self-delimited with its type (strings
   * length-prefixed), so different tuples never give the same key and 1 never equals "1".
   */
  composite(row: Row, indexes: readonly number[]): string {
    let key = '';
    for (let i = 0; i < indexes.length; i++) {
      const value = row[indexes[i]!] ?? null;
      if (value === null) key += 'n;';
      else if (typeof value === 'string') key += `s${value.length}:${value}`;
      else if (typeof value === 'number') key += `d${value};`;
      else if (typeof value === 'boolean') key += value ? 't;' : 'f;';
      else {
        const text = JSON.stringify(value);
        key += `j${text.length}:${text}`;
      }
    }
    return key;
  }
}

/** Returns a function giving the hash key of a row over the given columns. */
export function rowKeyFunction(indexes: readonly number[], keys = new KeyMaker()): (row: Row) => unknown {
  if (indexes.length === 1) {
    const index = indexes[0]!;
    return (row) => keys.single(row[index] ?? null);
  }
  return (row) => keys.composite(row, indexes);
}
