/**
 * The replacements for $sort, $distinct and $pad (src/expr/builtins.ts) must return exactly
 * what JSONata's own functions return, errors included: each case is evaluated both by a
 * bound Lethe expression and by plain JSONata.
 */
import jsonata from 'jsonata';
import { describe, expect, it } from 'vitest';
import { Expression } from '../../src/expr/expression.js';
import type { Value } from '../../src/table/index.js';

const INPUT = {
  nums: [3, 1, 2, 3, -0, 0, 1.5, -7, 1e21],
  strs: ['b', 'a', 'B', 'é', 'e', '😀', '', 'a'],
  mixed: [1, '1', true, null, 1, '1', true, null],
  objs: [
    { a: 1 },
    { a: 1 },
    { a: [1, 2] },
    { a: [1, 2] },
    { b: 1, a: 1 },
    { a: 1, b: 1 },
    [1],
    [1],
    { a: { b: null } },
    { a: { b: null } },
  ],
  people: [
    { name: 'b', age: 30 },
    { name: 'a', age: 30 },
    { name: 'c', age: 20 },
    { name: 'd', age: 20 },
  ],
  one: [5],
  empty: [],
  text: 'abc',
  emoji: '😀x',
};

const CASES = [
  '$sort(nums)',
  '$sort(strs)',
  '$sort(one)',
  '$sort(empty)',
  '$sort(5)',
  '$sort(missing)',
  '$sort(mixed)',
  '$sort(people)',
  '$sort(people, function($l, $r){ $l.age > $r.age })',
  '$sort(people, function($l, $r){ $l.name < $r.name })',
  '$sort(nums, function($l, $r){ true })',
  '$sort(nums, function($l, $r){ false })',
  '$sort(nums, function($l, $r){ $l < $r })',
  '$sort(strs, function($l, $r){ $length($l) > $length($r) })',
  '$sort([10, 9, 8, 7, 6, 5, 4, 3, 2, 1, 0])',
  '$sort(people.name)',
  '$sort(people.age)',
  '$sort([1..1000].($ * 7919 % 1009))',
  '$distinct(nums)',
  '$distinct(strs)',
  '$distinct(mixed)',
  '$distinct(objs)',
  '$distinct(people.age)',
  '$distinct(one)',
  '$distinct(empty)',
  '$distinct(5)',
  '$distinct("x")',
  '$distinct(missing)',
  '$distinct([1..1000].($ % 7))',
  '$count($distinct(people.age))',
  '$pad(text, 6)',
  '$pad(text, -6)',
  '$pad(text, 6, "-")',
  '$pad(text, -6, "xy")',
  '$pad(text, 7, "xyz")',
  '$pad(text, 2)',
  '$pad(text, 5.9, "#")',
  '$pad(text, -5.9, "#")',
  '$pad(emoji, 5, "😀")',
  '$pad(emoji, -6, "a😀")',
  '$pad(text, 6, "")',
  '$pad(missing, 6)',
  '$pad(text, 0)',
  '$pad(text)',
  '$pad(5, 3)',
];

async function outcome(evaluate: () => Promise<unknown>): Promise<string> {
  try {
    return `value ${JSON.stringify((await evaluate()) ?? null)}`; // Lethe gives null for nothing
  } catch (error) {
    const code = (error as { code?: string }).code;
    const message = (error as { message?: string }).message ?? '';
    // Lethe adds the JSONata code in brackets: compare on JSONata's code.
    return `error ${/\[(\w+)\]$/.exec(message)?.[1] ?? code}`;
  }
}

describe('safe built-ins ≡ JSONata built-ins', () => {
  it.each(CASES)('%s', async (text) => {
    const expected = await outcome(() => jsonata(text).evaluate(INPUT));
    const actual = await outcome(() =>
      Expression.compile(text)
        .bind(Object.keys(INPUT), {})
        .evaluate(Object.values(INPUT) as Value[]),
    );
    expect(actual).toBe(expected);
  });

  it('the comparisons above include errors and results, so they can tell a difference', async () => {
    expect(await outcome(() => jsonata('$sort(mixed)').evaluate(INPUT))).toBe('error D3070');
    expect(await outcome(() => jsonata('$pad(text, -6, "xy")').evaluate(INPUT))).toBe('value "xyxabc"');
  });
});
