/**
 * Turning node-postgres failures into Lethe errors. A failure either comes from the server
 * about a statement (it has a five-character SQLSTATE) or is about the connection itself
 * (refused, broken, TLS, authentication). Messages name the connection and where it points,
 * never the password or a value.
 */
import { LetheError } from '../../errors/index.js';
import { redactValues } from '../sql/values.js';
import type { PostgresEndpoint } from './settings.js';

/** The fields of node-postgres's DatabaseError that messages use. */
export interface ServerError {
  code: string;
  message: string;
  position?: string;
  hint?: string;
}

export function isServerError(error: unknown): error is ServerError {
  const code = (error as { code?: unknown } | null)?.code;
  // Class 08 is "connection exception": about the connection, not the statement.
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code) && !code.startsWith('08');
}

/** PostgreSQL's own hint, or one for the few codes that have a clear remedy. */
export function serverHint(error: ServerError): string | undefined {
  if (error.hint) return error.hint;
  switch (error.code) {
    case '57014':
      return 'the statement was cancelled: it ran longer than statementTimeoutMs, or an administrator cancelled it';
    case '42501':
      return 'the connection’s user lacks a privilege this needs';
    case '25006':
      return 'the server or the user is read-only';
    default:
      return undefined;
  }
}

export function describeEndpoint(endpoint: PostgresEndpoint): string {
  const at = endpoint.host.startsWith('/') ? `socket ${endpoint.host}` : `${endpoint.host}:${endpoint.port}`;
  return `${at}/${endpoint.database}`;
}

const UNREACHABLE = new Set([
  'ECONNREFUSED',
  'ENOTFOUND',
  'EAI_AGAIN',
  'ETIMEDOUT',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ECONNRESET',
]);
const UNTRUSTED_CERTIFICATE = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_HAS_EXPIRED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
]);

function connectHint(error: unknown, endpoint: PostgresEndpoint, label: string): string {
  const code = (error as { code?: unknown } | null)?.code;
  const message = error instanceof Error ? error.message : '';
  if (typeof code === 'string' && UNREACHABLE.has(code))
    return `is PostgreSQL running at ${describeEndpoint(endpoint)} and reachable from here? check host and port`;
  if (/timeout/i.test(message))
    return `no answer in time from ${describeEndpoint(endpoint)}; check host, port and firewalls`;
  if (code === '28P01' || code === '28000') {
    return /SSL off|no encryption/i.test(message)
      ? 'the server accepts this user only over TLS: set ssl: require, verify-ca or verify-full'
      : 'check user and password';
  }
  if (code === '3D000') return 'check the database name';
  if (/does not support SSL/i.test(message))
    return 'the server does not offer TLS; set ssl: disable only on a network you trust';
  if (typeof code === 'string' && UNTRUSTED_CERTIFICATE.has(code)) {
    return `the server's certificate could not be verified (ssl: ${endpoint.ssl}); give its CA with sslRootCert, use verify-ca if only the host name differs, or require to encrypt without verifying`;
  }
  return `check the settings of ${label}`;
}

/** A failure to connect, or to use an established connection. */
export function connectionError(
  error: unknown,
  endpoint: PostgresEndpoint,
  label: string,
  doing = 'connect to',
): LetheError {
  const message = redactValues(error instanceof Error ? error.message : String(error), [endpoint.password]);
  return new LetheError(
    'CONNECTION_ERROR',
    `cannot ${doing} ${label} at ${describeEndpoint(endpoint)}: ${message}`,
    {
      cause: error,
      hint: connectHint(error, endpoint, label),
    },
  );
}
