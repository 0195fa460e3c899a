/**
 * Hostile expressions end in a clear LetheError (EXPRESSION_LIMIT, EXPRESSION_ERROR or
 * EXPRESSION_SYNTAX) within the limit, and never hang or crash the process. Tests use a small
 * time limit to stay fast, and check the elapsed time against it.
 */
import { describe, expect, it } from 'vitest';
import { LetheError, LetheErrors, formatError } from '../../src/errors/index.js';
import { MAX_PADDED_LENGTH } from '../../src/expr/builtins.js';
import { DEFAULT_LIMITS, Expression, type ExpressionLimits } from '../../src/expr/expression.js';
import { parseFlow } from '../../src/flow/load.js';
import type { Value } from '../../src/table/index.js';

const FAST: ExpressionLimits = { ...DEFAULT_LIMITS, timeoutMs: 200 };

interface Outcome {
  value?: Value;
  error?: LetheError;
  ms: number;
}

async function run(text: string, limits: ExpressionLimits = FAST): Promise<Outcome> {
  const started = performance.now();
  try {
    const value = await Expression.compile(text, limits).bind([], {}).evaluate([]);
    return { value, ms: performance.now() - started };
  } catch (error) {
    if (!(error instanceof LetheError))
      throw new Error(`not a LetheError: ${String(error)}`, { cause: error });
    return { error, ms: performance.now() - started };
  }
}

/** Generous slack over the time limit for a loaded machine; a hang would take far longer. */
const SLACK_MS = 3000;

describe('limits', () => {
  it('tail recursion runs into the time limit (JSONata optimises tail calls, so never the depth)', async () => {
    const { error, ms } = await run('($f := function($n){ $f($n + 1) }; $f(0))');
    expect(error?.code).toBe('EXPRESSION_LIMIT');
    expect(error?.message).toBe('the expression ran longer than the limit of 200 ms [D1012]');
    expect(ms).toBeLessThan(200 + SLACK_MS);
  });

  it('non-tail recursion runs into the depth limit', async () => {
    const { error } = await run('($f := function($n){ 1 + $f($n + 1) }; $f(0))');
    expect(error?.code).toBe('EXPRESSION_LIMIT');
    expect(error?.message).toBe(
      'the expression nested deeper than the limit of 500 (unbounded recursion?) [D1011]',
    );
    expect(formatError(error!)).toContain('(in expression "($f := function($n){ 1 + $f($n + 1) }; $f(0))")');
  });

  it('a huge range is refused before it is built', async () => {
    const { error, ms } = await run('[1..100000000]');
    expect(error?.code).toBe('EXPRESSION_LIMIT');
    expect(error?.message).toMatch(
      /^The size of the sequence allocated by the range operator \(\.\.\) must not exceed 1e7\..*100000000.*\[D2014\]$/,
    );
    expect(ms).toBeLessThan(SLACK_MS);
  });

  it('a sequence longer than maxSequence is refused, naming the real limit', async () => {
    const { error } = await run('$append([1..800], [1..800])', { ...FAST, maxSequence: 1000 });
    expect(error?.code).toBe('EXPRESSION_LIMIT');
    expect(error?.message).toBe(
      'the expression built a sequence longer than the limit of 1000 items [D2015]',
    );
  });

  it('a long loop runs into the time limit', async () => {
    const { error, ms } = await run('$count($map([1..5000000], function($v){ $v * 2 }))');
    expect(error?.code).toBe('EXPRESSION_LIMIT');
    expect(error?.message).toBe('the expression ran longer than the limit of 200 ms [D1012]');
    expect(ms).toBeLessThan(200 + SLACK_MS);
  });

  it('a loop by recursion with a condition runs into the time limit', async () => {
    const { error, ms } = await run('($f := function($n){ $n > 0 ? $f($n - 1) : 0 }; $f(100000000))');
    expect(error?.message).toBe('the expression ran longer than the limit of 200 ms [D1012]');
    expect(ms).toBeLessThan(200 + SLACK_MS);
  });

  it('20,000 nested parentheses are refused at compile time', () => {
    const text = `${'('.repeat(20_000)}1${')'.repeat(20_000)}`;
    expect(() => Expression.compile(text)).toThrow(LetheError);
    try {
      Expression.compile(text);
    } catch (error) {
      expect((error as LetheError).code).toBe('EXPRESSION_LIMIT');
      expect((error as LetheError).message).toBe('the expression is nested too deeply to parse');
    }
  });

  it.each([
    ['brackets', `${'['.repeat(20_000)}1${']'.repeat(20_000)}`],
    ['minus signs', `${'-'.repeat(20_000)}1`],
    ['a long sum', `1${'+1'.repeat(20_000)}`],
    ['nested objects', `${'{"a":'.repeat(10_000)}1${'}'.repeat(10_000)}`],
    ['a long path', `a${'.a'.repeat(20_000)}`],
    ['nested conditions', `${'a ? '.repeat(5000)}1${' : 2'.repeat(5000)}`],
    ['nested calls', `${'$abs('.repeat(5000)}a${')'.repeat(5000)}`],
    ['unclosed parentheses', '('.repeat(20_000)],
  ])('deep %s are refused with a LetheError, never a RangeError', (_name, text) => {
    let thrown: unknown;
    try {
      Expression.compile(text).bind(['a'], {});
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(LetheError);
    expect((thrown as LetheError).code).toMatch(/^EXPRESSION_(LIMIT|SYNTAX)$/);
  });

  it('every depth up to where parsing fails gives a LetheError or a value, at compile, bind and evaluation', async () => {
    // Near the parser's own limit, later walks of the tree used to overflow the stack.
    for (let depth = 100; depth <= 3000; depth += 100) {
      const text = `${'('.repeat(depth)}a${')'.repeat(depth)}`;
      let outcome: string;
      try {
        const bound = Expression.compile(text).bind(['a'], {});
        outcome = String(await bound.evaluate([1]));
      } catch (error) {
        expect(error).toBeInstanceOf(LetheError);
        outcome = (error as LetheError).code;
      }
      expect(outcome).toBe(depth + 2 <= DEFAULT_LIMITS.maxDepth ? '1' : 'EXPRESSION_LIMIT');
    }
  });

  it('an over-deep expression in a flow file is reported at its place', () => {
    const deep = `${'('.repeat(20_000)}a${')'.repeat(20_000)}`;
    const text = `version: 1\nname: test\nsteps:\n  - id: src\n    input: { values: [] }\n  - id: f\n    filter: { from: src, where: "${deep}" }\n`;
    let thrown: unknown;
    try {
      parseFlow(text, 'flow.yaml', '/nonexistent');
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(LetheErrors);
    const [error, ...rest] = (thrown as LetheErrors).errors;
    expect(rest).toEqual([]);
    expect(formatError(error!)).toBe(
      'flow.yaml:7:33: steps[1].filter.where: the expression is nested too deeply to parse',
    );
  });

  it('an expression longer than maxLength is refused', () => {
    expect(() => Expression.compile('1 + '.repeat(20) + '1', { ...FAST, maxLength: 50 })).toThrow(
      'the expression is longer than 50 characters',
    );
  });

  it('a result nested 100,000 deep is refused after evaluation', async () => {
    const { error } = await run('$reduce([1..100000], function($a, $v){ {"a": $a} }, {})', {
      ...FAST,
      timeoutMs: 60_000,
    });
    expect(error?.code).toBe('EXPRESSION_LIMIT');
    expect(error?.message).toBe('the result is nested deeper than 64 levels');
  });

  it('the same under the default time limit ends in a limit error too', async () => {
    const { error } = await run('$reduce([1..100000], function($a, $v){ {"a": $a} }, {})', DEFAULT_LIMITS);
    expect(error?.code).toBe('EXPRESSION_LIMIT');
  });

  it('a string that doubles past what JavaScript allows is a limit error, not "recursed too deeply"', async () => {
    const { error } = await run('$reduce([1..40], function($a, $v){ $a & $a }, "x")', {
      ...FAST,
      timeoutMs: 60_000,
    });
    expect(error?.code).toBe('EXPRESSION_LIMIT');
    expect(error?.message).toBe('the expression built a string longer than the engine allows');
  });

  it('$pad refuses to build a huge string', async () => {
    const { error, ms } = await run('$pad("x", 1000000000, "ab")');
    expect(error?.code).toBe('EXPRESSION_LIMIT');
    expect(error?.message).toBe(
      `$pad would build a string of 1000000000 characters; the limit is ${MAX_PADDED_LENGTH}`,
    );
    expect(ms).toBeLessThan(SLACK_MS);
  });

  it('a large string inside the limits is fine', async () => {
    const { value } = await run('$length($pad("x", 1000000))');
    expect(value).toBe(1_000_000);
  });

  it('$sort of millions of numbers neither exhausts memory nor outlives the time limit', async () => {
    // JSONata's own merge sort keeps O(n²) copies: 50,000 items took gigabytes.
    const big = await run('$count($sort([1..3000000]))');
    expect(big.error?.message).toBe('the expression ran longer than the limit of 200 ms [D1012]');
    expect(big.ms).toBeLessThan(200 + SLACK_MS);
    const medium = await run('$sort([1..100000])[-1]', { ...FAST, timeoutMs: 10_000 });
    expect(medium.value).toBe(100_000);
  });

  it('$distinct of a million numbers is quick; of many objects it stops at the time limit', async () => {
    const numbers = await run('$count($distinct([1..1000000]))', { ...FAST, timeoutMs: 10_000 });
    expect(numbers.value).toBe(1_000_000);
    const objects = await run('$count($distinct([1..100000].{"a": $}))', { ...FAST, timeoutMs: 1000 });
    expect(objects.error?.message).toBe('the expression ran longer than the limit of 1000 ms [D1012]');
    expect(objects.ms).toBeLessThan(1000 + SLACK_MS);
  });

  it('a catastrophically backtracking regular expression does not block the process', async () => {
    const { value, ms } = await run(`$match("${'a'.repeat(40)}!", /(a+)+b/)`);
    expect(value).toBe(null);
    expect(ms).toBeLessThan(SLACK_MS);
    const contains = await run(`$contains("${'a'.repeat(40)}!", /^(a|a)*$/)`);
    expect(contains.value).toBe(false);
    expect(contains.ms).toBeLessThan(SLACK_MS);
  });

  it("a type error is an EXPRESSION_ERROR with JSONata's code", async () => {
    const { error } = await run('"abc" > 3');
    expect(error?.code).toBe('EXPRESSION_ERROR');
    expect(error?.message).toMatch(/\[T2009\]$/);
  });

  it('the process is still healthy afterwards', async () => {
    expect((await run('1 + 1')).value).toBe(2);
  });
});
