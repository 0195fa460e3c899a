/**
 * The server's side of people (src/security/people.ts): one `People` per deployment (over the
 * home region's store, where users, memberships and sessions live), signing in with a session
 * cookie, and the CSRF rule for cookie-authenticated requests that change something:
 * Fetch Metadata, Origin, and the session-bound token in `x-csrf-token`. Bearer-token requests
 * carry no ambient credentials, so none of this applies to them.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { AuditLog } from '../privacy/audit.js';
import type { Role } from '../security/permissions.js';
import { PasswordRejected } from '../security/passwords.js';
import { People, RoleTooLow, type NewSession } from '../security/people.js';
import type { Principal, UserPrincipal } from '../security/principals.js';
import {
  clearedSessionCookie,
  CSRF_HEADER,
  csrfTokenMatches,
  sessionCookie,
  sessionIdFromCookies,
} from '../security/sessions.js';
import type { Store } from '../store/index.js';
import type { ServerContext } from './context.js';
import { HttpError } from './http-errors.js';
import { isSafeMethod, refuseCrossSite } from './web.js';

const services = new WeakMap<Store, People>();

/** The deployment's People (made on first use; its clock and throttles live as long as the store). */
export function peopleOf(context: ServerContext): People {
  const home = context.home;
  let people = services.get(home);
  if (!people) {
    people = new People(home, new AuditLog(home.db), context.config.people);
    services.set(home, people);
  }
  return people;
}

export function unauthenticated(message = 'this route needs an API token or a console session'): HttpError {
  return new HttpError(
    401,
    'UNAUTHENTICATED',
    message,
    'send Authorization: Bearer <token> (lethe token create), or sign in at /login',
  );
}

/** The session id in the request's cookie, if any. */
export function sessionIdOf(request: FastifyRequest): string | undefined {
  return sessionIdFromCookies(request.headers.cookie);
}

/**
 * The principal of a session cookie. A request that changes something must also come from
 * this server's own pages: same-origin Fetch Metadata, this server's Origin, and the session's
 * CSRF token.
 */
export async function sessionPrincipal(
  context: ServerContext,
  request: FastifyRequest,
  sessionId: string,
): Promise<UserPrincipal> {
  const checked = await peopleOf(context).checkSession(sessionId);
  if (!checked) throw unauthenticated('the session has ended: sign in again');
  if (!isSafeMethod(request.method)) {
    refuseCrossSite(context, request);
    const token = request.headers[CSRF_HEADER];
    if (
      !csrfTokenMatches(checked.session.csrf_secret, sessionId, typeof token === 'string' ? token : undefined)
    ) {
      throw new HttpError(
        403,
        'CSRF_TOKEN_MISSING',
        'a console request that changes something needs the session’s CSRF token',
        `send it in the ${CSRF_HEADER} header (GET /api/v1/auth/me gives it)`,
      );
    }
  }
  return { kind: 'user', userId: checked.user.id, sessionHash: checked.session.id_hash };
}

/** The principal's role in a workspace; undefined when it has none there (the caller gets 404). */
export async function roleOf(
  context: ServerContext,
  principal: Principal,
  workspaceId: string,
): Promise<Role | undefined> {
  if (principal.kind === 'token') return principal.workspaceId === workspaceId ? principal.role : undefined;
  return peopleOf(context).roleIn(workspaceId, principal.userId);
}

/** Give the browser its new session. */
export function setSessionCookie(context: ServerContext, reply: FastifyReply, session: NewSession): void {
  reply.header('set-cookie', sessionCookie(session.id, context.config.people.sessionAbsoluteMs));
  reply.header('cache-control', 'no-store');
}

export function clearSessionCookie(reply: FastifyReply): void {
  reply.header('set-cookie', clearedSessionCookie());
  reply.header('cache-control', 'no-store');
}

/** People's refusals as API answers: a weak password is 400 WEAK_PASSWORD, a role too low 403. */
export async function answering<T>(work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (error) {
    if (error instanceof PasswordRejected) {
      throw new HttpError(400, 'WEAK_PASSWORD', error.message, error.details.hint);
    }
    if (error instanceof RoleTooLow) throw new HttpError(403, 'FORBIDDEN', error.message);
    throw error;
  }
}
