/**
 * document — YAML and JSON documents that remember positions, and schema problems turned into
 * messages. Used for flow files and connections files alike.
 *
 * A parsed YAML or JSON document that remembers where everything came from, so that every
 * message can say `file:line:col`. YAML is read as YAML 1.2 (so `on:` is a string key) with
 * unique keys and a bound on alias expansion; JSON is read by the same parser (JSON is YAML
 * 1.2), which also catches duplicate keys.
 */
import {
  isMap,
  isPair,
  isScalar,
  isSeq,
  LineCounter,
  parseDocument,
  Scalar,
  visit,
  type Document,
  type Node,
} from 'yaml';
import { relative } from 'node:path';
import { LetheError, type SourceLocation } from '../errors/index.js';
import { KEY_ORDER } from '../table/index.js';

export type PathSegment = string | number;
/** A path into a document: keys and list positions. */
export type Path = readonly PathSegment[];

/** A path as shown in messages: relative to the working directory when that is shorter. */
export function displayPath(path: string): string {
  const shown = relative(process.cwd(), path);
  return shown && !shown.startsWith('..') && shown.length < path.length ? shown : path;
}

/** `steps[3].join.left`, `params.since`, `columns["a b"]`. */
export function formatPath(path: Path): string {
  let text = '';
  for (const segment of path) {
    if (typeof segment === 'number') text += `[${segment}]`;
    else if (/^[A-Za-z_$][A-Za-z0-9_$-]*$/.test(segment)) text += text === '' ? segment : `.${segment}`;
    else text += `[${JSON.stringify(segment)}]`;
  }
  return text;
}

/**
 * Plain values from the parsed document: mappings become objects that remember their key
 * order (see KEY_ORDER) and whose keys are always own data properties (`__proto__` included).
 */
function fromYaml(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(fromYaml);
  if (!(value instanceof Map)) return value;
  const out: Record<string, unknown> = {};
  const keys: string[] = [];
  for (const [key, item] of value) {
    const name = String(key);
    if (!Object.prototype.hasOwnProperty.call(out, name)) keys.push(name);
    Object.defineProperty(out, name, {
      value: fromYaml(item),
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  Object.defineProperty(out, KEY_ORDER, { value: keys, enumerable: false });
  return out;
}

export class SourceDocument {
  readonly file: string;
  readonly text: string;
  readonly value: unknown;
  readonly errors: LetheError[];
  private readonly document: Document.Parsed;
  private readonly lines: LineCounter;

  constructor(file: string, text: string) {
    this.file = file;
    this.text = text;
    this.lines = new LineCounter();
    this.document = parseDocument(text, {
      version: '1.2',
      lineCounter: this.lines,
      uniqueKeys: true,
      prettyErrors: true,
      strict: true,
    });
    // One message per mistake. A structural error (indentation, an unclosed quote or bracket)
    // throws the parser off for the rest of the file, so what it reports after the first one
    // is mostly consequence: only the first is kept. Duplicate keys do not cascade: all are.
    let structural = false;
    this.errors = [];
    for (const error of this.document.errors) {
      if (error.code !== 'DUPLICATE_KEY') {
        if (structural) continue;
        structural = true;
      }
      let position: { line: number; col: number } | undefined = error.linePos?.[0];
      let message = error.message.split('\n')[0]!.replace(/ at line \d+, column \d+:?$/, '');
      // The parser finds a missing closing quote at the end of the file: point at the opening one.
      const opening =
        error.code === 'MISSING_CHAR' && /quote/.test(message) ? this.unclosedQuote(error.pos[0]) : undefined;
      if (opening !== undefined) {
        position = this.lines.linePos(opening);
        message = `missing closing ${text[opening]} for the string that starts here`;
      }
      this.errors.push(
        new LetheError('FLOW_SYNTAX', message, {
          location: { file, ...(position ? { line: position.line, column: position.col } : {}) },
        }),
      );
    }
    let value: unknown;
    if (this.errors.length === 0) {
      try {
        value = fromYaml(this.document.toJS({ maxAliasCount: 100, mapAsMap: true }));
      } catch (error) {
        this.errors.push(
          new LetheError('FLOW_SYNTAX', error instanceof Error ? error.message : String(error), {
            location: { file },
          }),
        );
      }
    }
    this.value = value;
  }

  /** The offset of the opening quote of a quoted scalar that runs to `end` without closing. */
  private unclosedQuote(end: number): number | undefined {
    let found: number | undefined;
    visit(this.document, {
      Scalar: (_key, node) => {
        const quoted = node.type === Scalar.QUOTE_DOUBLE || node.type === Scalar.QUOTE_SINGLE;
        if (!quoted || !node.range || node.range[1] !== end) return undefined;
        // The unclosed string runs to the end of the file, so it is the one that ends there.
        found = node.range[0];
        return visit.BREAK;
      },
    });
    return found;
  }

  private position(offset: number): { line: number; column: number } {
    const { line, col } = this.lines.linePos(offset);
    return { line, column: col };
  }

  /** The deepest node along the path, and how much of the path it covers. */
  private find(path: Path): { node: Node | null; key: Node | null; depth: number } {
    let node: Node | null = (this.document.contents as Node | null) ?? null;
    let key: Node | null = null;
    let depth = 0;
    for (const segment of path) {
      if (isMap(node)) {
        const pair = node.items.find(
          (item) => isPair(item) && isScalar(item.key) && String(item.key.value) === String(segment),
        );
        if (!pair) break;
        key = pair.key as Node;
        node = (pair.value as Node | null) ?? (pair.key as Node);
      } else if (isSeq(node) && typeof segment === 'number' && node.items[segment] !== undefined) {
        key = null;
        node = node.items[segment] as Node;
      } else {
        break;
      }
      depth++;
    }
    return { node, key, depth };
  }

  /** Where a value (or the closest existing parent) is. With `atKey`, where its key is. */
  locate(path: Path, options: { atKey?: boolean } = {}): SourceLocation {
    const { node, key, depth } = this.find(path);
    const target = options.atKey && depth === path.length && key ? key : node;
    const location: SourceLocation = { file: this.file, path: formatPath(path) };
    if (target?.range) Object.assign(location, this.position(target.range[0]));
    return location;
  }

  /**
   * Where the `offset`-th character (1-based) of a string value is: exact for plain and quoted
   * one-line scalars, otherwise the start of the value.
   */
  locateInString(path: Path, offset: number): SourceLocation {
    const { node, depth } = this.find(path);
    const location = this.locate(path);
    if (depth !== path.length || !isScalar(node) || !node.range) return location;
    const start = this.position(node.range[0]);
    const end = this.position(node.range[1]);
    const quoted = node.type === Scalar.QUOTE_DOUBLE || node.type === Scalar.QUOTE_SINGLE;
    if ((node.type === Scalar.PLAIN || quoted) && start.line === end.line) {
      const raw = this.text.slice(node.range[0] + (quoted ? 1 : 0), node.range[1]);
      const skip =
        node.type === Scalar.QUOTE_DOUBLE
          ? rawIndexDouble(raw, offset - 1)
          : node.type === Scalar.QUOTE_SINGLE
            ? rawIndexSingle(raw, offset - 1)
            : offset - 1;
      return { ...location, line: start.line, column: start.column + (quoted ? 1 : 0) + skip };
    }
    return location;
  }
}

/** Where the `index`-th (0-based) character of a double-quoted scalar's value is in its source. */
function rawIndexDouble(raw: string, index: number): number {
  let i = 0;
  for (let decoded = 0; decoded < index && i < raw.length;) {
    if (raw[i] !== '\\') {
      i++;
      decoded++;
      continue;
    }
    const kind = raw[i + 1];
    const digits = kind === 'x' ? 2 : kind === 'u' ? 4 : kind === 'U' ? 8 : 0;
    const code = digits > 0 ? parseInt(raw.slice(i + 2, i + 2 + digits), 16) : 0;
    i += 2 + digits;
    decoded += code > 0xffff ? 2 : 1;
  }
  return i;
}

/** The same for a single-quoted scalar, where `''` stands for one quote. */
function rawIndexSingle(raw: string, index: number): number {
  let i = 0;
  for (let decoded = 0; decoded < index && i < raw.length; decoded++) {
    i += raw[i] === "'" && raw[i + 1] === "'" ? 2 : 1;
  }
  return i;
}
