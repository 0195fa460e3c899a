/**
 * API tokens: `lethe_` and 256 random bits, shown once when made and stored only as a SHA-256
 * hash (a fast hash is right for values this random: there is nothing to guess). Scoped to a
 * workspace and a role; optionally expiring; revocable.
 */
import { createHash, randomBytes } from 'node:crypto';
import { LetheError } from '../errors/index.js';
import { newId } from '../store/ids.js';
import type { TokenRepository } from '../store/records.js';
import type { Db } from '../store/schema.js';
import { isRole } from './permissions.js';
import type { TokenPrincipal } from './principals.js';

export const TOKEN_PREFIX = 'lethe_';

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export type { Principal, TokenPrincipal } from './principals.js';

export interface CreatedToken {
  id: string;
  token: string;
}

export async function createToken(
  tokens: TokenRepository,
  options: { workspaceId: string; role: string; name?: string; expiresAt?: number },
  trx?: Db,
): Promise<CreatedToken> {
  if (!isRole(options.role)) {
    throw new LetheError('USAGE', `unknown role "${options.role}": use owner, admin, editor or viewer`);
  }
  const token = TOKEN_PREFIX + randomBytes(32).toString('base64url');
  const id = newId();
  await tokens.insert(
    {
      id,
      workspace_id: options.workspaceId,
      role: options.role,
      name: options.name ?? '',
      token_hash: hashToken(token),
      created_at: Date.now(),
      expires_at: options.expiresAt ?? null,
      last_used_at: null,
      revoked_at: null,
    },
    trx,
  );
  return { id, token };
}

/** The principal of a bearer token, or undefined when it is unknown, revoked or expired. */
export async function verifyToken(
  tokens: TokenRepository,
  token: string,
  now: number,
): Promise<TokenPrincipal | undefined> {
  if (!token.startsWith(TOKEN_PREFIX) || token.length > 200) return undefined;
  const row = await tokens.byHash(hashToken(token));
  if (
    !row ||
    row.revoked_at !== null ||
    (row.expires_at !== null && row.expires_at <= now) ||
    !isRole(row.role)
  ) {
    return undefined;
  }
  return { kind: 'token', tokenId: row.id, workspaceId: row.workspace_id, role: row.role };
}
