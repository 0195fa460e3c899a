/**
 * Signed webhooks in (SPEC 7): HMAC-SHA256 over the raw body, checked before anything about the
 * request is stored or run. Three schemes:
 *
 * - generic: `X-Lethe-Signature: t=<unix seconds>,v1=<hex HMAC of "<t>.<body>">` (several v1
 *   entries allowed, so a sender can sign with two secrets while rotating);
 * - github: `X-Hub-Signature-256: sha256=<hex HMAC of the body>`, no timestamp;
 * - standard-webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64> …`
 *   over `<id>.<timestamp>.<body>`, with a `whsec_<base64>` secret.
 *
 * The secrets come from a stored `webhook-secret` connection (`secret`, and `previousSecret`
 * while rotating: either is accepted). Signatures are compared in constant time; timestamps
 * must be within the tolerance either way; each event is remembered in `webhook_events_seen`
 * (kept as long as gateway logs) and a repeat is refused. Refusal messages say which header is
 * missing, malformed, expired or does not match — never a secret or a signature.
 */
import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { LetheError } from '../errors/index.js';
import type { Vault } from '../security/vault.js';
import type { Store } from '../store/index.js';

export type SignatureScheme = 'generic' | 'github' | 'standard-webhooks';

/** `trigger.webhook.signature` as the flow gives it. */
export interface SignatureSpec {
  scheme: SignatureScheme;
  connection: string;
  tolerance?: string;
  header?: string;
}

export const DEFAULT_TOLERANCE_MS = 300_000;
export const GENERIC_HEADER = 'X-Lethe-Signature';
export const SECRET_CONNECTION_TYPE = 'webhook-secret';

/** What a request is checked against: the scheme, its header, the tolerance and the keys. */
export interface SignatureCheck {
  scheme: SignatureScheme;
  /** The generic scheme's header, as written (lower-cased for lookup). */
  header: string;
  toleranceMs: number;
  /** The current key first, then the previous one while rotating. */
  keys: readonly Buffer[];
}

export type Verdict =
  | {
      ok: true;
      /** What a repeat of this request would repeat: remembered to refuse replays. */ eventIds: string[];
    }
  | { ok: false; message: string };

const UNIT_MS = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

function toleranceMs(text: string | undefined): number {
  const match = text === undefined ? null : /^([0-9]+)(ms|s|m|h|d)$/.exec(text);
  return match ? Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS] : DEFAULT_TOLERANCE_MS;
}

/** The HMAC key a secret stands for: Standard Webhooks secrets are base64 after `whsec_`. */
export function signingKey(scheme: SignatureScheme, secret: string): Buffer | undefined {
  if (scheme !== 'standard-webhooks') return Buffer.from(secret, 'utf8');
  const encoded = secret.startsWith('whsec_') ? secret.slice('whsec_'.length) : secret;
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(encoded)) return undefined;
  const key = Buffer.from(encoded, 'base64');
  return key.length > 0 ? key : undefined;
}

function notSetUp(why: string): LetheError {
  // The caller is not authenticated: the answer says the webhook is not ready and what kind of
  // connection it needs, never the connection's name or a secret (the flow names it).
  return new LetheError('UNAVAILABLE', `this webhook cannot check signatures: ${why}`, {
    hint: `the flow's trigger.webhook.signature.connection must be a stored ${SECRET_CONNECTION_TYPE} connection with secrets.secret`,
  });
}

/** Reads and decrypts the connection's secrets into the keys a request is checked with. */
export async function loadSignatureCheck(
  spec: SignatureSpec,
  store: Store,
  vault: Vault,
  workspaceId: string,
): Promise<SignatureCheck> {
  const row = await store.connections.get(workspaceId, spec.connection);
  if (!row) throw notSetUp('its secret connection is missing');
  if (row.type !== SECRET_CONNECTION_TYPE) {
    throw notSetUp(`its secret connection is not of type ${SECRET_CONNECTION_TYPE}`);
  }
  const sealed = JSON.parse(row.secrets) as Record<string, string>;
  if (sealed.secret === undefined) throw notSetUp('no secret is set');
  const keys: Buffer[] = [];
  for (const field of ['secret', 'previousSecret']) {
    const ciphertext = sealed[field];
    if (ciphertext === undefined) continue;
    let secret: string;
    try {
      secret = await vault.decrypt(workspaceId, spec.connection, field, ciphertext);
    } catch (error) {
      throw new LetheError(
        'UNAVAILABLE',
        'this webhook cannot check signatures: its secret cannot be decrypted',
        {
          cause: error,
        },
      );
    }
    const key = signingKey(spec.scheme, secret);
    if (!key) throw notSetUp(`its ${field} is not whsec_<base64>`);
    keys.push(key);
  }
  return {
    scheme: spec.scheme,
    header: spec.header ?? GENERIC_HEADER,
    toleranceMs: toleranceMs(spec.tolerance),
    keys,
  };
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
}

function hmac(key: Buffer, ...parts: (string | Buffer)[]): Buffer {
  const mac = createHmac('sha256', key);
  for (const part of parts) mac.update(part);
  return mac.digest();
}

/** Whether any given signature is the HMAC under any key; every pair is compared in constant time. */
function matches(keys: readonly Buffer[], given: readonly Buffer[], ...parts: (string | Buffer)[]): boolean {
  let found = false;
  for (const key of keys) {
    const expected = hmac(key, ...parts);
    for (const signature of given) {
      // Lengths are checked first because timingSafeEqual throws on unequal lengths; a length
      // says nothing about the secret.
      if (signature.length === expected.length && timingSafeEqual(signature, expected)) found = true;
    }
  }
  return found;
}

function digest(...parts: (string | Buffer)[]): string {
  const hash = createHash('sha256');
  for (const part of parts) hash.update(part);
  return hash.digest('hex');
}

/** Refuses a timestamp outside ±tolerance of now; undefined when it is fine. */
function staleness(name: string, seconds: number, check: SignatureCheck, now: number): string | undefined {
  const skew = now - seconds * 1000;
  const limit = `${Math.round(check.toleranceMs / 1000)}s`;
  if (skew > check.toleranceMs) return `the ${name} timestamp is more than ${limit} old`;
  if (-skew > check.toleranceMs) return `the ${name} timestamp is more than ${limit} in the future`;
  return undefined;
}

const TIMESTAMP = /^[0-9]{1,12}$/;
const HEX_SHA256 = /^[0-9a-fA-F]{64}$/;
/** Event ids go into the store's primary key: printable ASCII, bounded. */
const EVENT_ID = /^[\x21-\x7e]{1,200}$/;

function verifyGeneric(
  check: SignatureCheck,
  headers: IncomingHttpHeaders,
  body: Buffer,
  now: number,
): Verdict {
  const name = check.header;
  const value = header(headers, name);
  if (value === undefined) return { ok: false, message: `the ${name} header is missing` };
  let timestamp: string | undefined;
  const given: Buffer[] = [];
  let malformed = false;
  for (const part of value.split(',')) {
    const at = part.indexOf('=');
    const key = part.slice(0, at).trim();
    const text = part.slice(at + 1).trim();
    if (at < 0) malformed = true;
    else if (key === 't') timestamp = TIMESTAMP.test(text) ? text : undefined;
    else if (key === 'v1') {
      if (HEX_SHA256.test(text)) given.push(Buffer.from(text, 'hex'));
      else malformed = true;
    }
  }
  if (malformed || timestamp === undefined || given.length === 0) {
    return {
      ok: false,
      message: `the ${name} header is malformed: expected t=<unix seconds>,v1=<hex HMAC-SHA256>`,
    };
  }
  const stale = staleness(name, Number(timestamp), check, now);
  if (stale) return { ok: false, message: stale };
  if (!matches(check.keys, given, `${timestamp}.`, body)) {
    return { ok: false, message: `the ${name} signature does not match the body and timestamp` };
  }
  // The request carries no signed event id: the signed content itself is what a replay repeats.
  return { ok: true, eventIds: [`generic:${digest(`${timestamp}.`, body)}`] };
}

function verifyGithub(check: SignatureCheck, headers: IncomingHttpHeaders, body: Buffer): Verdict {
  const value = header(headers, 'x-hub-signature-256');
  if (value === undefined) return { ok: false, message: 'the X-Hub-Signature-256 header is missing' };
  const match = /^sha256=([0-9a-fA-F]{64})$/.exec(value.trim());
  if (!match) {
    return { ok: false, message: 'the X-Hub-Signature-256 header is malformed: expected sha256=<hex>' };
  }
  const delivery = header(headers, 'x-github-delivery')?.trim();
  if (delivery === undefined) return { ok: false, message: 'the X-GitHub-Delivery header is missing' };
  if (!EVENT_ID.test(delivery)) return { ok: false, message: 'the X-GitHub-Delivery header is malformed' };
  if (!matches(check.keys, [Buffer.from(match[1]!, 'hex')], body)) {
    return { ok: false, message: 'the X-Hub-Signature-256 signature does not match the body' };
  }
  // GitHub signs no timestamp and not the delivery id: a captured request sent again under a new
  // delivery id is caught by the body's digest.
  return { ok: true, eventIds: [`github:${delivery}`, `github-body:${digest(body)}`] };
}

function verifyStandard(
  check: SignatureCheck,
  headers: IncomingHttpHeaders,
  body: Buffer,
  now: number,
): Verdict {
  const id = header(headers, 'webhook-id')?.trim();
  const timestamp = header(headers, 'webhook-timestamp')?.trim();
  const signatures = header(headers, 'webhook-signature');
  for (const [name, value] of [
    ['webhook-id', id],
    ['webhook-timestamp', timestamp],
    ['webhook-signature', signatures],
  ] as const) {
    if (value === undefined) return { ok: false, message: `the ${name} header is missing` };
  }
  if (!EVENT_ID.test(id!)) return { ok: false, message: 'the webhook-id header is malformed' };
  if (!TIMESTAMP.test(timestamp!)) {
    return { ok: false, message: 'the webhook-timestamp header is malformed: expected unix seconds' };
  }
  const given: Buffer[] = [];
  for (const entry of signatures!.trim().split(/ +/)) {
    const comma = entry.indexOf(',');
    // Other versions (v1a: asymmetric) are skipped, as the spec asks of verifiers.
    if (comma < 0 || entry.slice(0, comma) !== 'v1') continue;
    const encoded = entry.slice(comma + 1);
    if (/^[A-Za-z0-9+/]+={0,2}$/.test(encoded)) given.push(Buffer.from(encoded, 'base64'));
  }
  if (given.length === 0) {
    return { ok: false, message: 'the webhook-signature header is malformed: expected v1,<base64>' };
  }
  const stale = staleness('webhook-timestamp', Number(timestamp), check, now);
  if (stale) return { ok: false, message: stale };
  if (!matches(check.keys, given, `${id}.${timestamp}.`, body)) {
    return { ok: false, message: 'the webhook-signature does not match the id, timestamp and body' };
  }
  return { ok: true, eventIds: [`standard:${id}`] };
}

/** Checks one request's signature; `now` in ms. */
export function verifySignature(
  check: SignatureCheck,
  headers: IncomingHttpHeaders,
  body: Buffer,
  now: number,
): Verdict {
  switch (check.scheme) {
    case 'generic':
      return verifyGeneric(check, headers, body, now);
    case 'github':
      return verifyGithub(check, headers, body);
    case 'standard-webhooks':
      return verifyStandard(check, headers, body, now);
  }
}

class Replayed extends Error {}

/**
 * Remembers a verified request's event ids; false when one was seen before (a replay), and then
 * nothing is remembered. Rows are purged with the gateway log, so that is the replay window.
 */
export async function rememberEvents(
  store: Store,
  workspaceId: string,
  flowName: string,
  eventIds: readonly string[],
  now: number,
): Promise<boolean> {
  try {
    await store.db.transaction().execute(async (trx) => {
      for (const eventId of eventIds) {
        const result = await trx
          .insertInto('webhook_events_seen')
          .values({ workspace_id: workspaceId, flow_name: flowName, event_id: eventId, seen_at: now })
          .onConflict((conflict) => conflict.columns(['workspace_id', 'flow_name', 'event_id']).doNothing())
          .executeTakeFirst();
        // Rolls back the ids already inserted: a refused request leaves nothing behind.
        if (result.numInsertedOrUpdatedRows === 0n) throw new Replayed();
      }
    });
    return true;
  } catch (error) {
    if (error instanceof Replayed) return false;
    throw error;
  }
}

/** Forgets event ids whose run could not be made, so the sender's retry is not taken for a replay. */
export async function forgetEvents(
  store: Store,
  workspaceId: string,
  flowName: string,
  eventIds: readonly string[],
): Promise<void> {
  if (eventIds.length === 0) return;
  await store.db
    .deleteFrom('webhook_events_seen')
    .where('workspace_id', '=', workspaceId)
    .where('flow_name', '=', flowName)
    .where('event_id', 'in', eventIds)
    .execute();
}
