/**
 * On a fresh store, the `default` workspace gets the example flows of examples/server and the
 * SQLite connection they use, so `npm start` gives something to call at once. Turned off with
 * LETHE_SEED_EXAMPLES=0; never touches a workspace that already has flows.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseFlow } from '../flow/load.js';
import type { Store } from '../store/index.js';
import type { Workspace } from '../store/workspaces.js';

const EXAMPLES = ['order-totals.yaml', 'orders-intake.yaml'];

/** examples/server, found from the bundle (dist/) or the sources (src/server/). */
function examplesDir(): string | undefined {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const candidate of [
    resolve(here, '..', 'examples', 'server'),
    resolve(here, '..', '..', 'examples', 'server'),
  ]) {
    if (existsSync(candidate)) return candidate;
  }
  return undefined;
}

export async function seedExamples(store: Store, workspace: Workspace, filesDir: string): Promise<string[]> {
  const existing = await store.flows.list(workspace.id, 1);
  const folder = examplesDir();
  if (existing.items.length > 0 || !folder) return [];
  const seeded: string[] = [];
  for (const file of EXAMPLES) {
    const source = readFileSync(join(folder, file), 'utf8');
    const { flow } = parseFlow(source, file, filesDir);
    await store.flows.put({ workspaceId: workspace.id, flow, source, format: 'yaml', author: 'seed' });
    seeded.push(flow.name);
  }
  if (!(await store.connections.get(workspace.id, 'local'))) {
    const now = Date.now();
    await store.connections.put({
      workspace_id: workspace.id,
      name: 'local',
      type: 'sqlite',
      settings: JSON.stringify({ path: 'local.db', create: true }),
      secrets: '{}',
      created_at: now,
      updated_at: now,
      updated_by: 'seed',
    });
  }
  return seeded;
}
