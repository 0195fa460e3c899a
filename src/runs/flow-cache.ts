/**
 * runs — turning stored flows into runs and running them. This file: parsed flow versions,
 * cached (a version never changes, so a cached parse is never stale).
 */
import { LetheError } from '../errors/index.js';
import { parseFlow, type LoadedFlow } from '../flow/load.js';
import type { FlowRepository } from '../store/flows.js';

const CACHE_SIZE = 500;

export class FlowCache {
  private readonly cache = new Map<string, LoadedFlow>();

  constructor(
    private readonly flows: FlowRepository,
    /** The folder a workspace's flow paths resolve against. */
    private readonly filesDir: (workspaceName: string) => string,
  ) {}

  /**
   * Forget every parsed version. Versions are immutable, except when an erasure request
   * pseudonymises a subject inside stored flow text.
   */
  forget(): void {
    this.cache.clear();
  }

  async get(workspaceId: string, workspaceName: string, name: string, version: number): Promise<LoadedFlow> {
    const key = `${workspaceId}/${name}/${version}`;
    const cached = this.cache.get(key);
    if (cached) {
      // Refresh its place: the map's order is the eviction order.
      this.cache.delete(key);
      this.cache.set(key, cached);
      return cached;
    }
    const row = await this.flows.version(workspaceId, name, version);
    // Versions go only with their flow (or workspace).
    if (!row) throw new LetheError('FLOW_DELETED', `flow "${name}" was deleted before this run could start`);
    const loaded = parseFlow(row.source, `${name}.${row.format}`, this.filesDir(workspaceName));
    this.cache.set(key, loaded);
    if (this.cache.size > CACHE_SIZE) this.cache.delete(this.cache.keys().next().value!);
    return loaded;
  }
}
