/**
 * `lethe erase`: data-subject erasure requests against a server's stores (the workspace's
 * region's). `lethe erase --subject email:x@y.com` makes the request and
 * processes it here and now, printing the completion report; `--list`, `--show <id>` and
 * `--extend <id> --reason …` read and extend requests. The subject is never printed.
 */
import type { Command } from 'commander';
import {
  createErasureRequest,
  extendErasureRequest,
  getErasureRequest,
  listErasureRequests,
  processErasure,
  viewOf,
  type ErasureView,
} from '../privacy/erasure.js';
import { LetheError } from '../errors/index.js';
import { DEFAULT_WORKSPACE } from '../server/serve.js';
import { withDeployment } from './deployment.js';
import { EXIT } from './report.js';

interface EraseOptions {
  subject?: string;
  workspace?: string;
  dataDir?: string;
  reason?: string;
  json?: boolean;
  process?: boolean;
  list?: boolean;
  show?: string;
  extend?: string;
  days?: string;
}

function describe(view: ErasureView): string {
  const lines = [
    `erasure request ${view.id} (${view.subjectKind}): ${view.status}${view.overdue ? ', OVERDUE' : ''}`,
    `  due ${view.dueAt}${view.extended ? ` (extended: ${view.extensionReason ?? ''})` : ''}`,
  ];
  if (view.completedAt) lines.push(`  completed ${view.completedAt}`);
  if (view.report) {
    if (view.report.legalHold)
      lines.push(
        `  legal hold: records kept, the subject replaced by ${view.report.pseudonym ?? 'a pseudonym'}`,
      );
    for (const entry of view.report.classes) {
      const counts = entry.stored
        ? `found ${entry.found}, deleted ${entry.deleted}, pseudonymised ${entry.pseudonymised}`
        : 'not stored';
      lines.push(`  ${entry.dataClass.padEnd(17)} ${counts} — ${entry.note}`);
    }
  } else if (view.progress) {
    for (const table of view.progress.tables)
      lines.push(`  ${table.table.padEnd(17)} found ${table.found} so far`);
  }
  return `${lines.join('\n')}\n`;
}

async function eraseCommand(subjectArgument: string | undefined, options: EraseOptions): Promise<number> {
  return withDeployment({ dataDir: options.dataDir, mustExist: true }, async (opened) => {
    const name = options.workspace ?? DEFAULT_WORKSPACE;
    // The request, its processing and its report live in the workspace's region.
    const { workspace, scope: context } = await opened.workspace(name);
    const print = (views: ErasureView[], text: string) =>
      process.stdout.write(
        options.json ? `${JSON.stringify(views.length === 1 ? views[0] : views, null, 2)}\n` : text,
      );

    if (options.list) {
      const views: ErasureView[] = [];
      let cursor: string | undefined;
      do {
        const page = await listErasureRequests(context, workspace.id, {}, 500, cursor);
        views.push(...page.items);
        cursor = page.next ?? undefined;
      } while (cursor);
      if (options.json) process.stdout.write(`${JSON.stringify(views, null, 2)}\n`);
      else process.stdout.write(views.length ? views.map(describe).join('') : 'no erasure requests\n');
      return EXIT.ok;
    }
    const target = options.show ?? options.extend;
    if (target !== undefined) {
      let row = options.extend
        ? await extendErasureRequest(context, workspace.id, target, {
            reason: options.reason ?? '',
            days: options.days === undefined ? undefined : Number(options.days),
            actor: 'cli',
          })
        : await getErasureRequest(context, workspace.id, target);
      if (!row) throw new LetheError('USAGE', `erasure request "${target}" not found`);
      row = (await getErasureRequest(context, workspace.id, target)) ?? row;
      const view = viewOf(context, row);
      print([view], describe(view));
      return EXIT.ok;
    }

    const subject = options.subject ?? subjectArgument;
    if (!subject)
      throw new LetheError(
        'USAGE',
        'say whose data to erase: --subject email:<address>, account:<id> or key:<value>',
      );
    const created = await createErasureRequest(context, {
      workspaceId: workspace.id,
      subject,
      reason: options.reason,
      requestedBy: 'cli',
    });
    if (!options.json) {
      process.stderr.write(
        created.created
          ? `erasure request ${created.request.id} made${created.previous.length ? ` (the subject was erased before: ${created.previous.join(', ')})` : ''}\n`
          : `an open erasure request for this subject exists already: ${created.request.id}\n`,
      );
    }
    let row = created.request;
    let outcome = 'open';
    if (options.process !== false) {
      const result = await processErasure(context, row.id);
      row = result.request;
      outcome = result.outcome;
      if (outcome === 'busy' && !options.json)
        process.stderr.write('another process (a running server) is working on it: see lethe erase --show\n');
      if (outcome === 'waiting' && !options.json)
        process.stderr.write(
          'runs with the subject in their input are still running: a server finishes it\n',
        );
    }
    const view = viewOf(context, row);
    if (options.json)
      process.stdout.write(`${JSON.stringify({ ...view, previous: created.previous, outcome }, null, 2)}\n`);
    else process.stdout.write(describe(view));
    return EXIT.ok;
  });
}

export function registerErasureCommands(program: Command, setExitCode: (code: number) => void): void {
  program
    .command('erase')
    .description(
      'erase a data subject (e-mail, account id or key) from every data class of a workspace, with a due date and a report',
    )
    .argument('[subject]', 'email:<address>, account:<id> or key:<value> (or use --subject)')
    .option('--subject <subject>', 'email:<address>, account:<id> or key:<value>')
    .option('--workspace <name>', 'the workspace (default "default")')
    .option('--data-dir <dir>', 'the server’s data dir (LETHE_DATA_DIR, default ./data)')
    .option('--reason <text>', 'why (kept without the subject); required with --extend')
    .option('--no-process', 'only make the request: a running server processes it within a minute')
    .option('--list', 'list the workspace’s requests, overdue ones flagged')
    .option('--show <id>', 'show a request: its progress or completion report')
    .option('--extend <id>', 'extend a request’s due date once (by up to 60 days) with --reason')
    .option('--days <n>', 'with --extend: days to add (default 60)')
    .option('--json', 'print JSON')
    .action(async (subject: string | undefined, options: EraseOptions) => {
      setExitCode(await eraseCommand(subject, options));
    });
}
