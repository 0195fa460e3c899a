/**
 * Roles and what they may do, in one place. Every route names the action it performs; the
 * access check compares the caller's role with the lowest role allowed that action. The
 * security issue's route × role matrix test is generated from this table.
 */

export const ROLES = ['viewer', 'editor', 'admin', 'owner'] as const;
export type Role = (typeof ROLES)[number];

export function isRole(value: string): value is Role {
  return (ROLES as readonly string[]).includes(value);
}

export const PERMISSIONS = {
  'flow.read': 'viewer',
  'flow.write': 'editor',
  'run.read': 'viewer',
  'run.create': 'editor',
  'run.cancel': 'editor',
  'dlq.read': 'viewer',
  'dlq.write': 'editor',
  'connection.read': 'viewer',
  'connection.write': 'admin',
  'notification.read': 'viewer',
  'gateway.read': 'viewer',
  'token.manage': 'admin',
  // Members and invites; who may grant which role is checked again per request (only an owner
  // grants or changes owner).
  'member.read': 'admin',
  'member.write': 'admin',
  // Privacy settings (retention overrides, legal hold, log access) and the retention status.
  'settings.read': 'viewer',
  'settings.write': 'admin',
  'retention.read': 'viewer',
  // Data-subject erasure requests: who asked to be erased is itself sensitive.
  'erasure.read': 'admin',
  'erasure.write': 'admin',
  'inventory.read': 'admin',
  'workspace.close': 'owner',
  // Opening private networks to the workspace's flows.
  'egress.write': 'owner',
} as const satisfies Record<string, Role>;

export type Action = keyof typeof PERMISSIONS;

export function allows(role: Role, action: Action): boolean {
  return ROLES.indexOf(role) >= ROLES.indexOf(PERMISSIONS[action]);
}
