/**
 * `lethe user …` and `lethe member …`: the people of a deployment, from the machine it runs on
 * (the operator's tools; workspace admins use the API or the console). Passwords are never
 * flags: they are asked for without echo on a terminal, or read as the first line of standard
 * input. Invite and reset links are printed once, on stdout, for the operator to hand over.
 * Every change is in the audit log with the actor `cli`.
 */
import type { Command } from 'commander';
import { LetheError } from '../errors/index.js';
import { isRole } from '../security/permissions.js';
import { People, RoleTooLow } from '../security/people.js';
import type { UserRow } from '../store/people.js';
import { withDeployment, type OpenedDeployment } from './deployment.js';
import { Prompter } from './remote.js';
import { EXIT } from './report.js';

const ACTOR = 'cli';

interface Common {
  dataDir?: string;
  json?: boolean;
}

function peopleOf(opened: OpenedDeployment): People {
  return new People(opened.home.store, opened.home.audit, opened.config.people);
}

/** A new password: asked twice on a terminal (no echo), or the first line of standard input. */
async function readNewPassword(): Promise<string> {
  const prompter = new Prompter(process.stdin, process.stderr);
  try {
    const password = await prompter.ask('Password: ', true);
    if (process.stdin.isTTY) {
      const again = await prompter.ask('The same again: ', true);
      if (again !== password) throw new LetheError('USAGE', 'the two passwords differ');
    }
    if (password === '') {
      throw new LetheError('USAGE', 'no password given', {
        hint: 'type it when asked, or pipe it in: printf %s "$PASSWORD" | lethe user create --email …',
      });
    }
    return password;
  } finally {
    prompter.close();
  }
}

/** Where links point: LETHE_PUBLIC_URL, or the address `lethe serve` listens on. */
/** The single-use link on stdout (alone, for scripts), how long it lasts on stderr. */
function printLink(
  opened: OpenedDeployment,
  page: 'invite' | 'reset',
  issued: { token: string; expiresAt: number },
): void {
  process.stdout.write(`${linkBase(opened)}/${page}#${issued.token}\n`);
  process.stderr.write(`valid until ${new Date(issued.expiresAt).toISOString()}, once\n`);
}

function linkBase(opened: OpenedDeployment): string {
  const { web, host, port } = opened.config;
  if (web.publicUrl) return new URL(web.publicUrl).origin;
  const scheme = web.tlsCert ? 'https' : 'http';
  const shown = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  return `${scheme}://${shown}:${port}`;
}

async function workspaceId(opened: OpenedDeployment, name: string, create = false): Promise<string> {
  const located = await opened.deployment.locate(name);
  if (located) return located.workspace.id;
  if (!create) throw new LetheError('USAGE', `there is no workspace "${name}"`);
  return (await opened.deployment.createWorkspace(name)).workspace.id;
}

function role(value: string | undefined): string {
  if (value === undefined || !isRole(value)) {
    throw new LetheError(
      'USAGE',
      `--role must be owner, admin, editor or viewer${value ? `, not "${value}"` : ''}`,
    );
  }
  return value;
}

function run(options: Common, work: (opened: OpenedDeployment, people: People) => Promise<void>) {
  return withDeployment({ dataDir: options.dataDir }, async (opened) => {
    try {
      await work(opened, peopleOf(opened));
    } catch (error) {
      if (error instanceof RoleTooLow) throw new LetheError('USAGE', error.message);
      throw error;
    }
    return EXIT.ok;
  });
}

function describeUser(user: UserRow, workspaces: string[]): string {
  const flags = [
    user.deployment_role === 'operator' ? 'operator' : '',
    user.disabled_at !== null ? 'disabled' : '',
    user.password_hash === null ? 'no password yet' : '',
  ].filter(Boolean);
  return `${user.id}  ${user.email}${flags.length ? `  (${flags.join(', ')})` : ''}${
    workspaces.length ? `  ${workspaces.join(', ')}` : ''
  }\n`;
}

export function registerUserCommands(program: Command, setExitCode: (code: number) => void): void {
  const user = program.command('user').description('people who sign in to the web console');
  const dataDir = ['--data-dir <dir>', 'the server’s data dir (LETHE_DATA_DIR, default ./data)'] as const;

  user
    .command('create')
    .description('make a user; the password is asked for (no echo) or read from standard input, never a flag')
    .requiredOption('--email <address>', 'the e-mail address they sign in with')
    .option('--workspace <name>', 'make them a member of this workspace (made if it does not exist)')
    .option('--role <role>', 'their role there: owner, admin, editor or viewer')
    .option('--operator', 'they run the deployment (recorded; workspaces still need memberships)')
    .option(...dataDir)
    .action(
      async (options: Common & { email: string; workspace?: string; role?: string; operator?: boolean }) => {
        setExitCode(
          await run(options, async (opened, people) => {
            if ((options.workspace === undefined) !== (options.role === undefined)) {
              throw new LetheError('USAGE', '--workspace and --role go together');
            }
            const memberRole = options.workspace === undefined ? undefined : role(options.role);
            const password = await readNewPassword();
            // Said before a workspace is made for a user who cannot be.
            if (await people.userByEmail(options.email)) {
              throw new LetheError('CONFLICT', 'a user with that e-mail address exists already');
            }
            const membership =
              options.workspace !== undefined && memberRole !== undefined
                ? { workspaceId: await workspaceId(opened, options.workspace, true), role: memberRole }
                : undefined;
            const created = await people.createUser(
              { email: options.email, password, operator: options.operator, membership },
              ACTOR,
            );
            // The id alone on stdout, for scripts.
            process.stdout.write(`${created.id}\n`);
          }),
        );
      },
    );

  user
    .command('list')
    .description('list users with their workspaces and roles (never password hashes)')
    .option('--json', 'print JSON')
    .option(...dataDir)
    .action(async (options: Common) => {
      setExitCode(
        await run(options, async (opened, people) => {
          const names = new Map((await opened.home.store.workspaces.list()).map((ws) => [ws.id, ws.name]));
          const users = [];
          for (const row of await people.listUsers()) {
            const memberships = (await people.membershipsOf(row.id)).map((m) => ({
              workspace: names.get(m.workspace_id) ?? m.workspace_id,
              role: m.role,
            }));
            users.push({ row, memberships });
          }
          if (options.json) {
            const json = users.map(({ row, memberships }) => ({
              id: row.id,
              email: row.email,
              operator: row.deployment_role === 'operator',
              disabled: row.disabled_at !== null,
              passwordSet: row.password_hash !== null,
              workspaces: memberships,
            }));
            process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
            return;
          }
          if (users.length === 0) process.stdout.write('no users\n');
          for (const { row, memberships } of users) {
            process.stdout.write(
              describeUser(
                row,
                memberships.map((m) => `${m.workspace}:${m.role}`),
              ),
            );
          }
        }),
      );
    });

  for (const [name, disabled, description] of [
    ['disable', true, 'stop a user from signing in; every session of theirs ends at once'],
    ['enable', false, 'let a disabled user sign in again'],
  ] as const) {
    user
      .command(name)
      .description(description)
      .requiredOption('--email <address>', 'the user')
      .option(...dataDir)
      .action(async (options: Common & { email: string }) => {
        setExitCode(
          await run(options, async (_opened, people) => {
            const target = await people.requireUser(options.email);
            const { sessionsEnded } = await people.setDisabled(target.id, disabled, ACTOR);
            process.stderr.write(
              `user ${target.id} ${disabled ? `disabled (${sessionsEnded} session${sessionsEnded === 1 ? '' : 's'} ended)` : 'enabled'}\n`,
            );
          }),
        );
      });
  }

  user
    .command('reset')
    .description('print a single-use link with which the user sets a new password (LETHE_RESET_TTL_MINUTES)')
    .requiredOption('--email <address>', 'the user')
    .option(...dataDir)
    .action(async (options: Common & { email: string }) => {
      setExitCode(
        await run(options, async (opened, people) => {
          const target = await people.requireUser(options.email);
          const issued = await people.issueReset(target.id, ACTOR);
          printLink(opened, 'reset', issued);
        }),
      );
    });

  user
    .command('invite')
    .description('print a single-use link that makes the person a member of a workspace')
    .requiredOption('--email <address>', 'whom to invite')
    .requiredOption('--workspace <name>', 'the workspace')
    .requiredOption('--role <role>', 'owner, admin, editor or viewer')
    .option(...dataDir)
    .action(async (options: Common & { email: string; workspace: string; role: string }) => {
      setExitCode(
        await run(options, async (opened, people) => {
          const id = await workspaceId(opened, options.workspace);
          const issued = await people.invite(
            { workspaceId: id, email: options.email, role: role(options.role) },
            ACTOR,
          );
          printLink(opened, 'invite', issued);
        }),
      );
    });

  const member = program.command('member').description('who belongs to a workspace, with which role');
  member
    .command('list')
    .description('the members of a workspace')
    .requiredOption('--workspace <name>', 'the workspace')
    .option('--json', 'print JSON')
    .option(...dataDir)
    .action(async (options: Common & { workspace: string }) => {
      setExitCode(
        await run(options, async (opened, people) => {
          const members = await people.members(await workspaceId(opened, options.workspace));
          const rows = members.map(({ membership, user: row }) => ({
            userId: row.id,
            email: row.email,
            role: membership.role,
          }));
          if (options.json) process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
          else if (rows.length === 0) process.stdout.write('no members\n');
          else for (const row of rows) process.stdout.write(`${row.userId}  ${row.email}  ${row.role}\n`);
        }),
      );
    });

  for (const [name, description] of [
    ['add', 'make an existing user a member of a workspace'],
    ['role', 'change a member’s role'],
  ] as const) {
    member
      .command(name)
      .description(description)
      .requiredOption('--email <address>', 'the user')
      .requiredOption('--workspace <name>', 'the workspace')
      .requiredOption('--role <role>', 'owner, admin, editor or viewer')
      .option(...dataDir)
      .action(async (options: Common & { email: string; workspace: string; role: string }) => {
        setExitCode(
          await run(options, async (opened, people) => {
            const target = await people.requireUser(options.email);
            const id = await workspaceId(opened, options.workspace);
            const current = await people.roleIn(id, target.id);
            if (name === 'add' && current) {
              throw new LetheError('USAGE', `already a member (role "${current}")`, {
                hint: 'lethe member role',
              });
            }
            if (name === 'role' && !current) {
              throw new LetheError('USAGE', 'not a member of that workspace', { hint: 'lethe member add' });
            }
            await people.setMembership(
              { workspaceId: id, userId: target.id, role: role(options.role) },
              ACTOR,
            );
          }),
        );
      });
  }

  member
    .command('remove')
    .description('remove a member from a workspace')
    .requiredOption('--email <address>', 'the user')
    .requiredOption('--workspace <name>', 'the workspace')
    .option(...dataDir)
    .action(async (options: Common & { email: string; workspace: string }) => {
      setExitCode(
        await run(options, async (opened, people) => {
          const target = await people.requireUser(options.email);
          const id = await workspaceId(opened, options.workspace);
          if (!(await people.removeMembership({ workspaceId: id, userId: target.id }, ACTOR))) {
            throw new LetheError('USAGE', 'not a member of that workspace');
          }
        }),
      );
    });
}
