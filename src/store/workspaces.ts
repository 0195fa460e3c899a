/** Workspaces: tenants. Everything else in the store hangs off a workspace id. */
import type { Kysely } from 'kysely';
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

  /** The workspace of that name, made if it does not exist yet. */
  async ensure(name: string): Promise<Workspace> {
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
      region: 'default',
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
}
