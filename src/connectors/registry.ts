/** The connector types this build knows, by name. */
import type { Connector } from './connector.js';
import { httpConnector } from './http/index.js';
import { postgresConnector } from './postgres/index.js';
import { sqliteConnector } from './sqlite/index.js';
import { webhookSecretConnector } from './webhook-secret/index.js';

export const CONNECTORS: ReadonlyMap<string, Connector> = new Map(
  [sqliteConnector, postgresConnector, httpConnector, webhookSecretConnector].map((connector) => [
    connector.type,
    connector,
  ]),
);
