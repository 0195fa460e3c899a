/**
 * server — `lethe serve`: the HTTP API, webhooks, triggers and the runner over one store.
 * This file: the server's configuration, from flags and environment variables (flags win),
 * with defaults and checks.
 */
import { resolve } from 'node:path';
import { LetheError } from '../errors/index.js';
import { retentionConfigFromEnv, type RetentionConfig } from '../privacy/retention-policy.js';
import { regionsFromEnvironment, type RegionsConfig } from '../regions/config.js';
import { peopleConfigFromEnv, type PeopleConfig } from '../security/people-config.js';
import { webConfigFromEnv, type WebConfig } from './web-config.js';

export interface ServerConfig {
  port: number;
  host: string;
  dataDir: string;
  /** PostgreSQL URL; SQLite in dataDir when absent. */
  databaseUrl: string | undefined;
  /** Runs executing at once. */
  concurrency: number;
  /** Largest webhook or API body accepted, in bytes. */
  bodyLimit: number;
  /** How long a `respond: result` webhook waits for the run, in ms, unless the flow says. */
  webhookTimeoutMs: number;
  /** How long running runs get to finish on shutdown before they are put back in the queue. */
  shutdownGraceMs: number;
  /** Seed the `default` workspace with the example flow on first start. */
  seedExamples: boolean;
  logLevel: string;
  sqliteSynchronous: 'full' | 'normal';
  /** Retention periods, their bounds, and how the purger runs (LETHE_RETENTION_*, LETHE_PURGE_*). */
  retention: RetentionConfig;
  /** The home region's name and the other regions' stores (LETHE_HOME_REGION, LETHE_REGIONS). */
  regions: RegionsConfig;
  /** Password hashing, session timeouts, sign-in back-off (LETHE_PASSWORD_HASH, LETHE_SESSION_*, LETHE_LOGIN_*). */
  people: PeopleConfig;
  /** Public URL, TLS, trusted proxies, rate limits (LETHE_PUBLIC_URL, LETHE_TLS_*, LETHE_TRUST_PROXY, LETHE_RATE_LIMIT*). */
  web: WebConfig;
}

export interface ConfigFlags {
  port?: string | number;
  host?: string;
  dataDir?: string;
  concurrency?: string | number;
  tlsCert?: string;
  tlsKey?: string;
  trustProxy?: boolean | string;
}

function integer(
  name: string,
  value: string | number | undefined,
  fallback: number,
  min: number,
  max: number,
): number {
  if (value === undefined || value === '') return fallback;
  const number = Number(value);
  if (!Number.isInteger(number) || number < min || number > max) {
    throw new LetheError('USAGE', `${name} must be a whole number from ${min} to ${max}, not "${value}"`);
  }
  return number;
}

export function loadConfig(
  flags: ConfigFlags = {},
  env: Readonly<Record<string, string | undefined>> = process.env,
): ServerConfig {
  const synchronous = (env.LETHE_SQLITE_SYNCHRONOUS ?? 'full').toLowerCase();
  if (synchronous !== 'full' && synchronous !== 'normal') {
    throw new LetheError('USAGE', 'LETHE_SQLITE_SYNCHRONOUS must be full or normal');
  }
  return {
    port: integer('--port / LETHE_PORT', flags.port ?? env.LETHE_PORT, 8080, 0, 65535),
    host: flags.host ?? env.LETHE_HOST ?? '127.0.0.1',
    dataDir: resolve(flags.dataDir ?? env.LETHE_DATA_DIR ?? './data'),
    databaseUrl: env.LETHE_DATABASE_URL || undefined,
    concurrency: integer(
      '--concurrency / LETHE_CONCURRENCY',
      flags.concurrency ?? env.LETHE_CONCURRENCY,
      8,
      1,
      256,
    ),
    bodyLimit: integer('LETHE_BODY_LIMIT', env.LETHE_BODY_LIMIT, 1024 * 1024, 1024, 100 * 1024 * 1024),
    webhookTimeoutMs: integer('LETHE_WEBHOOK_TIMEOUT_MS', env.LETHE_WEBHOOK_TIMEOUT_MS, 30_000, 100, 600_000),
    shutdownGraceMs: integer('LETHE_SHUTDOWN_GRACE_MS', env.LETHE_SHUTDOWN_GRACE_MS, 10_000, 0, 600_000),
    seedExamples: env.LETHE_SEED_EXAMPLES !== '0',
    logLevel: env.LETHE_LOG_LEVEL ?? 'info',
    sqliteSynchronous: synchronous,
    retention: retentionConfigFromEnv(env),
    regions: regionsFromEnvironment(env),
    people: peopleConfigFromEnv(env),
    web: webConfigFromEnv(
      { tlsCert: flags.tlsCert, tlsKey: flags.tlsKey, trustProxy: flags.trustProxy },
      env,
    ),
  };
}
