/**
 * The fast path (src/expr/fast.ts) must give exactly what JSONata gives. For every expression ×
 * row pair: when `trySync` answers (not NEEDS_JSONATA), `evaluate` (JSONata) must succeed with
 * the same value, to the bit (-0 is not 0); when JSONata throws, `trySync` must have declined.
 * `trySync` itself never throws for data.
 */
import { describe, expect, it } from 'vitest';
import { DEFAULT_LIMITS, Expression, NEEDS_JSONATA } from '../../src/expr/expression.js';
import type { Row, Value } from '../../src/table/index.js';

const COLUMNS = ['a', 'b', 's', 't', 'flag', 'n', 'obj', 'arr', 'f', 'g', 'u'] as const;

/** Rows chosen for the corners: nulls, -0, floats, big numbers, unicode, numbers as text… */
const ROWS: Row[] = [
  [1, 2, 'abc', 'ABC', true, null, { x: 1 }, [1, 2], 0.1, 0.2, 'héllo'],
  [null, null, null, null, null, null, null, null, null, null, null],
  [0, -1, '', ' ', false, 0, {}, [], -0, 1e308, ''],
  ['1', '2', 'héllo 😀', '😀x', 'true', '0', { a: { b: 1 } }, ['a'], 9007199254740993, 1.5, 'İstanbul'],
  [10, 3, '  a  b\t\nc ', 'xyz', true, 5, [1], [[1]], 1e21, 123456789.123456789, 'straße'],
  [1.5, 0, '12', '3.5', false, -2.5, 'str', 'str', 3, 7, 'e\u0301'],
  [
    true,
    false,
    '-1e3',
    '1e400',
    true,
    'x',
    1,
    2,
    Number.MAX_SAFE_INTEGER,
    -Number.MAX_VALUE,
    '\u{1F468}\u200D\u{1F469}',
  ],
  ['abc', 'abd', 'a', 'Ä', 1, null, null, null, 1e-7, 2e-7, 'Z'],
  [
    -7,
    2,
    '0x1A',
    '00123',
    null,
    1,
    { __proto__: null, k: 'v' } as unknown as Value,
    [null],
    0.30000000000000004,
    0.3,
    'a,b',
  ],
  [2 ** 53, 2 ** -1074, 'null', 'undefined', false, -0, null, null, 1 / 3, 2 / 3, '\u0000'],
];

const PARAMS = { x: 5, s: 'hi', nul: null, big: 1e300, f: 0.1, yes: true, text: '12' };

const OPERANDS: [string, string][] = [
  ['a', 'b'],
  ['s', 't'],
  ['a', 's'],
  ['f', 'g'],
  ['flag', 'b'],
  ['a', '1'],
  ['s', "'abc'"],
  ['n', '0'],
  ['obj', 'a'],
  ['arr', '1'],
  ['a', '$params.x'],
  ['s', '$params.s'],
  ['a', '$params.nul'],
  ['$.a', '$.b'],
  ['a', 'true'],
  ['u', '$params.text'],
  ['$params.f', 'f'],
  ['missing', 'a'],
];
const OPERATORS = ['=', '!=', '<', '<=', '>', '>=', '+', '-', '*', '/', '%', '&', 'and', 'or'];
const FUNCTIONS = [
  'uppercase',
  'lowercase',
  'length',
  'trim',
  'string',
  'number',
  'exists',
  'not',
  'boolean',
  'abs',
  'floor',
  'ceil',
];

function expressions(): string[] {
  const out: string[] = [];
  for (const op of OPERATORS) for (const [l, r] of OPERANDS) out.push(`${l} ${op} ${r}`);
  for (const fn of FUNCTIONS) for (const c of COLUMNS) out.push(`$${fn}(${c})`);
  for (const c of COLUMNS) {
    out.push(
      `$substring(${c}, 1)`,
      `$substring(${c}, 1, 2)`,
      `$substring(${c}, -2)`,
      `$substring(${c}, -3, 2)`,
      `$substring(${c}, 0, -1)`,
      `$substring(${c}, 10)`,
      `$substring(${c}, 1.5, 1.5)`,
      `$substring(s, ${c})`,
      `$substring(${c}, a, b)`,
      `$contains(${c}, 'b')`,
      `$contains(${c}, '')`,
      `${c} in ['abc', 1, 'a', true]`,
      `${c} in []`,
      `-${c}`,
      `${c} ? 'y' : 'n'`,
      `${c} ? ${c}`,
      `(((${c})))`,
      `$.${c}`,
      `$string(${c}) & '!'`,
      `$number(${c}) + 1`,
      `$exists(${c}) and ${c} > 0`,
      `$not($exists(${c}))`,
      `${c} = null`,
      `${c} != null`,
      `$length($trim(${c})) > 0 or $uppercase(${c}) = 'ABC'`,
    );
  }
  out.push(
    'f + g',
    '0.1 + 0.2',
    '0.1 + 0.2 = 0.3',
    'f = 0.30000000000000004',
    '1e308 * 10',
    'a / 0',
    'a % 0',
    '$params.big * $params.big',
    '$params.missing',
    '$params.x + a',
    '$uppercase($params.s)',
    '$params.yes and flag',
    'true and false',
    'true or a',
    'a and (b or flag)',
    's & t & a',
    '1 / 3',
    '$string(1/3)',
    '$string(1e21)',
    '$string(0.1 + 0.2)',
    '$string(-0)',
    '$string(f * 3)',
    '-(a)',
    '$abs(-0)',
    '-0',
    '0 * -1',
    "'x' in ['x']",
    '(a > 1) = (b > 1)',
    '$length(s) > 2 ? $uppercase(s) : $lowercase(t)',
    '$boolean(0)',
    "$boolean('')",
    '$not(0)',
    '$floor(-1.5)',
    '$ceil(-1.5)',
    "$number('0x10')",
    "$number('1e3')",
    "$number(' 1')",
    "$number('-0')",
    "$number('1.')",
    "$number('.5')",
    "$number('1e400')",
    "$trim('  ')",
    "$substring('😀😀😀', 1, 1)",
    "$length('😀')",
    "$uppercase('ß')",
    "$lowercase('İ')",
    'a > b ? (s & t) : (t & s)',
    '((a + b) * (a - b)) / 2',
    '(a > 0 and b > 0) or (a < 0 and b < 0)',
    "$contains($lowercase(s), 'é')",
    '$string(a) = $string(b)',
    'a = a',
    'obj = obj',
    "flag = 'true'",
    '$exists($params.nul)',
    '$exists($params.x)',
    "a ? b ? 'both' : 'a' : 'none'",
    'not',
    '$.missing',
    'a < "b"',
    '"abc" > 3',
    '$floor(f * 10) / 10',
    '$ceil(g)',
    '2 - -a',
    'a * 1e300 * 1e300',
    // An absent subject does not excuse the other arguments or operands.
    "$substring(missing, 'x')",
    "$substring(n, a + 'x')",
    "$substring(missing, 1, 'x')",
    "missing + 'x'",
    "'x' - missing",
    'missing & obj',
    "$contains(missing, 'a')",
    'missing = obj',
    'missing < obj',
    'missing and obj',
    'missing or obj',
    "missing ? obj : 'no'",
    '$not(obj)',
    'missing in [1]',
  );
  return [...new Set(out)];
}

/** Equal as values, with -0 told apart from 0. */
function sameValue(a: unknown, b: unknown): boolean {
  if (typeof a === 'number' || typeof b === 'number') return Object.is(a, b);
  return JSON.stringify(a) === JSON.stringify(b);
}

describe('fast path ≡ JSONata', () => {
  const list = expressions();

  it('covers a large table of expressions', () => {
    expect(list.length).toBeGreaterThan(500);
  });

  it('agrees on every expression × row, and declines whenever JSONata fails', async () => {
    let compared = 0;
    let fast = 0;
    const disagreements: string[] = [];
    for (const text of list) {
      const bound = Expression.compile(text).bind(COLUMNS, { params: PARAMS });
      for (const row of ROWS) {
        compared++;
        let quick: Value | typeof NEEDS_JSONATA;
        try {
          quick = bound.trySync(row);
        } catch (error) {
          disagreements.push(`${text} on ${JSON.stringify(row)}: trySync threw ${String(error)}`);
          continue;
        }
        let slow: Value | undefined;
        let failure: unknown;
        try {
          slow = await bound.evaluate(row);
        } catch (error) {
          failure = error;
        }
        if (quick === NEEDS_JSONATA) continue;
        fast++;
        if (failure !== undefined) {
          disagreements.push(
            `${text} on ${JSON.stringify(row)}: fast gave ${String(quick)}, JSONata threw ${(failure as Error).message}`,
          );
        } else if (!sameValue(quick, slow)) {
          disagreements.push(
            `${text} on ${JSON.stringify(row)}: fast gave ${String(quick)}, JSONata ${String(slow)}`,
          );
        }
      }
    }
    expect(disagreements).toEqual([]);
    expect(compared).toBe(list.length * ROWS.length);
    // The comparison means something only if the fast path answered often.
    expect(fast).toBeGreaterThan(compared / 2);
  }, 120_000);

  it.each([
    'amount > 100',
    "status = 'paid' and amount > 0",
    '$uppercase(name) & "-" & $string(qty)',
    '$exists(amount) ? amount * 2 : 0',
    "$substring(name, 0, 3) in ['abc', 'xyz']",
    '$params.x + amount',
    '$.amount >= $params.x or $not($boolean(name))',
    "$contains($lowercase($trim(name)), 'a')",
    '-amount % 7',
    '$floor($abs(amount) / 2) + $ceil(qty) - $length(name)',
    '(((amount)))',
  ])('compiles the common expression %s to the fast path', (text) => {
    const bound = Expression.compile(text).bind(['amount', 'status', 'name', 'qty'], { params: PARAMS });
    expect(bound.compiled).toBe(true);
    expect(bound.trySync([5, 'paid', 'abc', 2])).not.toBe(NEEDS_JSONATA);
  });

  it.each([
    '$now()',
    'amount[0]',
    '$sum(amount)',
    'null',
    "$replace(name, 'a', 'b')",
    'amount.x',
    '{"a": amount}',
    '$params',
  ])('leaves %s to JSONata', (text) => {
    const bound = Expression.compile(text).bind(['amount', 'name'], { params: PARAMS });
    expect(bound.compiled).toBe(false);
    expect(bound.trySync([1, 'a'])).toBe(NEEDS_JSONATA);
  });

  it('gives exact values for a few known cases', () => {
    const cases: [string, Row, Value][] = [
      ['f + g', [null, null, null, null, null, null, null, null, 0.1, 0.2, null], 0.30000000000000004],
      ['$string(f + g)', [null, null, null, null, null, null, null, null, 0.1, 0.2, null], '0.3'],
      ['-a', [0, null, null, null, null, null, null, null, null, null, null], -0],
      ['$length(u)', [null, null, null, null, null, null, null, null, null, null, 'e\u0301😀'], 3],
      ['a & b', [1e21, true, null, null, null, null, null, null, null, null, null], '1e+21true'],
      ['$substring(u, -2)', [null, null, null, null, null, null, null, null, null, null, 'a😀b'], '😀b'],
    ];
    for (const [text, row, expected] of cases) {
      const bound = Expression.compile(text).bind(COLUMNS, {});
      expect(Object.is(bound.trySync(row), expected)).toBe(true);
    }
  });

  it('declines expressions JSONata would refuse for depth, exactly at the limit', async () => {
    const limits = { ...DEFAULT_LIMITS, maxDepth: 20 };
    // `(…(a)…)`: each block is one evaluation level, then the path and its name step.
    const nested = (blocks: number) => `${'('.repeat(blocks)}a${')'.repeat(blocks)}`;
    const atLimit = Expression.compile(nested(18), limits).bind(['a'], {});
    expect(atLimit.compiled).toBe(true);
    expect(atLimit.trySync([7])).toBe(7);
    expect(await atLimit.evaluate([7])).toBe(7);
    const beyond = Expression.compile(nested(19), limits).bind(['a'], {});
    expect(beyond.compiled).toBe(false);
    expect(beyond.trySync([7])).toBe(NEEDS_JSONATA);
    await expect(beyond.evaluate([7])).rejects.toMatchObject({ code: 'EXPRESSION_LIMIT' });
  });

  it('reads the first of two columns with the same name on both paths', async () => {
    const bound = Expression.compile('a').bind(['a', 'a'], {});
    expect(bound.trySync([1, 2])).toBe(1);
    expect(await bound.evaluate([1, 2])).toBe(1);
    expect(bound.trySync([null, 2])).toBe(null);
    expect(await bound.evaluate([null, 2])).toBe(null);
  });
});
