/** Loading flows from files or text, and typing run parameters. */
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { LetheError, LetheErrors } from '../errors/index.js';
import { didYouMean } from '../errors/suggest.js';
import { ConversionError, convert } from '../table/types.js';
import type { Value } from '../table/index.js';
import { displayPath, SourceDocument } from '../document/source.js';
import { validateFlow, type Flow } from './validate.js';

export interface LoadedFlow {
  flow: Flow;
  source: SourceDocument;
  /** Folder that relative paths in the flow resolve against. */
  baseDir: string;
}

/** Parse and validate flow text; throws LetheErrors with every problem. */
export function parseFlow(text: string, displayName: string, baseDir: string): LoadedFlow {
  const source = new SourceDocument(displayName, text);
  const result = validateFlow(source);
  if (result.flow === undefined) throw new LetheErrors(result.errors);
  return { flow: result.flow, source, baseDir };
}

export async function loadFlow(path: string): Promise<LoadedFlow> {
  const absolute = resolve(path);
  let text: string;
  try {
    text = await readFile(absolute, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new LetheError(
      'USAGE',
      code === 'ENOENT' ? `no such flow file: ${path}` : `cannot read ${path}: ${(error as Error).message}`,
    );
  }
  return parseFlow(text, displayPath(absolute), dirname(absolute));
}

/**
 * Typed parameter values: given ones (text from the command line, or JSON values from an API)
 * converted to their declared type, defaults for the rest. Unknown or missing ones are errors.
 */
export function resolveParams(flow: Flow, given: Readonly<Record<string, unknown>>): Record<string, Value> {
  const errors: LetheError[] = [];
  const values: Record<string, Value> = {};
  const declared = Object.keys(flow.params);
  for (const name of Object.keys(given)) {
    if (!Object.prototype.hasOwnProperty.call(flow.params, name)) {
      errors.push(
        new LetheError(
          'PARAM_INVALID',
          declared.length === 0
            ? `unknown parameter "${name}": the flow declares no params`
            : `unknown parameter "${name}"${didYouMean(name, declared)}; the flow declares ${declared.join(', ')}`,
        ),
      );
    }
  }
  for (const [name, definition] of Object.entries(flow.params)) {
    const provided = Object.prototype.hasOwnProperty.call(given, name) ? given[name] : undefined;
    const raw = provided ?? definition.default;
    if (raw === undefined || raw === null) {
      if (provided === undefined && definition.default === undefined) {
        errors.push(
          new LetheError('PARAM_INVALID', `missing parameter "${name}" (${definition.type})`, {
            hint: `give it with --param ${name}=…`,
          }),
        );
      } else {
        values[name] = null;
      }
      continue;
    }
    try {
      values[name] = convert(raw as Value, definition.type);
    } catch (error) {
      if (!(error instanceof ConversionError)) throw error;
      errors.push(
        new LetheError(
          'PARAM_INVALID',
          `parameter "${name}": ${error.message} (declared ${definition.type})`,
        ),
      );
    }
  }
  if (errors.length > 0) throw new LetheErrors(errors);
  return values;
}
