/**
 * `lethe user …` and `lethe member …` through the built CLI: passwords come on standard input
 * (never a flag) and go through the password policy, users made here sign in to a server on the
 * same data dir, listings never show a hash, and invite and reset links printed here work
 * once against that server.
 */
import { describe, expect, it } from 'vitest';
import { startTestServer, type TestServer } from '../helpers/server.js';
import {
  cookieOf,
  OTHER_PASSWORD,
  PASSWORD,
  signIn,
  uniqueEmail,
  withSession,
} from '../security/people-support.js';
import { expectNoStackTrace, lethe as runLethe, lines, useTempDir, type CliResult } from './support.js';

/** Run `lethe …args` with `input` on standard input, on this test's data dir alone. */
function lethe(args: readonly string[], input = ''): Promise<CliResult> {
  return runLethe(args, { input, env: { LETHE_DATABASE_URL: undefined, LETHE_PUBLIC_URL: undefined } });
}

async function post(t: TestServer, path: string, body: unknown) {
  const response = await fetch(`${t.url}/api/v1/auth${path}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(body),
  });
  return { status: response.status, text: await response.text(), headers: response.headers };
}

describe('lethe user and lethe member', () => {
  const dir = useTempDir();

  it('creates a user from a password on stdin, who then signs in to a server on the same data dir', async () => {
    const dataDir = dir();
    const email = uniqueEmail('cli');
    const created = await lethe(
      [
        'user',
        'create',
        '--email',
        email,
        '--workspace',
        'default',
        '--role',
        'editor',
        '--data-dir',
        dataDir,
      ],
      `${PASSWORD}\n`,
    );
    expect(created.code, created.stderr).toBe(0);
    const [id] = lines(created.stdout);
    expect(id).toMatch(/^\S+$/);
    expect(created.stdout + created.stderr).not.toContain(PASSWORD);
    // The same address twice is refused.
    const twice = await lethe(
      ['user', 'create', '--email', email, '--data-dir', dataDir],
      `${OTHER_PASSWORD}\n`,
    );
    expect(twice.code).not.toBe(0);
    expect(twice.stderr).toMatch(/exists already/);
    // …with a workspace too: nothing is made, not even the workspace.
    const withWorkspace = await lethe(
      [
        'user',
        'create',
        '--email',
        email,
        '--workspace',
        'fresh-ws',
        '--role',
        'viewer',
        '--data-dir',
        dataDir,
      ],
      `${OTHER_PASSWORD}\n`,
    );
    expect(withWorkspace.code).not.toBe(0);
    expect(withWorkspace.stderr).toMatch(/exists already/);
    const workspaces = await lethe(['workspace', 'list', '--data-dir', dataDir]);
    expect(workspaces.stdout).not.toContain('fresh-ws');

    const t = await startTestServer({ store: 'sqlite', dataDir });
    try {
      const signedIn = await signIn(t, email, PASSWORD);
      expect(signedIn.status, signedIn.text).toBe(200);
      expect(signedIn.body).toMatchObject({ user: { id, email } });
      const me = await withSession(t, signedIn.session!, 'GET', '/api/v1/auth/me');
      expect(me.body).toMatchObject({ workspaces: [{ name: 'default', role: 'editor' }] });
      expect((await signIn(t, email, OTHER_PASSWORD)).status).toBe(401);
    } finally {
      await t.close();
    }
  });

  it('refuses a common or short password with a message and a non-zero exit, and makes no user', async () => {
    const dataDir = dir();
    const email = uniqueEmail('weak');
    for (const password of ['password123', 'short', '']) {
      const result = await lethe(
        ['user', 'create', '--email', email, '--data-dir', dataDir],
        `${password}\n`,
      );
      expect(result.code, password).not.toBe(0);
      expect(result.stderr, password).toMatch(/common|characters|no password given/);
      expectNoStackTrace(result);
    }
    const listed = await lethe(['user', 'list', '--json', '--data-dir', dataDir]);
    expect(listed.code, listed.stderr).toBe(0);
    expect(JSON.parse(listed.stdout)).toEqual([]);
    // A role without a workspace, or an unknown role, is a usage error before any password.
    const role = await lethe(['user', 'create', '--email', email, '--role', 'viewer', '--data-dir', dataDir]);
    expect(role.code).not.toBe(0);
    expect(role.stderr).toMatch(/--workspace and --role go together/);
  });

  it('lists users and members without password hashes', async () => {
    const dataDir = dir();
    const email = uniqueEmail('listed');
    const created = await lethe(
      ['user', 'create', '--email', email, '--workspace', 'team', '--role', 'admin', '--data-dir', dataDir],
      `${PASSWORD}\n`,
    );
    expect(created.code, created.stderr).toBe(0);
    const id = lines(created.stdout)[0]!;
    const text = await lethe(['user', 'list', '--data-dir', dataDir]);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toContain(`${id}  ${email}  team:admin`);
    const json = await lethe(['user', 'list', '--json', '--data-dir', dataDir]);
    expect(JSON.parse(json.stdout)).toEqual([
      {
        id,
        email,
        operator: false,
        disabled: false,
        passwordSet: true,
        workspaces: [{ workspace: 'team', role: 'admin' }],
      },
    ]);
    const members = await lethe(['member', 'list', '--workspace', 'team', '--data-dir', dataDir]);
    expect(members.stdout).toBe(`${id}  ${email}  admin\n`);
    for (const output of [text, json, members]) {
      expect(output.stdout + output.stderr).not.toMatch(/argon2|pbkdf2|\$[a-z0-9]+\$|password_hash/i);
    }
  });

  it('prints invite and reset links that work once against the server', async () => {
    const dataDir = dir();
    const owner = uniqueEmail('owner');
    const made = await lethe(
      [
        'user',
        'create',
        '--email',
        owner,
        '--workspace',
        'default',
        '--role',
        'owner',
        '--data-dir',
        dataDir,
      ],
      `${PASSWORD}\n`,
    );
    expect(made.code, made.stderr).toBe(0);
    const t = await startTestServer({ store: 'sqlite', dataDir });
    try {
      const invitee = uniqueEmail('invitee');
      const invited = await lethe([
        'user',
        'invite',
        '--email',
        invitee,
        '--workspace',
        'default',
        '--role',
        'viewer',
        '--data-dir',
        dataDir,
      ]);
      expect(invited.code, invited.stderr).toBe(0);
      expect(invited.stdout).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/invite#lethe_invite_[A-Za-z0-9_-]{43}\n$/);
      expect(invited.stderr).toMatch(/valid until .*, once/);
      const inviteToken = invited.stdout.trim().split('#')[1]!;
      const accepted = await post(t, '/invites/accept', { token: inviteToken, password: OTHER_PASSWORD });
      expect(accepted.status, accepted.text).toBe(200);
      expect(cookieOf(accepted.headers)).toBeDefined();
      expect(
        (await post(t, '/invites/accept', { token: inviteToken, password: OTHER_PASSWORD })).status,
      ).toBe(400);

      const owners = await signIn(t, owner, PASSWORD);
      expect(owners.status).toBe(200);
      const reset = await lethe(['user', 'reset', '--email', owner, '--data-dir', dataDir]);
      expect(reset.code, reset.stderr).toBe(0);
      expect(reset.stdout).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/reset#lethe_reset_[A-Za-z0-9_-]{43}\n$/);
      const resetToken = reset.stdout.trim().split('#')[1]!;
      expect((await post(t, '/reset', { token: resetToken, password: OTHER_PASSWORD })).status).toBe(204);
      expect((await withSession(t, owners.session!, 'GET', '/api/v1/auth/me')).status).toBe(401);
      expect((await signIn(t, owner, OTHER_PASSWORD)).status).toBe(200);
      expect((await post(t, '/reset', { token: resetToken, password: PASSWORD })).status).toBe(400);

      // Unknown users and workspaces are usage errors.
      const nobody = await lethe(['user', 'reset', '--email', uniqueEmail('nobody'), '--data-dir', dataDir]);
      expect(nobody.code).not.toBe(0);
      expect(nobody.stderr).toMatch(/no user has that e-mail address/);
      const nowhere = await lethe([
        'user',
        'invite',
        '--email',
        invitee,
        '--workspace',
        'nowhere',
        '--role',
        'viewer',
        '--data-dir',
        dataDir,
      ]);
      expect(nowhere.code).not.toBe(0);
      expect(nowhere.stderr).toMatch(/no workspace "nowhere"/);
    } finally {
      await t.close();
    }
  });
});
