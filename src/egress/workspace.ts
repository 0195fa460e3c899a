/**
 * A workspace's own egress allow-list: kept in the workspace's settings JSON (`egressAllow`),
 * it opens destinations the deployment's policy closes by default (a private address, a host)
 * for that workspace's runs only. It can never open metadata addresses or Unix sockets, and
 * the deployment's deny-list still wins (./policy.ts).
 */
import { LetheError } from '../errors/index.js';
import { egressFromEnvironment } from './index.js';
import type { Egress } from './egress.js';
import { EgressPolicy } from './policy.js';

export const EGRESS_SETTINGS_KEY = 'egressAllow';

/** The allow-list stored in a workspace's settings JSON ([] when none, or unreadable). */
export function workspaceEgressAllow(settings: string): string[] {
  try {
    const value = (JSON.parse(settings) as Record<string, unknown> | null)?.[EGRESS_SETTINGS_KEY];
    return Array.isArray(value) ? value.filter((entry): entry is string => typeof entry === 'string') : [];
  } catch {
    return [];
  }
}

/** Check a list before it is saved: each entry must parse, and none may be a socket. */
export function checkWorkspaceEgressAllow(entries: readonly string[]): string[] {
  try {
    new EgressPolicy({ workspaceAllow: entries });
  } catch (error) {
    throw new LetheError('USAGE', (error as Error).message, {
      hint: 'entries are addresses or networks with an optional port (10.0.0.5:5432, [fd00::/8]:443), host names or *.domain',
    });
  }
  return [...new Set(entries.map((entry) => entry.trim()).filter(Boolean))];
}

/** Per deployment egress (it changes only with the environment): the workspaces' variants. */
const variants = new WeakMap<Egress, Map<string, Egress>>();

/**
 * The egress a workspace's runs use: the deployment's, opened by the workspace's allow-list.
 * Built once per distinct list, since runs are many and lists few.
 */
export function egressForWorkspace(settings: string): Egress {
  const deployment = egressFromEnvironment();
  const allow = workspaceEgressAllow(settings);
  if (allow.length === 0) return deployment;
  let known = variants.get(deployment);
  if (!known) variants.set(deployment, (known = new Map()));
  const key = JSON.stringify(allow);
  let egress = known.get(key);
  if (!egress) {
    if (known.size >= 1000) known.clear();
    egress = deployment.withWorkspaceAllow(allow);
    known.set(key, egress);
  }
  return egress;
}
