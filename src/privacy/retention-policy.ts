/**
 * Retention policy: how long each data class is kept — the seeds' defaults (data-classes.ts),
 * changed per deployment by environment variables, and per workspace (privacy settings,
 * `retentionDays`) within the deployment's bounds; a workspace on legal hold is never purged.
 *
 * Periods are counted in "days". A test deployment may make a day shorter
 * (`LETHE_RETENTION_UNIT=second`: every "day" lasts one second) so that retention can be
 * watched at work in seconds; nothing else changes.
 *
 * - Deployment defaults: `LETHE_RETENTION_<CLASS>_DAYS` (e.g. LETHE_RETENTION_GATEWAY_LOG_DAYS).
 * - Bounds a workspace may choose within: `LETHE_RETENTION_MIN_DAYS` / `LETHE_RETENTION_MAX_DAYS`
 *   (1 and 365 by default), or per class `LETHE_RETENTION_<CLASS>_MIN_DAYS` / `…_MAX_DAYS`. A
 *   default outside its bounds is moved to the nearest bound; a workspace setting saved under
 *   older, wider bounds is clamped the same way (the status says so).
 * - The audit log is one hash chain for the whole deployment, so its period is the deployment's
 *   alone (LETHE_RETENTION_AUDIT_DAYS): a workspace cannot override it, and entries of a
 *   workspace on legal hold stop its purge at the first of them.
 */
import { LetheError } from '../errors/index.js';
import { DATA_CLASSES, type DataClassName } from './data-classes.js';
import type { WorkspacePrivacySettings } from './settings.js';

/** Classes purged by age (the ones with a retention period). */
export const PURGEABLE_CLASSES = [
  'gateway_log',
  'dlq',
  'notification',
  'activity',
  'execution_detail',
  'audit',
] as const satisfies readonly DataClassName[];
export type PurgeableClass = (typeof PURGEABLE_CLASSES)[number];

/** Classes a workspace may set its own period for (all but the deployment-wide audit chain). */
export const WORKSPACE_CLASSES = [
  'gateway_log',
  'dlq',
  'notification',
  'activity',
  'execution_detail',
] as const satisfies readonly PurgeableClass[];
export type WorkspaceClass = (typeof WORKSPACE_CLASSES)[number];

export const RETENTION_UNITS = { day: 86_400_000, hour: 3_600_000, minute: 60_000, second: 1000 } as const;
export type RetentionUnit = keyof typeof RETENTION_UNITS;

export interface Bounds {
  min: number;
  max: number;
}

export interface PurgeSettings {
  /** Whether `lethe serve` purges continuously (LETHE_PURGE=0 turns it off). */
  enabled: boolean;
  /** Pause between two passes, in ms (LETHE_PURGE_INTERVAL_MS). */
  intervalMs: number;
  /** Wait before the first pass after start, in ms (LETHE_PURGE_INITIAL_DELAY_MS). */
  initialDelayMs: number;
  /** Most rows one statement deletes (LETHE_PURGE_BATCH). */
  batchSize: number;
  /** A batch that takes longer than this shrinks the next one (the event loop stays free). */
  targetBatchMs: number;
  /** PostgreSQL: VACUUM the tables that lost rows at most this often, in ms (LETHE_PURGE_VACUUM_INTERVAL_MS). */
  vacuumIntervalMs: number;
}

export interface RetentionConfig {
  unit: RetentionUnit;
  /** Length of one retention day in ms (shorter in tests). */
  unitMs: number;
  /** The deployment's period per class, in days (already within bounds). */
  defaults: Record<PurgeableClass, number>;
  /** What a workspace may choose, per class, in days. */
  bounds: Record<WorkspaceClass, Bounds>;
  purge: PurgeSettings;
}

export const DEFAULT_PURGE: PurgeSettings = {
  enabled: true,
  intervalMs: 60_000,
  initialDelayMs: 5_000,
  batchSize: 500,
  targetBatchMs: 10,
  vacuumIntervalMs: 600_000,
};

const DEFAULT_MIN_DAYS = 1;
const DEFAULT_MAX_DAYS = 365;

function seedDays(dataClass: PurgeableClass): number {
  return DATA_CLASSES[dataClass].retentionDays!;
}

function envName(dataClass: PurgeableClass): string {
  return dataClass.toUpperCase();
}

function whole(name: string, value: string | undefined, fallback: number, min = 1, max = 100_000): number {
  if (value === undefined || value === '') return fallback;
  const number = Number(value);
  if (!Number.isInteger(number) || number < min || number > max) {
    throw new LetheError('USAGE', `${name} must be a whole number from ${min} to ${max}, not "${value}"`);
  }
  return number;
}

const clamp = (value: number, bounds: Bounds) => Math.min(bounds.max, Math.max(bounds.min, value));

/** A retention configuration from parts (tests) — unit, defaults, bounds and purge settings. */
export function retentionConfig(
  options: {
    unit?: RetentionUnit;
    defaults?: Partial<Record<PurgeableClass, number>>;
    bounds?: Partial<Record<WorkspaceClass, Bounds>>;
    purge?: Partial<PurgeSettings>;
  } = {},
): RetentionConfig {
  const unit = options.unit ?? 'day';
  const bounds = Object.fromEntries(
    WORKSPACE_CLASSES.map((dataClass) => [
      dataClass,
      options.bounds?.[dataClass] ?? { min: DEFAULT_MIN_DAYS, max: DEFAULT_MAX_DAYS },
    ]),
  ) as Record<WorkspaceClass, Bounds>;
  for (const [dataClass, bound] of Object.entries(bounds)) {
    if (bound.min > bound.max)
      throw new LetheError(
        'USAGE',
        `retention bounds of ${dataClass}: the minimum (${bound.min}) is above the maximum (${bound.max})`,
      );
  }
  const defaults = Object.fromEntries(
    PURGEABLE_CLASSES.map((dataClass) => {
      const days = options.defaults?.[dataClass] ?? seedDays(dataClass);
      const bound = isWorkspaceClass(dataClass) ? bounds[dataClass] : undefined;
      return [dataClass, bound ? clamp(days, bound) : days];
    }),
  ) as Record<PurgeableClass, number>;
  return {
    unit,
    unitMs: RETENTION_UNITS[unit],
    defaults,
    bounds,
    purge: { ...DEFAULT_PURGE, ...options.purge },
  };
}

/** The retention configuration from the environment (see the header, and docs/server.md). */
export function retentionConfigFromEnv(env: Readonly<Record<string, string | undefined>>): RetentionConfig {
  const unit = (env.LETHE_RETENTION_UNIT ?? 'day').toLowerCase();
  if (!Object.hasOwn(RETENTION_UNITS, unit)) {
    throw new LetheError('USAGE', 'LETHE_RETENTION_UNIT must be day, hour, minute or second');
  }
  const min = whole('LETHE_RETENTION_MIN_DAYS', env.LETHE_RETENTION_MIN_DAYS, DEFAULT_MIN_DAYS);
  const max = whole('LETHE_RETENTION_MAX_DAYS', env.LETHE_RETENTION_MAX_DAYS, DEFAULT_MAX_DAYS);
  const defaults: Partial<Record<PurgeableClass, number>> = {};
  for (const dataClass of PURGEABLE_CLASSES) {
    const name = `LETHE_RETENTION_${envName(dataClass)}_DAYS`;
    defaults[dataClass] = whole(name, env[name], seedDays(dataClass));
  }
  const bounds: Partial<Record<WorkspaceClass, Bounds>> = {};
  for (const dataClass of WORKSPACE_CLASSES) {
    const prefix = `LETHE_RETENTION_${envName(dataClass)}`;
    bounds[dataClass] = {
      min: whole(`${prefix}_MIN_DAYS`, env[`${prefix}_MIN_DAYS`], min),
      max: whole(`${prefix}_MAX_DAYS`, env[`${prefix}_MAX_DAYS`], max),
    };
  }
  const purge: PurgeSettings = {
    ...DEFAULT_PURGE,
    enabled: env.LETHE_PURGE !== '0',
    intervalMs: whole(
      'LETHE_PURGE_INTERVAL_MS',
      env.LETHE_PURGE_INTERVAL_MS,
      DEFAULT_PURGE.intervalMs,
      10,
      86_400_000,
    ),
    initialDelayMs: whole(
      'LETHE_PURGE_INITIAL_DELAY_MS',
      env.LETHE_PURGE_INITIAL_DELAY_MS,
      DEFAULT_PURGE.initialDelayMs,
      0,
      86_400_000,
    ),
    batchSize: whole('LETHE_PURGE_BATCH', env.LETHE_PURGE_BATCH, DEFAULT_PURGE.batchSize, 1, 5000),
    vacuumIntervalMs: whole(
      'LETHE_PURGE_VACUUM_INTERVAL_MS',
      env.LETHE_PURGE_VACUUM_INTERVAL_MS,
      DEFAULT_PURGE.vacuumIntervalMs,
      0,
      86_400_000,
    ),
  };
  return retentionConfig({ unit: unit as RetentionUnit, defaults, bounds, purge });
}

export function isWorkspaceClass(name: string): name is WorkspaceClass {
  return (WORKSPACE_CLASSES as readonly string[]).includes(name);
}

export function isPurgeableClass(name: string): name is PurgeableClass {
  return (PURGEABLE_CLASSES as readonly string[]).includes(name);
}

export interface ClassPolicy {
  dataClass: PurgeableClass;
  /** The period, in days (of the configured unit). */
  days: number;
  /** The period in ms. */
  ms: number;
  /** Where the period comes from. */
  source: 'deployment' | 'workspace';
  /** A workspace setting outside today's bounds, moved to the nearest bound. */
  clamped: boolean;
  /** What a workspace may choose (undefined: the deployment alone decides). */
  bounds: Bounds | undefined;
}

export interface EffectivePolicy {
  legalHold: boolean;
  classes: Record<PurgeableClass, ClassPolicy>;
}

/** The policy that applies to a workspace with these settings. */
export function effectivePolicy(
  config: RetentionConfig,
  settings: WorkspacePrivacySettings,
): EffectivePolicy {
  const classes = {} as Record<PurgeableClass, ClassPolicy>;
  for (const dataClass of PURGEABLE_CLASSES) {
    const bounds = isWorkspaceClass(dataClass) ? config.bounds[dataClass] : undefined;
    const chosen = bounds ? settings.retentionDays?.[dataClass] : undefined;
    const valid = typeof chosen === 'number' && Number.isInteger(chosen) && chosen > 0;
    const days = valid && bounds ? clamp(chosen, bounds) : config.defaults[dataClass];
    classes[dataClass] = {
      dataClass,
      days,
      ms: days * config.unitMs,
      source: valid ? 'workspace' : 'deployment',
      clamped: valid && days !== chosen,
      bounds,
    };
  }
  return { legalHold: settings.legalHold === true, classes };
}

/**
 * Check a workspace's retention overrides against the deployment: known, overridable classes,
 * within the bounds. Throws a USAGE error naming the first problem.
 */
export function checkRetentionSettings(config: RetentionConfig, settings: WorkspacePrivacySettings): void {
  for (const [name, days] of Object.entries(settings.retentionDays ?? {})) {
    if (name === 'audit') {
      throw new LetheError(
        'USAGE',
        'retentionDays.audit: the audit log is kept for the whole deployment (LETHE_RETENTION_AUDIT_DAYS); a workspace cannot change it',
      );
    }
    if (!isWorkspaceClass(name)) {
      throw new LetheError(
        'USAGE',
        `retentionDays.${name}: not a data class with a retention period (use ${WORKSPACE_CLASSES.join(', ')})`,
      );
    }
    const bounds = config.bounds[name];
    if (!Number.isInteger(days) || days < bounds.min || days > bounds.max) {
      throw new LetheError(
        'USAGE',
        `retentionDays.${name}: ${days} is outside this deployment’s bounds (${bounds.min} to ${bounds.max} ${config.unit}s)`,
      );
    }
  }
}
