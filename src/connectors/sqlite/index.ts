/**
 * sqlite — read and write tables in a SQLite database file through better-sqlite3. The driver
 * and the session code (./session.ts) load on first use.
 */
import type { Connector } from '../connector.js';
import { sqliteSettingsSchema } from './settings.js';

export const sqliteConnector: Connector = {
  type: 'sqlite',
  summary:
    'SQLite database file (better-sqlite3). Integers beyond 2^53 read as text, BLOBs as base64; booleans are written as 1/0 and nested values as JSON text.',
  settingsSchema: sqliteSettingsSchema,
  secretSettings: [],
  fileSettings: ['path'],
  open: async (connection) => (await import('./session.js')).openDatabase(connection),
};
