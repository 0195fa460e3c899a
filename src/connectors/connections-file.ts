/**
 * Connections for the CLI: a `connections.yaml` beside the flow (or the file given with
 * --connections), mapping names to a connector type and its settings. `${VAR}` and
 * `${VAR:-default}` in values are replaced from the environment, so no secret needs to sit in
 * a file; `$${` is a literal `${`. Each entry is checked against its connector's settings
 * schema, with file:line:col in every message.
 */
import { access, readFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { LetheError, LetheErrors } from '../errors/index.js';
import { didYouMean } from '../errors/suggest.js';
import { schemaProblems } from '../document/schema-problems.js';
import { displayPath, SourceDocument } from '../document/source.js';
import type { ConnectionConfig, ConnectionProvider, ConnectorSession } from './connector.js';
import { CONNECTORS } from './registry.js';

const DEFAULT_NAMES = ['connections.yaml', 'connections.yml', 'connections.json'];
const VARIABLE = /\$(\$?)\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}/g;

type Environment = Readonly<Record<string, string | undefined>>;

/** Replace ${VAR} in one string; returns the names that are not set. */
export function substitute(text: string, env: Environment): { value: string; missing: string[] } {
  const missing: string[] = [];
  const value = text.replace(
    VARIABLE,
    (whole, escaped: string, name: string, fallback: string | undefined) => {
      if (escaped) return whole.slice(1);
      const found = env[name];
      if (found !== undefined) return found;
      if (fallback !== undefined) return fallback;
      missing.push(name);
      return '';
    },
  );
  return { value, missing };
}

async function exists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}

/** Find the connections file for a flow: the one given, or one beside the flow, or none. */
export async function findConnectionsFile(
  given: string | undefined,
  flowDir: string,
): Promise<string | undefined> {
  if (given !== undefined) {
    const path = resolve(given);
    if (!(await exists(path))) throw new LetheError('USAGE', `no such connections file: ${given}`);
    return path;
  }
  for (const name of DEFAULT_NAMES) {
    const path = join(flowDir, name);
    if (await exists(path)) return path;
  }
  return undefined;
}

export async function loadConnections(
  path: string,
  env: Environment = process.env,
): Promise<ConnectionConfig[]> {
  const shown = displayPath(path);
  const source = new SourceDocument(shown, await readFile(path, 'utf8'));
  if (source.errors.length > 0) throw new LetheErrors(source.errors);
  const errors: LetheError[] = [];
  const fail = (at: (string | number)[], message: string, hint?: string) =>
    errors.push(new LetheError('CONNECTIONS_INVALID', message, { location: source.locate(at), hint }));
  const document = source.value ?? {};
  if (document === null || typeof document !== 'object' || Array.isArray(document)) {
    throw new LetheErrors([
      new LetheError('CONNECTIONS_INVALID', 'a connections file maps connection names to settings', {
        location: source.locate([]),
      }),
    ]);
  }
  const connections: ConnectionConfig[] = [];
  for (const [name, entry] of Object.entries(document as Record<string, unknown>)) {
    if (entry === null || typeof entry !== 'object' || Array.isArray(entry)) {
      fail([name], 'a connection is a mapping with a "type" and its settings');
      continue;
    }
    const { type, ...rest } = entry as Record<string, unknown>;
    const connector = typeof type === 'string' ? CONNECTORS.get(type) : undefined;
    if (!connector) {
      const known = [...CONNECTORS.keys()];
      fail(
        [name, 'type'],
        typeof type === 'string'
          ? `unknown connection type "${type}"${didYouMean(type, known)}`
          : 'missing "type"',
        `types: ${known.join(', ')}`,
      );
      continue;
    }
    const settings: Record<string, unknown> = {};
    const unset = new Set<string>();
    for (const [key, value] of Object.entries(rest)) {
      if (typeof value !== 'string') {
        settings[key] = value;
        continue;
      }
      const { value: replaced, missing } = substitute(value, env);
      for (const variable of missing) {
        fail(
          [name, key],
          `environment variable ${variable} is not set`,
          `set it, or give a default: \${${variable}:-value}`,
        );
        unset.add(key);
      }
      settings[key] = replaced;
    }
    for (const problem of schemaProblems(connector.settingsSchema, settings)) {
      // A setting whose variable is missing has been reported already.
      if (unset.has(String(problem.path[0]))) continue;
      const at = [name, ...problem.path];
      errors.push(
        new LetheError('CONNECTIONS_INVALID', problem.message, {
          location: source.locate(at, { atKey: problem.atKey }),
        }),
      );
    }
    connections.push({ name, type: connector.type, settings, baseDir: dirname(path) });
  }
  if (errors.length > 0) throw new LetheErrors(errors);
  return connections;
}

/** Opens each named connection once per run and closes them all at the end. */
export class ConnectionPool implements ConnectionProvider {
  private readonly configs: Map<string, ConnectionConfig>;
  private readonly sessions = new Map<string, Promise<ConnectorSession>>();

  constructor(
    configs: readonly ConnectionConfig[],
    private readonly origin = 'the connections file',
  ) {
    this.configs = new Map(configs.map((config) => [config.name, config]));
  }

  names(): string[] {
    return [...this.configs.keys()];
  }

  session(name: string): Promise<ConnectorSession> {
    let session = this.sessions.get(name);
    if (session) return session;
    const config = this.configs.get(name);
    if (!config) {
      const known = this.names();
      return Promise.reject(
        new LetheError('CONNECTION_ERROR', `no connection "${name}"${didYouMean(name, known)}`, {
          hint:
            known.length > 0
              ? `${this.origin} defines: ${known.join(', ')}`
              : 'define it in connections.yaml beside the flow, or pass --connections FILE',
        }),
      );
    }
    const connector = CONNECTORS.get(config.type)!;
    session = connector.open(config);
    this.sessions.set(name, session);
    return session;
  }

  async closeAll(): Promise<void> {
    const open = [...this.sessions.values()];
    this.sessions.clear();
    await Promise.allSettled(open.map(async (session) => (await session).close()));
  }
}
