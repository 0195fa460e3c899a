/**
 * Settings of a PostgreSQL connection and how they become node-postgres options.
 *
 * `url` (postgres://user:password@host:5432/database?sslmode=require) or `host` + `database`;
 * settings given beside `url` override its parts, so a password can live in its own secret
 * setting. The URL is parsed here rather than by node-postgres so that `sslmode` means what the
 * `ssl` setting means, and so that an unknown URL parameter is an error, not silently ignored.
 *
 * TLS modes (as in libpq): disable = plain TCP; require = encrypted, the certificate is not
 * checked; verify-ca = the certificate must chain to a trusted CA (sslRootCert, else the
 * system's), any host name; verify-full = verify-ca and the host name must match. The default
 * is disable, as in node-postgres.
 *
 * The session connects to the address the egress layer checked (../../egress), so the TLS
 * options carry the original host name as `servername`: SNI and verify-full's name check use
 * the name, not the address.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { ConnectionOptions } from 'node:tls';
import Type, { type Static } from 'typebox';
import { LetheError } from '../../errors/index.js';
import type { ConnectionConfig } from '../connector.js';

export const SSL_MODES = ['disable', 'require', 'verify-ca', 'verify-full'] as const;
export type SslMode = (typeof SSL_MODES)[number];

export const postgresSettingsSchema = Type.Object(
  {
    url: Type.Optional(
      Type.String({
        minLength: 1,
        description:
          'postgres://user:password@host:5432/database?sslmode=require; settings given beside it override its parts. URL parameters: sslmode, sslrootcert, application_name, host.',
      }),
    ),
    host: Type.Optional(
      Type.String({ minLength: 1, description: 'Host name or address, or the folder of a Unix socket.' }),
    ),
    port: Type.Optional(Type.Integer({ minimum: 1, maximum: 65535, description: 'Port (default 5432).' })),
    database: Type.Optional(Type.String({ minLength: 1, description: 'Database name.' })),
    user: Type.Optional(Type.String({ minLength: 1, description: 'User name.' })),
    password: Type.Optional(Type.String({ description: 'Password (a secret).' })),
    ssl: Type.Optional(
      Type.Union(
        SSL_MODES.map((mode) => Type.Literal(mode)),
        { description: 'TLS mode: disable (default), require, verify-ca or verify-full.' },
      ),
    ),
    sslRootCert: Type.Optional(
      Type.String({
        minLength: 1,
        description: 'PEM file of the CA certificates to trust, relative to the connections file.',
      }),
    ),
    applicationName: Type.Optional(
      Type.String({ description: 'Shown in pg_stat_activity (default "lethe").' }),
    ),
    statementTimeoutMs: Type.Optional(
      Type.Integer({
        minimum: 0,
        description: 'Cancel a statement that runs longer than this, in milliseconds (0: no limit).',
      }),
    ),
  },
  { additionalProperties: false, description: 'A PostgreSQL database.' },
);

export type PostgresSettings = Static<typeof postgresSettingsSchema>;

/** Where and how to connect, with every default applied. */
export interface PostgresEndpoint {
  host: string;
  port: number;
  database: string;
  user: string;
  password: string | undefined;
  ssl: SslMode;
  sslRootCert: string | undefined;
  applicationName: string;
  statementTimeoutMs: number | undefined;
}

const URL_PARAMETERS = ['sslmode', 'sslrootcert', 'application_name', 'host'] as const;

function invalidUrl(label: string, why: string): LetheError {
  return new LetheError('CONNECTION_ERROR', `the url of ${label} ${why}`, {
    hint: 'write it as postgres://user:password@host:5432/database (percent-encode special characters)',
  });
}

/** The parts of a postgres:// URL. Messages never repeat the URL: it may hold a password. */
function parseUrl(text: string, label: string): Partial<PostgresEndpoint> {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw invalidUrl(label, 'is not a valid URL');
  }
  if (url.protocol !== 'postgres:' && url.protocol !== 'postgresql:') {
    throw invalidUrl(label, 'must start with postgres://');
  }
  const decode = (part: string) => {
    try {
      return decodeURIComponent(part);
    } catch {
      throw invalidUrl(label, 'has a malformed %-escape');
    }
  };
  const parts: Partial<PostgresEndpoint> = {};
  if (url.hostname) parts.host = decode(url.hostname).replace(/^\[(.*)\]$/, '$1');
  if (url.port) parts.port = Number(url.port);
  if (url.username) parts.user = decode(url.username);
  if (url.password) parts.password = decode(url.password);
  if (url.pathname.length > 1) parts.database = decode(url.pathname.slice(1));
  for (const [name, value] of url.searchParams) {
    switch (name as (typeof URL_PARAMETERS)[number]) {
      case 'sslmode':
        if (!(SSL_MODES as readonly string[]).includes(value)) {
          throw new LetheError(
            'CONNECTION_ERROR',
            `the url of ${label} has sslmode=${value}, which Lethe does not support`,
            {
              hint: `use one of ${SSL_MODES.join(', ')}`,
            },
          );
        }
        parts.ssl = value as SslMode;
        break;
      case 'sslrootcert':
        parts.sslRootCert = value;
        break;
      case 'application_name':
        parts.applicationName = value;
        break;
      case 'host':
        parts.host = value;
        break;
      default:
        throw new LetheError(
          'CONNECTION_ERROR',
          `the url of ${label} has the parameter "${name}", which Lethe does not support`,
          {
            hint: `URL parameters: ${URL_PARAMETERS.join(', ')}; give other options as settings of the connection`,
          },
        );
    }
  }
  return parts;
}

export function resolveEndpoint(settings: PostgresSettings, label: string): PostgresEndpoint {
  const url = settings.url === undefined ? {} : parseUrl(settings.url, label);
  const host = settings.host ?? url.host;
  const database = settings.database ?? url.database;
  const user = settings.user ?? url.user;
  const missing = Object.entries({ host, database, user }).flatMap(([name, value]) =>
    value === undefined ? [name] : [],
  );
  if (host === undefined || database === undefined || user === undefined) {
    throw new LetheError('CONNECTION_ERROR', `${label} needs ${missing.join(', ')}`, {
      hint: 'give url: postgres://user@host:5432/database, or the settings host, database and user',
    });
  }
  const ssl = settings.ssl ?? url.ssl ?? 'disable';
  const sslRootCert = settings.sslRootCert ?? url.sslRootCert;
  if (sslRootCert !== undefined && ssl !== 'verify-ca' && ssl !== 'verify-full') {
    throw new LetheError(
      'CONNECTION_ERROR',
      `${label} gives sslRootCert, but ssl is ${ssl}, which checks no certificate`,
      {
        hint: 'set ssl: verify-full (or verify-ca), or leave sslRootCert out',
      },
    );
  }
  return {
    host,
    port: settings.port ?? url.port ?? 5432,
    database,
    user,
    password: settings.password ?? url.password,
    ssl,
    sslRootCert,
    applicationName: settings.applicationName ?? url.applicationName ?? 'lethe',
    statementTimeoutMs: settings.statementTimeoutMs,
  };
}

/** `ssl` for node-postgres: false, or the options of tls.connect. */
export async function tlsOptions(
  endpoint: PostgresEndpoint,
  connection: ConnectionConfig,
  label: string,
): Promise<false | ConnectionOptions> {
  if (endpoint.ssl === 'disable') return false;
  if (endpoint.ssl === 'require') return { rejectUnauthorized: false };
  let ca: string | undefined;
  if (endpoint.sslRootCert !== undefined) {
    const path = resolve(connection.baseDir, endpoint.sslRootCert);
    try {
      ca = await readFile(path, 'utf8');
    } catch (error) {
      throw new LetheError(
        'CONNECTION_ERROR',
        `cannot read sslRootCert "${endpoint.sslRootCert}" of ${label}: ${(error as Error).message}`,
        {
          cause: error,
          hint: `the path resolves to ${path}`,
        },
      );
    }
  }
  const options: ConnectionOptions = { rejectUnauthorized: true, ...(ca === undefined ? {} : { ca }) };
  // verify-ca trusts any host name the chain is valid for; tls checks the name unless told not to.
  if (endpoint.ssl === 'verify-ca') options.checkServerIdentity = () => undefined;
  return options;
}

/** The TLS options with the host's name for SNI and the certificate check (none for addresses). */
export function withServername(
  ssl: false | ConnectionOptions,
  servername: string | undefined,
): false | ConnectionOptions {
  if (ssl === false || servername === undefined) return ssl;
  return { ...ssl, servername };
}
