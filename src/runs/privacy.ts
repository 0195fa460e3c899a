/**
 * runs — what a run may leave behind. A run's payloads (its trigger input, sample rows of its
 * steps, its error message, the webhook body) are stored only for standard flows of workspaces
 * that allow log access. Confidential flows, and every flow of a workspace with
 * `logAccess: deny`, keep them in memory only: what is stored of such a run is ids, status,
 * times, counts and the error's class. Values that came from secrets, or from credentials
 * given at run time, are redacted from whatever is stored.
 */
import { createHash } from 'node:crypto';
import { LetheError, LetheErrors } from '../errors/index.js';
import { resolveParams, type LoadedFlow } from '../flow/load.js';
import type { Kysely } from 'kysely';
import { mayStorePayloads } from '../privacy/settings.js';
import { REDACTED, Redactor } from '../security/redact.js';
import type { RunRow } from '../store/runs.js';
import type { Database } from '../store/schema.js';
import type { Workspace } from '../store/workspaces.js';
import type { Value } from '../table/index.js';

/** Whether a run of a flow with this privacy, in this workspace, may store its payloads. */
export function storesPayloads(privacy: string, workspace: Pick<Workspace, 'settings'>): boolean {
  return privacy === 'standard' && mayStorePayloads(workspace);
}

/**
 * The Idempotency-Key as the store keeps it: as given for runs that store payloads; otherwise
 * a digest, since callers often make keys from their data (an order number, an e-mail). The
 * digest is deterministic, so a repeated request still finds the first run.
 */
export function storedIdempotencyKey(workspaceId: string, key: string, keepsPayloads: boolean): string {
  if (keepsPayloads) return key;
  const digest = createHash('sha256')
    .update('lethe/idempotency-key/v1\u0000')
    .update(workspaceId)
    .update('\u0000')
    .update(key)
    .digest('hex');
  return `sha256:${digest}`;
}

/**
 * The earlier run of an Idempotency-Key, stored as given or as a digest (the flow's privacy,
 * or its workspace's log access, may have changed since): one query for both forms.
 */
export async function runByIdempotencyKey(
  db: Kysely<Database>,
  workspaceId: string,
  key: string,
): Promise<RunRow | undefined> {
  const forms = [key, storedIdempotencyKey(workspaceId, key, false)];
  const rows = await db
    .selectFrom('runs')
    .selectAll()
    .where('workspace_id', '=', workspaceId)
    .where('idempotency_key', 'in', forms)
    .orderBy('id')
    .limit(1)
    .execute();
  return rows[0];
}

// The redactor lives with the vault's other safeguards (src/security/redact.ts); runs import it from here.
export { REDACTED, Redactor };

/**
 * resolveParams, whose errors do not repeat the values given when the run keeps no payloads
 * (a confidential flow's parameters are its data, too).
 */
export function checkParams(
  loaded: LoadedFlow,
  params: Readonly<Record<string, unknown>>,
  keepsPayloads: boolean,
): Record<string, Value> {
  try {
    return resolveParams(loaded.flow, params);
  } catch (error) {
    if (keepsPayloads || !(error instanceof LetheError || error instanceof LetheErrors)) throw error;
    const redactor = new Redactor();
    for (const value of Object.values(params)) {
      redactor.add(typeof value === 'string' ? value : JSON.stringify(value));
    }
    throw redactor.error(error);
  }
}
