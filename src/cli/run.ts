/** `lethe run <flow>`: a one-off run in memory, with progress and a summary. */
import { dirname, join, resolve } from 'node:path';
import { ConnectionPool, findConnectionsFile, loadConnections } from '../connectors/connections-file.js';
import { readTableFile } from '../connectors/files/index.js';
import { FileCounterStore } from '../counters/file-counter-store.js';
import { runFlow } from '../engine/run.js';
import { LetheError } from '../errors/index.js';
import { loadFlow, resolveParams } from '../flow/load.js';
import {
  plainProgress,
  terminalProgress,
  formatDuration,
  formatCount,
  type ProgressView,
} from './progress.js';
import {
  errorsOf,
  EXIT,
  peakRssBytes,
  printErrors,
  resultJson,
  summaryTable,
  tableToRecords,
} from './report.js';

export interface RunCommandOptions {
  param: string[];
  connections?: string;
  state?: string;
  input?: string;
  json?: boolean;
  progress?: boolean;
}

/** `k=v` pairs from repeated --param options. */
export function parseParamOptions(pairs: readonly string[]): Record<string, string> {
  const params: Record<string, string> = {};
  for (const pair of pairs) {
    const at = pair.indexOf('=');
    if (at <= 0) throw new LetheError('USAGE', `--param needs name=value, got "${pair}"`);
    params[pair.slice(0, at)] = pair.slice(at + 1);
  }
  return params;
}

export async function runCommand(flowPath: string, options: RunCommandOptions): Promise<number> {
  // Everything before the run itself is "invalid flow or usage" (exit 2).
  let prepared;
  try {
    const loaded = await loadFlow(flowPath);
    const params = resolveParams(loaded.flow, parseParamOptions(options.param));
    const connectionsFile = await findConnectionsFile(options.connections, loaded.baseDir);
    const connections = connectionsFile ? await loadConnections(connectionsFile) : [];
    const pool = new ConnectionPool(connections, connectionsFile ?? 'the connections file');
    const needsTrigger = loaded.flow.steps.some(
      (step) => step.command === 'input' && (step.body as { trigger?: boolean }).trigger === true,
    );
    if (needsTrigger && !options.input) {
      throw new LetheError(
        'USAGE',
        `${loaded.source.file} reads the trigger's payload (input: { trigger: true })`,
        {
          hint: 'give the payload with --input FILE (CSV, JSON, NDJSON or XLSX)',
        },
      );
    }
    const trigger = options.input
      ? {
          table: await readTableFile(
            resolve(options.input),
            undefined,
            { declared: new Set(), displayName: options.input },
            { signal: new AbortController().signal, progress: () => undefined },
          ),
        }
      : undefined;
    prepared = { loaded, params, pool, trigger };
  } catch (error) {
    printErrors(errorsOf(error));
    return EXIT.invalid;
  }

  const { loaded, params, pool, trigger } = prepared;
  const counters = new FileCounterStore(
    options.state ? resolve(options.state) : join(dirname(resolve(flowPath)), '.lethe', 'state'),
  );
  const controller = new AbortController();
  let interrupts = 0;
  const onSignal = () => {
    interrupts++;
    if (interrupts > 1) process.exit(130);
    process.stderr.write('\ncancelling… (press Ctrl-C again to quit at once)\n');
    controller.abort();
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const showProgress = !options.json && options.progress !== false;
  let view: ProgressView | undefined;
  if (showProgress) view = process.stderr.isTTY ? terminalProgress() : plainProgress();
  let result;
  try {
    result = await runFlow(loaded, {
      params,
      connections: pool,
      counters,
      trigger,
      signal: controller.signal,
      onEvent: (event) => view?.handle(event),
    });
  } finally {
    view?.stop();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await pool.closeAll();
    await counters.close();
  }

  if (options.json) {
    process.stdout.write(`${JSON.stringify(resultJson(result, loaded.flow.name), null, 2)}\n`);
  } else {
    if (result.response) {
      process.stdout.write(`response (${formatCount(result.response.rows.length)} rows):\n`);
      for (const record of tableToRecords(result.response))
        process.stdout.write(`${JSON.stringify(record)}\n`);
      process.stdout.write('\n');
    }
    process.stdout.write(`${summaryTable(result)}\n\n`);
    const memory = `peak memory ${formatCount(Math.round(peakRssBytes() / 1048576))} MB`;
    process.stdout.write(
      `${loaded.flow.name}: ${result.status} in ${formatDuration(result.durationMs)}, ${memory}\n`,
    );
    if (result.error && result.error.code !== 'CANCELLED') printErrors([result.error]);
  }
  return result.status === 'succeeded' ? EXIT.ok : EXIT.failed;
}
