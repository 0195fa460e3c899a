/**
 * A PostgreSQL session (loaded only when a flow uses a postgres connection, so the CLI starts
 * without node-postgres).
 *
 * A session owns a small pool, so steps of one run can read and write the same connection at
 * once, each on its own server connection (a write's transaction never sees another step's
 * statements). Every connection is set up the same way: Lethe's type parsers (./types.ts),
 * DateStyle ISO, the statement timeout, and credentials from the settings only — never from
 * PGPASSWORD, ~/.pgpass or other ambient sources. Opening a session connects once, so a wrong
 * host or password fails at open. Cancelling a run drops the connection of a running statement
 * (so the run stops at once and the transaction can never commit) and asks the server to
 * cancel the statement.
 *
 * Every connection goes through the egress layer: the host is checked when the session opens
 * (all its addresses; loopback, private and metadata addresses are refused unless allow-listed),
 * and the pool connects to the checked address, never resolving the name again.
 */
import pg, { type ClientBase, type PoolClient } from 'pg';
import { checkTcpTarget, currentEgress } from '../../egress/index.js';
import { LetheError } from '../../errors/index.js';
import type { Table } from '../../table/index.js';
import type {
  ConnectionConfig,
  ConnectorSession,
  IoContext,
  ReadRequest,
  WriteRequest,
  WriteResult,
} from '../connector.js';
import { cancelled, connectionLabel } from '../sql/errors.js';
import { checkSettings } from '../sql/settings.js';
import { connectionError, isServerError, serverHint } from './errors.js';
import { readPostgres } from './read.js';
import {
  postgresSettingsSchema,
  resolveEndpoint,
  tlsOptions,
  withServername,
  type PostgresEndpoint,
} from './settings.js';
import { postgresTypes } from './types.js';
import { writePostgres } from './write.js';

const POOL_SIZE = 2;
const IDLE_TIMEOUT_MS = 10_000;
const CONNECT_TIMEOUT_MS = 15_000;

/** The server process of each pooled connection, to cancel its statement when a run is cancelled. */
const backendPids = new WeakMap<ClientBase, number>();

async function configureConnection(client: ClientBase, endpoint: PostgresEndpoint): Promise<void> {
  const result = await client.query<[number]>({
    text: `select pg_backend_pid(), set_config('datestyle', 'ISO', false)`,
    rowMode: 'array',
  });
  backendPids.set(client, result.rows[0]![0]);
  if (endpoint.statementTimeoutMs !== undefined) {
    await client.query(`select set_config('statement_timeout', $1, false)`, [
      String(endpoint.statementTimeoutMs),
    ]);
  }
}

class PostgresSession implements ConnectorSession {
  private closed = false;
  private readonly pool: pg.Pool;
  /** Cancel requests on their way, which close() waits for. */
  private readonly cancelling = new Set<Promise<void>>();

  constructor(
    private readonly clientConfig: pg.ClientConfig,
    private readonly endpoint: PostgresEndpoint,
    private readonly label: string,
  ) {
    this.pool = new pg.Pool({
      ...clientConfig,
      max: POOL_SIZE,
      idleTimeoutMillis: IDLE_TIMEOUT_MS,
      onConnect: (client) => configureConnection(client, endpoint),
    });
    // An idle connection that breaks (server restart) is reported here; without a listener the
    // process would exit. The pool drops it, and the next operation connects afresh.
    this.pool.on('error', () => undefined);
  }

  read(request: ReadRequest, context: IoContext): Promise<Table> {
    return this.withClient(context, 'SOURCE_ERROR', (client) =>
      readPostgres(client, request, context, this.label),
    );
  }

  write(request: WriteRequest, table: Table, context: IoContext): Promise<WriteResult> {
    return this.withClient(context, 'SINK_ERROR', (client) =>
      writePostgres(client, request, table, context, this.label),
    );
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.cancelling);
    await this.pool.end();
  }

  /** A pooled connection, set up by configureConnection when it is new. */
  async checkout(): Promise<PoolClient> {
    if (this.closed) throw new LetheError('CONNECTION_ERROR', `${this.label} is closed`);
    try {
      return await this.pool.connect();
    } catch (error) {
      throw connectionError(error, this.endpoint, this.label);
    }
  }

  private cancelBackend(pid: number): void {
    const sent = this.sendCancel(pid);
    this.cancelling.add(sent);
    void sent.finally(() => this.cancelling.delete(sent));
  }

  private async sendCancel(pid: number): Promise<void> {
    const canceller = new pg.Client(this.clientConfig);
    canceller.on('error', () => undefined);
    try {
      await canceller.connect();
      await canceller.query('select pg_cancel_backend($1)', [pid]);
    } catch {
      // Best effort: the dropped connection ends the statement in any case, only later.
    } finally {
      await canceller.end().catch(() => undefined);
    }
  }

  /** Runs one operation on its own connection; the connection of a failed operation is discarded. */
  private async withClient<T>(
    context: IoContext,
    failure: 'SOURCE_ERROR' | 'SINK_ERROR',
    operation: (client: PoolClient) => Promise<T>,
  ): Promise<T> {
    if (context.signal.aborted) throw cancelled();
    const client = await this.checkout();
    let released = false;
    const release = (discard: boolean) => {
      if (released) return;
      released = true;
      client.release(discard);
    };
    // Dropping the connection returns at once, but the server only notices a dropped client when
    // it next writes to it: cancelling the statement too stops it and releases its locks now.
    const onAbort = () => {
      const pid = backendPids.get(client);
      release(true);
      if (pid !== undefined) this.cancelBackend(pid);
    };
    context.signal.addEventListener('abort', onAbort, { once: true });
    let failed = false;
    try {
      return await operation(client);
    } catch (error) {
      failed = true;
      if (context.signal.aborted) throw cancelled();
      if (error instanceof LetheError) throw error;
      if (isServerError(error)) {
        throw new LetheError(failure, `${this.label} failed: ${error.message}`, {
          cause: error,
          hint: serverHint(error),
        });
      }
      throw connectionError(
        error,
        this.endpoint,
        this.label,
        failure === 'SOURCE_ERROR' ? 'read from' : 'write to',
      );
    } finally {
      context.signal.removeEventListener('abort', onAbort);
      release(failed);
    }
  }
}

export async function openSession(connection: ConnectionConfig): Promise<PostgresSession> {
  const settings = checkSettings(postgresSettingsSchema, connection);
  const label = connectionLabel('PostgreSQL', connection.name);
  const endpoint = resolveEndpoint(settings, label);
  // The egress layer checks the host (every address it resolves to) now; the pool then connects
  // to the checked address only, with the original name kept for TLS.
  const target = await checkTcpTarget(currentEgress(), endpoint.host, endpoint.port, label);
  const session = new PostgresSession(
    {
      host: target.host,
      port: endpoint.port,
      database: endpoint.database,
      user: endpoint.user,
      // A function, so that node-postgres never falls back to PGPASSWORD or ~/.pgpass.
      password: async () => endpoint.password ?? '',
      ssl: withServername(await tlsOptions(endpoint, connection, label), target.servername),
      application_name: endpoint.applicationName,
      types: postgresTypes,
      connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
      keepAlive: true,
      ...(target.socket ? { stream: target.socket } : {}),
    },
    endpoint,
    label,
  );
  try {
    (await session.checkout()).release();
  } catch (error) {
    await session.close();
    throw error;
  }
  return session;
}
