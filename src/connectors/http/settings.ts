/**
 * Settings of an HTTP/REST connection and how they become what the session uses.
 *
 * Settings are flat, so that every secret is one string the vault can hold on its own:
 * `auth: basic` with `username` + `password`, `auth: bearer` with `token`, `auth: apiKey` with
 * `apiKeyName`, `apiKeyIn` (header or query) and `apiKey`. TLS: `tls` (require, verify-ca,
 * verify-full — the default for https — or disable for plain http), the CA to trust
 * (`caCert` PEM or `caCertFile`), and a client certificate for mutual TLS: `clientCert` +
 * `clientKey` (PEM text, or the …File settings), or `pkcs12` (base64) / `pkcs12File`, with
 * `passphrase`. Messages name settings, never their values.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import Type, { type Static } from 'typebox';
import { TLS_MODES, checkClientCertificate, type TlsMaterial, type TlsSettings } from '../../egress/tls.js';
import { LetheError } from '../../errors/index.js';
import type { ConnectionConfig } from '../connector.js';

export const AUTH_TYPES = ['none', 'basic', 'bearer', 'apiKey'] as const;
export type AuthType = (typeof AUTH_TYPES)[number];

const HEADER_NAME = "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$";

export const HeaderMap = Type.Record(Type.String({ pattern: HEADER_NAME }), Type.String(), {
  description: 'Header name → value.',
});

export const httpSettingsSchema = Type.Object(
  {
    baseUrl: Type.String({
      minLength: 1,
      description:
        'http:// or https:// URL that request paths are relative to, e.g. https://api.example.com/v2.',
    }),
    auth: Type.Optional(Type.Enum(AUTH_TYPES, { description: 'none (default), basic, bearer or apiKey.' })),
    username: Type.Optional(Type.String({ description: 'basic: the user name.' })),
    password: Type.Optional(Type.String({ description: 'basic: the password (a secret).' })),
    token: Type.Optional(Type.String({ minLength: 1, description: 'bearer: the token (a secret).' })),
    apiKeyName: Type.Optional(
      Type.String({
        minLength: 1,
        description: 'apiKey: the header or query parameter name, e.g. X-API-Key.',
      }),
    ),
    apiKeyIn: Type.Optional(
      Type.Enum(['header', 'query'], {
        description: 'apiKey: send it as a header (default) or query parameter.',
      }),
    ),
    apiKey: Type.Optional(Type.String({ minLength: 1, description: 'apiKey: the key (a secret).' })),
    headers: Type.Optional(HeaderMap),
    timeoutMs: Type.Optional(
      Type.Integer({
        minimum: 1,
        maximum: 600_000,
        description: 'Per-request time limit in ms (default 30000).',
      }),
    ),
    retries: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 10,
        description: 'Retries on 429, 502, 503, 504 and network errors (default 3).',
      }),
    ),
    retryDelayMs: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 60_000,
        description: 'First back-off delay, doubled each retry (default 500).',
      }),
    ),
    retryMaxDelayMs: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 600_000,
        description:
          'Longest wait before a retry, Retry-After included (default 30000); a longer Retry-After fails.',
      }),
    ),
    maxRedirects: Type.Optional(
      Type.Integer({
        minimum: 0,
        maximum: 20,
        description: 'Redirects followed (default 5), each checked by the egress layer.',
      }),
    ),
    maxResponseBytes: Type.Optional(
      Type.Integer({ minimum: 1, description: 'Largest answer read, in bytes (default 64 MiB).' }),
    ),
    tls: Type.Optional(
      Type.Enum(TLS_MODES, {
        description:
          'verify-full (default for https), verify-ca, require (no certificate check), or disable (http only).',
      }),
    ),
    caCert: Type.Optional(Type.String({ minLength: 1, description: 'PEM of the CA certificates to trust.' })),
    caCertFile: Type.Optional(
      Type.String({ minLength: 1, description: 'PEM file of the CA certificates to trust.' }),
    ),
    clientCert: Type.Optional(
      Type.String({ minLength: 1, description: 'PEM client certificate for mutual TLS.' }),
    ),
    clientCertFile: Type.Optional(
      Type.String({ minLength: 1, description: 'PEM file of the client certificate.' }),
    ),
    clientKey: Type.Optional(
      Type.String({ minLength: 1, description: 'PEM private key of the client certificate (a secret).' }),
    ),
    clientKeyFile: Type.Optional(Type.String({ minLength: 1, description: 'PEM file of the client key.' })),
    pkcs12: Type.Optional(
      Type.String({
        minLength: 1,
        description: 'Base64 PKCS#12 bundle (.p12/.pfx) of the client certificate and key (a secret).',
      }),
    ),
    pkcs12File: Type.Optional(
      Type.String({ minLength: 1, description: 'PKCS#12 file of the client certificate and key.' }),
    ),
    passphrase: Type.Optional(
      Type.String({ description: 'Passphrase of the client key or PKCS#12 bundle (a secret).' }),
    ),
  },
  { additionalProperties: false, description: 'An HTTP/REST API.' },
);

export type HttpSettings = Static<typeof httpSettingsSchema>;

export const HTTP_SECRET_SETTINGS = [
  'password',
  'token',
  'apiKey',
  'clientKey',
  'pkcs12',
  'passphrase',
] as const;
export const HTTP_FILE_SETTINGS = ['caCertFile', 'clientCertFile', 'clientKeyFile', 'pkcs12File'] as const;

export type Auth =
  | { type: 'none' }
  | { type: 'basic'; header: string }
  | { type: 'bearer'; header: string }
  | { type: 'apiKey'; name: string; in: 'header' | 'query'; value: string };

/** Everything a session needs, with defaults applied and files read. */
export interface HttpEndpoint {
  baseUrl: URL;
  auth: Auth;
  headers: Record<string, string>;
  timeoutMs: number;
  retries: number;
  retryDelayMs: number;
  retryMaxDelayMs: number;
  maxRedirects: number;
  maxResponseBytes: number;
  tls: TlsSettings;
  /** Values that must never appear in a message (the secrets, and what is derived from them). */
  secrets: string[];
}

function problem(label: string, message: string, hint?: string): LetheError {
  return new LetheError('CONNECTION_ERROR', `${label} ${message}`, hint === undefined ? {} : { hint });
}

/** The base URL: http(s), a host, no user info, query or fragment. Messages never repeat it. */
function parseBaseUrl(text: string, label: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw problem(label, 'has a baseUrl that is not a valid URL', 'write it as https://api.example.com/v2');
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw problem(label, `has a baseUrl with the scheme ${url.protocol}; only http and https are allowed`);
  }
  if (url.username !== '' || url.password !== '') {
    throw problem(
      label,
      'has user info ("…@") in its baseUrl',
      'give credentials with auth: basic, username and password (user info can disguise the real host)',
    );
  }
  if (url.search !== '' || url.hash !== '') {
    throw problem(
      label,
      'has a query or fragment in its baseUrl',
      'give query parameters in the request (or apiKeyIn: query)',
    );
  }
  return url;
}

/** The header (lower case) the auth sets, which no other setting may set too. */
export function authHeaderOf(auth: Auth): string | undefined {
  if (auth.type === 'basic' || auth.type === 'bearer') return 'authorization';
  return auth.type === 'apiKey' && auth.in === 'header' ? auth.name.toLowerCase() : undefined;
}

function authOf(settings: HttpSettings, label: string): Auth {
  const type = settings.auth ?? 'none';
  const unused = (names: (keyof HttpSettings)[]) =>
    names.filter((name) => settings[name] !== undefined).map((name) => `"${name}"`);
  const others: Record<AuthType, (keyof HttpSettings)[]> = {
    none: ['username', 'password', 'token', 'apiKeyName', 'apiKeyIn', 'apiKey'],
    basic: ['token', 'apiKeyName', 'apiKeyIn', 'apiKey'],
    bearer: ['username', 'password', 'apiKeyName', 'apiKeyIn', 'apiKey'],
    apiKey: ['username', 'password', 'token'],
  };
  const stray = unused(others[type]);
  if (stray.length > 0) {
    throw problem(
      label,
      `has ${stray.join(', ')}, which auth: ${type} does not use`,
      `set auth to the kind these belong to, or remove them`,
    );
  }
  switch (type) {
    case 'none':
      return { type };
    case 'basic': {
      if (settings.username === undefined) throw problem(label, 'uses auth: basic but has no "username"');
      if (settings.username.includes(':'))
        throw problem(label, 'has a "username" with ":", which basic auth cannot carry');
      const encoded = Buffer.from(`${settings.username}:${settings.password ?? ''}`).toString('base64');
      return { type, header: `Basic ${encoded}` };
    }
    case 'bearer':
      if (settings.token === undefined) throw problem(label, 'uses auth: bearer but has no "token"');
      return { type, header: `Bearer ${settings.token}` };
    case 'apiKey':
      if (settings.apiKeyName === undefined || settings.apiKey === undefined) {
        throw problem(label, 'uses auth: apiKey and needs "apiKeyName" and "apiKey"');
      }
      return { type, name: settings.apiKeyName, in: settings.apiKeyIn ?? 'header', value: settings.apiKey };
  }
}

/** A setting given inline (`inline`: PEM text, or base64 when `base64`) or as a file (`file`). */
async function readSetting(
  settings: HttpSettings,
  inline: 'caCert' | 'clientCert' | 'clientKey' | 'pkcs12',
  file: 'caCertFile' | 'clientCertFile' | 'clientKeyFile' | 'pkcs12File',
  connection: ConnectionConfig,
  label: string,
  base64 = false,
): Promise<Buffer | undefined> {
  const text = settings[inline];
  const path = settings[file];
  if (text !== undefined && path !== undefined)
    throw problem(label, `has both "${inline}" and "${file}"; give one`);
  if (text !== undefined) return Buffer.from(text, base64 ? 'base64' : 'utf8');
  if (path === undefined) return undefined;
  const absolute = resolve(connection.baseDir, path);
  try {
    return await readFile(absolute);
  } catch (error) {
    throw new LetheError(
      'CONNECTION_ERROR',
      `cannot read ${file} "${path}" of ${label}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`,
      {
        cause: error,
        hint: `the path resolves to ${absolute}`,
      },
    );
  }
}

async function tlsOf(
  settings: HttpSettings,
  baseUrl: URL,
  connection: ConnectionConfig,
  label: string,
): Promise<TlsSettings> {
  const https = baseUrl.protocol === 'https:';
  const mode = settings.tls ?? (https ? 'verify-full' : 'disable');
  const ca = await readSetting(settings, 'caCert', 'caCertFile', connection, label);
  const cert = await readSetting(settings, 'clientCert', 'clientCertFile', connection, label);
  const key = await readSetting(settings, 'clientKey', 'clientKeyFile', connection, label);
  const pfx = await readSetting(settings, 'pkcs12', 'pkcs12File', connection, label, true);
  const material: TlsMaterial = {
    ...(ca ? { ca: ca.toString('utf8') } : {}),
    ...(cert ? { cert: cert.toString('utf8') } : {}),
    ...(key ? { key: key.toString('utf8') } : {}),
    ...(pfx ? { pfx } : {}),
    ...(settings.passphrase !== undefined ? { passphrase: settings.passphrase } : {}),
  };
  const usesTls =
    material.ca !== undefined ||
    material.cert !== undefined ||
    material.key !== undefined ||
    pfx !== undefined;
  if (!https && mode !== 'disable') {
    throw problem(
      label,
      `has tls: ${mode}, but its baseUrl is http://`,
      'use an https:// baseUrl, or leave tls out for plain http',
    );
  }
  if (https && mode === 'disable') {
    throw problem(
      label,
      'has tls: disable, but its baseUrl is https://',
      'use an http:// baseUrl for plain http, or tls: require',
    );
  }
  if (!https && usesTls)
    throw problem(label, 'has certificates, but its baseUrl is http://', 'use an https:// baseUrl');
  if (material.ca !== undefined && mode === 'require') {
    throw problem(
      label,
      'gives a CA certificate, but tls is require, which checks no certificate',
      'set tls: verify-full (or verify-ca)',
    );
  }
  checkClientCertificate(material, label);
  return { mode, material };
}

export async function resolveHttpEndpoint(
  settings: HttpSettings,
  connection: ConnectionConfig,
  label: string,
): Promise<HttpEndpoint> {
  const baseUrl = parseBaseUrl(settings.baseUrl, label);
  const auth = authOf(settings, label);
  const headers = { ...settings.headers };
  const authHeader = authHeaderOf(auth);
  if (authHeader !== undefined && Object.keys(headers).some((name) => name.toLowerCase() === authHeader)) {
    throw problem(
      label,
      `sets the header "${authHeader}" in headers, which its auth sets`,
      'remove it from headers',
    );
  }
  const secrets = [settings.password, settings.token, settings.apiKey, settings.passphrase].filter(
    (value): value is string => typeof value === 'string' && value !== '',
  );
  if (auth.type === 'basic' || auth.type === 'bearer') secrets.push(auth.header, auth.header.split(' ')[1]!);
  return {
    baseUrl,
    auth,
    headers,
    timeoutMs: settings.timeoutMs ?? 30_000,
    retries: settings.retries ?? 3,
    retryDelayMs: settings.retryDelayMs ?? 500,
    retryMaxDelayMs: settings.retryMaxDelayMs ?? 30_000,
    maxRedirects: settings.maxRedirects ?? 5,
    maxResponseBytes: settings.maxResponseBytes ?? 64 * 1024 * 1024,
    tls: await tlsOf(settings, baseUrl, connection, label),
    secrets,
  };
}
