/**
 * Column types: inference for text sources (CSV) and the conversions `types:` asks for.
 * A value that does not convert is an error naming the row and column — never a silent null.
 */
import type { Value } from './index.js';
import { describeValue, isNested, valueToText } from './index.js';

export const COLUMN_TYPES = ['string', 'number', 'integer', 'boolean', 'date', 'datetime'] as const;
export type ColumnType = (typeof COLUMN_TYPES)[number];

/** JSON's number grammar: the only text a CSV column may hold to be inferred as numbers. */
const JSON_NUMBER = /^-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?$/;
/** A plain integer literal, to keep integers beyond 2^53 as text (ids must not lose digits). */
const INTEGER_LITERAL = /^-?[0-9]+$/;

/** Whether a text value may make its column numeric (see SPEC 4.2). */
export function isInferableNumber(text: string): boolean {
  if (!JSON_NUMBER.test(text)) return false;
  // Short numbers without an exponent are always finite and, if integers, safe.
  if (text.length < 16 && text.indexOf('e') === -1 && text.indexOf('E') === -1) return true;
  const number = Number(text);
  if (!Number.isFinite(number)) return false;
  return !(INTEGER_LITERAL.test(text) && !Number.isSafeInteger(number));
}

/** Thrown by `convert`; the caller adds row and column. */
export class ConversionError extends Error {}

/** Lenient but unambiguous number text for an explicit `number` type: sign, digits, point, exponent. */
const NUMBER_TEXT = /^[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$/;

const TRUE_WORDS = new Set(['true', '1', 'yes']);
const FALSE_WORDS = new Set(['false', '0', 'no']);

const DATE = /^(\d{4})-?(\d{2})-?(\d{2})(?:[T ].*)?$/;
const DATETIME =
  /^(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?\s*(Z|z|[+-]\d{2}(?::?\d{2})?)$/;

function validDate(year: number, month: number, day: number): boolean {
  if (month < 1 || month > 12 || day < 1) return false;
  const days = new Date(Date.UTC(year, month, 0)).getUTCDate();
  return day <= days;
}

function pad(n: number, width = 2): string {
  return String(n).padStart(width, '0');
}

/** Convert one value to a column type. Null stays null. */
export function convert(value: Value, type: ColumnType): Value {
  if (value === null) return null;
  switch (type) {
    case 'string':
      return typeof value === 'string' ? value : valueToText(value);
    case 'number':
    case 'integer': {
      let number: number;
      if (typeof value === 'number') number = value;
      else if (typeof value === 'string' && NUMBER_TEXT.test(value.trim())) number = Number(value.trim());
      else throw new ConversionError(`${describeValue(value)} is not a number`);
      if (!Number.isFinite(number)) throw new ConversionError(`${describeValue(value)} is out of range`);
      // An integer past 2^53 cannot be held exactly: refuse rather than change the number.
      if (typeof value === 'string' && !Number.isSafeInteger(number) && /^[+-]?[0-9]+$/.test(value.trim())) {
        throw new ConversionError(
          `${describeValue(value)} is too large to keep exactly as a number (declare it as string)`,
        );
      }
      if (type === 'integer' && !Number.isInteger(number)) {
        throw new ConversionError(`${describeValue(value)} is not an integer`);
      }
      return number;
    }
    case 'boolean': {
      if (typeof value === 'boolean') return value;
      if (typeof value === 'number' && (value === 0 || value === 1)) return value === 1;
      if (typeof value === 'string') {
        const word = value.trim().toLowerCase();
        if (TRUE_WORDS.has(word)) return true;
        if (FALSE_WORDS.has(word)) return false;
      }
      throw new ConversionError(`${describeValue(value)} is not a boolean (use true/false, 1/0 or yes/no)`);
    }
    case 'date': {
      const match = typeof value === 'string' ? DATE.exec(value.trim()) : null;
      if (!match) throw new ConversionError(`${describeValue(value)} is not an ISO 8601 date (YYYY-MM-DD)`);
      const [year, month, day] = [Number(match[1]), Number(match[2]), Number(match[3])];
      if (!validDate(year, month, day))
        throw new ConversionError(`${describeValue(value)} is not a valid date`);
      return `${pad(year, 4)}-${pad(month)}-${pad(day)}`;
    }
    case 'datetime': {
      const match = typeof value === 'string' ? DATETIME.exec(value.trim()) : null;
      if (!match) {
        const hint =
          typeof value === 'string' && /^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}/.test(value.trim())
            ? ' (it has no time zone offset: add Z or ±hh:mm)'
            : '';
        throw new ConversionError(`${describeValue(value)} is not an ISO 8601 date-time${hint}`);
      }
      const [year, month, day, hour, minute] = match.slice(1, 6).map(Number) as [
        number,
        number,
        number,
        number,
        number,
      ];
      const second = Number(match[6] ?? 0);
      const millis = Math.floor(Number(`0.${match[7] ?? '0'}`) * 1000);
      if (!validDate(year, month, day) || hour > 23 || minute > 59 || second > 59) {
        throw new ConversionError(`${describeValue(value)} is not a valid date-time`);
      }
      const zone = match[8]!;
      let offsetMinutes = 0;
      if (zone !== 'Z' && zone !== 'z') {
        const sign = zone.startsWith('-') ? -1 : 1;
        const digits = zone.slice(1).replace(':', '');
        const hours = Number(digits.slice(0, 2));
        const minutes = Number(digits.slice(2) || '0');
        if (hours > 23 || minutes > 59)
          throw new ConversionError(`${describeValue(value)} has an invalid offset`);
        offsetMinutes = sign * (hours * 60 + minutes);
      }
      const epoch = Date.UTC(year, month - 1, day, hour, minute, second, millis) - offsetMinutes * 60_000;
      return new Date(epoch).toISOString();
    }
  }
}

/** Whether a value already has a type (used to describe a column in messages). */
export function typeOfValue(value: Value): string {
  if (value === null) return 'null';
  if (isNested(value)) return Array.isArray(value) ? 'array' : 'object';
  return typeof value;
}
