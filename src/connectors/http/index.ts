/**
 * http — read tables from and send rows to HTTP/REST APIs (JSON), through the egress layer:
 * every connection and redirect is checked against the SSRF policy, with the connection's auth
 * (basic, bearer, API key), TLS mode and client certificate. The session code (./session.ts)
 * loads on first use.
 */
import type { Connector } from '../connector.js';
import { HTTP_FILE_SETTINGS, HTTP_SECRET_SETTINGS, httpSettingsSchema } from './settings.js';

export const httpConnector: Connector = {
  type: 'http',
  summary:
    'HTTP/REST API with JSON answers: input { connection, request: { path, query, records, paginate } }, output { connection, request: { method, path, batch } }. Auth none, basic, bearer or apiKey; retries with Retry-After; TLS modes and client certificates; every connection checked by the egress layer (SSRF guard).',
  settingsSchema: httpSettingsSchema,
  secretSettings: HTTP_SECRET_SETTINGS,
  fileSettings: HTTP_FILE_SETTINGS,
  open: async (connection) => (await import('./session.js')).openHttpSession(connection),
};
