/**
 * A compiler from the common subset of JSONata (field references, literals, comparisons,
 * arithmetic, `and`/`or`, `in`, conditions and a handful of string and number functions) to
 * plain closures over a row array. It exists for speed: JSONata's evaluator is asynchronous
 * and walks the tree for every row, which costs microseconds a row.
 *
 * Every closure mirrors JSONata's own code for the node (see jsonata.js: evaluateBinary,
 * evaluateComparisonExpression, fn.string…). Whenever a row takes a path whose semantics
 * are not trivially the same — a nested value, a type error, a non-finite number — the
 * closure throws BAIL and the caller evaluates that row with JSONata itself. So the fast
 * path can only ever be faster, never different; a differential test checks that claim.
 * No code is generated: closures only (no eval, new Function or vm).
 */
import type { Row, Value } from '../table/index.js';

/** Thrown by a compiled closure: "evaluate this row with JSONata instead". */
export const BAIL: unique symbol = Symbol('bail');

/** A compiled node: returns a JSONata value, with `undefined` meaning "nothing". */
export type Compiled = (row: Row) => unknown;

/** A JSONata AST node, as far as we read it. */
export interface AstNode {
  type: string;
  value?: unknown;
  position?: number;
  steps?: AstNode[];
  lhs?: AstNode;
  rhs?: AstNode;
  expression?: AstNode;
  expressions?: AstNode[];
  arguments?: AstNode[];
  procedure?: AstNode;
  condition?: AstNode;
  then?: AstNode;
  else?: AstNode;
  stages?: unknown[];
  predicate?: unknown[];
  group?: unknown;
  keepArray?: boolean;
  tuple?: boolean;
  focus?: unknown;
  index?: unknown;
  ancestor?: unknown;
  consarray?: boolean;
  seekingParent?: unknown;
}

export interface FastContext {
  /** Column name → index in the row. */
  columns: ReadonlyMap<string, number>;
  /** Variables bound for the evaluation ($params …). */
  bindings: Readonly<Record<string, unknown>>;
  /**
   * JSONata's depth limit (its `stack` option): it fails an expression whose evaluation nests
   * deeper, so the fast path must not answer one.
   */
  maxDepth?: number;
}

function bail(): never {
  throw BAIL;
}

/** A node carrying any decoration we do not mirror (predicates, grouping, focus…). */
function decorated(node: AstNode): boolean {
  return (
    node.stages !== undefined ||
    node.predicate !== undefined ||
    node.group !== undefined ||
    node.keepArray === true ||
    node.tuple === true ||
    node.focus !== undefined ||
    node.index !== undefined ||
    node.ancestor !== undefined ||
    node.seekingParent !== undefined
  );
}

/** A scalar JSONata would hand through unchanged; nested values and nulls go to JSONata. */
function plain(value: unknown): unknown {
  if (value === undefined) return undefined;
  const type = typeof value;
  if (type === 'string' || type === 'boolean') return value;
  if (type === 'number') return Number.isFinite(value) ? value : bail();
  return bail();
}

function fieldReader(index: number | undefined): Compiled {
  if (index === undefined) return () => undefined;
  return (row) => {
    const value = row[index];
    // SQL-like nulls: a null column is absent when the row is given to JSONata.
    if (value === null || value === undefined) return undefined;
    const type = typeof value;
    if (type === 'string' || type === 'number' || type === 'boolean') return value;
    return bail();
  };
}

function compilePath(node: AstNode, context: FastContext): Compiled | undefined {
  const steps = node.steps ?? [];
  if (steps.some(decorated)) return undefined;
  const [first, second] = steps;
  if (steps.length === 1 && first?.type === 'name') {
    return fieldReader(context.columns.get(String(first.value)));
  }
  if (steps.length === 2 && first?.type === 'variable' && second?.type === 'name') {
    const name = String(second.value);
    if (first.value === '') return fieldReader(context.columns.get(name));
    const bound = context.bindings[String(first.value)];
    if (bound === null || typeof bound !== 'object' || Array.isArray(bound)) return undefined;
    if (!Object.prototype.hasOwnProperty.call(bound, name)) return () => undefined;
    const value = (bound as Record<string, unknown>)[name];
    if (value === undefined) return () => undefined;
    if (typeof value === 'string' || typeof value === 'boolean') return () => value;
    if (typeof value === 'number' && Number.isFinite(value)) return () => value;
    return undefined;
  }
  return undefined;
}

/** fn.boolean for the values the fast path carries (scalars and undefined). */
function truthy(value: unknown): boolean | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'string') return value.length > 0;
  if (typeof value === 'number') return value !== 0;
  if (typeof value === 'boolean') return value;
  return bail();
}

/** fn.string for scalars: integers via JSON, other numbers rounded to 15 significant digits. */
function toJsonataString(value: unknown): string {
  if (typeof value === 'string') return value;
  if (typeof value === 'number') {
    return JSON.stringify(Number.isInteger(value) ? value : Number(value.toPrecision(15)));
  }
  if (typeof value === 'boolean') return value ? 'true' : 'false';
  return bail();
}

const JSONATA_NUMBER_TEXT = /^-?[0-9]+(\.[0-9]+)?([Ee][-+]?[0-9]+)?$/;

type Unary = (value: unknown) => unknown;

const STRING_FUNCTIONS: Record<string, Unary> = {
  uppercase: (v) => (v === undefined ? undefined : typeof v === 'string' ? v.toUpperCase() : bail()),
  lowercase: (v) => (v === undefined ? undefined : typeof v === 'string' ? v.toLowerCase() : bail()),
  length: (v) => (v === undefined ? undefined : typeof v === 'string' ? Array.from(v).length : bail()),
  trim: (v) => {
    if (v === undefined) return undefined;
    if (typeof v !== 'string') return bail();
    let result = v.replace(/[ \t\n\r]+/gm, ' ');
    if (result.charAt(0) === ' ') result = result.substring(1);
    if (result.charAt(result.length - 1) === ' ') result = result.substring(0, result.length - 1);
    return result;
  },
  string: (v) => (v === undefined ? undefined : toJsonataString(v)),
  number: (v) => {
    if (v === undefined) return undefined;
    if (typeof v === 'number') return v;
    if (typeof v === 'boolean') return v ? 1 : 0;
    if (typeof v === 'string' && JSONATA_NUMBER_TEXT.test(v)) {
      const number = parseFloat(v);
      return Number.isFinite(number) ? number : bail();
    }
    return bail();
  },
  exists: (v) => v !== undefined,
  boolean: (v) => truthy(v),
  not: (v) => (v === undefined ? undefined : !truthy(v)),
  abs: (v) => (v === undefined ? undefined : typeof v === 'number' ? Math.abs(v) : bail()),
  floor: (v) => (v === undefined ? undefined : typeof v === 'number' ? Math.floor(v) : bail()),
  ceil: (v) => (v === undefined ? undefined : typeof v === 'number' ? Math.ceil(v) : bail()),
};

function compileFunction(node: AstNode, context: FastContext): Compiled | undefined {
  const procedure = node.procedure;
  if (node.value !== '(' || procedure?.type !== 'variable' || decorated(procedure)) return undefined;
  const name = String(procedure.value);
  // A binding of the same name would shadow the built-in.
  if (Object.prototype.hasOwnProperty.call(context.bindings, name)) return undefined;
  const args = (node.arguments ?? []).map((arg) => compileNode(arg, context));
  if (args.some((arg) => arg === undefined)) return undefined;
  const compiled = args as Compiled[];
  const unary = STRING_FUNCTIONS[name];
  if (unary && compiled.length === 1) {
    const arg = compiled[0]!;
    return (row) => unary(arg(row));
  }
  if (name === 'contains' && compiled.length === 2 && node.arguments?.[1]?.type === 'string') {
    const [subject, token] = compiled as [Compiled, Compiled];
    return (row) => {
      const text = subject(row);
      if (text === undefined) return undefined;
      if (typeof text !== 'string') return bail();
      return text.indexOf(token(row) as string) !== -1;
    };
  }
  if (name === 'substring' && (compiled.length === 2 || compiled.length === 3)) {
    const [subject, start, length] = compiled as [Compiled, Compiled, Compiled | undefined];
    return (row) => {
      // JSONata evaluates and type-checks every argument before the function sees an
      // undefined subject: `$substring(nothing, "x")` is an error, not nothing.
      const text = subject(row);
      const from = start(row);
      const count = length === undefined ? undefined : length(row);
      if (from !== undefined && typeof from !== 'number') return bail();
      if (count !== undefined && typeof count !== 'number') return bail();
      if (text === undefined) return undefined;
      if (typeof text !== 'string' || typeof from !== 'number') return bail();
      const chars = Array.from(text);
      let begin = from;
      if (chars.length + begin < 0) begin = 0;
      if (count !== undefined) {
        if (count <= 0) return '';
        const end = begin >= 0 ? begin + count : chars.length + begin + count;
        return chars.slice(begin, end).join('');
      }
      return chars.slice(begin).join('');
    };
  }
  return undefined;
}

function numeric(value: unknown): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'number') return value;
  return bail();
}

function compileBinary(node: AstNode, context: FastContext): Compiled | undefined {
  const op = String(node.value);
  if (op === 'in') {
    const lhs = node.lhs && compileNode(node.lhs, context);
    const list = node.rhs;
    if (!lhs || list?.type !== 'unary' || list.value !== '[' || decorated(list) || list.consarray) {
      return undefined;
    }
    const items: unknown[] = [];
    for (const item of list.expressions ?? []) {
      if ((item.type !== 'string' && item.type !== 'number') || decorated(item)) return undefined;
      items.push(item.value);
    }
    return (row) => {
      const value = lhs(row);
      if (value === undefined) return false;
      return items.includes(value);
    };
  }
  const lhs = node.lhs && compileNode(node.lhs, context);
  const rhs = node.rhs && compileNode(node.rhs, context);
  if (!lhs || !rhs) return undefined;
  switch (op) {
    case 'and':
      return (row) => Boolean(truthy(lhs(row))) && Boolean(truthy(rhs(row)));
    case 'or':
      return (row) => Boolean(truthy(lhs(row))) || Boolean(truthy(rhs(row)));
    case '=':
    case '!=': {
      const negate = op === '!=';
      return (row) => {
        const a = lhs(row);
        const b = rhs(row);
        if (a === undefined || b === undefined) return false;
        return negate ? a !== b : a === b;
      };
    }
    case '<':
    case '<=':
    case '>':
    case '>=':
      return (row) => {
        const a = lhs(row);
        const b = rhs(row);
        const ta = typeof a;
        const tb = typeof b;
        if (
          (ta !== 'undefined' && ta !== 'string' && ta !== 'number') ||
          (tb !== 'undefined' && tb !== 'string' && tb !== 'number')
        ) {
          return bail();
        }
        if (a === undefined || b === undefined) return undefined;
        if (ta !== tb) return bail();
        const x = a as number;
        const y = b as number;
        return op === '<' ? x < y : op === '<=' ? x <= y : op === '>' ? x > y : x >= y;
      };
    case '+':
    case '-':
    case '*':
    case '/':
    case '%':
      return (row) => {
        const a = numeric(lhs(row));
        const b = numeric(rhs(row));
        if (a === undefined || b === undefined) return undefined;
        const result =
          op === '+' ? a + b : op === '-' ? a - b : op === '*' ? a * b : op === '/' ? a / b : a % b;
        return Number.isFinite(result) ? result : bail();
      };
    case '&':
      return (row) => {
        const a = lhs(row);
        const b = rhs(row);
        return (a === undefined ? '' : toJsonataString(a)) + (b === undefined ? '' : toJsonataString(b));
      };
    default:
      return undefined;
  }
}

/** Compile a node, or return undefined when the subset does not cover it. */
export function compileNode(node: AstNode, context: FastContext): Compiled | undefined {
  if (decorated(node)) return undefined;
  switch (node.type) {
    case 'string':
    case 'number': {
      const value = node.value;
      return () => value;
    }
    case 'value':
      // true/false; null is a real JSON null in JSONata, which the fast path does not carry.
      if (typeof node.value !== 'boolean') return undefined;
      return () => node.value;
    case 'path':
      return compilePath(node, context);
    case 'binary':
      return compileBinary(node, context);
    case 'unary': {
      if (node.value !== '-' || !node.expression) return undefined;
      const operand = compileNode(node.expression, context);
      if (!operand) return undefined;
      return (row) => {
        const value = numeric(operand(row));
        return value === undefined ? undefined : -value;
      };
    }
    case 'condition': {
      const condition = node.condition && compileNode(node.condition, context);
      const then = node.then && compileNode(node.then, context);
      const otherwise = node.else === undefined ? () => undefined : compileNode(node.else, context);
      if (!condition || !then || !otherwise) return undefined;
      return (row) => (truthy(condition(row)) ? then(row) : otherwise(row));
    }
    case 'block': {
      const expressions = node.expressions ?? [];
      if (expressions.length !== 1) return undefined;
      return compileNode(expressions[0]!, context);
    }
    case 'function':
      return compileFunction(node, context);
    default:
      return undefined;
  }
}

const CHILD_KEYS = [
  'steps',
  'lhs',
  'rhs',
  'expression',
  'expressions',
  'arguments',
  'procedure',
  'condition',
  'then',
  'else',
] as const;

/**
 * Whether the tree is deeper than `limit` nodes. JSONata evaluates a child inside its parent's
 * evaluation, so this bounds the depth its `stack` limit counts. Stops descending past the
 * limit, so a very deep tree cannot exhaust the JavaScript stack here.
 */
function deeperThan(node: unknown, limit: number, depth = 1): boolean {
  if (node === null || typeof node !== 'object') return false;
  if (depth > limit) return true;
  for (const key of CHILD_KEYS) {
    const child = (node as Record<string, unknown>)[key];
    if (Array.isArray(child)) {
      for (const item of child) if (deeperThan(item, limit, depth + 1)) return true;
    } else if (child !== undefined && deeperThan(child, limit, depth + 1)) {
      return true;
    }
  }
  return false;
}

/** Compile a whole expression: the result is made a plain value (nothing → undefined). */
export function compileFast(
  ast: AstNode,
  context: FastContext,
): ((row: Row) => Value | undefined) | undefined {
  if (context.maxDepth !== undefined && deeperThan(ast, context.maxDepth)) return undefined;
  const compiled = compileNode(ast, context);
  if (!compiled) return undefined;
  return (row) => plain(compiled(row)) as Value | undefined;
}
