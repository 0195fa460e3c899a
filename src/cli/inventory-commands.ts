/**
 * lethe report inventory and lethe workspace list|create|move|close|reopen|purge-closed: the
 * operator's side of the inventory report, of regions and of closing workspaces
 * (privacy/inventory.ts, regions/, privacy/workspace-lifecycle.ts), working on the stores
 * directly — each workspace in its region's store.
 */
import { writeFileSync } from 'node:fs';
import type { Command } from 'commander';
import { LetheError } from '../errors/index.js';
import { buildInventory, type Inventory } from '../privacy/inventory.js';
import { INVENTORY_FORMATS, renderInventory, type InventoryFormat } from '../privacy/inventory-render.js';
import {
  closeWorkspace,
  purgeClosedWorkspaces,
  reopenWorkspace,
  type PurgeResult,
} from '../privacy/workspace-lifecycle.js';
import { moveWorkspace } from '../regions/move.js';
import { withDeployment } from './deployment.js';
import { EXIT } from './report.js';

interface DataDirOption {
  dataDir?: string;
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
        await withDeployment({ ...options, mustExist: true }, async (opened) => {
          if (!INVENTORY_FORMATS.includes(options.format as InventoryFormat))
            throw new LetheError('USAGE', `--format must be md, html or json, not "${options.format}"`);
          const scopes =
            options.workspace === undefined
              ? opened.scopes
              : [(await opened.workspace(options.workspace)).scope];
          // One report for the deployment: each region reports its own workspaces.
          let inventory: Inventory | undefined;
          for (const scope of scopes) {
            const part = await buildInventory(scope, {
              workspace: options.workspace,
              retention: opened.config.retention,
            });
            if (inventory) inventory.workspaces.push(...part.workspaces);
            else inventory = part;
          }
          inventory!.workspaces.sort((a, b) => a.name.localeCompare(b.name));
          const text = renderInventory(inventory!, options.format as InventoryFormat);
          if (options.output) writeFileSync(options.output, text, { mode: 0o600 });
          else process.stdout.write(text);
          return EXIT.ok;
        }),
      );
    });

  const workspace = program
    .command('workspace')
    .description('workspaces: list, create, move between regions, close, reopen, purge');
  workspace
    .command('list')
    .description('workspaces with their region and status (closed ones with their purge date)')
    .option('--data-dir <dir>', 'the server’s data dir (LETHE_DATA_DIR, default ./data)')
    .action(async (options: DataDirOption) => {
      setExitCode(
        await withDeployment({ ...options, mustExist: true }, async (opened) => {
          // The directory knows every workspace; each one's status is its region's.
          for (const entry of await opened.home.store.workspaces.list()) {
            let ws = entry;
            try {
              ws = (await opened.deployment.resolve(entry)).workspace;
            } catch {
              process.stdout.write(
                `${entry.name}  region ${entry.region} (not configured here: LETHE_REGIONS)\n`,
              );
              continue;
            }
            const closed =
              ws.status === 'sealed'
                ? `  closed ${new Date(Number(ws.closed_at)).toISOString()}, purged after ${new Date(Number(ws.purge_after)).toISOString()}`
                : '';
            process.stdout.write(
              `${ws.name}  region ${entry.region}  ${entry.status === 'moving' ? 'moving' : ws.status}${closed}\n`,
            );
          }
          return EXIT.ok;
        }),
      );
    });

  workspace
    .command('create')
    .description('create a workspace, pinned to a region: its records will live in that region’s store only')
    .argument('<name>', 'the workspace')
    .option('--region <region>', 'the region (LETHE_REGIONS; default: the home region)')
    .option('--data-dir <dir>', 'the server’s data dir (LETHE_DATA_DIR, default ./data)')
    .action(async (name: string, options: DataDirOption & { region?: string }) => {
      setExitCode(
        await withDeployment(options, async (opened) => {
          const { region } = await opened.deployment.createWorkspace(name, options.region);
          process.stdout.write(`workspace "${name}" is in region "${region.spec.name}"\n`);
          return EXIT.ok;
        }),
      );
    });

  workspace
    .command('move')
    .description(
      'move a workspace to another region: every record is copied to that region’s store, checked, then deleted from the old one (audited)',
    )
    .argument('<name>', 'the workspace')
    .requiredOption('--to <region>', 'the region to move it to')
    .option('--data-dir <dir>', 'the server’s data dir (LETHE_DATA_DIR, default ./data)')
    .action(async (name: string, options: DataDirOption & { to: string }) => {
      setExitCode(
        await withDeployment({ ...options, mustExist: true }, async (opened) => {
          const scopes = new Map(opened.scopes.map((scope) => [scope.region, scope]));
          const moved = await moveWorkspace(opened.deployment, scopes, name, options.to, { actor: 'cli' });
          const total = Object.values(moved.rows).reduce((sum, n) => sum + n, 0);
          process.stdout.write(
            `workspace "${name}" moved from region "${moved.from}" to "${moved.to}": ${total} records` +
              (moved.filesMoved ? ', and its files' : '') +
              '\n',
          );
          for (const [table, count] of Object.entries(moved.rows))
            process.stdout.write(`  ${table.padEnd(20)} ${count}\n`);
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
        await withDeployment({ ...options, mustExist: true }, async (opened) => {
          const { scope } = await opened.workspace(name);
          const result = await closeWorkspace(scope, name, {
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
        await withDeployment({ ...options, mustExist: true }, async (opened) => {
          const { scope } = await opened.workspace(name);
          const result = await reopenWorkspace(scope, name, { actor: 'cli' });
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
        await withDeployment({ ...options, mustExist: true }, async (opened) => {
          const purged: PurgeResult[] = [];
          for (const scope of opened.scopes) purged.push(...(await purgeClosedWorkspaces(scope)));
          if (purged.length === 0) process.stdout.write('no closed workspace is due\n');
          for (const purge of purged) printPurge(purge);
          return EXIT.ok;
        }),
      );
    });
}
