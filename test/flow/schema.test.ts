/**
 * The published JSON Schema (`lethe schema` → schema/flow.schema.json) describes every flow
 * Lethe accepts: each example flow validates against it structurally, and it rejects the
 * structural mistakes the loader rejects. If schema/flow.schema.json has been generated, it
 * must be the current schema.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import Type from 'typebox';
import Value from 'typebox/value';
import { parse } from 'yaml';
import { describe, expect, it } from 'vitest';
import { loadFlow } from '../../src/flow/load.js';
import { flowJsonSchema } from '../../src/flow/schema.js';

const root = join(import.meta.dirname, '..', '..');
const publishedPath = join(root, 'schema', 'flow.schema.json');
const generated = flowJsonSchema();
const published: Record<string, unknown> = existsSync(publishedPath)
  ? (JSON.parse(readFileSync(publishedPath, 'utf8')) as Record<string, unknown>)
  : generated;
const schema = Type.Unsafe<unknown>(published);

const examples = readdirSync(join(root, 'examples'), { withFileTypes: true })
  .filter((entry) => entry.isDirectory() && existsSync(join(root, 'examples', entry.name, 'flow.yaml')))
  .map((entry) => entry.name)
  .sort();

function read(text: string): unknown {
  return parse(text, { version: '1.2' }) as unknown;
}

function errorPaths(value: unknown): string[] {
  return [...Value.Errors(schema, value)].map(
    (error) => (error as unknown as { instancePath: string }).instancePath,
  );
}

describe('the published flow schema', () => {
  it('is a 2020-12 JSON Schema with an id, and matches flowJsonSchema() when it has been generated', () => {
    expect(published.$schema).toBe('https://json-schema.org/draft/2020-12/schema');
    expect(published.$id).toBe('https://lethe.dev/schema/flow.schema.json');
    expect(published).toEqual(generated);
  });

  it('there are examples to check', () => {
    expect(examples.length).toBeGreaterThanOrEqual(4);
  });

  it.each(examples)('validates examples/%s/flow.yaml, which the loader also accepts', async (name) => {
    const path = join(root, 'examples', name, 'flow.yaml');
    const value = read(readFileSync(path, 'utf8'));
    expect(errorPaths(value)).toEqual([]);
    expect(Value.Check(schema, value)).toBe(true);
    const loaded = await loadFlow(path);
    expect(loaded.flow.steps.length).toBe((value as { steps: unknown[] }).steps.length);
  });

  const valid = {
    version: 1,
    name: 'test',
    params: { since: { type: 'date', default: '2024-01-01' } },
    steps: [
      { id: 'src', input: { values: [{ a: 1 }] } },
      { id: 'out', output: { from: 'src', respond: true } },
    ],
  };

  it('accepts a minimal flow', () => {
    expect(Value.Check(schema, valid)).toBe(true);
  });

  it.each([
    [
      'a misspelt command',
      { ...valid, steps: [...valid.steps, { id: 'x', fitler: { from: 'src', where: 'a' } }] },
    ],
    [
      'a step with two commands',
      { ...valid, steps: [{ id: 'x', input: { values: [] }, limit: { from: 'src', count: 1 } }] },
    ],
    ['a step without id', { ...valid, steps: [{ input: { values: [] } }] }],
    ['an uppercase step id', { ...valid, steps: [{ id: 'Src', input: { values: [] } }] }],
    ['an unknown top-level field', { ...valid, stpes: [] }],
    ['version 2', { ...valid, version: 2 }],
    ['no steps', { ...valid, steps: [] }],
    [
      'a string count',
      { ...valid, steps: [...valid.steps, { id: 'x', limit: { from: 'src', count: 'ten' } }] },
    ],
    [
      'a join type outside the enumeration',
      {
        ...valid,
        steps: [
          ...valid.steps,
          { id: 'x', join: { left: 'src', right: 'src', on: { a: 'a' }, type: 'outer' } },
        ],
      },
    ],
    ['a param name starting with a digit', { ...valid, params: { '1st': { type: 'number' } } }],
    ['a param of unknown type', { ...valid, params: { n: { type: 'num' } } }],
  ])('rejects %s', (_name, value) => {
    expect(Value.Check(schema, value)).toBe(false);
  });
});
