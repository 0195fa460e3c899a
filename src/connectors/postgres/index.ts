/**
 * postgres — read and write tables in PostgreSQL through node-postgres. The driver and the
 * session code (./session.ts) load on first use; this module is only the connector's
 * description and settings.
 */
import type { Connector } from '../connector.js';
import { postgresSettingsSchema } from './settings.js';

export const postgresConnector: Connector = {
  type: 'postgres',
  summary:
    'PostgreSQL (node-postgres). Queries bind $1… parameters; int8 and numeric beyond double precision read as text, timestamptz as UTC ISO text, json as values; arrays are written as arrays into array columns, other nested values as JSON text.',
  settingsSchema: postgresSettingsSchema,
  secretSettings: ['password', 'url'],
  fileSettings: ['sslRootCert'],
  open: async (connection) => (await import('./session.js')).openSession(connection),
};
