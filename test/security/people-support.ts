/**
 * Shared pieces of the people, session and web-hardening tests: users made through the
 * server's own People service, signing in over HTTP, requests with the session cookie, and a
 * movable clock (People.now) so timeouts and back-off are tested without sleeping.
 */
import { expect } from 'vitest';
import type { Role } from '../../src/security/permissions.js';
import type { People } from '../../src/security/people.js';
import { peopleConfigFromEnv, type PeopleConfig } from '../../src/security/people-config.js';
import { SESSION_COOKIE } from '../../src/security/sessions.js';
import { peopleOf } from '../../src/server/people.js';
import { webConfigFromEnv, type WebConfig } from '../../src/server/web-config.js';
import type { TestServer } from '../helpers/server.js';

/** Passwords the policy accepts (long, not on the common list). */
export const PASSWORD = 'plum kettle orbit 42';
export const OTHER_PASSWORD = 'granite lantern tulip 7';

export function people(t: TestServer): People {
  return peopleOf(t.server.context);
}

/** A clock the test moves: starts at the real time, `advance(ms)` moves it on. */
export function useClock(t: TestServer): { now: () => number; advance: (ms: number) => void } {
  let now = Date.now();
  people(t).now = () => now;
  return {
    now: () => now,
    advance: (ms) => {
      now += ms;
    },
  };
}

export function peopleConfig(env: Record<string, string> = {}): PeopleConfig {
  return peopleConfigFromEnv(env);
}

export function webConfig(env: Record<string, string> = {}, flags = {}): WebConfig {
  return webConfigFromEnv(flags, env);
}

let counter = 0;

/** An e-mail address no other test uses. */
export function uniqueEmail(prefix = 'person'): string {
  counter++;
  return `${prefix}-${counter}-${Math.random().toString(36).slice(2, 8)}@example.test`;
}

/** A user with a password, a member of `workspace` with `role` when given. */
export async function makeUser(
  t: TestServer,
  options: { email?: string; password?: string; role?: Role; workspace?: string } = {},
): Promise<{ id: string; email: string; password: string }> {
  const email = options.email ?? uniqueEmail();
  const password = options.password ?? PASSWORD;
  const user = await people(t).createUser({ email, password }, 'test');
  if (options.role) {
    const ws = await t.server.context.home.workspaces.ensure(options.workspace ?? 'default');
    await people(t).setMembership({ workspaceId: ws.id, userId: user.id, role: options.role }, 'test');
  }
  return { id: user.id, email, password };
}

export interface Reply {
  status: number;
  text: string;
  body: Record<string, unknown>;
  headers: Headers;
}

async function reply(response: Response): Promise<Reply> {
  const text = await response.text();
  let body: Record<string, unknown> = {};
  try {
    body = text === '' ? {} : (JSON.parse(text) as Record<string, unknown>);
  } catch {
    body = {};
  }
  return { status: response.status, text, body, headers: response.headers };
}

/** The session cookie's value in a Set-Cookie header. */
export function cookieOf(headers: Headers): string | undefined {
  const set = headers.getSetCookie().find((line) => line.startsWith(`${SESSION_COOKIE}=`));
  if (!set) return undefined;
  return set.slice(SESSION_COOKIE.length + 1).split(';')[0];
}

export interface Session {
  cookie: string;
  csrf: string;
}

/** POST /api/v1/auth/login; the reply, and the session when it worked. */
export async function signIn(
  t: TestServer,
  email: string,
  password: string,
  headers: Record<string, string> = {},
): Promise<Reply & { session?: Session }> {
  const response = await fetch(`${t.url}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ email, password }),
  });
  const result = await reply(response);
  const cookie = cookieOf(result.headers);
  return {
    ...result,
    ...(cookie && result.status === 200
      ? { session: { cookie, csrf: result.body.csrfToken as string } }
      : {}),
  };
}

/** Sign in and expect it to work. */
export async function session(t: TestServer, email: string, password = PASSWORD): Promise<Session> {
  const result = await signIn(t, email, password);
  expect(result.status, result.text).toBe(200);
  return result.session!;
}

/**
 * A request with the session cookie. By default it looks like the console's own fetch: the
 * CSRF token, same-origin Fetch Metadata, this server's Origin; `csrf: false` and `headers`
 * change that.
 */
export async function withSession(
  t: TestServer,
  s: Pick<Session, 'cookie'> & { csrf?: string },
  method: string,
  path: string,
  options: { body?: unknown; csrf?: boolean; headers?: Record<string, string> } = {},
): Promise<Reply> {
  const headers: Record<string, string> = { cookie: `${SESSION_COOKIE}=${s.cookie}` };
  if (method !== 'GET' && method !== 'HEAD') {
    headers.origin = t.url;
    headers['sec-fetch-site'] = 'same-origin';
    if (options.csrf !== false && s.csrf) headers['x-csrf-token'] = s.csrf;
  }
  if (options.body !== undefined) headers['content-type'] = 'application/json';
  Object.assign(headers, options.headers);
  for (const [key, value] of Object.entries(headers)) if (value === '') delete headers[key];
  const response = await fetch(`${t.url}${path}`, {
    method,
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  return reply(response);
}

/** The audit entries of an action, oldest first. */
export async function auditEntries(t: TestServer, action: string) {
  return t.server.context.home.db
    .selectFrom('audit_log')
    .selectAll()
    .where('action', '=', action)
    .orderBy('seq')
    .execute();
}
