/**
 * Connections for a server run: the workspace's stored connections, their secrets decrypted by
 * the vault only when a step opens the connection, and merged into the settings the connector
 * sees. Decrypted values stay in this run's memory.
 */
import { didYouMean } from '../errors/suggest.js';
import { LetheError } from '../errors/index.js';
import { leavesFolder, type ConnectionProvider, type ConnectorSession } from '../connectors/connector.js';
import { CONNECTORS } from '../connectors/registry.js';
import type { Vault } from '../security/vault.js';
import type { ConnectionRow } from '../store/records.js';

export class StoredConnections implements ConnectionProvider {
  private readonly sessions = new Map<string, Promise<ConnectorSession>>();
  /** The workspace's connection rows, read on first use: most flows use none. */
  private rows: Promise<Map<string, ConnectionRow>> | undefined;
  private loaded: Map<string, ConnectionRow> | undefined;

  constructor(
    private readonly load: () => Promise<readonly ConnectionRow[]>,
    private readonly vault: Vault,
    private readonly baseDir: string,
  ) {}

  names(): string[] {
    return [...(this.loaded?.keys() ?? [])];
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
    if (!row) {
      throw new LetheError(
        'CONNECTION_ERROR',
        `no connection "${name}" in this workspace${didYouMean(name, rows.keys())}`,
        {
          hint: 'create it with PUT /api/v1/workspaces/{ws}/connections/{name}',
        },
      );
    }
    const connector = CONNECTORS.get(row.type);
    if (!connector)
      throw new LetheError('CONNECTION_ERROR', `connection "${name}" has an unknown type "${row.type}"`);
    const settings = JSON.parse(row.settings) as Record<string, unknown>;
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
    const secrets = JSON.parse(row.secrets) as Record<string, string>;
    for (const [field, ciphertext] of Object.entries(secrets)) {
      settings[field] = await this.vault.decrypt(row.workspace_id, name, field, ciphertext);
    }
    return connector.open({ name, type: row.type, settings, baseDir: this.baseDir });
  }

  async closeAll(): Promise<void> {
    const open = [...this.sessions.values()];
    this.sessions.clear();
    await Promise.allSettled(open.map(async (session) => (await session).close()));
  }
}
