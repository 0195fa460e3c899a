/**
 * Connections for a server run: the workspace's stored connections, their secrets decrypted by
 * the vault only when a step opens the connection, and merged into the settings the connector
 * sees; for a manual run, also credentials given at run time (./credentials.ts), over a stored
 * connection or instead of one. Decrypted and given values stay in this run's memory, and are
 * handed to the run's Redactor so that nothing stored about the run repeats them.
 */
import { didYouMean } from '../errors/suggest.js';
import { LetheError } from '../errors/index.js';
import { leavesFolder, type ConnectionProvider, type ConnectorSession } from '../connectors/connector.js';
import { CONNECTORS } from '../connectors/registry.js';
import type { Vault } from '../security/vault.js';
import type { ConnectionRow } from '../store/records.js';
import type { HeldCredentials } from './credentials.js';
import type { Redactor } from './privacy.js';

export interface StoredConnectionsOptions {
  /** Credentials given at run time (manual runs only). */
  runtime?: HeldCredentials;
  /** Learns every secret value opened, to redact it from what is stored. */
  redactor?: Redactor;
  /** The run's trigger, for the message when a connection is missing. */
  trigger?: string;
}

export class StoredConnections implements ConnectionProvider {
  private readonly sessions = new Map<string, Promise<ConnectorSession>>();
  /** The workspace's connection rows, read on first use: most flows use none. */
  private rows: Promise<Map<string, ConnectionRow>> | undefined;
  private loaded: Map<string, ConnectionRow> | undefined;

  constructor(
    private readonly load: () => Promise<readonly ConnectionRow[]>,
    private readonly vault: Vault,
    private readonly baseDir: string,
    private readonly options: StoredConnectionsOptions = {},
  ) {}

  names(): string[] {
    return [...new Set([...(this.loaded?.keys() ?? []), ...(this.options.runtime?.keys() ?? [])])];
  }

  session(name: string): Promise<ConnectorSession> {
    let session = this.sessions.get(name);
    if (!session) {
      session = this.open(name);
      this.sessions.set(name, session);
    }
    return session;
  }

  private async open(name: string): Promise<ConnectorSession> {
    this.rows ??= this.load().then((rows) => (this.loaded = new Map(rows.map((row) => [row.name, row]))));
    const rows = await this.rows;
    const row = rows.get(name);
    const given = this.options.runtime?.get(name);
    const redactor = this.options.redactor;
    if (given) {
      redactor?.addAll(given.settings);
      redactor?.addAll(given.secrets);
    }
    if (!row && given?.base !== 'runtime') {
      const manual = this.options.trigger === undefined || this.options.trigger === 'manual';
      throw new LetheError(
        'CONNECTION_ERROR',
        given
          ? `the stored connection "${name}" that this run's credentials complete no longer exists`
          : manual
            ? `no connection "${name}" in this workspace${didYouMean(name, rows.keys())}`
            : `no stored connection "${name}" in this workspace${didYouMean(name, rows.keys())}: ` +
              `${this.options.trigger} runs need their connections stored (only manual runs may bring credentials at run time)`,
        {
          hint: manual
            ? 'create it with PUT /api/v1/workspaces/{ws}/connections/{name}, or give it for this run ("credentials", lethe run --ask-credentials)'
            : 'create it with PUT /api/v1/workspaces/{ws}/connections/{name}',
        },
      );
    }
    const type = given?.type ?? row!.type;
    const connector = CONNECTORS.get(type);
    if (!connector)
      throw new LetheError('CONNECTION_ERROR', `connection "${name}" has an unknown type "${type}"`);
    const settings: Record<string, unknown> = {};
    if (row && given?.base !== 'runtime') {
      if (row.type !== type) {
        throw new LetheError(
          'CONNECTION_ERROR',
          `the stored connection "${name}" changed its type since the run began`,
        );
      }
      Object.assign(settings, JSON.parse(row.settings) as Record<string, unknown>);
      const secrets = JSON.parse(row.secrets) as Record<string, string>;
      for (const [field, ciphertext] of Object.entries(secrets)) {
        if (given && field in given.secrets) continue;
        const value = await this.vault.decrypt(row.workspace_id, name, field, ciphertext);
        redactor?.add(value);
        settings[field] = value;
      }
    }
    if (given) Object.assign(settings, given.settings, given.secrets);
    // Checked again here, not only when the connection was saved: rows may come from elsewhere.
    for (const field of connector.fileSettings) {
      const value = settings[field];
      if (typeof value === 'string' && value !== ':memory:' && leavesFolder(this.baseDir, value)) {
        throw new LetheError(
          'CONNECTION_ERROR',
          `the ${field} of connection "${name}" leads outside the workspace's files folder`,
        );
      }
    }
    return connector.open({ name, type, settings, baseDir: this.baseDir });
  }

  async closeAll(): Promise<void> {
    const open = [...this.sessions.values()];
    this.sessions.clear();
    await Promise.allSettled(open.map(async (session) => (await session).close()));
  }
}
