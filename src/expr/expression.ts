/**
 * expr — JSONata expressions as Lethe uses them: compiled once per step, evaluated per row
 * with SQL-like nulls (a null column is absent), under time, depth, size and nesting limits.
 * Common expressions run through the closure compiler in ./fast.ts; everything else, and any
 * row the fast path declines, runs through JSONata itself.
 */
import jsonata from 'jsonata';
import { setFlagsFromString } from 'node:v8';
import { LetheError } from '../errors/index.js';
import type { Row, Value } from '../table/index.js';
import { registerSafeBuiltins, type Deadline } from './builtins.js';
import { BAIL, compileFast, type AstNode } from './fast.js';

// A regular expression that backtracks catastrophically (`/(a+)+b/` on "aaaa…!") would block the
// process far beyond the time limit: JSONata cannot interrupt a running match. With this flag
// V8 finishes such a match with its linear-time engine instead (same results). Patterns that
// engine cannot run (backreferences, lookaround) still backtrack.
setFlagsFromString('--enable-experimental-regexp-engine-on-excessive-backtracks');

export interface ExpressionLimits {
  /** Longest evaluation of one expression on one row. */
  timeoutMs: number;
  /** Deepest evaluation stack (recursion). */
  maxDepth: number;
  /** Longest sequence an expression may build. */
  maxSequence: number;
  /** Longest expression text. */
  maxLength: number;
  /** Deepest nesting of a value an expression returns. */
  maxResultDepth: number;
}

export const DEFAULT_LIMITS: Readonly<ExpressionLimits> = Object.freeze({
  timeoutMs: 1000,
  maxDepth: 500,
  maxSequence: 10_000_000,
  maxLength: 64 * 1024,
  maxResultDepth: 64,
});

/** Returned by `trySync` when the row must be evaluated asynchronously with JSONata. */
export const NEEDS_JSONATA: unique symbol = Symbol('needs-jsonata');

/** JSONata's own error shape. */
interface JsonataError {
  code?: string;
  position?: number;
  token?: string;
  message?: string;
}

const LIMIT_CODES = new Set(['D1011', 'D1012', 'D2014', 'D2015']);

/** An expression failed to parse; `offset` is the 1-based character the parser stopped at. */
export class ExpressionSyntaxError extends LetheError {
  readonly offset: number;
  constructor(message: string, offset: number, expression: string) {
    super('EXPRESSION_SYNTAX', message, { expression });
    this.offset = offset;
  }
}

/** The variable paths an expression reads, such as `$params.since` → ["params", "since"]. */
export interface VariableReference {
  variable: string;
  name: string | undefined;
  position: number;
}

/** Names a row-level expression reads from the row itself (`amount`, `$.amount`). */
function collectReferences(ast: AstNode): { columns: Set<string>; variables: VariableReference[] } {
  const columns = new Set<string>();
  const variables: VariableReference[] = [];
  const visit = (node: unknown, atRow: boolean): void => {
    if (node === null || typeof node !== 'object') return;
    if (Array.isArray(node)) {
      for (const item of node) visit(item, atRow);
      return;
    }
    const n = node as AstNode & Record<string, unknown>;
    if (n.type === 'path' && Array.isArray(n.steps) && n.steps.length > 0) {
      const [first, second] = n.steps;
      if (atRow && first?.type === 'name') columns.add(String(first.value));
      if (atRow && first?.type === 'variable' && first.value === '' && second?.type === 'name') {
        columns.add(String(second.value));
      }
      if (first?.type === 'variable' && first.value !== '') {
        variables.push({
          variable: String(first.value),
          name: second?.type === 'name' ? String(second.value) : undefined,
          position: Number(second?.position ?? first.position ?? 0),
        });
      }
      // Later steps, predicates and stages are relative to the previous step, not the row.
      for (const step of n.steps) {
        visit({ ...step, type: step.type === 'path' ? 'path' : 'step' }, false);
      }
      return;
    }
    if (n.type === 'variable' && n.value !== '') {
      variables.push({ variable: String(n.value), name: undefined, position: Number(n.position ?? 0) });
    }
    // Lambdas, predicates, grouping and sorting change the context: their names are not row columns.
    const contextChanging =
      n.type === 'lambda' || n.type === 'step' || n.type === 'sort' || n.type === 'transform';
    for (const [key, child] of Object.entries(n)) {
      if (key === 'position' || key === 'value' || key === 'type') continue;
      const childAtRow =
        atRow && !contextChanging && key !== 'predicate' && key !== 'group' && key !== 'stages';
      visit(child, childAtRow);
    }
  };
  visit(ast, true);
  return { columns, variables };
}

/** Turn a JSONata result into a table value: nothing → null, sequences → plain arrays. */
function normalize(result: unknown, limits: ExpressionLimits, depth = 0): Value {
  if (result === undefined || result === null) return null;
  switch (typeof result) {
    case 'string':
    case 'boolean':
      return result;
    case 'number':
      if (!Number.isFinite(result))
        throw new LetheError('EXPRESSION_ERROR', 'the result is not a finite number');
      return result;
    case 'function':
      throw new LetheError('EXPRESSION_ERROR', 'the result is a function, not a value');
    case 'object': {
      if (depth >= limits.maxResultDepth) {
        throw new LetheError(
          'EXPRESSION_LIMIT',
          `the result is nested deeper than ${limits.maxResultDepth} levels`,
        );
      }
      if (Array.isArray(result)) return result.map((item) => normalize(item, limits, depth + 1));
      if (typeof (result as { _jsonata_lambda?: unknown })._jsonata_lambda !== 'undefined') {
        throw new LetheError('EXPRESSION_ERROR', 'the result is a function, not a value');
      }
      const out = Object.create(null) as Record<string, Value>;
      for (const key of Object.keys(result)) {
        const value = (result as Record<string, unknown>)[key];
        if (value !== undefined) out[key] = normalize(value, limits, depth + 1);
      }
      return out;
    }
    default:
      return null;
  }
}

/** A JSONata failure as a LetheError (row, step and location are added by the caller). */
/** What a RangeError (a JavaScript engine limit) means for an expression. */
function rangeErrorMessage(error: RangeError): string {
  if (/call stack/i.test(error.message)) return 'the expression recursed too deeply';
  if (/string length/i.test(error.message))
    return 'the expression built a string longer than the engine allows';
  if (/array length/i.test(error.message)) return 'the expression built a list longer than the engine allows';
  return `the expression hit an engine limit: ${error.message}`;
}

function evaluationError(error: unknown, expression: string, limits: ExpressionLimits): LetheError {
  if (error instanceof LetheError) return error;
  if (error instanceof RangeError) {
    return new LetheError('EXPRESSION_LIMIT', rangeErrorMessage(error), { expression, cause: error });
  }
  const e = error as JsonataError;
  if (e && typeof e.code === 'string') {
    const code = LIMIT_CODES.has(e.code) ? 'EXPRESSION_LIMIT' : 'EXPRESSION_ERROR';
    let message = e.message ?? e.code;
    if (e.code === 'D1012') message = `the expression ran longer than the limit of ${limits.timeoutMs} ms`;
    if (e.code === 'D1011')
      message = `the expression nested deeper than the limit of ${limits.maxDepth} (unbounded recursion?)`;
    // JSONata's own text names the size it attempted as if it were the limit.
    if (e.code === 'D2015')
      message = `the expression built a sequence longer than the limit of ${limits.maxSequence} items`;
    return new LetheError(code, `${message} [${e.code}]`, { expression });
  }
  return new LetheError('EXPRESSION_ERROR', error instanceof Error ? error.message : String(error), {
    expression,
  });
}

function tooDeep(cause: RangeError): LetheError {
  return new LetheError('EXPRESSION_LIMIT', 'the expression is nested too deeply to parse', { cause });
}

/** A parsed expression; bind it to a column list to evaluate rows. */
export class Expression {
  readonly text: string;
  readonly ast: AstNode;
  /** Columns the expression reads from the row. */
  readonly columns: ReadonlySet<string>;
  /** Variables it reads (`$params.x`…). */
  readonly variables: readonly VariableReference[];
  private readonly limits: ExpressionLimits;

  private constructor(text: string, ast: AstNode, limits: ExpressionLimits) {
    this.text = text;
    this.ast = ast;
    this.limits = limits;
    const references = collectReferences(ast);
    this.columns = references.columns;
    this.variables = references.variables;
  }

  /**
   * Parse; throws ExpressionSyntaxError (with the offset of the problem) or a limit error.
   * Parsed expressions are immutable and cached by text and limits: a flow's expressions are
   * parsed once, not once per run.
   */
  static compile(text: string, limits: ExpressionLimits = DEFAULT_LIMITS): Expression {
    const key = `${limits.timeoutMs}/${limits.maxDepth}/${limits.maxSequence}/${limits.maxLength}/${limits.maxResultDepth}\u0000${text}`;
    const cached = PARSED.get(key);
    if (cached) return cached;
    const expression = Expression.parse(text, limits);
    if (PARSED.size >= PARSED_CACHE_SIZE) PARSED.delete(PARSED.keys().next().value!);
    PARSED.set(key, expression);
    return expression;
  }

  private static parse(text: string, limits: ExpressionLimits): Expression {
    if (text.length > limits.maxLength) {
      throw new LetheError(
        'EXPRESSION_LIMIT',
        `the expression is longer than ${limits.maxLength} characters`,
      );
    }
    let ast: AstNode;
    try {
      ast = jsonata(text).ast() as AstNode;
    } catch (error) {
      if (error instanceof RangeError) throw tooDeep(error);
      const e = error as JsonataError;
      const offset = Math.min(Math.max(Number(e.position ?? 1), 1), Math.max(text.length, 1));
      throw new ExpressionSyntaxError(`${e.message ?? 'syntax error'} [${e.code ?? 'S0000'}]`, offset, text);
    }
    try {
      return new Expression(text, ast, limits);
    } catch (error) {
      // A tree the parser just managed may still be too deep to walk.
      if (error instanceof RangeError) throw tooDeep(error);
      throw error;
    }
  }

  /**
   * Prepare evaluation against rows with these columns. `bindings` are JSONata variables
   * (`params` → `$params`).
   */
  bind(columns: readonly string[], bindings: Readonly<Record<string, unknown>> = {}): BoundExpression {
    try {
      return new BoundExpression(this, columns, bindings, this.limits);
    } catch (error) {
      if (error instanceof RangeError) throw tooDeep(error);
      throw error;
    }
  }
}

const PARSED_CACHE_SIZE = 2000;
const PARSED = new Map<string, Expression>();

export class BoundExpression {
  readonly expression: Expression;
  private readonly bindings: Readonly<Record<string, unknown>>;
  private readonly limits: ExpressionLimits;
  private readonly fast: ((row: Row) => Value | undefined) | undefined;
  /** JSONata's own evaluator, made on first need: most rows never leave the fast path. */
  private evaluator: jsonata.Expression | undefined;
  /** Column name → its first position (a repeated name reads the first, on both paths). */
  private readonly index: ReadonlyMap<string, number>;
  /** When the evaluation under way must stop (for the built-ins in ./builtins.ts). */
  private deadline: Deadline = { at: Infinity, timeoutMs: 0 };

  constructor(
    expression: Expression,
    columns: readonly string[],
    bindings: Readonly<Record<string, unknown>>,
    limits: ExpressionLimits,
  ) {
    this.expression = expression;
    this.bindings = bindings;
    this.limits = limits;
    const index = new Map<string, number>();
    columns.forEach((name, i) => {
      if (!index.has(name)) index.set(name, i);
    });
    this.index = index;
    this.fast = compileFast(expression.ast, { columns: index, bindings, maxDepth: limits.maxDepth });
  }

  private get jsonata(): jsonata.Expression {
    if (!this.evaluator) {
      this.evaluator = jsonata(this.expression.text, {
        timeout: this.limits.timeoutMs,
        stack: this.limits.maxDepth,
        sequence: this.limits.maxSequence,
      });
      registerSafeBuiltins(this.evaluator, () => this.deadline);
    }
    return this.evaluator;
  }

  /** Whether every row can be evaluated synchronously (barring rows the fast path declines). */
  get compiled(): boolean {
    return this.fast !== undefined;
  }

  /** Evaluate on the fast path, or say that JSONata must do it. Never throws for data. */
  trySync(row: Row): Value | typeof NEEDS_JSONATA {
    if (this.fast === undefined) return NEEDS_JSONATA;
    try {
      const result = this.fast(row);
      return result === undefined ? null : result;
    } catch (error) {
      if (error === BAIL) return NEEDS_JSONATA;
      throw error;
    }
  }

  /** Evaluate with JSONata. Throws LetheError (EXPRESSION_ERROR or EXPRESSION_LIMIT). */
  async evaluate(row: Row | undefined): Promise<Value> {
    const input = row === undefined ? undefined : this.input(row);
    let result: unknown;
    const timeoutMs = this.limits.timeoutMs;
    this.deadline = { at: timeoutMs > 0 ? Date.now() + timeoutMs : Infinity, timeoutMs };
    try {
      result = await this.jsonata.evaluate(input, this.bindings as Record<string, unknown>);
    } catch (error) {
      throw evaluationError(error, this.expression.text, this.limits);
    }
    try {
      return normalize(result, this.limits);
    } catch (error) {
      throw evaluationError(error, this.expression.text, this.limits);
    }
  }

  /** The row as JSONata sees it: an object without its null columns. */
  private input(row: Row): Record<string, Value> {
    const record = Object.create(null) as Record<string, Value>;
    for (const [name, i] of this.index) {
      const value = row[i];
      if (value !== null && value !== undefined) record[name] = value;
    }
    return record;
  }
}
