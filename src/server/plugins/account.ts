/**
 * Signing in to the console, under /api/v1/auth (not workspace-guarded):
 *
 * - `POST /login` `{ email, password }` → a session cookie (`__Host-lethe_session`, a new id
 *   every time) and the session's CSRF token. Every failure is the same 401 — unknown address,
 *   wrong password, disabled account — and 429 while the account or the address backs off.
 * - `POST /logout`, `GET /me`, `POST /password` (every session ends; this one gets a new id).
 * - `POST /invites/accept` `{ token, password }` and `POST /reset` `{ token, password }`: the
 *   single-use tokens of an invite or a password reset.
 *
 * Requests with a session cookie that change something go through the CSRF rule
 * (../people.ts); the sign-in routes themselves refuse cross-site browsers (Fetch Metadata,
 * Origin) and are rate-limited per client address (LETHE_RATE_LIMIT_AUTH).
 */
import type { FastifyInstance, FastifyRequest } from 'fastify';
import Type from 'typebox';
import { hashSessionId } from '../../security/sessions.js';
import type { UserPrincipal } from '../../security/principals.js';
import { authenticate } from '../auth.js';
import type { ServerContext } from '../context.js';
import { HttpError } from '../http-errors.js';
import { answering, clearSessionCookie, peopleOf, sessionIdOf, setSessionCookie } from '../people.js';
import { refuseCrossSite, RetryLater } from '../web.js';
import { BODY_ERRORS, ErrorReply, Time } from './schemas.js';

const AUTH_ERRORS = { 400: ErrorReply, 401: ErrorReply, 403: ErrorReply, 429: ErrorReply, ...BODY_ERRORS };

const Email = Type.String({ minLength: 1, maxLength: 320, description: 'The e-mail address' });
const Password = Type.String({ minLength: 1, maxLength: 1024 });
const NewPassword = Type.String({
  minLength: 1,
  maxLength: 1024,
  description: '8 to 256 characters, not a common password; no other rules',
});
const SingleUseToken = Type.String({
  minLength: 1,
  maxLength: 200,
  description: 'From the invite or reset link',
});

const UserView = Type.Object({ id: Type.String(), email: Type.String() });

const SessionReply = Type.Object({
  user: UserView,
  csrfToken: Type.String({ description: 'Send as x-csrf-token with requests that change something' }),
  expiresAt: Time,
});

/** The failure every sign-in answers, whatever went wrong. */
const signInFailed = () =>
  new HttpError(401, 'SIGNIN_FAILED', 'the e-mail address or the password is not right');

export async function accountPlugin(app: FastifyInstance, context: ServerContext): Promise<void> {
  const people = peopleOf(context);
  const max = context.config.web.rateLimit.auth;
  const limited = { rateLimit: max > 0 ? { max, timeWindow: 60_000 } : (false as const) };

  async function sessionUser(request: FastifyRequest): Promise<UserPrincipal> {
    const principal = await authenticate(context, request);
    if (principal.kind !== 'user') {
      throw new HttpError(400, 'NOT_A_SESSION', 'this route is for console sessions, not API tokens');
    }
    return principal;
  }

  app.post(
    '/login',
    {
      config: limited,
      schema: {
        summary: 'Sign in to the console: sets the session cookie and returns its CSRF token',
        tags: ['auth'],
        security: [],
        body: Type.Object({ email: Email, password: Password }, { additionalProperties: false }),
        response: { 200: SessionReply, ...AUTH_ERRORS },
      },
    },
    async (request, reply) => {
      refuseCrossSite(context, request);
      const { email, password } = request.body as { email: string; password: string };
      const previous = sessionIdOf(request);
      const result = await people.signIn(
        email,
        password,
        request.ip,
        previous === undefined ? undefined : hashSessionId(previous),
      );
      if (!result.ok) {
        if (result.retryAfterMs > 0) {
          throw new RetryLater(
            result.retryAfterMs,
            'TOO_MANY_ATTEMPTS',
            'too many failed sign-ins: wait a while',
          );
        }
        throw signInFailed();
      }
      request.log.info({ user: result.user.id }, 'signed in');
      setSessionCookie(context, reply, result.session);
      return {
        user: { id: result.user.id, email: result.user.email },
        csrfToken: result.session.csrfToken,
        expiresAt: new Date(result.session.expiresAt).toISOString(),
      };
    },
  );

  app.post(
    '/logout',
    {
      schema: {
        summary: 'Sign out: the session ends and its cookie is removed',
        tags: ['auth'],
        security: [{ session: [] }],
        response: { 204: Type.Null(), ...AUTH_ERRORS },
      },
    },
    async (request, reply) => {
      const principal = await sessionUser(request);
      await people.signOut(principal.sessionHash, principal.userId);
      clearSessionCookie(reply);
      return reply.code(204).send();
    },
  );

  app.get(
    '/me',
    {
      schema: {
        summary:
          'Who is calling: the user (and the session’s CSRF token) or the API token, with workspaces and roles',
        tags: ['auth'],
        response: {
          200: Type.Object({
            kind: Type.Union([Type.Literal('user'), Type.Literal('token')]),
            user: Type.Optional(
              Type.Object({ id: Type.String(), email: Type.String(), operator: Type.Boolean() }),
            ),
            tokenId: Type.Optional(Type.String()),
            workspaces: Type.Array(Type.Object({ name: Type.String(), role: Type.String() })),
            csrfToken: Type.Optional(Type.String()),
            expiresAt: Type.Optional(Time),
          }),
          ...AUTH_ERRORS,
        },
      },
    },
    async (request, reply) => {
      const principal = await authenticate(context, request);
      reply.header('cache-control', 'no-store');
      const nameOf = async (id: string) => (await context.home.workspaces.byId(id))?.name;
      if (principal.kind === 'token') {
        const name = await nameOf(principal.workspaceId);
        return {
          kind: 'token' as const,
          tokenId: principal.tokenId,
          workspaces: name ? [{ name, role: principal.role }] : [],
        };
      }
      const user = await people.userById(principal.userId);
      if (!user) throw new HttpError(401, 'UNAUTHENTICATED', 'the session has ended: sign in again');
      const workspaces = [];
      for (const membership of await people.membershipsOf(user.id)) {
        const name = await nameOf(membership.workspace_id);
        if (name) workspaces.push({ name, role: membership.role });
      }
      const csrf = await people.csrfTokenOf(sessionIdOf(request)!);
      return {
        kind: 'user' as const,
        user: { id: user.id, email: user.email, operator: user.deployment_role === 'operator' },
        workspaces: workspaces.sort((a, b) => a.name.localeCompare(b.name)),
        ...(csrf ? { csrfToken: csrf.csrfToken, expiresAt: new Date(csrf.expiresAt).toISOString() } : {}),
      };
    },
  );

  app.post(
    '/password',
    {
      config: limited,
      schema: {
        summary: 'Change the password: every session of the user ends, this one continues on a new id',
        tags: ['auth'],
        security: [{ session: [] }],
        body: Type.Object(
          { currentPassword: Password, newPassword: NewPassword },
          { additionalProperties: false },
        ),
        response: { 200: SessionReply, ...AUTH_ERRORS },
      },
    },
    async (request, reply) => {
      const principal = await sessionUser(request);
      const { currentPassword, newPassword } = request.body as {
        currentPassword: string;
        newPassword: string;
      };
      const result = await answering(() =>
        people.changePassword(principal.userId, currentPassword, newPassword, request.ip),
      );
      if (!result.ok) {
        if (result.retryAfterMs > 0) {
          throw new RetryLater(
            result.retryAfterMs,
            'TOO_MANY_ATTEMPTS',
            'too many wrong passwords: wait a while',
          );
        }
        throw new HttpError(400, 'WRONG_PASSWORD', 'the current password is not right');
      }
      const user = (await people.userById(principal.userId))!;
      setSessionCookie(context, reply, result.session);
      return {
        user: { id: user.id, email: user.email },
        csrfToken: result.session.csrfToken,
        expiresAt: new Date(result.session.expiresAt).toISOString(),
      };
    },
  );

  /** Single-use tokens: a wrong one counts against the address like a wrong API token. */
  function checkAddress(request: FastifyRequest): void {
    const wait = people.tokenFailures.retryAfter(request.ip);
    if (wait > 0)
      throw new RetryLater(wait, 'TOO_MANY_ATTEMPTS', 'too many unknown tokens from this address');
  }

  app.post(
    '/invites/accept',
    {
      config: limited,
      schema: {
        summary:
          'Accept an invite: set a password (a new account) or confirm with yours (an existing one); signs in',
        tags: ['auth'],
        security: [],
        body: Type.Object({ token: SingleUseToken, password: NewPassword }, { additionalProperties: false }),
        response: {
          200: Type.Object({
            user: UserView,
            workspace: Type.String(),
            csrfToken: Type.String(),
            expiresAt: Time,
          }),
          ...AUTH_ERRORS,
        },
      },
    },
    async (request, reply) => {
      refuseCrossSite(context, request);
      checkAddress(request);
      const { token, password } = request.body as { token: string; password: string };
      const accepted = await answering(() => people.acceptInvite(token, password));
      if (!accepted) {
        people.tokenFailures.fail(request.ip);
        throw new HttpError(
          400,
          'INVALID_TOKEN',
          'the invite is unknown, used or expired, or the password is not the account’s',
          'ask the workspace’s admin for a new invite',
        );
      }
      const workspace = await context.home.workspaces.byId(accepted.workspaceId);
      setSessionCookie(context, reply, accepted.session);
      return {
        user: { id: accepted.user.id, email: accepted.user.email },
        workspace: workspace?.name ?? '',
        csrfToken: accepted.session.csrfToken,
        expiresAt: new Date(accepted.session.expiresAt).toISOString(),
      };
    },
  );

  app.post(
    '/reset',
    {
      config: limited,
      schema: {
        summary: 'Set a new password with a reset token: every session of the user ends',
        tags: ['auth'],
        security: [],
        body: Type.Object({ token: SingleUseToken, password: NewPassword }, { additionalProperties: false }),
        response: { 204: Type.Null(), ...AUTH_ERRORS },
      },
    },
    async (request, reply) => {
      refuseCrossSite(context, request);
      checkAddress(request);
      const { token, password } = request.body as { token: string; password: string };
      if (!(await answering(() => people.consumeReset(token, password)))) {
        people.tokenFailures.fail(request.ip);
        throw new HttpError(
          400,
          'INVALID_TOKEN',
          'the reset token is unknown, used or expired',
          'ask an admin or operator for a new one',
        );
      }
      clearSessionCookie(reply);
      return reply.code(204).send();
    },
  );
}
