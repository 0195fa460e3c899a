/**
 * lethe report inventory and lethe workspace list|close|reopen|purge-closed: the operator's
 * side of the inventory report and of closing workspaces (privacy/inventory.ts,
 * privacy/workspace-lifecycle.ts), working on the data dir's store directly.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { LetheError } from '../errors/index.js';
import { AuditLog } from '../privacy/audit.js';
import { buildInventory } from '../privacy/inventory.js';
import { INVENTORY_FORMATS, renderInventory, type InventoryFormat } from '../privacy/inventory-render.js';
import {
  closeWorkspace,
  purgeClosedWorkspaces,
  reopenWorkspace,
  type LifecycleContext,
  type PurgeResult,
} from '../privacy/workspace-lifecycle.js';
import { openVault } from '../security/vault.js';
import { loadConfig, type ServerConfig } from '../server/config.js';
import { Store } from '../store/index.js';
import { errorsOf, EXIT, printErrors } from './report.js';

interface DataDirOption {
  dataDir?: string;
}

/** Open the data dir's store, vault and audit log; run `work`; close the store. */
async function withLifecycle(
  options: DataDirOption,
  work: (context: LifecycleContext, config: ServerConfig) => Promise<number>,
): Promise<number> {
  let store: Store | undefined;
  try {
    const config = loadConfig({ dataDir: options.dataDir });
    store = await Store.open({ url: config.databaseUrl, dataDir: config.dataDir });
    return await work(
      {
        store,
        vault: openVault(store.workspaceKeys, config.dataDir),
        audit: new AuditLog(store.db),
        filesDir: (name) => join(config.dataDir, 'files', name),
      },
      config,
    );
  } catch (error) {
    printErrors(errorsOf(error));
    return EXIT.invalid;
  } finally {
    await store?.close();
  }
}

function printPurge(purge: PurgeResult): void {
  const total = Object.values(purge.byClass).reduce((sum, n) => sum + n, 0);
  process.stdout.write(
    `workspace "${purge.workspace}" purged: its key destroyed (crypto-shredded), ${total} records deleted\n`,
  );
  for (const [dataClass, count] of Object.entries(purge.byClass))
    process.stdout.write(`  ${dataClass.padEnd(17)} ${count}\n`);
}

export function registerInventoryCommands(program: Command, setExitCode: (code: number) => void): void {
  const report = program.command('report').description('reports generated from the live system');
  report
    .command('inventory')
    .description('what is stored, for how long, and what is not — per workspace (Markdown, HTML or JSON)')
    .option('--workspace <name>', 'one workspace (default: every workspace)')
    .option('--format <format>', 'md, html or json', 'md')
    .option('-o, --output <file>', 'write the report to this file instead of stdout')
    .option('--data-dir <dir>', 'the server’s data dir (LETHE_DATA_DIR, default ./data)')
    .action(async (options: DataDirOption & { workspace?: string; format: string; output?: string }) => {
      setExitCode(
        await withLifecycle(options, async (context, config) => {
          if (!INVENTORY_FORMATS.includes(options.format as InventoryFormat))
            throw new LetheError('USAGE', `--format must be md, html or json, not "${options.format}"`);
          if (options.workspace !== undefined && !(await context.store.workspaces.byName(options.workspace)))
            throw new LetheError('USAGE', `no workspace "${options.workspace}"`);
          const inventory = await buildInventory(context, {
            workspace: options.workspace,
            retention: config.retention,
          });
          const text = renderInventory(inventory, options.format as InventoryFormat);
          if (options.output) writeFileSync(options.output, text, { mode: 0o600 });
          else process.stdout.write(text);
          return EXIT.ok;
        }),
      );
    });

  const workspace = program.command('workspace').description('workspaces: list, close, reopen, purge');
  workspace
    .command('list')
    .description('workspaces with their region and status (closed ones with their purge date)')
    .option('--data-dir <dir>', 'the server’s data dir (LETHE_DATA_DIR, default ./data)')
    .action(async (options: DataDirOption) => {
      setExitCode(
        await withLifecycle(options, async (context) => {
          for (const ws of await context.store.workspaces.list()) {
            const closed =
              ws.status === 'sealed'
                ? `  closed ${new Date(Number(ws.closed_at)).toISOString()}, purged after ${new Date(Number(ws.purge_after)).toISOString()}`
                : '';
            process.stdout.write(`${ws.name}  region ${ws.region}  ${ws.status}${closed}\n`);
          }
          return EXIT.ok;
        }),
      );
    });

  workspace
    .command('close')
    .description(
      'close a workspace: passive storage for 6 months (unreadable, key sealed), then purged; with --now, every record deleted and its key destroyed at once',
    )
    .argument('<name>', 'the workspace')
    .option('--now', 'delete it at once (cannot be undone: its key is destroyed)')
    .option('--data-dir <dir>', 'the server’s data dir (LETHE_DATA_DIR, default ./data)')
    .action(async (name: string, options: DataDirOption & { now?: boolean }) => {
      setExitCode(
        await withLifecycle(options, async (context) => {
          const result = await closeWorkspace(context, name, {
            mode: options.now ? 'now' : 'passive',
            actor: 'cli',
          });
          if (result.purge) printPurge(result.purge);
          else {
            process.stdout.write(
              `workspace "${name}" closed: sealed in passive storage until ${new Date(result.purgeAfter).toISOString()}, then purged\n` +
                `  ${result.flowsParked} flows parked, ${result.runsDeadLettered} queued runs sent to the dead-letter queue\n` +
                `  reopen it before then with: lethe workspace reopen ${name}\n`,
            );
          }
          return EXIT.ok;
        }),
      );
    });

  workspace
    .command('reopen')
    .description('reopen a closed workspace before its purge date')
    .argument('<name>', 'the workspace')
    .option('--data-dir <dir>', 'the server’s data dir (LETHE_DATA_DIR, default ./data)')
    .action(async (name: string, options: DataDirOption) => {
      setExitCode(
        await withLifecycle(options, async (context) => {
          const result = await reopenWorkspace(context, name, { actor: 'cli' });
          process.stdout.write(
            `workspace "${name}" reopened: ${result.flowsResumed} flows resumed` +
              (result.runsInDlq > 0
                ? `; ${result.runsInDlq} runs queued when it closed are in the dead-letter queue (retry them if they are still wanted)`
                : '') +
              '\n',
          );
          return EXIT.ok;
        }),
      );
    });

  workspace
    .command('purge-closed')
    .description('purge closed workspaces whose passive storage has ended (the server does this on its own)')
    .option('--data-dir <dir>', 'the server’s data dir (LETHE_DATA_DIR, default ./data)')
    .action(async (options: DataDirOption) => {
      setExitCode(
        await withLifecycle(options, async (context) => {
          const purged = await purgeClosedWorkspaces(context);
          if (purged.length === 0) process.stdout.write('no closed workspace is due\n');
          for (const purge of purged) printPurge(purge);
          return EXIT.ok;
        }),
      );
    });
}
