/**
 * A workspace's privacy settings, kept in `workspaces.settings` (JSON): retention overrides per
 * data class (within the deployment's bounds), a legal hold (nothing is purged or erased
 * outright while it is on; erasure pseudonymises instead), and log access (`deny`: run details,
 * payloads and webhook bodies are never stored for the workspace, so no operator can read them).
 */
import Type, { type Static } from 'typebox';
import Value from 'typebox/value';
import { LetheError } from '../errors/index.js';
import type { Workspace } from '../store/workspaces.js';
import type { DataClassName } from './data-classes.js';

export const WorkspacePrivacySettings = Type.Object(
  {
    retentionDays: Type.Optional(
      Type.Record(Type.String(), Type.Integer({ minimum: 1 }), {
        description: 'Days to keep records of a data class, within the deployment’s bounds.',
      }),
    ),
    legalHold: Type.Optional(
      Type.Boolean({
        description: 'Keep everything: no purge, and erasure pseudonymises instead of deleting.',
      }),
    ),
    logAccess: Type.Optional(
      Type.Enum(['allow', 'deny'], {
        description: 'deny: run details, payloads and webhook bodies of this workspace are never stored.',
      }),
    ),
  },
  { additionalProperties: false },
);

export type WorkspacePrivacySettings = Static<typeof WorkspacePrivacySettings>;

/** The privacy settings of a workspace (unknown keys of older versions are ignored). */
export function privacySettings(workspace: Pick<Workspace, 'settings'>): WorkspacePrivacySettings {
  let parsed: unknown;
  try {
    parsed = JSON.parse(workspace.settings);
  } catch {
    return {};
  }
  if (parsed === null || typeof parsed !== 'object') return {};
  const { retentionDays, legalHold, logAccess } = parsed as Record<string, unknown>;
  const settings: WorkspacePrivacySettings = {};
  if (retentionDays && typeof retentionDays === 'object')
    settings.retentionDays = retentionDays as Record<string, number>;
  if (typeof legalHold === 'boolean') settings.legalHold = legalHold;
  if (logAccess === 'allow' || logAccess === 'deny') settings.logAccess = logAccess;
  return settings;
}

/** Whether run details, payloads and bodies may be stored for the workspace at all. */
export function mayStorePayloads(workspace: Pick<Workspace, 'settings'>): boolean {
  return privacySettings(workspace).logAccess !== 'deny';
}

/** Check settings before they are saved. */
export function checkPrivacySettings(value: unknown): WorkspacePrivacySettings {
  if (!Value.Check(WorkspacePrivacySettings, value)) {
    const first = Value.Errors(WorkspacePrivacySettings, value)[0];
    throw new LetheError(
      'USAGE',
      `invalid privacy settings${first ? ` at ${first.instancePath || '/'}: ${first.message}` : ''}`,
    );
  }
  return value;
}

export type RetentionOverrides = Partial<Record<DataClassName, number>>;
