/** Retention policy: the seeds' defaults, deployment overrides and bounds, workspace choices, legal hold. */
import { describe, expect, it } from 'vitest';
import { DATA_CLASSES } from '../../src/privacy/data-classes.js';
import {
  checkRetentionSettings,
  effectivePolicy,
  PURGEABLE_CLASSES,
  retentionConfig,
  retentionConfigFromEnv,
} from '../../src/privacy/retention-policy.js';
import { loadConfig } from '../../src/server/config.js';

const DAY = 86_400_000;

describe('retention policy', () => {
  it('defaults to the seeds: gateway log 30 d, DLQ 30 d, notifications 7 d, activity 30 d, details 60 d, audit 365 d', () => {
    const config = retentionConfigFromEnv({});
    expect(config.defaults).toEqual({
      gateway_log: 30,
      dlq: 30,
      notification: 7,
      activity: 30,
      execution_detail: 60,
      audit: 365,
    });
    for (const dataClass of PURGEABLE_CLASSES)
      expect(config.defaults[dataClass]).toBe(DATA_CLASSES[dataClass].retentionDays);
    expect(config.unitMs).toBe(DAY);
    const policy = effectivePolicy(config, {});
    expect(policy.legalHold).toBe(false);
    expect(policy.classes.notification).toMatchObject({
      days: 7,
      ms: 7 * DAY,
      source: 'deployment',
      clamped: false,
    });
    expect(policy.classes.audit.bounds).toBeUndefined();
    expect(policy.classes.activity.bounds).toEqual({ min: 1, max: 365 });
    // The server's configuration carries it.
    expect(loadConfig({}, {}).retention).toEqual(config);
    expect(config.purge).toMatchObject({ enabled: true, batchSize: 500 });
  });

  it('takes deployment defaults, bounds, the unit and purge settings from the environment', () => {
    const config = retentionConfigFromEnv({
      LETHE_RETENTION_GATEWAY_LOG_DAYS: '14',
      LETHE_RETENTION_AUDIT_DAYS: '730',
      LETHE_RETENTION_MIN_DAYS: '2',
      LETHE_RETENTION_MAX_DAYS: '90',
      LETHE_RETENTION_EXECUTION_DETAIL_MAX_DAYS: '120',
      LETHE_RETENTION_UNIT: 'second',
      LETHE_PURGE: '0',
      LETHE_PURGE_INTERVAL_MS: '250',
      LETHE_PURGE_BATCH: '100',
    });
    expect(config.defaults.gateway_log).toBe(14);
    expect(config.defaults.audit).toBe(730);
    expect(config.bounds.activity).toEqual({ min: 2, max: 90 });
    expect(config.bounds.execution_detail).toEqual({ min: 2, max: 120 });
    expect(config.unit).toBe('second');
    expect(config.unitMs).toBe(1000);
    expect(config.purge).toMatchObject({ enabled: false, intervalMs: 250, batchSize: 100 });
    expect(effectivePolicy(config, {}).classes.gateway_log.ms).toBe(14_000);
  });

  it('moves a default outside the bounds to the nearest bound', () => {
    const config = retentionConfigFromEnv({ LETHE_RETENTION_MIN_DAYS: '10', LETHE_RETENTION_MAX_DAYS: '20' });
    expect(config.defaults).toMatchObject({ notification: 10, gateway_log: 20, execution_detail: 20 });
    // The audit chain is the deployment's alone: no workspace bounds apply to it.
    expect(config.defaults.audit).toBe(365);
  });

  it('refuses invalid environment values with the variable’s name', () => {
    expect(() => retentionConfigFromEnv({ LETHE_RETENTION_ACTIVITY_DAYS: '0' })).toThrow(
      /LETHE_RETENTION_ACTIVITY_DAYS must be a whole number/,
    );
    expect(() => retentionConfigFromEnv({ LETHE_RETENTION_DLQ_DAYS: 'ten' })).toThrow(
      /LETHE_RETENTION_DLQ_DAYS/,
    );
    expect(() => retentionConfigFromEnv({ LETHE_RETENTION_UNIT: 'week' })).toThrow(/LETHE_RETENTION_UNIT/);
    expect(() =>
      retentionConfigFromEnv({ LETHE_RETENTION_MIN_DAYS: '40', LETHE_RETENTION_MAX_DAYS: '30' }),
    ).toThrow(/minimum \(40\) is above the maximum \(30\)/);
    expect(() => loadConfig({}, { LETHE_PURGE_BATCH: '100000' })).toThrow(/LETHE_PURGE_BATCH/);
  });

  it('applies a workspace’s periods within the bounds and refuses them outside', () => {
    const config = retentionConfig({ bounds: { activity: { min: 7, max: 90 } } });
    const policy = effectivePolicy(config, { retentionDays: { activity: 10, gateway_log: 3 } });
    expect(policy.classes.activity).toMatchObject({ days: 10, source: 'workspace', clamped: false });
    expect(policy.classes.gateway_log).toMatchObject({ days: 3, source: 'workspace' });
    expect(policy.classes.dlq).toMatchObject({ days: 30, source: 'deployment' });

    expect(() => checkRetentionSettings(config, { retentionDays: { activity: 10 } })).not.toThrow();
    expect(() => checkRetentionSettings(config, { retentionDays: { activity: 6 } })).toThrow(
      'retentionDays.activity: 6 is outside this deployment’s bounds (7 to 90 days)',
    );
    expect(() => checkRetentionSettings(config, { retentionDays: { activity: 91 } })).toThrow(/outside/);
    expect(() => checkRetentionSettings(config, { retentionDays: { audit: 400 } })).toThrow(
      /the audit log is kept for the whole deployment/,
    );
    expect(() => checkRetentionSettings(config, { retentionDays: { config: 5 } })).toThrow(
      /not a data class with a retention period/,
    );
    expect(() => checkRetentionSettings(config, { retentionDays: { nonsense: 5 } })).toThrow(/nonsense/);
  });

  it('clamps a saved choice that today’s narrower bounds no longer allow, and says so', () => {
    const config = retentionConfig({ bounds: { activity: { min: 1, max: 20 } } });
    const policy = effectivePolicy(config, { retentionDays: { activity: 300, audit: 1 } });
    expect(policy.classes.activity).toMatchObject({ days: 20, source: 'workspace', clamped: true });
    // A workspace cannot shorten the audit chain, even with a stored value.
    expect(policy.classes.audit).toMatchObject({ days: 365, source: 'deployment' });
  });

  it('reports a legal hold', () => {
    expect(effectivePolicy(retentionConfig(), { legalHold: true }).legalHold).toBe(true);
    expect(effectivePolicy(retentionConfig(), { legalHold: false }).legalHold).toBe(false);
  });

  it('lets tests count periods in seconds', () => {
    const config = retentionConfig({ unit: 'second', defaults: { activity: 2 } });
    expect(effectivePolicy(config, {}).classes.activity.ms).toBe(2000);
    expect(effectivePolicy(config, { retentionDays: { activity: 5 } }).classes.activity.ms).toBe(5000);
  });
});
