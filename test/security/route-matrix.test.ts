/**
 * The route × role × foreign-workspace matrix (security issue, item 4), generated from the
 * server's own route record (serverRoutes), so a route added later is in it without anyone
 * remembering to add it: every workspace route must name its action, answer 401 without
 * credentials, 403 below the action's role, something else at or above it, and — for a token
 * or session of another workspace, whatever its role — exactly what a workspace that does not
 * exist answers. Routes outside the workspace API are an explicit allow-list with reasons.
 */
import type { TSchema } from 'typebox';
import Value from 'typebox/value';
import { beforeAll, expect, it } from 'vitest';
import { allows, PERMISSIONS, ROLES, type Role } from '../../src/security/permissions.js';
import { serverRoutes, type ApiRoute } from '../../src/server/plugins/api.js';
import type { TestServer } from '../helpers/server.js';
import { describeStores, useServer } from '../server/api-support.js';
import { makeUser, session, withSession, type Reply, type Session } from './people-support.js';

const WORKSPACE_ROUTE = /^\/api\/v1\/workspaces\/:ws(\/|$)/;

/** Routes without a workspace guard, and why that is right. A new unguarded route fails the test. */
const UNGUARDED: Record<string, string> = {
  'GET /healthz': 'liveness probe: says only "ok"',
  'GET /readyz': 'readiness probe: says only whether the store answers',
  'GET /metrics': 'deployment-wide metrics, authenticated (any valid token or session), no workspace data',
  'POST /hooks/:ws/*': 'webhooks: authenticated by the flow’s own webhook secret (plugins/hooks.ts)',
  'GET /api/v1/openapi.json': 'the API description, authenticated, no workspace data',
  'POST /api/v1/auth/login': 'signing in: there is no principal yet',
  'POST /api/v1/auth/logout': 'signing out: ends the caller’s own session only',
  'GET /api/v1/auth/me': 'the caller’s own user and memberships',
  'POST /api/v1/auth/password': 'changing the caller’s own password',
  'POST /api/v1/auth/invites/accept': 'accepting an invite: authenticated by the invite’s token',
  'POST /api/v1/auth/reset': 'completing a password reset: authenticated by the reset token',
  'GET /login': 'console page (static HTML, no data)',
  'GET /account': 'console page (static HTML, no data)',
  'GET /invite': 'console page (static HTML, no data)',
  'GET /reset': 'console page (static HTML, no data)',
};

function key(route: Pick<ApiRoute, 'method' | 'url'>): string {
  return `${route.method} ${route.url}`;
}

let unique = 0;

/** A concrete URL: the workspace, and a fresh name for every other parameter. */
function concrete(url: string, workspace: string): string {
  unique++;
  return url
    .replace(':ws', workspace)
    .replace(':version', '1')
    .replace(/:[A-Za-z]+/g, `m${unique}`);
}

/** A syntactically plausible body from the route's schema (its defaults), else `{}`. */
function placeholder(route: ApiRoute): unknown {
  if (route.body === undefined) return {};
  try {
    return Value.Create(route.body as TSchema);
  } catch {
    return {};
  }
}

type Caller = { token: string } | { session: Session } | 'anonymous';

async function send(t: TestServer, route: ApiRoute, url: string, caller: Caller): Promise<Reply> {
  const hasBody = !['GET', 'DELETE', 'HEAD'].includes(route.method);
  const body = hasBody ? placeholder(route) : undefined;
  if (caller !== 'anonymous' && 'session' in caller) {
    return withSession(t, caller.session, route.method, url, { body });
  }
  const response = await fetch(`${t.url}${url}`, {
    method: route.method,
    headers: {
      ...(caller === 'anonymous' ? {} : { authorization: `Bearer ${caller.token}` }),
      ...(hasBody ? { 'content-type': 'application/json' } : {}),
    },
    body: hasBody ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  let parsed: Record<string, unknown> = {};
  try {
    parsed = text === '' ? {} : (JSON.parse(text) as Record<string, unknown>);
  } catch {
    parsed = {};
  }
  return { status: response.status, text, body: parsed, headers: response.headers };
}

function errorOf(reply: Reply): { code?: string; message?: string } {
  return (reply.body.error ?? {}) as { code?: string; message?: string };
}

function isWorkspaceNotFound(reply: Reply, workspace: string): boolean {
  const error = errorOf(reply);
  return (
    reply.status === 404 &&
    error.code === 'NOT_FOUND' &&
    error.message === `workspace "${workspace}" not found`
  );
}

/** The answer with the workspace's name taken out, to compare a foreign one with a missing one. */
function shape(reply: Reply, workspace: string) {
  return {
    status: reply.status,
    body: JSON.parse(JSON.stringify(reply.body).split(`\\"${workspace}\\"`).join('<ws>')) as unknown,
  };
}

/** A foreign (or missing) workspace answers like one that does not exist — and says nothing more. */
async function expectLikeMissing(
  t: TestServer,
  route: ApiRoute,
  caller: Caller,
  foreign: string,
  label: string,
): Promise<void> {
  const missing = `nowhere${++unique}`;
  const there = await send(t, route, concrete(route.url, foreign), caller);
  const nowhere = await send(t, route, concrete(route.url, missing), caller);
  expect(isWorkspaceNotFound(nowhere, missing), `${label} on a missing workspace: ${nowhere.text}`).toBe(
    true,
  );
  expect(shape(there, foreign), `${label} on a foreign workspace`).toEqual(shape(nowhere, missing));
}

await describeStores('route × role × foreign workspace', (store) => {
  const server = useServer(store);
  let routes: ApiRoute[] = [];

  beforeAll(() => {
    routes = [...serverRoutes(server().server.context)];
  });

  it('knows every route: workspace routes name their action, the rest are allow-listed with a reason', () => {
    expect(routes.length).toBeGreaterThan(40);
    const keys = new Set(routes.map(key));
    for (const route of routes) {
      if (WORKSPACE_ROUTE.test(route.url)) {
        expect(route.action, `${key(route)} has no guard naming its action`).toBeDefined();
        expect(Object.keys(PERMISSIONS)).toContain(route.action);
      } else {
        expect(route.action, `${key(route)} is guarded outside the workspace API`).toBeUndefined();
        expect(UNGUARDED[key(route)], `${key(route)} is not guarded and not in the allow-list`).toBeDefined();
      }
    }
    // A stale entry would let a route of the same name in later unnoticed.
    for (const entry of Object.keys(UNGUARDED)) expect(keys.has(entry), `${entry} is gone`).toBe(true);
  });

  it('tokens: 401 without, 403 below the role, allowed at or above it, foreign = missing for every role', async () => {
    const t = server();
    const guarded = routes.filter((route) => route.action !== undefined);
    expect(guarded.length).toBeGreaterThan(30);
    const foreign = 'matrix-b';
    const foreignTokens = Object.fromEntries(
      await Promise.all(ROLES.map(async (role) => [role, await t.token(role, foreign)] as const)),
    ) as Record<Role, string>;
    for (const [index, route] of guarded.entries()) {
      // A workspace of its own per route: what a role's call changes cannot affect the next route.
      const home = `matrix-a${index}`;
      const tokens = {} as Record<Role, string>;
      for (const role of ROLES) tokens[role] = await t.token(role, home);
      const action = route.action!;
      const label = key(route);

      const anonymous = await send(t, route, concrete(route.url, home), 'anonymous');
      expect(anonymous.status, `${label} anonymous: ${anonymous.text}`).toBe(401);
      expect(errorOf(anonymous).code).toBe('UNAUTHENTICATED');

      for (const role of ROLES) {
        // A's token on B, and B's token on A: both exactly like a workspace that does not exist.
        await expectLikeMissing(t, route, { token: tokens[role] }, foreign, `${label} A-${role} on B`);
        await expectLikeMissing(t, route, { token: foreignTokens[role] }, home, `${label} B-${role} on A`);
      }

      // Lowest role first, so an owner's change (closing the workspace) comes last.
      for (const role of ROLES) {
        const reply = await send(t, route, concrete(route.url, home), { token: tokens[role] });
        const what = `${label} as ${role} (needs ${PERMISSIONS[action]}): ${reply.status} ${reply.text}`;
        if (allows(role, action)) {
          expect([401, 403], what).not.toContain(reply.status);
          expect(isWorkspaceNotFound(reply, home), what).toBe(false);
          expect(reply.status, what).toBeLessThan(500);
        } else {
          expect(reply.status, what).toBe(403);
          expect(errorOf(reply).code, what).toBe('FORBIDDEN');
        }
      }
    }
  });

  it('console sessions: 403 below the role, foreign = missing for every role', async () => {
    const t = server();
    const home = 'matrix-session-a';
    const foreign = 'matrix-session-b';
    await t.server.context.home.workspaces.ensure(foreign);
    const sessions = {} as Record<Role, Session>;
    for (const role of ROLES) {
      const user = await makeUser(t, { role, workspace: home });
      sessions[role] = await session(t, user.email);
    }
    for (const route of routes.filter((r) => r.action !== undefined)) {
      const label = key(route);
      for (const role of ROLES) {
        const caller = { session: sessions[role] };
        await expectLikeMissing(t, route, caller, foreign, `${label} session-${role} on B`);
        // Refusals change nothing, so they can share the workspace; allowed calls are the
        // token matrix's job.
        if (!allows(role, route.action!)) {
          const reply = await send(t, route, concrete(route.url, home), caller);
          expect(reply.status, `${label} session-${role}: ${reply.text}`).toBe(403);
          expect(errorOf(reply).code).toBe('FORBIDDEN');
        }
      }
    }
  });
});
