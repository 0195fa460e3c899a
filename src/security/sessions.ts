/**
 * Console sessions (SPEC §7): the id is 256 random bits, sent only in a `__Host-` cookie
 * (Secure, HttpOnly, SameSite=Strict, Path=/, no Domain) and stored only as its SHA-256. Each
 * session has a CSRF secret; the CSRF token a page sends back in `x-csrf-token` is
 * HMAC-SHA256(secret, session id), so it takes both the database row and the cookie to make
 * one, and it dies with the session.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

export const SESSION_COOKIE = '__Host-lethe_session';
export const CSRF_HEADER = 'x-csrf-token';

/** A new session id (256 bits, base64url) and the hash that is stored. */
export function newSessionId(): { id: string; idHash: string } {
  const id = randomBytes(32).toString('base64url');
  return { id, idHash: hashSessionId(id) };
}

export function hashSessionId(id: string): string {
  return createHash('sha256').update(id, 'utf8').digest('hex');
}

export function newCsrfSecret(): string {
  return randomBytes(32).toString('base64url');
}

/** The CSRF token of a session: HMAC-SHA256 over the session id, keyed by the session's secret. */
export function csrfToken(secret: string, sessionId: string): string {
  return createHmac('sha256', secret).update(sessionId, 'utf8').digest('base64url');
}

/** Whether `token` is the session's CSRF token (compared in constant time). */
export function csrfTokenMatches(secret: string, sessionId: string, token: string | undefined): boolean {
  if (typeof token !== 'string' || token.length === 0 || token.length > 100) return false;
  const expected = Buffer.from(csrfToken(secret, sessionId), 'utf8');
  const given = Buffer.from(token, 'utf8');
  return expected.length === given.length && timingSafeEqual(expected, given);
}

/** A session id looks like this (anything else is not looked up). */
const SESSION_ID = /^[A-Za-z0-9_-]{43}$/;

/** The session id in a Cookie header, if there is a well-formed one. */
export function sessionIdFromCookies(header: string | undefined): string | undefined {
  if (typeof header !== 'string' || header.length > 8192) return undefined;
  for (const part of header.split(';')) {
    const at = part.indexOf('=');
    if (at < 0) continue;
    if (part.slice(0, at).trim() !== SESSION_COOKIE) continue;
    const value = part.slice(at + 1).trim();
    if (SESSION_ID.test(value)) return value;
  }
  return undefined;
}

/** The Set-Cookie value that gives the browser a session (kept at most `maxAgeMs`). */
export function sessionCookie(id: string, maxAgeMs: number): string {
  const maxAge = Math.max(0, Math.floor(maxAgeMs / 1000));
  return `${SESSION_COOKIE}=${id}; Path=/; Max-Age=${maxAge}; Secure; HttpOnly; SameSite=Strict`;
}

/** The Set-Cookie value that removes the session cookie. */
export function clearedSessionCookie(): string {
  return `${SESSION_COOKIE}=; Path=/; Max-Age=0; Secure; HttpOnly; SameSite=Strict`;
}
