/**
 * `lethe keys status` and `lethe keys rotate`: the master key's versions, and rotating it
 * (security/key-rotation.ts), on the stores of a data dir (every region's) with or without
 * servers running on them. Only version numbers and ids (fingerprints) are ever printed, never
 * a key.
 */
import { existsSync } from 'node:fs';
import type { Command } from 'commander';
import { LetheError } from '../errors/index.js';
import {
  KeyRotation,
  type KeyStatus,
  type RotationProgress,
  type RotationReport,
} from '../security/key-rotation.js';
import { openKeystore } from '../security/keystore.js';
import { loadMasterKeys, masterKeyPath } from '../security/master-key.js';
import { loadConfig } from '../server/config.js';
import { withDeployment } from './deployment.js';
import { formatCount } from './progress.js';
import { errorsOf, EXIT, printErrors } from './report.js';

interface KeysOptions {
  dataDir?: string;
  json?: boolean;
}

interface RotateOptions extends KeysOptions {
  batch?: string;
  pauseMs?: string;
}

/** Open every region's store of the data dir, the master key versions and the keystore; run `work`. */
async function withKeys(
  options: KeysOptions,
  work: (rotation: KeyRotation) => Promise<number>,
): Promise<number> {
  // Checked first: opening the vault would make a master key file, and a fresh key is never right here.
  try {
    const dataDir = loadConfig({ dataDir: options.dataDir }).dataDir;
    if (!process.env.LETHE_MASTER_KEY && !existsSync(masterKeyPath(dataDir))) {
      throw new LetheError('USAGE', `there is no master key: ${masterKeyPath(dataDir)} does not exist`, {
        hint: 'pass the server’s --data-dir, or set LETHE_MASTER_KEY or LETHE_MASTER_KEY_FILE as the server has them',
      });
    }
  } catch (error) {
    printErrors(errorsOf(error));
    return EXIT.invalid;
  }
  return withDeployment({ dataDir: options.dataDir, mustExist: true }, (opened) =>
    work(
      new KeyRotation({
        places: opened.scopes.map((scope) => ({ name: scope.region, keys: scope.store.workspaceKeys })),
        masterKeys: loadMasterKeys(opened.config.dataDir),
        keystore: openKeystore(opened.config.dataDir),
      }),
    ),
  );
}

const plural = (n: number, one: string, many = `${one}s`) => `${formatCount(n)} ${n === 1 ? one : many}`;
const percent = (done: number, total: number) =>
  total === 0 ? '100%' : `${Math.floor((done / total) * 1000) / 10}%`;

function sourceText(status: KeyStatus): string {
  if (status.source === 'file') return `the key file ${status.path}`;
  return status.source === 'env' ? 'LETHE_MASTER_KEY' : 'given in code';
}

export function statusText(status: KeyStatus): string {
  const lines = [`master key versions, from ${sourceText(status)} (current first):`];
  for (const v of status.versions) {
    const what = [
      plural(v.keystoreEntries, 'keystore entry', 'keystore entries'),
      plural(v.dataKeys, 'data key'),
    ];
    if (v.shredded > 0) what.push(`${plural(v.shredded, 'data key')} of destroyed workspaces`);
    lines.push(
      `  v${v.version}  id ${v.id}  ${v.current ? 'current ' : '        '}  ${what.join(', ')}` +
        (v.retirable ? ' — no longer needed' : ''),
    );
  }
  for (const u of status.unknown) {
    lines.push(
      `  ?   id ${u.id}  not held  ${plural(u.keystoreEntries, 'keystore entry', 'keystore entries')}, ${plural(u.dataKeys, 'data key')}`,
    );
  }
  lines.push(
    `under the current version v${status.current.version}: ${formatCount(status.done)} of ${plural(status.total, 'item')} (${percent(status.done, status.total)})`,
  );
  if (status.remaining > 0)
    lines.push(
      `still under older versions: ${plural(status.remaining, 'item')} — lethe keys rotate re-wraps them (and finishes an interrupted rotation)`,
    );
  if (status.blocked > 0)
    lines.push(
      `cannot be re-wrapped: ${plural(status.blocked, 'item')} (their version is not held, or a data key's keystore entry is missing): their versions are kept`,
    );
  if (status.shredded > 0)
    lines.push(
      `left as they are: ${plural(status.shredded, 'data key')} of destroyed workspaces (unreadable)`,
    );
  return `${lines.join('\n')}\n`;
}

function reportText(report: RotationReport): string {
  const lines: string[] = [];
  const name = (v: { version: number; id: string }) => `v${v.version} (id ${v.id})`;
  lines.push(
    report.made
      ? `made master key ${name(report.made)}: everything new is wrapped with it`
      : `re-wrapping with master key ${name(report.target)} (finishing what an earlier rotation began)`,
  );
  lines.push(`keystore: ${plural(report.keystore.rewrapped, 'entry', 'entries')} re-sealed`);
  lines.push(
    `data keys: ${formatCount(report.dataKeys.rewrapped)} re-wrapped` +
      (report.dataKeys.shredded > 0
        ? `; ${formatCount(report.dataKeys.shredded)} of destroyed workspaces left as they are`
        : ''),
  );
  for (const blocked of report.keystore.blocked)
    lines.push(`  keystore entry of workspace ${blocked.workspaceId} not re-sealed: ${blocked.reason}`);
  for (const blocked of report.dataKeys.blocked)
    lines.push(
      `  data key v${blocked.version} of workspace ${blocked.workspaceId} (${blocked.place}) not re-wrapped: ${blocked.reason}`,
    );
  for (const retired of report.retired) lines.push(`retired ${name(retired)}: nothing needs it any more`);
  for (const kept of report.kept) {
    lines.push(
      kept.retirable
        ? `${name(kept)} is no longer needed: remove it from LETHE_MASTER_KEY on every process`
        : `kept ${name(kept)}: items still need it (see lethe keys status)`,
    );
  }
  const status = report.status;
  lines.push(
    `under the current version v${status.current.version}: ${formatCount(status.done)} of ${plural(status.total, 'item')}`,
  );
  return `${lines.join('\n')}\n`;
}

function positive(value: string | undefined, name: string, fallback: number, min: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min) throw new LetheError('USAGE', `${name} must be an integer ≥ ${min}`);
  return n;
}

export async function keysStatusCommand(options: KeysOptions): Promise<number> {
  return withKeys(options, async (rotation) => {
    const status = await rotation.status();
    process.stdout.write(options.json ? `${JSON.stringify(status, null, 2)}\n` : statusText(status));
    return EXIT.ok;
  });
}

export async function keysRotateCommand(options: RotateOptions): Promise<number> {
  return withKeys(options, async (rotation) => {
    const batchSize = positive(options.batch, '--batch', 100, 1);
    const pauseMs = positive(options.pauseMs, '--pause-ms', 0, 0);
    // Ctrl-C stops between two items; running the command again finishes.
    const controller = new AbortController();
    const stop = () => controller.abort();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    let shown = 0;
    const progress = (p: RotationProgress) => {
      if (options.json || Date.now() - shown < 1000 || p.phase !== 'data keys') return;
      shown = Date.now();
      process.stderr.write(`re-wrapping data keys: ${formatCount(p.done)} of ${formatCount(p.total)}\n`);
    };
    try {
      const report = await rotation.rotate({
        batchSize,
        pauseMs,
        onProgress: progress,
        signal: controller.signal,
      });
      process.stdout.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : reportText(report));
      const unfinished =
        report.status.remaining > 0 ||
        report.status.blocked > 0 ||
        report.keystore.blocked.length > 0 ||
        report.dataKeys.blocked.length > 0;
      return unfinished ? EXIT.failed : EXIT.ok;
    } finally {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    }
  });
}

export function registerKeysCommands(program: Command, setExitCode: (code: number) => void): void {
  const keys = program.command('keys').description('the master key: its versions, and rotating it');
  keys
    .command('status')
    .description(
      'the master key versions (ids only), which is current, and how many items each still protects',
    )
    .option('--data-dir <dir>', 'the server’s data dir (LETHE_DATA_DIR, default ./data)')
    .option('--json', 'print the status as JSON')
    .action(async (options: KeysOptions) => {
      setExitCode(await keysStatusCommand(options));
    });
  keys
    .command('rotate')
    .description(
      'make a new master key version, re-wrap everything with it while servers keep running, and retire the old one; run again to finish an interrupted rotation',
    )
    .option('--data-dir <dir>', 'the server’s data dir (LETHE_DATA_DIR, default ./data)')
    .option('--batch <n>', 'data keys re-wrapped per batch (default 100)')
    .option('--pause-ms <ms>', 'pause between batches, to spare a busy database (default 0)')
    .option('--json', 'print the result as JSON')
    .action(async (options: RotateOptions) => {
      setExitCode(await keysRotateCommand(options));
    });
}
