/**
 * runs — credentials given at run time. A manual run may bring, for a connection its flow uses,
 * either a whole connection (`type`, `settings`, `secrets`) defined for this run only, or
 * secrets (and settings) that complete a stored connection of that name. They are checked when
 * the run is created and then live in this process's memory only, until the run ends: never in
 * the store, the logs or an error message. A run that would need them again after a restart
 * ends incomplete with CREDENTIALS_LOST. Schedules, webhooks and polls have nobody to ask, so
 * their runs use stored connections only.
 */
import { leavesFolder, type Connector } from '../connectors/connector.js';
import { CONNECTORS } from '../connectors/registry.js';
import { schemaProblems } from '../document/schema-problems.js';
import { formatPath } from '../document/source.js';
import { LetheError, LetheErrors } from '../errors/index.js';
import { didYouMean } from '../errors/suggest.js';
import { connectionsOf } from '../flow/connections.js';
import type { Flow } from '../flow/validate.js';
import type { Vault } from '../security/vault.js';
import type { ConnectionRow } from '../store/records.js';
import type { RunInput } from '../store/runs.js';
import { Redactor } from './privacy.js';

/** One connection's credentials as the API takes them. */
export interface RuntimeConnection {
  /** The connector type: required for a connection that is not stored, else it must match. */
  type?: string;
  /** Settings that are not secret; over a stored connection, they replace its settings of that name. */
  settings?: Record<string, unknown>;
  /** Secret settings (e.g. password); over a stored connection, they replace its secrets of that name. */
  secrets?: Record<string, string>;
}

export type RuntimeCredentials = Record<string, RuntimeConnection>;

/** Credentials checked for a run, held in memory until it ends. */
export interface HeldConnection {
  type: string;
  /** `stored`: they complete the stored connection of that name; `runtime`: a whole connection. */
  base: 'stored' | 'runtime';
  settings: Record<string, unknown>;
  secrets: Record<string, string>;
}

export type HeldCredentials = ReadonlyMap<string, HeldConnection>;

/** A run's input as stored: with the names (only) of the connections given at run time. */
export interface RunInputWithCredentials extends RunInput {
  credentials?: string[];
}

function object(value: unknown): Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value)
    ? (value as Record<string, unknown>)
    : {};
}

export interface CheckCredentialsRequest {
  given: RuntimeCredentials;
  flow: Flow;
  workspaceId: string;
  /** The workspace's stored connection, if any, of a name. */
  stored: (name: string) => Promise<ConnectionRow | undefined>;
  vault: Vault;
  /** The workspace's files folder: file settings must stay in it. */
  filesDir: string;
}

/**
 * Check credentials given for a run: every connection must be one the flow uses; a connection
 * that is not stored needs its type; settings and secrets together (over the stored connection's)
 * must satisfy the connector's schema, with secrets in `secrets` only and file paths inside the
 * workspace's folder. Every problem is reported at once at `credentials.<name>.<field>`, and no
 * message repeats a value that was given.
 */
export async function checkCredentials(
  request: CheckCredentialsRequest,
): Promise<Map<string, HeldConnection>> {
  const { given, flow, workspaceId, vault, filesDir } = request;
  const used = connectionsOf(flow, { signing: false });
  const problems: LetheError[] = [];
  const held = new Map<string, HeldConnection>();
  // Messages never quote what was given: only names of fields and connections.
  const redactor = new Redactor();
  const problem = (path: (string | number)[], message: string, hint?: string) =>
    problems.push(
      new LetheError('CONNECTIONS_INVALID', redactor.text(message), {
        location: { path: formatPath(['credentials', ...path]) },
        ...(hint ? { hint: redactor.text(hint) } : {}),
      }),
    );
  for (const [name, raw] of Object.entries(given)) {
    const entry = object(raw) as RuntimeConnection;
    const settings = object(entry.settings);
    const secrets = object(entry.secrets) as Record<string, string>;
    redactor.addAll(settings);
    redactor.addAll(secrets);
    if (!used.includes(name)) {
      problem(
        [name],
        `the flow "${flow.name}" does not use a connection "${name}"${didYouMean(name, used)}`,
        used.length > 0 ? `it uses: ${used.join(', ')}` : 'it uses no connection',
      );
      continue;
    }
    const row = await request.stored(name);
    const type = entry.type ?? row?.type;
    if (type === undefined) {
      problem(
        [name, 'type'],
        `there is no stored connection "${name}": give its type and settings for this run`,
        `types: ${[...CONNECTORS.keys()].join(', ')}`,
      );
      continue;
    }
    if (row && entry.type !== undefined && entry.type !== row.type) {
      problem(
        [name, 'type'],
        `connection "${name}" is stored as a ${row.type} connection, not ${entry.type}`,
        'leave out the type to complete the stored connection',
      );
      continue;
    }
    const connector: Connector | undefined = CONNECTORS.get(type);
    if (!connector) {
      problem(
        [name, 'type'],
        `unknown connection type${didYouMean(type, CONNECTORS.keys())}`,
        `types: ${[...CONNECTORS.keys()].join(', ')}`,
      );
      continue;
    }
    const secretFields = new Set(connector.secretSettings);
    let local = false;
    for (const field of Object.keys(settings)) {
      if (secretFields.has(field)) {
        problem([name, 'settings', field], `"${field}" is a secret: send it in "secrets", not in "settings"`);
        local = true;
      }
    }
    for (const [field, value] of Object.entries(secrets)) {
      if (typeof value !== 'string') {
        problem([name, 'secrets', field], `secret "${field}" must be a string`);
        local = true;
      } else if (!secretFields.has(field)) {
        problem(
          [name, 'secrets', field],
          `"${field}" is not a secret setting of a ${type} connection (${
            connector.secretSettings.length
              ? `its secrets are ${connector.secretSettings.join(', ')}`
              : 'it has none'
          })`,
        );
        local = true;
      }
    }
    if (local) continue;
    // The connection as the run will open it: stored settings and secrets, then the given ones.
    const merged: Record<string, unknown> = {};
    if (row) {
      Object.assign(merged, JSON.parse(row.settings) as Record<string, unknown>);
      for (const [field, ciphertext] of Object.entries(JSON.parse(row.secrets) as Record<string, string>)) {
        if (field in secrets) continue;
        try {
          merged[field] = await vault.decrypt(workspaceId, name, field, ciphertext);
        } catch {
          problem(
            [name],
            `the stored secrets of connection "${name}" cannot be decrypted`,
            'give them for this run',
          );
        }
      }
    }
    Object.assign(merged, settings, secrets);
    for (const found of schemaProblems(connector.settingsSchema, merged)) {
      const head = found.path[0];
      const where = typeof head === 'string' && secretFields.has(head) ? 'secrets' : 'settings';
      problem([name, where, ...found.path], found.message);
    }
    for (const field of connector.fileSettings) {
      const value = merged[field];
      if (typeof value === 'string' && value !== ':memory:' && leavesFolder(filesDir, value)) {
        problem(
          [name, 'settings', field],
          `the ${field} leads outside the workspace's files folder`,
          'use a path relative to the workspace folder, without ".."',
        );
      }
    }
    held.set(name, {
      type,
      base: row ? 'stored' : 'runtime',
      settings: { ...settings },
      secrets: { ...secrets },
    });
  }
  if (problems.length > 0) throw new LetheErrors(problems);
  return held;
}

/** Every value of held credentials that must never be stored or shown. */
export function credentialValues(held: HeldCredentials | undefined, redactor: Redactor): void {
  for (const connection of held?.values() ?? []) {
    redactor.addAll(connection.settings);
    redactor.addAll(connection.secrets);
  }
}
