/**
 * Settings checks at open time. A connections file is checked when it loads, but a session
 * may be opened from elsewhere (the vault, tests), so each connector checks its settings again
 * before it touches the network or the disk. Messages name fields, never their values.
 */
import type { Static, TSchema } from 'typebox';
import { schemaProblems } from '../../document/schema-problems.js';
import { LetheError } from '../../errors/index.js';
import type { ConnectionConfig } from '../connector.js';

export function checkSettings<T extends TSchema>(schema: T, connection: ConnectionConfig): Static<T> {
  const problems = schemaProblems(schema, connection.settings);
  if (problems.length > 0) {
    const lines = problems.map(({ path, message }) =>
      path.length > 0 ? `${path.join('.')}: ${message}` : message,
    );
    throw new LetheError(
      'CONNECTION_ERROR',
      `connection "${connection.name}" has invalid settings: ${lines.join('; ')}`,
    );
  }
  return connection.settings as Static<T>;
}
