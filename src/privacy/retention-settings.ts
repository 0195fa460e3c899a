/**
 * Saving a workspace's privacy settings (`workspaces.settings`, JSON): checked against the
 * settings schema and the deployment's retention bounds, merged with whatever else the JSON
 * holds, and recorded in the audit log (ids, flags and numbers only).
 */
import { updateWorkspaceSettings } from '../store/workspaces.js';
import type { AuditLog } from './audit.js';
import { checkRetentionSettings, type RetentionConfig } from './retention-policy.js';
import { checkPrivacySettings, privacySettings, type WorkspacePrivacySettings } from './settings.js';

const PRIVACY_KEYS = ['retentionDays', 'legalHold', 'logAccess'] as const;

/** A stable text of settings, to tell whether they changed. */
function fingerprint(settings: WorkspacePrivacySettings): string {
  const days = Object.entries(settings.retentionDays ?? {}).sort(([a], [b]) => a.localeCompare(b));
  return JSON.stringify([days, settings.legalHold ?? false, settings.logAccess ?? 'allow']);
}

export interface SavedSettings {
  settings: WorkspacePrivacySettings;
  previous: WorkspacePrivacySettings;
  changed: boolean;
}

/**
 * Replace a workspace's privacy settings with `value` (after checking it); other keys of the
 * settings JSON stay. A change appends an audit entry by `actor`. Throws a USAGE error for
 * settings that are invalid or outside the deployment's bounds.
 */
export async function savePrivacySettings(
  audit: AuditLog,
  config: RetentionConfig,
  workspaceId: string,
  value: unknown,
  actor: string,
): Promise<SavedSettings> {
  const settings = checkPrivacySettings(value);
  checkRetentionSettings(config, settings);
  return audit.transaction(async (trx) => {
    let previous: WorkspacePrivacySettings = {};
    let changed = false;
    await updateWorkspaceSettings(trx, workspaceId, (current) => {
      previous = privacySettings({ settings: JSON.stringify(current) });
      changed = fingerprint(previous) !== fingerprint(settings);
      if (!changed) return {};
      return Object.fromEntries(PRIVACY_KEYS.map((key) => [key, settings[key]]));
    });
    // The receipt commits with the change, or neither does.
    if (changed) {
      await audit.append(
        {
          workspaceId,
          actor,
          action: 'settings.privacy.changed',
          reason: 'settings',
          details: details(settings, previous),
        },
        trx,
      );
    }
    return { settings, previous, changed };
  });
}

function details(
  settings: WorkspacePrivacySettings,
  previous: WorkspacePrivacySettings,
): Record<string, string | number | boolean | null> {
  const result: Record<string, string | number | boolean | null> = {
    legalHold: settings.legalHold ?? false,
    logAccess: settings.logAccess ?? 'allow',
  };
  for (const [dataClass, days] of Object.entries(settings.retentionDays ?? {}))
    result[`retentionDays.${dataClass}`] = days;
  if ((previous.legalHold ?? false) !== (settings.legalHold ?? false)) result.legalHoldChanged = true;
  return result;
}
