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

export const REDACTED = '[redacted]';

/** Shortest value worth redacting: shorter ones would blot out ordinary words and digits. */
const MIN_REDACTED_LENGTH = 3;

/**
 * Values that must not be stored or shown (secrets, credentials given at run time, a
 * confidential run's parameters), and the means to take them out of text and of sample rows.
 */
export class Redactor {
  private readonly values = new Set<string>();
  private sorted: string[] | undefined;

  add(value: unknown): void {
    if (typeof value === 'number' || typeof value === 'bigint') value = String(value);
    if (typeof value !== 'string' || value.length < MIN_REDACTED_LENGTH) return;
    // A URL given as a secret hides its parts, too: the password and each parameter's value
    // (a driver may say them on their own, and a query may read them back).
    if (value.includes('://')) {
      try {
        const url = new URL(value);
        this.add(decodeURIComponent(url.password));
        for (const part of url.searchParams.values()) this.add(part);
      } catch {
        // not a URL after all
      }
    }
    // The forms a value takes inside URLs and JSON text, too.
    for (const form of [value, encodeURIComponent(value), JSON.stringify(value).slice(1, -1)]) {
      if (!this.values.has(form)) {
        this.values.add(form);
        this.sorted = undefined;
      }
    }
  }

  /** Every string value of a settings object (runtime connections: all of it is sensitive). */
  addAll(values: Readonly<Record<string, unknown>> | undefined): void {
    for (const value of Object.values(values ?? {})) this.add(value);
  }

  get size(): number {
    return this.values.size;
  }

  text(text: string): string {
    if (this.values.size === 0) return text;
    this.sorted ??= [...this.values].sort((a, b) => b.length - a.length);
    let result = text;
    for (const value of this.sorted) {
      if (result.includes(value)) result = result.split(value).join(REDACTED);
    }
    return result;
  }

  /** A value with every string in it redacted (nested values too); others as they are. */
  value<T>(value: T): T {
    if (this.values.size === 0) return value;
    if (typeof value === 'string') return this.text(value) as T;
    if (Array.isArray(value)) return value.map((item: unknown) => this.value(item)) as T;
    if (value !== null && typeof value === 'object') {
      const copy: Record<string, unknown> = Object.create(null) as Record<string, unknown>;
      for (const [key, item] of Object.entries(value)) copy[key] = this.value(item);
      return copy as T;
    }
    return value;
  }

  /** An error with its message (and each of several errors' messages) redacted. */
  error<E extends LetheError | LetheErrors>(error: E): E {
    if (this.values.size === 0) return error;
    if (error instanceof LetheErrors) return new LetheErrors(error.errors.map((e) => this.error(e))) as E;
    // The cause (a driver's error, say) may quote anything: it does not come along.
    const { expression, hint, cause: _cause, ...details } = error.details;
    const copy = new LetheError(error.code, this.text(error.message), {
      ...details,
      ...(expression === undefined ? {} : { expression: this.text(expression) }),
      ...(hint === undefined ? {} : { hint: this.text(hint) }),
    });
    return copy as E;
  }
}

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
