/**
 * The people of a workspace (admin): list members, change a member's role or remove them,
 * invite an e-mail address with a role (the reply holds the invite link, once), list and
 * withdraw open invites, and issue a password-reset link for a member who belongs to this
 * workspace only. Nobody grants a role above their own, so only an owner makes owners; the
 * last owner stays. Every change is in the audit log (src/security/people.ts).
 */
import type { FastifyInstance } from 'fastify';
import Type from 'typebox';
import { ROLES, type Role } from '../../security/permissions.js';
import { actorOf, guard, principalOf, workspaceOf } from '../auth.js';
import type { ServerContext } from '../context.js';
import { HttpError, notFound } from '../http-errors.js';
import { answering, peopleOf } from '../people.js';
import { ownOrigin } from '../web.js';
import {
  BODY_ERRORS,
  CONFLICT_ERRORS,
  GUARDED_ERRORS,
  isoTime,
  PageOf,
  PageQuery,
  Time,
  WorkspaceParams,
} from './schemas.js';

const RoleSchema = Type.Union(
  ROLES.map((role) => Type.Literal(role)),
  { description: 'viewer < editor < admin < owner' },
);

const MemberParams = Type.Object({
  ws: Type.String({ description: 'Workspace name' }),
  userId: Type.String({ description: 'The member’s user id' }),
});

const InviteParams = Type.Object({
  ws: Type.String({ description: 'Workspace name' }),
  id: Type.String({ description: 'The invite’s id' }),
});

const MemberView = Type.Object({
  userId: Type.String(),
  email: Type.String(),
  role: Type.String(),
  since: Time,
  disabled: Type.Boolean(),
  passwordSet: Type.Boolean({ description: 'False until an invited person accepts' }),
});

const InviteView = Type.Object({
  id: Type.String(),
  email: Type.String(),
  role: Type.String(),
  createdAt: Time,
  expiresAt: Time,
});

const LinkReply = Type.Object({
  id: Type.String(),
  token: Type.String({ description: 'Single use; shown in this reply only' }),
  url: Type.String({
    description: 'The link to hand over (the token is in its fragment, never sent to a server)',
  }),
  expiresAt: Time,
});

const rank = (role: string) => ROLES.indexOf(role as Role);

export async function membersPlugin(app: FastifyInstance, context: ServerContext): Promise<void> {
  const people = peopleOf(context);

  app.get(
    '/workspaces/:ws/members',
    {
      onRequest: guard(context, 'member.read'),
      schema: {
        summary: 'List the workspace’s members and their roles',
        tags: ['members'],
        params: WorkspaceParams,
        querystring: PageQuery,
        response: { 200: PageOf(MemberView), ...GUARDED_ERRORS },
      },
    },
    async (request) => {
      const { limit, cursor } = request.query as { limit?: number; cursor?: string };
      const size = Math.min(limit ?? 50, 500);
      const after = cursor ? Buffer.from(cursor, 'base64url').toString('utf8') : undefined;
      const rows = (await people.members(workspaceOf(request).id)).filter(
        (row) => after === undefined || row.user.id > after,
      );
      const page = rows.slice(0, size);
      return {
        items: page.map(({ membership, user }) => ({
          userId: user.id,
          email: user.email,
          role: membership.role,
          since: isoTime(Number(membership.created_at)),
          disabled: user.disabled_at !== null,
          passwordSet: user.password_hash !== null,
        })),
        next:
          rows.length > size
            ? Buffer.from(page[page.length - 1]!.user.id, 'utf8').toString('base64url')
            : null,
      };
    },
  );

  app.put(
    '/workspaces/:ws/members/:userId',
    {
      onRequest: guard(context, 'member.write'),
      schema: {
        summary: 'Change a member’s role (only an owner grants or changes owner; the last owner stays)',
        tags: ['members'],
        params: MemberParams,
        body: Type.Object({ role: RoleSchema }, { additionalProperties: false }),
        response: {
          200: Type.Object({ userId: Type.String(), role: Type.String(), previous: Type.String() }),
          ...GUARDED_ERRORS,
          ...BODY_ERRORS,
          ...CONFLICT_ERRORS,
        },
      },
    },
    async (request) => {
      const { userId } = request.params as { userId: string };
      const { role } = request.body as { role: Role };
      const workspace = workspaceOf(request);
      if (!(await people.roleIn(workspace.id, userId))) throw notFound(`member "${userId}"`);
      const { previous } = await answering(() =>
        people.setMembership(
          { workspaceId: workspace.id, userId, role, callerRole: principalOf(request).role },
          actorOf(request),
        ),
      );
      return { userId, role, previous: previous ?? role };
    },
  );

  app.delete(
    '/workspaces/:ws/members/:userId',
    {
      onRequest: guard(context, 'member.write'),
      schema: {
        summary: 'Remove a member from the workspace (the last owner stays)',
        tags: ['members'],
        params: MemberParams,
        response: { 204: Type.Null(), ...GUARDED_ERRORS, ...CONFLICT_ERRORS },
      },
    },
    async (request, reply) => {
      const { userId } = request.params as { userId: string };
      const removed = await answering(() =>
        people.removeMembership(
          { workspaceId: workspaceOf(request).id, userId, callerRole: principalOf(request).role },
          actorOf(request),
        ),
      );
      if (!removed) throw notFound(`member "${userId}"`);
      return reply.code(204).send();
    },
  );

  app.post(
    '/workspaces/:ws/members/invites',
    {
      onRequest: guard(context, 'member.write'),
      schema: {
        summary: 'Invite an e-mail address with a role: the reply has the single-use link, once',
        tags: ['members'],
        params: WorkspaceParams,
        body: Type.Object(
          { email: Type.String({ minLength: 3, maxLength: 254 }), role: RoleSchema },
          { additionalProperties: false },
        ),
        response: {
          201: Type.Object({ ...LinkReply.properties, role: Type.String() }),
          ...GUARDED_ERRORS,
          ...BODY_ERRORS,
        },
      },
    },
    async (request, reply) => {
      const { email, role } = request.body as { email: string; role: Role };
      const issued = await answering(() =>
        people.invite(
          { workspaceId: workspaceOf(request).id, email, role, callerRole: principalOf(request).role },
          actorOf(request),
        ),
      );
      reply.header('cache-control', 'no-store');
      return reply.code(201).send({
        id: issued.id,
        token: issued.token,
        url: `${ownOrigin(context, request)}/invite#${issued.token}`,
        expiresAt: isoTime(issued.expiresAt),
        role,
      });
    },
  );

  app.get(
    '/workspaces/:ws/members/invites',
    {
      onRequest: guard(context, 'member.read'),
      schema: {
        summary: 'Open invites (not accepted, not expired), oldest first (never their tokens)',
        tags: ['members'],
        params: WorkspaceParams,
        response: { 200: PageOf(InviteView), ...GUARDED_ERRORS },
      },
    },
    async (request) => {
      const rows = await people.openInvites(workspaceOf(request).id);
      return {
        items: rows.map((row) => ({
          id: row.id,
          email: row.email ?? '',
          role: row.role ?? '',
          createdAt: isoTime(Number(row.created_at)),
          expiresAt: isoTime(Number(row.expires_at)),
        })),
        next: null,
      };
    },
  );

  app.delete(
    '/workspaces/:ws/members/invites/:id',
    {
      onRequest: guard(context, 'member.write'),
      schema: {
        summary: 'Withdraw an open invite',
        tags: ['members'],
        params: InviteParams,
        response: { 204: Type.Null(), ...GUARDED_ERRORS },
      },
    },
    async (request, reply) => {
      const { id } = request.params as { id: string };
      if (!(await people.revokeInvite(workspaceOf(request).id, id, actorOf(request)))) {
        throw notFound(`invite "${id}"`);
      }
      return reply.code(204).send();
    },
  );

  app.post(
    '/workspaces/:ws/members/:userId/reset',
    {
      onRequest: guard(context, 'member.write'),
      schema: {
        summary:
          'A password-reset link for a member of this workspace only, with a role no higher than yours (others: lethe user reset)',
        tags: ['members'],
        params: MemberParams,
        response: { 201: LinkReply, ...GUARDED_ERRORS },
      },
    },
    async (request, reply) => {
      const { userId } = request.params as { userId: string };
      const workspace = workspaceOf(request);
      const caller = principalOf(request);
      const memberships = await people.membershipsOf(userId);
      const here = memberships.find((row) => row.workspace_id === workspace.id);
      if (!here) throw notFound(`member "${userId}"`);
      const user = await people.userById(userId);
      // A reset takes over an account: only where this workspace's admins are all it answers to.
      if (
        memberships.length > 1 ||
        user?.deployment_role === 'operator' ||
        rank(here.role) > rank(caller.role)
      ) {
        throw new HttpError(
          403,
          'FORBIDDEN',
          'this member belongs to other workspaces, is an operator, or has a higher role than yours',
          'an operator can issue the reset: lethe user reset --email <address>',
        );
      }
      const issued = await people.issueReset(userId, actorOf(request), workspace.id);
      reply.header('cache-control', 'no-store');
      return reply.code(201).send({
        id: issued.id,
        token: issued.token,
        url: `${ownOrigin(context, request)}/reset#${issued.token}`,
        expiresAt: isoTime(issued.expiresAt),
      });
    },
  );
}
