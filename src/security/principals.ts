/**
 * Who is calling. A script calls with an API token, which names one workspace and one role; a
 * person calls from the console with a session, and their role in a workspace comes from their
 * membership there. A guarded route sees a `WorkspacePrincipal`: either kind, with the role it
 * has in the route's workspace.
 */
import type { Role } from './permissions.js';

/** A bearer API token: scoped to one workspace, with one role. */
export interface TokenPrincipal {
  kind: 'token';
  tokenId: string;
  workspaceId: string;
  role: Role;
}

/** A person signed in to the console (a session cookie). */
export interface UserPrincipal {
  kind: 'user';
  userId: string;
  /** SHA-256 of the session id (what the sessions table keys on). */
  sessionHash: string;
}

export type Principal = TokenPrincipal | UserPrincipal;

/** A principal inside the workspace of a guarded route, with its role there. */
export type WorkspacePrincipal = TokenPrincipal | (UserPrincipal & { workspaceId: string; role: Role });

/** The actor recorded in audit entries and authorship: `token:<id>` or `user:<id>`, ids only. */
export function actorId(principal: Principal): string {
  return principal.kind === 'user' ? `user:${principal.userId}` : `token:${principal.tokenId}`;
}
