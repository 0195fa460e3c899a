/**
 * Connections for a server run: the workspace's stored connections, their secrets decrypted by
 * the vault only when a step opens the connection, and merged into the settings the connector
 * sees. Decrypted values stay in this run's memory.
 */
import { didYouMean } from '../errors/suggest.js';
import { LetheError } from '../errors/index.js';
import type { ConnectionProvider, ConnectorSession } from '../connectors/connector.js';
import { CONNECTORS } from '../connectors/registry.js';
import type { Vault } from '../security/vault.js';
import type { ConnectionRow } from '../store/records.js';

export class StoredConnections implements ConnectionProvider {
  private readonly sessions = new Map<string, Promise<ConnectorSession>>();
  private readonly rows: Map<string, ConnectionRow>;

  constructor(
    rows: readonly ConnectionRow[],
    private readonly vault: Vault,
    private readonly baseDir: string,
  ) {
    this.rows = new Map(rows.map((row) => [row.name, row]));
  }

  names(): string[] {
    return [...this.rows.keys()];
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
    const row = this.rows.get(name);
    if (!row) {
      throw new LetheError(
        'CONNECTION_ERROR',
        `no connection "${name}" in this workspace${didYouMean(name, this.rows.keys())}`,
        {
          hint: 'create it with PUT /api/v1/workspaces/{ws}/connections/{name}',
        },
      );
    }
    const connector = CONNECTORS.get(row.type);
    if (!connector)
      throw new LetheError('CONNECTION_ERROR', `connection "${name}" has an unknown type "${row.type}"`);
    const settings = JSON.parse(row.settings) as Record<string, unknown>;
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
