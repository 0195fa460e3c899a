/**
 * API tokens of a workspace: list them (never their hashes), make one — shown once, in the
 * reply, and with a role no higher than the caller's — and revoke one. Making and revoking are
 * audited (ids only) in the home region's log, where tokens live.
 */
import type { FastifyInstance } from 'fastify';
import Type from 'typebox';
import { ROLES, type Role } from '../../security/permissions.js';
import { createToken } from '../../security/tokens.js';
import { decodeCursor, pageLimit, toPage } from '../../store/ids.js';
import type { TokenRow } from '../../store/records.js';
import { actorOf, guard, principalOf, workspaceOf } from '../auth.js';
import type { ServerContext } from '../context.js';
import { HttpError, notFound } from '../http-errors.js';
import {
  BODY_ERRORS,
  GUARDED_ERRORS,
  IdParams,
  isoTime,
  MaybeTime,
  PageOf,
  PageQuery,
  Time,
} from './schemas.js';

const RoleSchema = Type.Union(
  ROLES.map((role) => Type.Literal(role)),
  { description: 'viewer < editor < admin < owner' },
);

const TokenView = Type.Object({
  id: Type.String(),
  role: Type.String(),
  name: Type.String(),
  createdAt: Time,
  expiresAt: MaybeTime,
  lastUsedAt: MaybeTime,
  revokedAt: MaybeTime,
  current: Type.Boolean({ description: 'Whether this is the token making the request' }),
});

const rank = (role: string) => ROLES.indexOf(role as Role);

export async function tokensPlugin(app: FastifyInstance, context: ServerContext): Promise<void> {
  app.get(
    '/workspaces/:ws/tokens',
    {
      onRequest: guard(context, 'token.manage'),
      schema: {
        summary: 'List API tokens, oldest first (never the tokens or their hashes)',
        tags: ['tokens'],
        params: Type.Object({ ws: Type.String() }),
        querystring: PageQuery,
        response: { 200: PageOf(TokenView), ...GUARDED_ERRORS },
      },
    },
    async (request) => {
      const { limit, cursor } = request.query as { limit?: number; cursor?: string };
      const size = pageLimit(limit);
      const after = decodeCursor(cursor);
      const caller = principalOf(request);
      // A person in the console is not a token: none of the list is theirs.
      const self = caller.kind === 'token' ? caller.tokenId : undefined;
      // A workspace has few tokens: the page is cut from the whole list.
      const rows = (await context.home.tokens.list(workspaceOf(request).id))
        .sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0))
        .filter((row) => after === undefined || row.id > after);
      const page = toPage(rows.slice(0, size + 1), size, (row) => row.id);
      return { items: page.items.map((row) => view(row, self)), next: page.next };
    },
  );

  app.post(
    '/workspaces/:ws/tokens',
    {
      onRequest: guard(context, 'token.manage'),
      schema: {
        summary: 'Make an API token: the token is in this reply only, never shown again',
        tags: ['tokens'],
        params: Type.Object({ ws: Type.String() }),
        body: Type.Object(
          {
            role: RoleSchema,
            name: Type.String({ minLength: 1, maxLength: 100, description: 'A label: who or what uses it' }),
            expiresInDays: Type.Optional(Type.Number({ exclusiveMinimum: 0, maximum: 3650 })),
          },
          { additionalProperties: false },
        ),
        response: {
          201: Type.Object({
            id: Type.String(),
            token: Type.String({ description: 'Send as Authorization: Bearer <token>' }),
            role: Type.String(),
            name: Type.String(),
            expiresAt: MaybeTime,
          }),
          ...GUARDED_ERRORS,
          ...BODY_ERRORS,
        },
      },
    },
    async (request, reply) => {
      const { role, name, expiresInDays } = request.body as {
        role: Role;
        name: string;
        expiresInDays?: number;
      };
      const caller = principalOf(request);
      if (rank(role) > rank(caller.role)) {
        throw new HttpError(
          403,
          'FORBIDDEN',
          `the role "${caller.role}" may not make a token with the higher role "${role}"`,
        );
      }
      const expiresAt =
        expiresInDays === undefined ? undefined : Date.now() + Math.round(expiresInDays * 86_400_000);
      const workspaceId = workspaceOf(request).id;
      // Tokens and their audit entries live in the home region (context.audit is its log).
      const created = await context.audit.transaction(async (trx) => {
        const made = await createToken(context.home.tokens, { workspaceId, role, name, expiresAt }, trx);
        await context.audit.append(
          {
            workspaceId,
            actor: actorOf(request),
            action: 'token.created',
            details: { tokenId: made.id, role, expires: expiresAt !== undefined },
          },
          trx,
        );
        return made;
      });
      return reply.code(201).send({
        id: created.id,
        token: created.token,
        role,
        name,
        expiresAt: expiresAt === undefined ? null : isoTime(expiresAt),
      });
    },
  );

  app.delete(
    '/workspaces/:ws/tokens/:id',
    {
      onRequest: guard(context, 'token.manage'),
      schema: {
        summary: 'Revoke an API token (revoking one already revoked changes nothing)',
        tags: ['tokens'],
        params: IdParams,
        response: { 204: Type.Null(), ...GUARDED_ERRORS },
      },
    },
    async (request, reply) => {
      const { id } = request.params as { id: string };
      const workspace = workspaceOf(request);
      const caller = principalOf(request);
      const token = (await context.home.tokens.list(workspace.id)).find((row) => row.id === id);
      if (!token) throw notFound(`token "${id}"`);
      if (rank(token.role) > rank(caller.role)) {
        throw new HttpError(
          403,
          'FORBIDDEN',
          `the role "${caller.role}" may not revoke a token with the higher role "${token.role}"`,
        );
      }
      await context.audit.transaction(async (trx) => {
        await context.home.tokens.revoke(workspace.id, id, Date.now(), trx);
        await context.audit.append(
          {
            workspaceId: workspace.id,
            actor: actorOf(request),
            action: 'token.revoked',
            details: { tokenId: id, alreadyRevoked: token.revoked_at !== null },
          },
          trx,
        );
      });
      return reply.code(204).send();
    },
  );
}

function view(row: Omit<TokenRow, 'token_hash'>, self: string | undefined) {
  return {
    id: row.id,
    role: row.role,
    name: row.name,
    createdAt: isoTime(row.created_at),
    expiresAt: isoTime(row.expires_at),
    lastUsedAt: isoTime(row.last_used_at),
    revokedAt: isoTime(row.revoked_at),
    current: row.id === self,
  };
}
