/**
 * Flow-file validation (SPEC 4): every mistake gives one clear message at `file:line:col`,
 * naming the field and, where there is one, the fix; every mistake in a file is reported at
 * once, in the order of the file. Each test writes the flow line by line so that positions can
 * be checked by eye, asserts the whole position, and checks what the position points at.
 */
import { describe, expect, it } from 'vitest';
import { formatError, LetheErrors, type LetheError } from '../../src/errors/index.js';
import { parseFlow } from '../../src/flow/load.js';

/** A flow text from its lines: line n of the file is argument n. */
function flow(...lines: string[]): string {
  return `${lines.join('\n')}\n`;
}

function errorsOf(text: string, file = 'flow.yaml'): readonly LetheError[] {
  try {
    parseFlow(text, file, '/nonexistent');
  } catch (error) {
    if (error instanceof LetheErrors) return error.errors;
    throw error;
  }
  throw new Error('the flow was accepted');
}

/** The first line of each formatted error (hints are on later lines). */
function messages(text: string, file?: string): string[] {
  return errorsOf(text, file).map((error) => formatError(error).split('\n')[0]!);
}

/** The one error of a flow with one mistake. */
function only(text: string, file?: string): string {
  const all = messages(text, file);
  expect(all).toHaveLength(1);
  return all[0]!;
}

/** The text at line:col (1-based), `length` characters long. */
function at(text: string, line: number, column: number, length: number): string {
  return text.split('\n')[line - 1]!.slice(column - 1, column - 1 + length);
}

const HEAD = ['version: 1', 'name: test', 'steps:'];
const SOURCE = ['  - id: src', '    input: { values: [{ a: 1 }] }'];

describe('YAML syntax', () => {
  it('reports bad indentation of a list item where it is', () => {
    const text = flow(...HEAD, ...SOURCE, '   - id: other', '    input: { values: [] }');
    expect(only(text)).toBe('flow.yaml:6:4: All sequence items must start at the same column');
    expect(at(text, 6, 4, 1)).toBe('-');
  });

  it('reports an unclosed quote once, at the opening quote (not at the end of the file)', () => {
    const text = flow(
      ...HEAD,
      ...SOURCE,
      '  - id: f',
      '    filter: { from: src, where: "a > 1 }',
      '  - id: g',
      '    limit: { from: f, count: 1 }',
    );
    expect(only(text)).toBe('flow.yaml:7:33: missing closing " for the string that starts here');
    expect(at(text, 7, 33, 6)).toBe('"a > 1');
  });

  it('reports an unclosed single quote at the opening quote', () => {
    const text = flow('version: 1', "name: 'test", 'steps: []');
    expect(only(text)).toBe("flow.yaml:2:7: missing closing ' for the string that starts here");
  });

  it('reports a duplicate key at the second occurrence', () => {
    const text = flow(...HEAD, '  - id: src', '    input: { values: [] }', '    id: again');
    expect(only(text)).toBe('flow.yaml:6:5: Map keys must be unique');
    expect(at(text, 6, 5, 2)).toBe('id');
  });

  it('reports every duplicate key at once, but only the first structural error (the rest is consequence)', () => {
    const dupes = flow(
      'version: 1',
      'name: a',
      'name: b',
      'steps:',
      '  - id: src',
      '    id: again',
      '    input: { values: [] }',
    );
    expect(messages(dupes)).toEqual([
      'flow.yaml:3:1: Map keys must be unique',
      'flow.yaml:6:5: Map keys must be unique',
    ]);
    const broken = flow(
      ...HEAD,
      ...SOURCE,
      '   - id: other',
      '    input: { values: [] }',
      '  - id: x',
      '     - y',
    );
    expect(messages(broken)).toEqual(['flow.yaml:6:4: All sequence items must start at the same column']);
  });

  it('reports tabs used as indentation', () => {
    const text = flow('version: 1', 'name: test', 'steps:', '\t- id: src');
    expect(only(text)).toBe('flow.yaml:4:1: Tabs are not allowed as indentation');
  });

  it('refuses an alias bomb instead of expanding it', () => {
    const text = flow(
      'version: 1',
      'a: &a [x, x, x, x, x, x, x, x, x]',
      'b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]',
      'c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]',
      'd: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]',
      'e: [*d, *d, *d, *d, *d, *d, *d, *d, *d]',
    );
    const [error, ...rest] = errorsOf(text);
    expect(rest).toEqual([]);
    expect(error!.code).toBe('FLOW_SYNTAX');
    expect(error!.message).toMatch(/alias/i);
  });
});

describe('top level', () => {
  it('missing version', () => {
    const text = flow('name: test', 'steps:', ...SOURCE);
    expect(only(text)).toBe('flow.yaml:1:1: missing required field "version"');
  });

  it('wrong version: one message, not "must be a number" as well', () => {
    expect(only(flow('version: 2', 'name: test', 'steps:', ...SOURCE))).toBe(
      'flow.yaml:1:10: version: must be 1',
    );
    expect(only(flow('version: "1"', 'name: test', 'steps:', ...SOURCE))).toBe(
      'flow.yaml:1:10: version: must be 1',
    );
  });

  it('unknown top-level field with did-you-mean, without also reporting the field it misspells as missing', () => {
    const text = flow('version: 1', 'name: test', 'stpes:', ...SOURCE);
    expect(only(text)).toBe('flow.yaml:3:1: stpes: unknown field "stpes" (did you mean "steps"?)');
  });

  it('an unknown field with no likely meaning lists the allowed fields', () => {
    const text = flow('version: 1', 'name: test', 'colour: blue', 'steps:', ...SOURCE);
    expect(only(text)).toBe(
      'flow.yaml:3:1: colour: unknown field "colour"; allowed: version, name, description, privacy, timezone, params, trigger, retry, steps',
    );
  });

  it('a name that is not a slug', () => {
    const text = flow('version: 1', 'name: Orders By Region', 'steps:', ...SOURCE);
    expect(only(text)).toBe(
      'flow.yaml:2:7: name: must be a slug: lowercase letters, digits, "_" and "-", starting with a letter or digit',
    );
  });

  it('privacy outside its enumeration lists the allowed values', () => {
    const text = flow('version: 1', 'name: test', 'privacy: confidental', 'steps:', ...SOURCE);
    expect(only(text)).toBe(
      'flow.yaml:3:10: privacy: must be one of standard, confidential (did you mean "confidential"?)',
    );
  });

  it('an empty file and a file that is not a mapping', () => {
    expect(only('')).toBe('flow.yaml: a flow must be a mapping with version, name and steps');
    expect(only('- version: 1\n')).toBe(
      'flow.yaml:1:1: a flow must be a mapping with version, name and steps',
    );
  });

  it('steps that are not a list, or an empty list', () => {
    expect(only(flow('version: 1', 'name: test', 'steps: { a: 1 }'))).toBe(
      'flow.yaml:3:8: steps: must be a list, not a mapping',
    );
    expect(only(flow('version: 1', 'name: test', 'steps: []'))).toBe(
      'flow.yaml:3:8: steps: must list at least one item',
    );
  });
});

describe('steps', () => {
  it('step without id', () => {
    const text = flow(...HEAD, ...SOURCE, '  - filter: { from: src, where: a > 1 }');
    expect(only(text)).toBe('flow.yaml:6:5: steps[1]: missing required field "id"');
    expect(at(text, 6, 5, 6)).toBe('filter');
  });

  it('invalid id (uppercase)', () => {
    const text = flow(...HEAD, '  - id: Orders', '    input: { values: [] }');
    expect(only(text)).toBe(
      'flow.yaml:4:9: steps[0].id: must start with a lowercase letter and use only a-z, 0-9, "_" and "-"',
    );
    expect(at(text, 4, 9, 6)).toBe('Orders');
  });

  it('duplicate step id, at the second one, naming the first', () => {
    const text = flow(...HEAD, ...SOURCE, '  - id: src', '    limit: { from: src, count: 1 }');
    expect(only(text)).toBe('flow.yaml:6:9: steps[1].id: duplicate step id "src" (also steps[0])');
  });

  it('a step that is not a mapping', () => {
    const text = flow(...HEAD, ...SOURCE, '  - orders');
    expect(only(text)).toBe('flow.yaml:6:5: steps[1]: a step must be a mapping with an "id" and one command');
  });

  it('step with no command lists the commands', () => {
    const text = flow(...HEAD, ...SOURCE, '  - id: nothing', '    description: does nothing');
    expect(only(text)).toBe(
      'flow.yaml:6:5: steps[1]: the step has no command; use one of input, filter, select, compute, join, union, group, sort, distinct, limit, unnest, autonumber, output',
    );
  });

  it('step with two commands points at the second', () => {
    const text = flow(
      ...HEAD,
      ...SOURCE,
      '  - id: both',
      '    filter: { from: src, where: a > 1 }',
      '    sort: { from: src, by: [a] }',
    );
    const [error] = errorsOf(text);
    expect(only(text)).toBe(
      'flow.yaml:8:5: steps[1].sort: a step has exactly one command, but this one has "filter" and "sort"',
    );
    expect(error!.details.hint).toBe('split it into one step per command');
  });

  it('misspelt command: did you mean', () => {
    const text = flow(...HEAD, ...SOURCE, '  - id: big', '    fitler: { from: src, where: a > 1 }');
    expect(only(text)).toBe(
      'flow.yaml:7:5: steps[1].fitler: unknown command or field "fitler" (did you mean "filter"?)',
    );
    expect(at(text, 7, 5, 6)).toBe('fitler');
  });

  it('misspelt field of a command: did you mean, without "missing where" as well', () => {
    const text = flow(...HEAD, ...SOURCE, '  - id: big', '    filter: { from: src, wher: a > 1 }');
    expect(only(text)).toBe(
      'flow.yaml:7:26: steps[1].filter.wher: unknown field "wher" (did you mean "where"?)',
    );
  });

  it('a missing required field of a command', () => {
    const text = flow(...HEAD, ...SOURCE, '  - id: few', '    limit: { from: src }');
    expect(only(text)).toBe('flow.yaml:7:12: steps[1].limit: missing required field "count"');
  });
});

describe('references and the graph', () => {
  it('unknown reference with did-you-mean', () => {
    const text = flow(
      ...HEAD,
      '  - id: orders',
      '    input: { values: [] }',
      '  - id: paid',
      '    filter: { from: order, where: a > 1 }',
    );
    expect(only(text)).toBe('flow.yaml:7:21: steps[1].filter.from: no step "order" (did you mean "orders"?)');
    expect(at(text, 7, 21, 5)).toBe('order');
  });

  it('unknown reference in join.left, as in the spec example', () => {
    const text = flow(
      ...HEAD,
      '  - id: orders',
      '    input: { values: [] }',
      '  - id: customers',
      '    input: { values: [] }',
      '  - id: joined',
      '    join:',
      '      left: order',
      '      right: customers',
      '      on: { customer_id: id }',
    );
    expect(only(text)).toBe('flow.yaml:10:13: steps[2].join.left: no step "order" (did you mean "orders"?)');
  });

  it('unknown reference inside a list (union.from[1])', () => {
    const text = flow(...HEAD, ...SOURCE, '  - id: both', '    union: { from: [src, srcc] }');
    expect(only(text)).toBe('flow.yaml:7:26: steps[1].union.from[1]: no step "srcc" (did you mean "src"?)');
  });

  it('a cycle a → b → a, once', () => {
    const text = flow(
      ...HEAD,
      '  - id: a',
      '    filter: { from: b, where: x }',
      '  - id: b',
      '    filter: { from: a, where: x }',
    );
    const [error] = errorsOf(text);
    expect(only(text)).toBe('flow.yaml:7:21: steps[1].filter.from: steps form a cycle: a → b → a');
    expect(error!.details.hint).toMatch(/may only read steps that do not/);
  });

  it('a longer cycle names every step in it', () => {
    const text = flow(
      ...HEAD,
      '  - id: a',
      '    filter: { from: c, where: x }',
      '  - id: b',
      '    filter: { from: a, where: x }',
      '  - id: c',
      '    filter: { from: b, where: x }',
    );
    expect(only(text)).toBe('flow.yaml:7:21: steps[1].filter.from: steps form a cycle: a → c → b → a');
  });

  it('a step reading itself', () => {
    const text = flow(...HEAD, '  - id: a', '    filter: { from: a, where: x }');
    expect(only(text)).toBe('flow.yaml:5:21: steps[0].filter.from: step "a" cannot read its own output');
  });
});

describe('expressions', () => {
  it('JSONata syntax error in a plain scalar: the column points inside the expression', () => {
    const text = flow(...HEAD, ...SOURCE, '  - id: big', '    filter: { from: src, where: a > > 1 }');
    expect(only(text)).toBe(
      'flow.yaml:7:37: steps[1].filter.where: invalid expression: The symbol ">" cannot be used as a unary operator [S0211]',
    );
    expect(at(text, 7, 33, 7)).toBe('a > > 1'); // the expression starts at 33…
    expect(at(text, 7, 37, 1)).toBe('>'); // …and the second ">" is the mistake
  });

  it('JSONata syntax error in a double-quoted scalar: the column counts the quote', () => {
    const text = flow(...HEAD, ...SOURCE, '  - id: big', '    filter: { from: src, where: "a = 1 and (b" }');
    expect(only(text)).toBe(
      'flow.yaml:7:45: steps[1].filter.where: invalid expression: Expected ")" before end of expression [S0203]',
    );
    expect(at(text, 7, 45, 1)).toBe('b');
  });

  it('the column accounts for escapes before the mistake (\\" in double quotes)', () => {
    const text = flow(
      ...HEAD,
      ...SOURCE,
      '  - id: big',
      '    filter: { from: src, where: "s = \\"x\\" and >" }',
    );
    expect(only(text)).toBe(
      'flow.yaml:7:48: steps[1].filter.where: invalid expression: The symbol ">" cannot be used as a unary operator [S0211]',
    );
    expect(at(text, 7, 48, 1)).toBe('>');
  });

  it("the column accounts for '' in single quotes", () => {
    const text = flow(
      ...HEAD,
      ...SOURCE,
      '  - id: big',
      "    filter: { from: src, where: 's = ''x'' and >' }",
    );
    expect(only(text)).toBe(
      'flow.yaml:7:48: steps[1].filter.where: invalid expression: The symbol ">" cannot be used as a unary operator [S0211]',
    );
    expect(at(text, 7, 48, 1)).toBe('>');
  });

  it('a syntax error in a block value points inside it when it is on one line', () => {
    const text = flow(
      ...HEAD,
      ...SOURCE,
      '  - id: calc',
      '    compute:',
      '      from: src',
      '      columns:',
      '        b: a + * 2',
    );
    expect(only(text)).toBe(
      'flow.yaml:10:18: steps[1].compute.columns.b: invalid expression: Syntax error: 2 [S0201]',
    );
    expect(at(text, 10, 12, 7)).toBe('a + * 2');
    expect(at(text, 10, 18, 1)).toBe('2');
  });

  it('$params.x when x is not declared: did you mean', () => {
    const text = flow(
      'version: 1',
      'name: test',
      'params: { since: { type: string } }',
      'steps:',
      ...SOURCE,
      '  - id: recent',
      '    filter: { from: src, where: "a > $params.sinc" }',
    );
    expect(only(text)).toBe(
      'flow.yaml:8:46: steps[1].filter.where: no parameter "sinc" (did you mean "since"?)',
    );
    expect(at(text, 8, 46, 4)).toBe('sinc');
  });

  it('$params.x when the flow declares no params says how to declare it', () => {
    const text = flow(
      ...HEAD,
      ...SOURCE,
      '  - id: recent',
      '    filter: { from: src, where: "a > $params.since" }',
    );
    const [error] = errorsOf(text);
    expect(only(text)).toBe(
      'flow.yaml:7:46: steps[1].filter.where: the expression reads $params.since, but the flow declares no params',
    );
    expect(error!.details.hint).toBe('declare it: params: { since: { type: string } }');
  });

  it('an empty expression', () => {
    const text = flow(...HEAD, ...SOURCE, '  - id: big', '    filter: { from: src, where: "" }');
    expect(only(text)).toBe('flow.yaml:7:33: steps[1].filter.where: must not be empty');
  });
});

describe('command bodies', () => {
  it('wrong type: count: "ten" in limit', () => {
    const text = flow(...HEAD, ...SOURCE, '  - id: few', '    limit: { from: src, count: "ten" }');
    expect(only(text)).toBe('flow.yaml:7:32: steps[1].limit.count: must be a whole number, not a string');
    expect(at(text, 7, 32, 5)).toBe('"ten"');
  });

  it('a negative count', () => {
    const text = flow(...HEAD, ...SOURCE, '  - id: few', '    limit: { from: src, count: -1 }');
    expect(only(text)).toBe('flow.yaml:7:32: steps[1].limit.count: must be >= 0');
  });

  it('enum typo: type: outer in join lists the allowed values', () => {
    const text = flow(
      ...HEAD,
      ...SOURCE,
      '  - id: other',
      '    input: { values: [] }',
      '  - id: joined',
      '    join: { left: src, right: other, on: { a: a }, type: outer }',
    );
    expect(only(text)).toBe('flow.yaml:9:58: steps[2].join.type: must be one of inner, left, right, full');
    expect(at(text, 9, 58, 5)).toBe('outer');
  });

  it('enum typo close to a value suggests it (types: { a: numbr })', () => {
    const text = flow(...HEAD, '  - id: src', '    input: { values: [], types: { a: numbr } }');
    expect(only(text)).toBe(
      'flow.yaml:5:38: steps[0].input.types.a: must be one of string, number, integer, boolean, date, datetime (did you mean "number"?)',
    );
  });

  it('bad aggregate: summ(amount)', () => {
    const text = flow(
      ...HEAD,
      ...SOURCE,
      '  - id: totals',
      '    group: { from: src, by: [], aggregate: { total: summ(amount) } }',
    );
    const line = only(text);
    expect(line.startsWith('flow.yaml:7:53: steps[1].group.aggregate.total: ')).toBe(true);
    expect(line).toContain('unknown aggregate function "summ" (did you mean "sum"?)');
    expect(at(text, 7, 53, 12)).toBe('summ(amount)');
  });

  it('an aggregate that is not a call', () => {
    const text = flow(
      ...HEAD,
      ...SOURCE,
      '  - id: totals',
      '    group: { from: src, by: [], aggregate: { total: amount } }',
    );
    const line = only(text);
    expect(line.startsWith('flow.yaml:7:53: steps[1].group.aggregate.total: ')).toBe(true);
    expect(line).toContain('"amount" is not an aggregate');
  });

  it('input with two sources', () => {
    const text = flow(...HEAD, '  - id: src', '    input: { values: [], file: in.csv }');
    const line = only(text);
    expect(line.startsWith('flow.yaml:5:22: steps[0].input.values: ')).toBe(true);
    expect(line).toMatch(/one source.*"file" and "values"/);
  });

  it('input with no source', () => {
    const text = flow(...HEAD, '  - id: src', '    input: { types: { a: number } }');
    const line = only(text);
    expect(line.startsWith('flow.yaml:5:12: steps[0].input: ')).toBe(true);
    expect(line).toContain('needs one source');
  });

  it('output upsert without key', () => {
    const text = flow(
      ...HEAD,
      ...SOURCE,
      '  - id: save',
      '    output: { from: src, connection: db, table: t, mode: upsert }',
    );
    const line = only(text);
    expect(line.startsWith('flow.yaml:7:58: steps[1].output.mode: ')).toBe(true);
    expect(line).toMatch(/upsert.*needs.*key/);
    expect(at(text, 7, 58, 6)).toBe('upsert');
  });

  it('output with no sink', () => {
    const text = flow(...HEAD, ...SOURCE, '  - id: save', '    output: { from: src }');
    const line = only(text);
    expect(line.startsWith('flow.yaml:7:13: steps[1].output: ')).toBe(true);
    expect(line).toContain('needs one sink');
  });

  it('unknown format extension on output and on input', () => {
    const out = flow(...HEAD, ...SOURCE, '  - id: save', '    output: { from: src, file: out/report.pdf }');
    expect(only(out)).toBe(
      'flow.yaml:7:32: steps[1].output.file: cannot tell the format of "report.pdf" from its extension; set format: csv | json | ndjson | xlsx',
    );
    const input = flow(...HEAD, '  - id: src', '    input: { file: in.dat }');
    expect(only(input)).toBe(
      'flow.yaml:5:20: steps[0].input.file: cannot tell the format of "in.dat" from its extension; set format: csv | json | ndjson | xlsx',
    );
  });

  it('an option for another kind of source', () => {
    const text = flow(...HEAD, '  - id: src', '    input: { values: [], sql: "select 1" }');
    const line = only(text);
    expect(line.startsWith('flow.yaml:5:31: steps[0].input.sql: ')).toBe(true);
    expect(at(text, 5, 31, 10)).toBe('"select 1"');
    expect(line).toContain('applies only to connection inputs');
  });

  it('two respond: true outputs', () => {
    const text = flow(
      ...HEAD,
      ...SOURCE,
      '  - id: out',
      '    output: { from: src, respond: true }',
      '  - id: out2',
      '    output: { from: src, respond: true }',
    );
    expect(only(text)).toBe(
      'flow.yaml:9:35: steps[2].output.respond: only one output may respond; "out" already does',
    );
    expect(at(text, 9, 35, 4)).toBe('true');
  });
});

describe('params, triggers, retry', () => {
  it('param default not fitting its type', () => {
    const text = flow(
      'version: 1',
      'name: test',
      'params: { n: { type: number, default: abc } }',
      'steps:',
      ...SOURCE,
    );
    expect(only(text)).toBe(
      'flow.yaml:3:39: params.n.default: the default does not fit type number: "abc" is not a number',
    );
    expect(at(text, 3, 39, 3)).toBe('abc');
  });

  it('param default not a valid date', () => {
    const text = flow(
      'version: 1',
      'name: test',
      'params: { d: { type: date, default: 2024-13-01 } }',
      'steps:',
      ...SOURCE,
    );
    expect(only(text)).toBe(
      'flow.yaml:3:37: params.d.default: the default does not fit type date: "2024-13-01" is not a valid date',
    );
  });

  it('param with an unknown type', () => {
    const text = flow('version: 1', 'name: test', 'params: { n: { type: num } }', 'steps:', ...SOURCE);
    expect(only(text)).toBe(
      'flow.yaml:3:22: params.n.type: must be one of string, number, integer, boolean, date, datetime',
    );
  });

  it('param names must be usable as $params.<name>', () => {
    const text = flow('version: 1', 'name: test', 'params: { 1st: { type: number } }', 'steps:', ...SOURCE);
    expect(only(text)).toBe(
      'flow.yaml:3:11: params["1st"]: invalid name "1st": must be a name of letters, digits and "_", not starting with a digit',
    );
    expect(at(text, 3, 11, 3)).toBe('1st');
  });

  it('invalid cron in a schedule trigger', () => {
    const text = flow(
      'version: 1',
      'name: test',
      'trigger: { schedule: { cron: "61 * * * *" } }',
      'steps:',
      ...SOURCE,
    );
    const line = only(text);
    expect(line.startsWith('flow.yaml:3:30: trigger.schedule.cron: invalid cron expression: ')).toBe(true);
    expect(line).toMatch(/minute/i);
    expect(at(text, 3, 30, 4)).toBe('"61 ');
  });

  it('invalid time zone in a schedule trigger', () => {
    const text = flow(
      'version: 1',
      'name: test',
      'trigger: { schedule: { cron: "0 * * * *", timezone: Mars/Olympus } }',
      'steps:',
      ...SOURCE,
    );
    const [error] = errorsOf(text);
    expect(only(text)).toBe('flow.yaml:3:53: trigger.schedule.timezone: unknown time zone "Mars/Olympus"');
    expect(error!.details.hint).toBe('use an IANA name such as UTC or Asia/Tokyo');
  });

  it('an invalid cron is reported even when the time zone is invalid too', () => {
    const text = flow(
      'version: 1',
      'name: test',
      'trigger: { schedule: { cron: "x y", timezone: Nowhere/City } }',
      'steps:',
      ...SOURCE,
    );
    const all = messages(text);
    expect(all).toHaveLength(2);
    expect(all[0]!.startsWith('flow.yaml:3:30: trigger.schedule.cron: invalid cron expression: ')).toBe(true);
    expect(all[1]).toBe('flow.yaml:3:47: trigger.schedule.timezone: unknown time zone "Nowhere/City"');
  });

  it('an invalid top-level time zone', () => {
    const text = flow('version: 1', 'name: test', 'timezone: Asia/Tokio', 'steps:', ...SOURCE);
    expect(only(text)).toBe('flow.yaml:3:11: timezone: unknown time zone "Asia/Tokio"');
  });

  it('two triggers', () => {
    const text = flow(
      'version: 1',
      'name: test',
      'trigger: { schedule: { cron: "* * * * *" }, webhook: {} }',
      'steps:',
      ...SOURCE,
    );
    expect(only(text)).toBe(
      'flow.yaml:3:45: trigger.webhook: a flow has one trigger, but this one has schedule and webhook',
    );
  });

  it('retry out of bounds', () => {
    const text = flow('version: 1', 'name: test', 'retry: { attempts: 0 }', 'steps:', ...SOURCE);
    expect(only(text)).toBe('flow.yaml:3:20: retry.attempts: must be >= 1');
  });
});

describe('JSON flow files', () => {
  it('give the same messages, with positions in the JSON text', () => {
    const text = [
      '{',
      '  "version": 1,',
      '  "name": "test",',
      '  "steps": [',
      '    { "id": "src", "input": { "values": [] } },',
      '    { "id": "x", "fitler": { "from": "src" } },',
      '    { "id": "y", "filter": { "from": "sr", "where": "a >" } }',
      '  ]',
      '}',
      '',
    ].join('\n');
    expect(messages(text, 'flow.json')).toEqual([
      'flow.json:6:18: steps[1].fitler: unknown command or field "fitler" (did you mean "filter"?)',
      'flow.json:7:38: steps[2].filter.from: no step "sr" (did you mean "src"?)',
      'flow.json:7:56: steps[2].filter.where: invalid expression: Unexpected end of expression [S0207]',
    ]);
    expect(at(text, 6, 18, 8)).toBe('"fitler"');
    expect(at(text, 7, 38, 4)).toBe('"sr"');
    expect(at(text, 7, 54, 3)).toBe('a >');
  });

  it('report duplicate keys', () => {
    const text = '{\n  "version": 1,\n  "version": 1,\n  "name": "test"\n}\n';
    expect(only(text, 'flow.json')).toBe('flow.json:3:3: Map keys must be unique');
  });

  it('point inside a JSON string with escapes', () => {
    const text = [
      '{ "version": 1, "name": "test", "steps": [',
      '  { "id": "src", "input": { "values": [] } },',
      '  { "id": "f", "filter": { "from": "src", "where": "s = \\"\\u00e9\\" and >" } }',
      '] }',
      '',
    ].join('\n');
    expect(only(text, 'flow.json')).toBe(
      'flow.json:3:72: steps[1].filter.where: invalid expression: The symbol ">" cannot be used as a unary operator [S0211]',
    );
    expect(at(text, 3, 72, 1)).toBe('>');
  });
});

describe('all errors at once', () => {
  it('reports five mistakes, sorted by position', () => {
    const text = flow(
      'version: 1',
      'name: Test',
      'stpes: []',
      'steps:',
      '  - id: src',
      '    input: { values: [] }',
      '  - id: big',
      '    fitler: { from: src }',
      '  - id: few',
      '    limit: { from: src, count: -1 }',
      '  - id: paid',
      '    filter: { from: scr, where: "a >" }',
      '  - id: Bad',
      '    sort: { from: src, by: [a] }',
    );
    expect(messages(text)).toEqual([
      'flow.yaml:2:7: name: must be a slug: lowercase letters, digits, "_" and "-", starting with a letter or digit',
      'flow.yaml:3:1: stpes: unknown field "stpes" (did you mean "steps"?)',
      'flow.yaml:8:5: steps[1].fitler: unknown command or field "fitler" (did you mean "filter"?)',
      'flow.yaml:10:32: steps[2].limit.count: must be >= 0',
      'flow.yaml:12:21: steps[3].filter.from: no step "scr" (did you mean "src"?)',
      'flow.yaml:12:36: steps[3].filter.where: invalid expression: Unexpected end of expression [S0207]',
      'flow.yaml:13:9: steps[4].id: must start with a lowercase letter and use only a-z, 0-9, "_" and "-"',
    ]);
  });

  it('the LetheErrors message lists every error, one per line', () => {
    const text = flow('version: 3', 'name: test', 'steps:', '  - id: A', '    input: { values: [] }');
    let thrown: unknown;
    try {
      parseFlow(text, 'flow.yaml', '/nonexistent');
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(LetheErrors);
    expect((thrown as LetheErrors).code).toBe('FLOW_INVALID');
    expect((thrown as Error).message).toBe(
      [
        'flow.yaml:1:10: version: must be 1',
        'flow.yaml:4:9: steps[0].id: must start with a lowercase letter and use only a-z, 0-9, "_" and "-"',
      ].join('\n'),
    );
  });
});

describe('YAML 1.2', () => {
  it('keeps on: as a string key, so join.on works', () => {
    const text = flow(
      ...HEAD,
      '  - id: left',
      '    input: { values: [{ k: 1 }] }',
      '  - id: right',
      '    input: { values: [{ k: 1 }] }',
      '  - id: joined',
      '    join:',
      '      left: left',
      '      right: right',
      '      on:',
      '        k: k',
      '      type: left',
    );
    const { flow: parsed } = parseFlow(text, 'flow.yaml', '/nonexistent');
    expect(parsed.steps[2]!.body).toEqual({ left: 'left', right: 'right', on: { k: 'k' }, type: 'left' });
  });

  it('reads yes, no and off as strings (YAML 1.1 booleans), 0123 and 0o17 as 1.2 integers', () => {
    const text = flow(
      ...HEAD,
      '  - id: src',
      '    input: { values: [{ a: yes, b: no, c: off, d: 0123, e: 0o17 }] }',
    );
    const { flow: parsed } = parseFlow(text, 'flow.yaml', '/nonexistent');
    expect((parsed.steps[0]!.body as { values: unknown[] }).values).toEqual([
      { a: 'yes', b: 'no', c: 'off', d: 123, e: 15 },
    ]);
  });
});
