/**
 * Saving a workspace's privacy settings (`workspaces.settings`, JSON): checked against the
 * settings schema and the deployment's retention bounds, merged with whatever else the JSON
 * holds, and recorded in the audit log (ids, flags and numbers only). Switching log access to
 * `deny` also deletes, in the same transaction, the payloads stored before: execution details
 * and webhook bodies (unless a legal hold keeps them; lifting the hold later deletes them).
 * Inputs of dead-lettered runs stay, for their retry: discarding a run deletes its input, and
 * retention does after 30 days.
 */
import type { Db } from '../store/schema.js';
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
  /** What switching log access to `deny` deleted, per data class (for the purge metrics). */
  purged: { dataClass: 'execution_detail' | 'gateway_log'; count: number }[];
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
    // Now denied without a hold, and not before (a hold lifted later lets the deletion happen).
    const deleting =
      changed &&
      settings.logAccess === 'deny' &&
      !settings.legalHold &&
      (previous.logAccess !== 'deny' || previous.legalHold === true);
    if (!deleting) return { settings, previous, changed, purged: [] };
    const deleted = await deleteStoredPayloads(trx, workspaceId);
    const purged = (
      [
        { dataClass: 'execution_detail', count: deleted.executionDetails },
        { dataClass: 'gateway_log', count: deleted.webhookBodies },
      ] as const
    ).filter((entry) => entry.count > 0);
    for (const { dataClass, count } of purged) {
      await audit.append(
        { workspaceId, actor, action: 'purge', dataClass, count, reason: 'log access denied', details: {} },
        trx,
      );
    }
    return { settings, previous, changed, purged };
  });
}

/**
 * Delete what an operator could read of a workspace's past runs: their step samples and error
 * messages, and stored webhook bodies.
 */
async function deleteStoredPayloads(
  trx: Db,
  workspaceId: string,
): Promise<{ executionDetails: number; webhookBodies: number }> {
  const details = await trx
    .deleteFrom('run_details')
    .where('workspace_id', '=', workspaceId)
    .executeTakeFirst();
  const bodies = await trx
    .updateTable('gateway_log')
    .set({ body: null })
    .where('workspace_id', '=', workspaceId)
    .where('body', 'is not', null)
    .executeTakeFirst();
  return { executionDetails: Number(details.numDeletedRows), webhookBodies: Number(bodies.numUpdatedRows) };
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
