/**
 * Access to `/api/v1/workspaces/{ws}/…`: a bearer token names a workspace and a role; the
 * route names the action it performs (security/permissions.ts). A token for another workspace
 * gets 404 — the same answer as a workspace that does not exist, so nothing leaks across
 * workspaces. Users and sessions (the security issue) will resolve to the same Principal.
 */
import type { FastifyReply, FastifyRequest } from 'fastify';
import { allows, type Action } from '../security/permissions.js';
import { verifyToken, type Principal } from '../security/tokens.js';
import type { Workspace } from '../store/workspaces.js';
import type { ServerContext } from './context.js';
import { HttpError } from './http-errors.js';

declare module 'fastify' {
  interface FastifyRequest {
    principal?: Principal;
    workspace?: Workspace;
  }
}

const BEARER = /^Bearer ([A-Za-z0-9_\-.~+/]+=*)$/;

/** The caller's principal, or a 401 that says how to authenticate. */
export async function authenticate(context: ServerContext, request: FastifyRequest): Promise<Principal> {
  const header = request.headers.authorization;
  const match = typeof header === 'string' ? BEARER.exec(header) : null;
  if (!match) {
    throw new HttpError(
      401,
      'UNAUTHENTICATED',
      'this route needs an API token',
      'send Authorization: Bearer <token> (lethe token create)',
    );
  }
  const principal = await verifyToken(context.store.tokens, match[1]!, Date.now());
  if (!principal) throw new HttpError(401, 'UNAUTHENTICATED', 'the token is unknown, revoked or expired');
  return principal;
}

/**
 * An onRequest hook for routes under /api/v1/workspaces/:ws: authenticate, find the workspace,
 * check the role — before the body is even parsed, so an anonymous caller learns nothing.
 */
export function guard(context: ServerContext, action: Action) {
  return async (request: FastifyRequest, _reply: FastifyReply): Promise<void> => {
    const principal = await authenticate(context, request);
    const name = (request.params as { ws?: string }).ws ?? '';
    const workspace = await context.store.workspaces.byName(name);
    if (!workspace || workspace.id !== principal.workspaceId) {
      throw new HttpError(404, 'NOT_FOUND', `workspace "${name}" not found`);
    }
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
    if (!allows(principal.role, action)) {
      throw new HttpError(
        403,
        'FORBIDDEN',
        `the role "${principal.role}" may not ${action.replace('.', ' ')}`,
      );
    }
    request.principal = principal;
    request.workspace = workspace;
  };
}

/** The workspace a guarded route runs in (set by guard). */
export function workspaceOf(request: FastifyRequest): Workspace {
  if (!request.workspace) throw new HttpError(500, 'INTERNAL', 'route is not guarded');
  return request.workspace;
}

export function principalOf(request: FastifyRequest): Principal {
  if (!request.principal) throw new HttpError(500, 'INTERNAL', 'route is not guarded');
  return request.principal;
}

/** Who did it, for audit entries and authorship: an id, never a name. */
export function actorOf(request: FastifyRequest): string {
  return `token:${principalOf(request).tokenId}`;
}
