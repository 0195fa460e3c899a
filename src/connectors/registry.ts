/** The connector types this build knows, by name. */
import type { Connector } from './connector.js';
import { httpConnector } from './http/index.js';
import { postgresConnector } from './postgres/index.js';
import { sqliteConnector } from './sqlite/index.js';

export const CONNECTORS: ReadonlyMap<string, Connector> = new Map(
  [sqliteConnector, postgresConnector, httpConnector].map((connector) => [connector.type, connector]),
);
