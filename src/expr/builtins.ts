/**
 * Replacements for the few JSONata built-in functions that can escape the evaluation limits.
 * JSONata checks its time and depth limits only between evaluation steps, so a built-in that
 * does a lot of work in one step runs unchecked:
 *
 * - `$sort(array)` merges with `slice(1)` recursion, which keeps O(n²) copies alive: sorting
 *   50,000 numbers takes gigabytes and kills the process (out of memory).
 * - `$distinct(array)` compares every item with every kept item: O(n²), seconds for 100,000.
 * - `$pad(s, width)` builds any width asked for: `$pad("", 1e9, "ab")` runs out of memory.
 *
 * Each replacement returns exactly what JSONata's own function returns (same algorithm, same
 * comparator calls in the same order, same errors), in O(n log n) or O(n), checks the time
 * limit while it works, and refuses to pad beyond MAX_PADDED_LENGTH characters.
 */
import type jsonata from 'jsonata';
import { LetheError } from '../errors/index.js';

/** The longest string `$pad` may build. */
export const MAX_PADDED_LENGTH = 16 * 1024 * 1024;

/** When the running evaluation must stop, for built-ins that work in one long step. */
export interface Deadline {
  /** Epoch milliseconds; Infinity when there is no time limit. */
  readonly at: number;
  readonly timeoutMs: number;
}

type Focus = jsonata.Focus & { createSequence?: () => unknown[] };

/** JSONata's timeout error, so that it is reported like any other timeout. */
function checkDeadline(deadline: () => Deadline): void {
  const { at, timeoutMs } = deadline();
  if (Date.now() > at) throw { code: 'D1012', value: timeoutMs, stack: new Error().stack };
}

const CHECK_EVERY = 4096;

function isSequence(value: unknown): boolean {
  return Array.isArray(value) && (value as { sequence?: unknown }).sequence === true;
}

/** JSONata's isNumeric: NaN is not numeric, ±Infinity is an error. */
function isNumeric(value: unknown): boolean {
  if (typeof value !== 'number' || Number.isNaN(value)) return false;
  if (!Number.isFinite(value)) throw { code: 'D1001', value, stack: new Error().stack };
  return true;
}

/** JSONata's isDeepEqual, unchanged. */
function isDeepEqual(lhs: unknown, rhs: unknown): boolean {
  if (lhs === rhs) return true;
  if (typeof lhs === 'object' && typeof rhs === 'object' && lhs !== null && rhs !== null) {
    if (Array.isArray(lhs) && Array.isArray(rhs)) {
      if (lhs.length !== rhs.length) return false;
      for (let i = 0; i < lhs.length; i++) if (!isDeepEqual(lhs[i], rhs[i])) return false;
      return true;
    }
    const lkeys = Object.getOwnPropertyNames(lhs).sort();
    const rkeys = Object.getOwnPropertyNames(rhs).sort();
    if (lkeys.length !== rkeys.length) return false;
    for (let i = 0; i < lkeys.length; i++) if (lkeys[i] !== rkeys[i]) return false;
    for (const key of lkeys) {
      if (!isDeepEqual((lhs as Record<string, unknown>)[key], (rhs as Record<string, unknown>)[key]))
        return false;
    }
    return true;
  }
  return false;
}

/** JSONata's merge sort (split at the middle, left first, take right when comp says so). */
async function mergeSortAsync(
  array: unknown[],
  comp: (a: unknown, b: unknown) => Promise<unknown>,
): Promise<unknown[]> {
  if (array.length <= 1) return array;
  const middle = Math.floor(array.length / 2);
  const left = await mergeSortAsync(array.slice(0, middle), comp);
  const right = await mergeSortAsync(array.slice(middle), comp);
  const merged: unknown[] = [];
  let i = 0;
  let j = 0;
  while (i < left.length && j < right.length) {
    if (await comp(left[i], right[j])) merged.push(right[j++]);
    else merged.push(left[i++]);
  }
  while (i < left.length) merged.push(left[i++]);
  while (j < right.length) merged.push(right[j++]);
  return merged;
}

/** The same with JSONata's default comparator (`a > b`), synchronously, checking the time. */
function mergeSortDefault(array: unknown[], deadline: () => Deadline, counter: { n: number }): unknown[] {
  if (array.length <= 1) return array;
  const middle = Math.floor(array.length / 2);
  const left = mergeSortDefault(array.slice(0, middle), deadline, counter);
  const right = mergeSortDefault(array.slice(middle), deadline, counter);
  const merged: unknown[] = new Array<unknown>(left.length + right.length);
  let i = 0;
  let j = 0;
  let k = 0;
  while (i < left.length && j < right.length) {
    merged[k++] = (left[i] as number) > (right[j] as number) ? right[j++] : left[i++];
  }
  while (i < left.length) merged[k++] = left[i++];
  while (j < right.length) merged[k++] = right[j++];
  counter.n += merged.length;
  if (counter.n >= CHECK_EVERY) {
    counter.n = 0;
    checkDeadline(deadline);
  }
  return merged;
}

/** Register the replacements on one compiled JSONata expression. */
export function registerSafeBuiltins(expression: jsonata.Expression, deadline: () => Deadline): void {
  expression.registerFunction(
    'sort',
    async function sort(
      arr: unknown[] | undefined,
      comparator?: (a: unknown, b: unknown) => Promise<unknown>,
    ) {
      if (arr === undefined) return undefined;
      if (arr.length <= 1) return arr;
      if (comparator === undefined) {
        const numbers = arr.filter((item) => !isNumeric(item)).length === 0;
        if (!numbers && !arr.every((item) => typeof item === 'string')) {
          throw { code: 'D3070', index: 1, stack: new Error().stack };
        }
        return mergeSortDefault(arr, deadline, { n: 0 });
      }
      // Each call of a JSONata comparator is an evaluation step, which checks the limits.
      return mergeSortAsync(arr, comparator);
    },
    '<af?:a>',
  );

  expression.registerFunction(
    'distinct',
    function distinct(this: Focus, arr: unknown) {
      if (arr === undefined) return undefined;
      if (!Array.isArray(arr) || arr.length <= 1) return arr;
      const results = isSequence(arr) && this.createSequence ? this.createSequence() : [];
      // Scalars (and functions) are equal only when identical: a Set finds them at once.
      const scalars = new Set<unknown>();
      const objects: unknown[] = [];
      let work = 0;
      for (let i = 0; i < arr.length; i++) {
        const value: unknown = arr[i];
        if (++work >= CHECK_EVERY) {
          work = 0;
          checkDeadline(deadline);
        }
        if (value !== null && typeof value === 'object') {
          let found = false;
          for (let j = 0; j < objects.length && !found; j++) {
            if (++work >= CHECK_EVERY) {
              work = 0;
              checkDeadline(deadline);
            }
            found = isDeepEqual(value, objects[j]);
          }
          if (found) continue;
          objects.push(value);
        } else {
          if (scalars.has(value)) continue;
          scalars.add(value);
        }
        results.push(value);
      }
      return results;
    },
    '<x:x>',
  );

  expression.registerFunction(
    'pad',
    function pad(str: string | undefined, width: number, char?: string) {
      if (str === undefined) return undefined;
      const fill = char === undefined || char.length === 0 ? ' ' : char;
      const whole = Math.trunc(width);
      const padLength = Math.abs(whole) - Array.from(str).length;
      if (!(padLength > 0)) return str;
      if (padLength > MAX_PADDED_LENGTH) {
        throw new LetheError(
          'EXPRESSION_LIMIT',
          `$pad would build a string of ${Math.abs(whole)} characters; the limit is ${MAX_PADDED_LENGTH}`,
        );
      }
      // JSONata: padLength copies of the fill, cut to padLength characters (code points).
      let padding: string;
      const points = Array.from(fill);
      if (points.length === fill.length)
        padding = fill.repeat(Math.ceil(padLength / fill.length)).slice(0, padLength);
      else padding = Array.from({ length: padLength }, (_, k) => points[k % points.length]).join('');
      return whole > 0 ? str + padding : padding + str;
    },
    '<s-ns?:s>',
  );
}
