/**
 * `lethe purge [--dry-run]` and `lethe audit verify` (retention engine), on the stores of a
 * deployment (every region's), with or without a server running on them.
 *
 * - `purge`: one pass now, with the deployment's retention settings (LETHE_RETENTION_*), then
 *   the space given back; `--dry-run` deletes nothing and shows, per workspace and data class,
 *   how many records would go, the oldest of them, and the space they take (estimated from the
 *   tables' average row size).
 * - `audit verify`: checks the audit log's hash chain; exit 0 when intact, 1 when broken (and
 *   says at which entry).
 */
import type { Command } from 'commander';
import { verifyAuditChain } from '../privacy/retention-audit.js';
import { Purger, type ForecastRow, type PurgeReport } from '../privacy/retention.js';
import { formatCount, formatDuration } from './progress.js';
import { withDeployment } from './deployment.js';
import { EXIT } from './report.js';

interface PurgeOptions {
  dryRun?: boolean;
  dataDir?: string;
  workspace?: string;
  json?: boolean;
}

/** An age for people: 45 s, 12 min, 5 h, 31 d. */
export function formatAge(ms: number): string {
  const seconds = Math.max(0, Math.floor(ms / 1000));
  if (seconds < 120) return `${seconds} s`;
  if (seconds < 7200) return `${Math.floor(seconds / 60)} min`;
  if (seconds < 172_800) return `${Math.floor(seconds / 3600)} h`;
  return `${Math.floor(seconds / 86_400)} d`;
}

export function formatBytes(bytes: number): string {
  if (bytes < 1024) return `${Math.round(bytes)} B`;
  const units = ['KB', 'MB', 'GB', 'TB'];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

function table(header: string[], rows: string[][], right: Set<number>): string {
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => (right.has(i) ? cell.padStart(widths[i]!) : cell.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), widths.map((w) => '─'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

function forecastText(rows: readonly ForecastRow[], unit: string, now: number): string {
  const shown = rows.filter((row) => row.due > 0 || row.legalHold);
  const total = rows.reduce((sum, row) => sum + row.due, 0);
  const bytes = rows.reduce((sum, row) => sum + (row.bytes ?? 0), 0);
  const body = shown.map((row) => [
    row.workspace ?? '(deployment)',
    row.dataClass,
    `${row.retentionDays} ${unit === 'day' ? 'd' : unit}`,
    row.legalHold ? 'legal hold' : formatCount(row.due),
    row.oldestDueAt === null ? '' : formatAge(now - row.oldestDueAt),
    row.legalHold ? '' : formatBytes(row.bytes ?? 0),
  ]);
  const lines = [
    `dry run: ${formatCount(total)} records would be purged now, about ${formatBytes(bytes)} (nothing was deleted)`,
  ];
  if (body.length > 0)
    lines.push(
      '',
      table(['workspace', 'class', 'kept', 'records', 'oldest', 'size'], body, new Set([3, 4, 5])),
    );
  return `${lines.join('\n')}\n`;
}

function reportText(report: PurgeReport, names: Map<string, string>): string {
  const lines = [
    `purged ${formatCount(report.total)} records in ${formatDuration(report.durationMs)}` +
      (report.expiredFromDlq > 0
        ? ` (${formatCount(report.expiredFromDlq)} runs left the dead-letter queue)`
        : ''),
  ];
  const rows = report.purged
    .filter((entry) => entry.count > 0)
    .map((entry) => [
      entry.workspaceId === null ? '(deployment)' : (names.get(entry.workspaceId) ?? entry.workspaceId),
      entry.dataClass,
      formatCount(entry.count),
    ]);
  if (rows.length > 0) lines.push('', table(['workspace', 'class', 'records'], rows, new Set([2])));
  if (report.space?.pagesFreed)
    lines.push('', `space: ${formatCount(report.space.pagesFreed)} pages given back`);
  if (report.space?.tablesVacuumed.length)
    lines.push('', `vacuumed: ${report.space.tablesVacuumed.join(', ')}`);
  return `${lines.join('\n')}\n`;
}

export async function purgeCommand(options: PurgeOptions): Promise<number> {
  return withDeployment({ dataDir: options.dataDir, mustExist: true }, async (opened) => {
    const retention = opened.config.retention;
    let workspaceId: string | undefined;
    let scopes = opened.scopes;
    if (options.workspace !== undefined) {
      const { workspace, scope } = await opened.workspace(options.workspace);
      workspaceId = workspace.id;
      scopes = [scope];
    }
    const names = new Map((await opened.home.store.workspaces.list()).map((w) => [w.id, w.name]));
    // Each region purges its own store; the figures are added up.
    const purgers = scopes.map(
      (scope) => new Purger({ store: scope.store, audit: scope.audit, config: retention, actor: 'cli' }),
    );
    try {
      if (options.dryRun) {
        const rows: ForecastRow[] = [];
        for (const purger of purgers) rows.push(...(await purger.forecast({ workspaceId, sizes: true })));
        if (options.json) {
          const total = rows.reduce((sum, row) => sum + row.due, 0);
          const bytes = rows.reduce((sum, row) => sum + (row.bytes ?? 0), 0);
          const json = {
            dryRun: true,
            unit: retention.unit,
            total,
            bytes: Math.round(bytes),
            classes: rows.map((row) => ({
              workspace: row.workspace,
              dataClass: row.dataClass,
              retentionDays: row.retentionDays,
              legalHold: row.legalHold,
              records: row.due,
              oldestAt: row.oldestDueAt === null ? null : new Date(row.oldestDueAt).toISOString(),
              oldestAgeSeconds:
                row.oldestDueAt === null ? null : Math.floor((Date.now() - row.oldestDueAt) / 1000),
              bytes: Math.round(row.bytes ?? 0),
            })),
          };
          process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
        } else {
          process.stdout.write(forecastText(rows, retention.unit, Date.now()));
        }
        return EXIT.ok;
      }
      const reports: { region: string; report: PurgeReport }[] = [];
      for (const [i, purger] of purgers.entries())
        reports.push({ region: scopes[i]!.region, report: await purger.runOnce({ workspaceId }) });
      if (options.json) {
        const json = {
          dryRun: false,
          total: reports.reduce((sum, { report }) => sum + report.total, 0),
          durationMs: Math.round(reports.reduce((sum, { report }) => sum + report.durationMs, 0)),
          expiredFromDlq: reports.reduce((sum, { report }) => sum + report.expiredFromDlq, 0),
          purged: reports.flatMap(({ region, report }) =>
            report.purged.map((entry) => ({
              workspace:
                entry.workspaceId === null ? null : (names.get(entry.workspaceId) ?? entry.workspaceId),
              ...(reports.length > 1 ? { region } : {}),
              dataClass: entry.dataClass,
              records: entry.count,
            })),
          ),
          space: reports.length === 1 ? (reports[0]!.report.space ?? null) : null,
        };
        process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
      } else {
        for (const { region, report } of reports) {
          if (reports.length > 1) process.stdout.write(`region ${region}:\n`);
          process.stdout.write(reportText(report, names));
        }
      }
      return EXIT.ok;
    } finally {
      for (const purger of purgers) await purger.stop();
    }
  });
}

const entries = (n: number) => `${formatCount(n)} ${n === 1 ? 'entry' : 'entries'}`;

export async function auditVerifyCommand(options: { dataDir?: string; json?: boolean }): Promise<number> {
  return withDeployment({ dataDir: options.dataDir, mustExist: true }, async (opened) => {
    // Each region's store has its own chain.
    let intact = true;
    const results: Record<string, Awaited<ReturnType<typeof verifyAuditChain>>> = {};
    for (const scope of opened.scopes) {
      const result = await verifyAuditChain(scope.store.db);
      results[scope.region] = result;
      intact &&= result.ok;
      if (options.json) continue;
      const prefix = opened.scopes.length > 1 ? `region ${scope.region}: ` : '';
      // Entries before the anchor were purged by retention; the chain verifies from there.
      const from = result.from;
      if (result.ok) {
        process.stdout.write(
          `${prefix}audit log intact: ${entries(result.checked)} verified` +
            (from > 1 ? ` (from entry ${from}; earlier ones were purged by retention)` : '') +
            '\n',
        );
      } else {
        process.stdout.write(
          `${prefix}audit log BROKEN at entry ${result.brokenAt}: ${result.problem} (${entries(result.checked)} before it ${result.checked === 1 ? 'verifies' : 'verify'})\n`,
        );
      }
    }
    if (options.json) {
      const only = opened.scopes.length === 1 ? results[opened.scopes[0]!.region] : undefined;
      process.stdout.write(`${JSON.stringify(only ?? { ok: intact, regions: results }, null, 2)}\n`);
    }
    return intact ? EXIT.ok : EXIT.failed;
  });
}

export function registerRetentionCommands(program: Command, setExitCode: (code: number) => void): void {
  program
    .command('purge')
    .description(
      'purge now what retention says must go (every workspace, or one), then give the space back; --dry-run shows what would go',
    )
    .option('--dry-run', 'delete nothing: show per workspace and data class what would go, and its size')
    .option('--data-dir <dir>', 'the server’s data dir (LETHE_DATA_DIR, default ./data)')
    .option('--workspace <name>', 'only this workspace')
    .option('--json', 'print the result as JSON')
    .action(async (options: PurgeOptions) => {
      setExitCode(await purgeCommand(options));
    });

  const audit = program.command('audit').description('the hash-chained audit log');
  audit
    .command('verify')
    .description(
      'check the audit log’s hash chain: exit 0 when intact, 1 when an entry was changed or removed',
    )
    .option('--data-dir <dir>', 'the server’s data dir (LETHE_DATA_DIR, default ./data)')
    .option('--json', 'print the result as JSON')
    .action(async (options: { dataDir?: string; json?: boolean }) => {
      setExitCode(await auditVerifyCommand(options));
    });
}
