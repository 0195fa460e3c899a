/**
 * Checking the audit log's hash chain (`lethe audit verify`): `AuditLog.verify`, plus where the
 * check started — the entry after the anchor left by retention's purges of the oldest entries.
 */
import type { Kysely } from 'kysely';
import type { Database } from '../store/schema.js';
import { AuditLog, type Verification } from './audit.js';

export interface ChainVerification extends Verification {
  /** The first entry checked (the one after the anchor; 1 when nothing was purged). */
  from: number;
}

export async function verifyAuditChain(db: Kysely<Database>): Promise<ChainVerification> {
  const anchor = await db.selectFrom('audit_anchor').select('seq').executeTakeFirst();
  const result = await new AuditLog(db).verify();
  return { ...result, from: Number(anchor?.seq ?? 0) + 1 };
}
