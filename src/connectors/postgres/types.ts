/**
 * How PostgreSQL's text output becomes Lethe values. These parsers are given to each pool
 * (the `types` option), never installed into node-postgres's global table, so nothing else in
 * the process changes. Sessions run with DateStyle ISO, which the date and time parsers expect.
 *
 * int2/int4/float4/float8 → number; int8 → number when exact, else its digits as text; numeric →
 * number when it has at most 15 significant digits (every such decimal survives a double), else
 * text; bool → boolean; date → 'YYYY-MM-DD' as written; timestamptz → UTC
 * 'YYYY-MM-DDTHH:mm:ss.sssZ'; timestamp → 'YYYY-MM-DDTHH:mm:ss[.ffffff]' as written, with no
 * zone added; json/jsonb → parsed values; bytea → base64; every other type (arrays included)
 * → PostgreSQL's text. NaN, ±Infinity and timestamps outside 0001–9999 AD stay text rather than
 * becoming null.
 */
import pg, { type CustomTypesConfig } from 'pg';
import { toValue, type Value } from '../../table/index.js';

type Parser = (text: string) => Value;

const { builtins } = pg.types;
const parseByteaBuffer = pg.types.getTypeParser(builtins.BYTEA, 'text') as (text: string) => Buffer;

function parseFloatText(text: string): Value {
  const number = Number(text);
  return Number.isFinite(number) ? number : text;
}

function parseInt8(text: string): Value {
  const number = Number(text);
  return Number.isSafeInteger(number) ? number : text;
}

const PLAIN_DECIMAL = /^-?\d+(?:\.\d+)?$/;
const MAX_EXACT_DIGITS = 15;

function parseNumeric(text: string): Value {
  if (!PLAIN_DECIMAL.test(text)) return text;
  const significant = text.replace(/[-.]/g, '').replace(/^0+/, '').replace(/0+$/, '');
  return significant.length <= MAX_EXACT_DIGITS ? Number(text) : text;
}

const TIMESTAMPTZ =
  /^(\d{4})-(\d{2})-(\d{2}) (\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,6}))?([+-])(\d{2})(?::(\d{2}))?(?::(\d{2}))?$/;

function parseTimestamptz(text: string): Value {
  const match = TIMESTAMPTZ.exec(text);
  if (!match) return text;
  const [
    year,
    month,
    day,
    hour,
    minute,
    second,
    fraction = '',
    sign,
    offsetHours,
    offsetMinutes = '0',
    offsetSeconds = '0',
  ] = match.slice(1);
  const date = new Date(0);
  // setUTCFullYear, unlike Date.UTC, does not read years 0–99 as 1900–1999.
  date.setUTCFullYear(Number(year), Number(month) - 1, Number(day));
  date.setUTCHours(Number(hour), Number(minute), Number(second), Number(fraction.padEnd(3, '0').slice(0, 3)));
  const offsetMs = (Number(offsetHours) * 3600 + Number(offsetMinutes) * 60 + Number(offsetSeconds)) * 1000;
  return new Date(date.getTime() - (sign === '-' ? -offsetMs : offsetMs)).toISOString();
}

const TIMESTAMP = /^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}(?:\.\d{1,6})?$/;

function parseTimestamp(text: string): Value {
  return TIMESTAMP.test(text) ? text.replace(' ', 'T') : text;
}

function parseJson(text: string): Value {
  return toValue(JSON.parse(text));
}

const asText: Parser = (text) => text;

const PARSERS: ReadonlyMap<number, Parser> = new Map<number, Parser>([
  [builtins.INT2, Number],
  [builtins.INT4, Number],
  [builtins.FLOAT4, parseFloatText],
  [builtins.FLOAT8, parseFloatText],
  [builtins.INT8, parseInt8],
  [builtins.NUMERIC, parseNumeric],
  [builtins.BOOL, (text) => text === 't'],
  [builtins.DATE, asText],
  [builtins.TIMESTAMPTZ, parseTimestamptz],
  [builtins.TIMESTAMP, parseTimestamp],
  [builtins.JSON, parseJson],
  [builtins.JSONB, parseJson],
  [builtins.BYTEA, (text) => parseByteaBuffer(text).toString('base64')],
]);

/** The `types` option of a pool: Lethe's parsers for text results (binary results are never asked for). */
export const postgresTypes: CustomTypesConfig = {
  getTypeParser: (oid: number) => PARSERS.get(oid) ?? asText,
};
