/**
 * Turns JSON Schema validation errors (from TypeBox) into messages a person can act on:
 * one message per problem, at the right place, with "did you mean" for misspelt names and
 * the list of allowed values for enumerations.
 */
import type { TSchema } from 'typebox';
import Value from 'typebox/value';
import { closest, didYouMean } from '../errors/suggest.js';
import type { Path } from './source.js';

export interface SchemaProblem {
  path: Path;
  message: string;
  /** Point at the key rather than the value (unknown fields). */
  atKey?: boolean;
}

interface RawError {
  keyword: string;
  schemaPath: string;
  instancePath: string;
  params: Record<string, unknown>;
  message: string;
}

type JsonSchema = Record<string, unknown>;

function decode(segment: string): string {
  return segment.replace(/~1/g, '/').replace(/~0/g, '~');
}

/** JSON pointer → path, with numbers where the value is an array. */
function pointerToPath(pointer: string, value: unknown): Path {
  if (pointer === '') return [];
  const path: (string | number)[] = [];
  let current: unknown = value;
  for (const raw of pointer.slice(1).split('/')) {
    const segment = decode(raw);
    if (Array.isArray(current)) {
      const index = Number(segment);
      path.push(index);
      current = current[index];
    } else {
      path.push(segment);
      current =
        current !== null && typeof current === 'object'
          ? (current as Record<string, unknown>)[segment]
          : undefined;
    }
  }
  return path;
}

function valueAt(value: unknown, path: Path): unknown {
  let current = value;
  for (const segment of path) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<string, unknown>)[segment as string];
  }
  return current;
}

function schemaAt(root: TSchema, schemaPath: string): JsonSchema | undefined {
  let current: unknown = root;
  for (const raw of schemaPath.replace(/^#\/?/, '').split('/').filter(Boolean)) {
    if (current === null || typeof current !== 'object') return undefined;
    current = (current as Record<string, unknown>)[decode(raw)];
  }
  return current as JsonSchema | undefined;
}

function jsonType(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'array';
  return typeof value;
}

const TYPE_WORDS: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  integer: 'a whole number',
  boolean: 'true or false',
  array: 'a list',
  object: 'a mapping',
  null: 'null',
  undefined: 'nothing',
};

function describeType(type: string): string {
  return TYPE_WORDS[type] ?? type;
}

function describeSchema(schema: JsonSchema): string {
  if ('const' in schema) return JSON.stringify(schema.const);
  if (Array.isArray(schema.enum)) return `one of ${schema.enum.map(String).join(', ')}`;
  if (Array.isArray(schema.anyOf)) return (schema.anyOf as JsonSchema[]).map(describeSchema).join(' or ');
  if (schema.type === 'array' && schema.items && typeof schema.items === 'object') {
    const items = describeSchema(schema.items as JsonSchema);
    return `a list of ${items.replace(/^an? /, '')}s`;
  }
  return describeType(String(schema.type ?? 'value'));
}

function memberMatches(member: JsonSchema, value: unknown): boolean {
  const type = jsonType(value);
  if ('const' in member) return member.const === value;
  if (Array.isArray(member.enum)) return typeof value === 'string';
  if (member.type === 'integer') return type === 'number';
  if (member.type === undefined) return true;
  return member.type === type;
}

function translate(error: RawError, root: TSchema, value: unknown): SchemaProblem[] {
  const path = pointerToPath(error.instancePath, value);
  const schema = schemaAt(root, error.schemaPath) ?? {};
  const actual = valueAt(value, path);
  switch (error.keyword) {
    case 'required': {
      const missing = (error.params.requiredProperties as string[] | undefined) ?? [];
      const present = actual !== null && typeof actual === 'object' ? Object.keys(actual) : [];
      return missing
        .filter((name) => !present.includes(name))
        .map((name) => ({ path, message: `missing required field "${name}"` }));
    }
    case 'additionalProperties': {
      const known = Object.keys((schema.properties as object | undefined) ?? {});
      const extra = (error.params.additionalProperties as string[] | undefined) ?? [];
      return extra.map((name) => ({
        path: [...path, name],
        atKey: true,
        message: `unknown field "${name}"${didYouMean(name, known)}${known.length > 0 && !didYouMean(name, known) ? `; allowed: ${known.join(', ')}` : ''}`,
      }));
    }
    case 'boolean':
      return []; // "schema is false" repeats an additionalProperties error
    case 'propertyNames':
      return []; // repeats the name's own error, reported at the name
    case 'type':
      return [
        {
          path,
          message: `must be ${describeType(String(error.params.type))}, not ${describeType(jsonType(actual))}`,
        },
      ];
    case 'const':
      return [{ path, message: `must be ${JSON.stringify(error.params.allowedValue)}` }];
    case 'enum': {
      const allowed = ((error.params.allowedValues as unknown[] | undefined) ?? []).map(String);
      const hint = typeof actual === 'string' ? didYouMean(actual, allowed) : '';
      return [{ path, message: `must be one of ${allowed.join(', ')}${hint}` }];
    }
    case 'pattern': {
      // Schemas say what their pattern means in `errorMessage` (as ajv-errors does).
      const explained = typeof schema.errorMessage === 'string' ? schema.errorMessage : undefined;
      const message = explained ?? `must match the pattern ${String(error.params.pattern)}`;
      // A `propertyNames` pattern is about the key, not its value.
      if (/\/propertyNames$/.test(error.schemaPath)) {
        return [
          { path, atKey: true, message: `invalid name "${String(path[path.length - 1])}": ${message}` },
        ];
      }
      return [{ path, message }];
    }
    case 'minLength':
      return [
        {
          path,
          message:
            error.params.limit === 1
              ? 'must not be empty'
              : `must have at least ${String(error.params.limit)} characters`,
        },
      ];
    case 'maxLength':
      return [{ path, message: `must have at most ${String(error.params.limit)} characters` }];
    case 'minItems':
      return [
        {
          path,
          message:
            error.params.limit === 1
              ? 'must list at least one item'
              : `must list at least ${String(error.params.limit)} items`,
        },
      ];
    case 'uniqueItems':
      return [{ path, message: 'lists the same item twice' }];
    case 'minProperties':
      return [{ path, message: 'must not be empty' }];
    case 'minimum':
    case 'maximum':
    case 'exclusiveMinimum':
    case 'exclusiveMaximum':
      return [{ path, message: `must be ${String(error.params.comparison)} ${String(error.params.limit)}` }];
    default:
      return [{ path, message: error.message }];
  }
}

/** Validate `value` against `schema`; every problem once, in document order. */
export function schemaProblems(schema: TSchema, value: unknown): SchemaProblem[] {
  const errors = [...Value.Errors(schema, value)] as unknown as RawError[];
  const suppressed = new Set<RawError>();
  const problems: SchemaProblem[] = [];
  const unions = errors
    .filter((error) => error.keyword === 'anyOf')
    .sort((a, b) => a.schemaPath.length - b.schemaPath.length);
  for (const union of unions) {
    if (suppressed.has(union)) continue;
    const members = (schemaAt(schema, union.schemaPath)?.anyOf as JsonSchema[] | undefined) ?? [];
    const path = pointerToPath(union.instancePath, value);
    const actual = valueAt(value, path);
    const inside = (error: RawError, member?: number) =>
      error.schemaPath.startsWith(`${union.schemaPath}/anyOf/${member ?? ''}`);
    const matching = members.flatMap((member, i) => (memberMatches(member, actual) ? [i] : []));
    suppressed.add(union);
    if (members.length > 0 && members.every((member) => 'const' in member)) {
      for (const error of errors) if (inside(error)) suppressed.add(error);
      const allowed = members.map((member) => String(member.const));
      const hint = typeof actual === 'string' ? didYouMean(actual, allowed) : '';
      problems.push({ path, message: `must be one of ${allowed.join(', ')}${hint}` });
    } else if (matching.length === 1) {
      // The value has the shape of one member: report that member's problems only.
      for (const error of errors) if (inside(error) && !inside(error, matching[0])) suppressed.add(error);
    } else {
      for (const error of errors) if (inside(error)) suppressed.add(error);
      problems.push({ path, message: `must be ${members.map(describeSchema).join(' or ')}` });
    }
  }
  // `"1"` where the schema says `const: 1` breaks both `type` and `const`: say it once.
  const fixedValue = new Set(
    errors
      .filter((error) => error.keyword === 'const' || error.keyword === 'enum')
      .map((error) => `${error.instancePath}\u0000${error.schemaPath}`),
  );
  for (const error of errors) {
    if (error.keyword === 'type' && fixedValue.has(`${error.instancePath}\u0000${error.schemaPath}`))
      suppressed.add(error);
  }
  // A misspelt required field is one mistake: "unknown field "stpes" (did you mean "steps"?)"
  // says all there is to say, so "missing required field "steps"" is left out.
  const misspelt = new Set<string>();
  for (const error of errors) {
    if (error.keyword !== 'additionalProperties' || suppressed.has(error)) continue;
    const known = Object.keys((schemaAt(schema, error.schemaPath)?.properties as object | undefined) ?? {});
    for (const name of (error.params.additionalProperties as string[] | undefined) ?? []) {
      const suggestion = closest(name, known);
      if (suggestion !== undefined) misspelt.add(`${error.instancePath}\u0000${suggestion}`);
    }
  }
  for (const error of errors) {
    if (suppressed.has(error)) continue;
    let translated = translate(error, schema, value);
    if (error.keyword === 'required') {
      translated = translated.filter((problem) => {
        const name = /^missing required field "(.*)"$/.exec(problem.message)?.[1];
        return name === undefined || !misspelt.has(`${error.instancePath}\u0000${name}`);
      });
    }
    problems.push(...translated);
  }
  const seen = new Set<string>();
  return problems.filter((problem) => {
    const key = `${JSON.stringify(problem.path)}\u0000${problem.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}
