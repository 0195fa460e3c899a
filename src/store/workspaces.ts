/** Workspaces: tenants. Everything else in the store hangs off a workspace id. */
import type { Kysely, Transaction } from 'kysely';
import { LetheError } from '../errors/index.js';
import { newId } from './ids.js';
import type { Database, WorkspacesTable } from './schema.js';

export const WORKSPACE_NAME_PATTERN = /^[a-z0-9][a-z0-9_-]{0,62}$/;

export type Workspace = WorkspacesTable;

export class WorkspaceRepository {
  constructor(private readonly db: Kysely<Database>) {}

  async byName(name: string): Promise<Workspace | undefined> {
    return this.db.selectFrom('workspaces').selectAll().where('name', '=', name).executeTakeFirst();
  }

  async byId(id: string): Promise<Workspace | undefined> {
    return this.db.selectFrom('workspaces').selectAll().where('id', '=', id).executeTakeFirst();
  }

  async list(): Promise<Workspace[]> {
    return this.db.selectFrom('workspaces').selectAll().orderBy('name').execute();
  }

  /**
   * The workspace of that name, made (in `region`) if it does not exist yet. Creating one in a
   * region other than home goes through the deployment (src/regions), which keeps the directory.
   */
  async ensure(name: string, region = 'default'): Promise<Workspace> {
    if (!WORKSPACE_NAME_PATTERN.test(name)) {
      throw new LetheError('USAGE', `invalid workspace name "${name}": use a-z, 0-9, "_" and "-"`);
    }
    const existing = await this.byName(name);
    if (existing) return existing;
    const workspace: Workspace = {
      id: newId(),
      name,
      created_at: Date.now(),
      settings: '{}',
      region,
      status: 'active',
      closed_at: null,
      purge_after: null,
    };
    await this.db
      .insertInto('workspaces')
      .values(workspace)
      .onConflict((conflict) => conflict.column('name').doNothing())
      .execute();
    return (await this.byName(name))!;
  }

  /** Insert a workspace row as it is (a directory entry, or a moved workspace's row). */
  async insert(workspace: Workspace): Promise<void> {
    await this.db.insertInto('workspaces').values(workspace).execute();
  }
}

function parseSettings(text: string): Record<string, unknown> {
  try {
    const parsed = JSON.parse(text) as unknown;
    return parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)
      ? (parsed as Record<string, unknown>)
      : {};
  } catch {
    return {};
  }
}

/**
 * Change part of a workspace's settings JSON in `trx`: `change` gets the current settings and
 * returns the keys to set (undefined removes a key); every other key stays. Returns the
 * settings as they were.
 */
export async function updateWorkspaceSettings(
  trx: Transaction<Database>,
  workspaceId: string,
  change: (current: Readonly<Record<string, unknown>>) => Record<string, unknown>,
): Promise<Record<string, unknown>> {
  const row = await trx
    .selectFrom('workspaces')
    .select('settings')
    .where('id', '=', workspaceId)
    .executeTakeFirstOrThrow();
  const current = parseSettings(row.settings);
  const next = { ...current };
  for (const [key, value] of Object.entries(change(current))) {
    if (value === undefined) delete next[key];
    else next[key] = value;
  }
  await trx
    .updateTable('workspaces')
    .set({ settings: JSON.stringify(next) })
    .where('id', '=', workspaceId)
    .execute();
  return current;
}
