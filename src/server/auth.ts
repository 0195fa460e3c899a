/**
 * Access to `/api/v1/workspaces/{ws}/…`: a bearer token names a workspace and a role; the
 * route names the action it performs (security/permissions.ts). A token for another workspace
 * gets 404 — the same answer as a workspace that does not exist, so nothing leaks across
 * workspaces. A person signed in to the console (a session cookie, ./people.ts) has the role
 * of their membership in the workspace, and no access — the same 404 — where they have none.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { allows, type Action } from '../security/permissions.js';
import { actorId, type Principal, type WorkspacePrincipal } from '../security/principals.js';
import { verifyToken } from '../security/tokens.js';
import type { Workspace } from '../store/workspaces.js';
import type { ServerContext } from './context.js';
import { HttpError } from './http-errors.js';
import { peopleOf, roleOf, sessionIdOf, sessionPrincipal, unauthenticated } from './people.js';
import { RetryLater } from './web.js';

declare module 'fastify' {
  interface FastifyRequest {
    principal?: WorkspacePrincipal;
    workspace?: Workspace;
    /** The workspace's region's context (set by guard). */
    scope?: ServerContext;
  }
}

const BEARER = /^Bearer ([A-Za-z0-9_\-.~+/]+=*)$/;

/**
 * The caller's principal — a bearer token, or else a console session — or a 401 that says how
 * to authenticate. Failed tokens back off per client address (429 while backing off).
 */
export async function authenticate(context: ServerContext, request: FastifyRequest): Promise<Principal> {
  const header = request.headers.authorization;
  if (header === undefined) {
    const sessionId = sessionIdOf(request);
    if (sessionId !== undefined) return sessionPrincipal(context, request, sessionId);
  }
  const match = typeof header === 'string' ? BEARER.exec(header) : null;
  if (!match) throw unauthenticated();
  const failures = peopleOf(context).tokenFailures;
  const wait = failures.retryAfter(request.ip);
  if (wait > 0) throw new RetryLater(wait, 'TOO_MANY_ATTEMPTS', 'too many unknown tokens from this address');
  const principal = await verifyToken(context.home.tokens, match[1]!, Date.now());
  if (!principal) {
    failures.fail(request.ip);
    throw new HttpError(401, 'UNAUTHENTICATED', 'the token is unknown, revoked or expired');
  }
  return principal;
}

/**
 * An onRequest hook for routes under /api/v1/workspaces/:ws: authenticate, find the workspace,
 * check the role — before the body is even parsed, so an anonymous caller learns nothing.
 */
export function guard(context: ServerContext, action: Action) {
  const hook = async (request: FastifyRequest, _reply: FastifyReply): Promise<void> => {
    const principal = await authenticate(context, request);
    const name = (request.params as { ws?: string }).ws ?? '';
    // The directory says where the workspace lives; from here on the route works in that
    // region's context (scopeOf), so its rows are read and written in that store only.
    const entry = await context.home.workspaces.byName(name);
    const role = entry ? await roleOf(context, principal, entry.id) : undefined;
    if (!entry || role === undefined) {
      throw new HttpError(404, 'NOT_FOUND', `workspace "${name}" not found`);
    }
    if (entry.status === 'moving') {
      throw new HttpError(
        503,
        'UNAVAILABLE',
        `workspace "${name}" is being moved to another region`,
        'retry in a few minutes',
      );
    }
    const located = await context.deployment.resolve(entry);
    const scope = context.regions.get(located.region.spec.name)!;
    const { workspace } = located;
    // A closed workspace is in passive storage: unreadable, whatever the role (privacy/workspace-lifecycle.ts).
    if (workspace.status !== 'active') {
      const until =
        workspace.purge_after === null
          ? ''
          : ` until ${new Date(Number(workspace.purge_after)).toISOString()}, then purged`;
      throw new HttpError(
        410,
        'WORKSPACE_CLOSED',
        `workspace "${name}" is closed: its data is in passive storage${until} and cannot be read or changed`,
        'an operator can reopen it before then with lethe workspace reopen',
      );
    }
    if (!allows(role, action)) {
      throw new HttpError(403, 'FORBIDDEN', `the role "${role}" may not ${action.replace('.', ' ')}`);
    }
    request.principal =
      principal.kind === 'token' ? principal : { ...principal, workspaceId: entry.id, role };
    request.workspace = workspace;
    request.scope = scope;
  };
  guarded.set(hook, action);
  return hook;
}

/** Each guard hook's action, so the server can say which action every route performs. */
const guarded = new WeakMap<object, Action>();

/** The action a route's hook(s) check, if one of them is a guard (plugins/api.ts records it). */
export function guardedAction(hooks: unknown): Action | undefined {
  for (const hook of [hooks].flat()) {
    if (typeof hook === 'function') {
      const action = guarded.get(hook);
      if (action) return action;
    }
  }
  return undefined;
}

/** The context of the workspace's region, for a guarded route: use it for the workspace's data. */
export function scopeOf(request: FastifyRequest): ServerContext {
  if (!request.scope) throw new HttpError(500, 'INTERNAL', 'route is not guarded');
  return request.scope;
}

/** The workspace a guarded route runs in (set by guard). */
export function workspaceOf(request: FastifyRequest): Workspace {
  if (!request.workspace) throw new HttpError(500, 'INTERNAL', 'route is not guarded');
  return request.workspace;
}

export function principalOf(request: FastifyRequest): WorkspacePrincipal {
  if (!request.principal) throw new HttpError(500, 'INTERNAL', 'route is not guarded');
  return request.principal;
}

/** Who did it, for audit entries and authorship: an id, never a name. */
export function actorOf(request: FastifyRequest): string {
  return actorId(principalOf(request));
}
