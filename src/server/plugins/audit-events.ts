/**
 * Audit entries the API routes write (SPEC §7): token, connection and flow changes, connection
 * reads and data reveals. Entries carry ids and counts only. Flows and connections are keyed by
 * their names, and names are not written to the audit log: they are named by `nameRef`, an
 * opaque digest of workspace, kind and name that an operator who knows the name can recompute.
 */
import { createHash } from 'node:crypto';
import type { FastifyRequest } from 'fastify';
import type { AuditEntry } from '../../privacy/audit.js';
import type { Db } from '../../store/schema.js';
import { actorOf, scopeOf, workspaceOf } from '../auth.js';

/** An opaque, stable id for a named thing of a workspace (a flow, a connection). */
export function nameRef(workspaceId: string, kind: 'flow' | 'connection', name: string): string {
  return createHash('sha256').update(`${workspaceId}\n${kind}\n${name}`).digest('hex').slice(0, 32);
}

/**
 * Append an entry for a guarded route, in the audit log of the workspace's region. A change is
 * recorded in the change's own transaction (`trx`, from `audit.transaction`): both commit or
 * neither, so no change goes unaudited. A read is recorded before its data is sent.
 */
export async function auditRoute(
  request: FastifyRequest,
  action: string,
  details: NonNullable<AuditEntry['details']>,
  options: { count?: number; trx?: Db } = {},
): Promise<void> {
  await scopeOf(request).audit.append(
    {
      workspaceId: workspaceOf(request).id,
      actor: actorOf(request),
      action,
      details,
      ...(options.count === undefined ? {} : { count: options.count }),
    },
    options.trx,
  );
}
