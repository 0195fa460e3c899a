/** Run flows written inline in tests, in memory, with no connections unless given. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ConnectionProvider, ConnectorSession } from '../../src/connectors/connector.js';
import { MemoryCounterStore } from '../../src/counters/memory-counter-store.js';
import type { CounterStore } from '../../src/counters/counter-store.js';
import { runFlow, type RunOptions, type RunResult } from '../../src/engine/run.js';
import type { RunEvent } from '../../src/engine/events.js';
import { parseFlow, resolveParams } from '../../src/flow/load.js';
import { rowToRecord, type Table } from '../../src/table/index.js';

export const noConnections: ConnectionProvider = {
  names: () => [],
  session: (name: string): Promise<ConnectorSession> => Promise.reject(new Error(`no connection ${name}`)),
  closeAll: async () => undefined,
};

export interface InlineRun {
  result: RunResult;
  events: RunEvent[];
  /** The `respond` table as records. */
  records: Record<string, unknown>[];
  columns: string[];
}

/** A temporary folder, removed by the returned cleanup function. */
export function tempDir(prefix = 'lethe-test-'): { path: string; cleanup: () => void } {
  const path = mkdtempSync(join(tmpdir(), prefix));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

/**
 * Run a flow given as YAML text. `baseDir` is where relative paths resolve. Params are given
 * as from the command line (text) or as JSON values.
 */
export async function runInline(
  yaml: string,
  options: Partial<RunOptions> & {
    baseDir?: string;
    givenParams?: Record<string, unknown>;
    counters?: CounterStore;
  } = {},
): Promise<InlineRun> {
  const loaded = parseFlow(yaml, 'flow.yaml', options.baseDir ?? process.cwd());
  const events: RunEvent[] = [];
  const result = await runFlow(loaded, {
    connections: noConnections,
    counters: options.counters ?? new MemoryCounterStore(),
    params: options.params ?? resolveParams(loaded.flow, options.givenParams ?? {}),
    onEvent: (event) => events.push(event),
    ...options,
  });
  const table: Table | undefined = result.response;
  return {
    result,
    events,
    columns: table ? [...table.columns] : [],
    records: table ? table.rows.map((row) => ({ ...rowToRecord(table.columns, row) })) : [],
  };
}

/**
 * A flow reading inline values into `source` and responding with the table of one step:
 * `pipeline([{a: 1}], 'filter: { from: source, where: "a > 0" }')`.
 */
export function pipeline(values: unknown[], ...steps: string[]): string {
  const lines = [
    'version: 1',
    'name: test',
    'steps:',
    `  - id: source`,
    `    input: { values: ${JSON.stringify(values)} }`,
  ];
  steps.forEach((step, i) => {
    lines.push(`  - id: s${i + 1}`, `    ${step}`);
  });
  lines.push(
    '  - id: out',
    `    output: { from: ${steps.length === 0 ? 'source' : `s${steps.length}`}, respond: true }`,
  );
  return `${lines.join('\n')}\n`;
}
