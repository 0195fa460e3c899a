/**
 * cli — the `lethe` command. Exit codes: 0 success, 1 a run failed, 2 an invalid flow or a
 * usage mistake. A user's mistake never prints a stack trace.
 */
import { Command, CommanderError } from 'commander';
import { flowJsonSchema } from '../flow/schema.js';
import { loadFlow } from '../flow/load.js';
import { errorsOf, EXIT, printErrors } from './report.js';
import {
  dlqActionCommand,
  dlqListCommand,
  isRemoteRun,
  remoteRunCommand,
  withServerOptions,
  type DlqListOptions,
  type RemoteOptions,
} from './remote.js';
import { registerErasureCommands } from './erase-commands.js';
import { registerInventoryCommands } from './inventory-commands.js';
import { registerKeysCommands } from './keys-commands.js';
import { registerUserCommands } from './user-commands.js';
import { registerRetentionCommands } from './purge-commands.js';
import { runCommand } from './run.js';
import { serveCommand, tokenCreateCommand } from './server-commands.js';
import { formatError } from '../errors/index.js';

const VERSION = '0.1.0';

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

export function buildProgram(setExitCode: (code: number) => void): Command {
  const program = new Command('lethe')
    .description('Lethe: a privacy-first automation and data-editing engine')
    .version(VERSION, '-v, --version')
    .showHelpAfterError('(run with --help for usage)')
    .exitOverride();

  program
    .command('run')
    .description(
      'run a flow once, in memory, with progress and a summary; with --server (or LETHE_SERVER), start a run of a stored flow on a server',
    )
    .argument('<flow>', 'the flow file (YAML or JSON); with --server, the name of a flow on the server')
    .option('-p, --param <name=value>', 'set a parameter (repeatable)', collect, [])
    .option('-c, --connections <file>', 'connections file (default: connections.yaml beside the flow)')
    .option('--state <dir>', 'where autonumber counters are kept (default: .lethe/state beside the flow)')
    .option(
      '-i, --input <file>',
      "the trigger's payload (CSV, JSON, NDJSON or XLSX) for input: { trigger: true }",
    )
    .option('--json', 'print the result as JSON on stdout, without progress')
    .option('--no-progress', 'do not show progress')
    .option('--server <url>', 'start the run on this Lethe server through its API (LETHE_SERVER)')
    .option('--token <token>', 'with --server: an API token of the workspace (LETHE_TOKEN)')
    .option('--workspace <name>', 'with --server: the workspace (default "default")')
    .option('--wait', 'with --server: wait for the run to end and print its summary')
    .option('--timeout <seconds>', 'with --wait: stop waiting after this long (default 300)')
    .option('--idempotency-key <key>', 'with --server: the same key never starts a second run')
    .option(
      '--ask-credentials',
      "with --server: ask for the credentials of the flow's connections (kept in the server's memory for this run only)",
    )
    .action(async (flow: string, options) => {
      if (isRemoteRun(options)) setExitCode(await remoteRunCommand(flow, options));
      else setExitCode(await runCommand(flow, options));
    });

  program
    .command('validate')
    .description('check flow files and report every problem with file:line:col')
    .argument('<flows...>', 'flow files')
    .option('--json', 'print the result as JSON')
    .action(async (flows: string[], options: { json?: boolean }) => {
      const results = [];
      for (const file of flows) {
        try {
          await loadFlow(file);
          results.push({ file, valid: true, errors: [] as ReturnType<typeof errorsOf> });
        } catch (error) {
          results.push({ file, valid: false, errors: errorsOf(error) });
        }
      }
      if (options.json) {
        const json = results.map((r) => ({
          file: r.file,
          valid: r.valid,
          errors: r.errors.map((e) => ({ code: e.code, message: formatError(e), ...e.details.location })),
        }));
        process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
      } else {
        for (const result of results) {
          if (result.valid) process.stdout.write(`${result.file}: ok\n`);
          else printErrors(result.errors);
        }
      }
      setExitCode(results.every((r) => r.valid) ? EXIT.ok : EXIT.invalid);
    });

  program
    .command('serve')
    .description('run the server: API, webhooks, schedules and the run queue (npm start)')
    .option('--port <port>', 'port to listen on (LETHE_PORT, default 8080)')
    .option('--host <host>', 'address to listen on (LETHE_HOST, default 127.0.0.1)')
    .option(
      '--data-dir <dir>',
      'where the store, keys and workspace files live (LETHE_DATA_DIR, default ./data)',
    )
    .option('--concurrency <n>', 'runs executing at once (LETHE_CONCURRENCY, default 8)')
    .option('--tls-cert <file>', 'serve HTTPS with this PEM certificate (LETHE_TLS_CERT); needs --tls-key')
    .option('--tls-key <file>', 'the PEM private key of --tls-cert (LETHE_TLS_KEY)')
    .option(
      '--trust-proxy',
      'believe X-Forwarded-For/-Proto from the proxy in front (LETHE_TRUST_PROXY: true or its addresses)',
    )
    .action(
      async (options: {
        port?: string;
        host?: string;
        dataDir?: string;
        concurrency?: string;
        tlsCert?: string;
        tlsKey?: string;
        trustProxy?: boolean;
      }) => {
        setExitCode(await serveCommand(options));
      },
    );

  const token = program.command('token').description('API tokens');
  token
    .command('create')
    .description('make an API token and print it (alone, once) on stdout')
    .requiredOption('--workspace <name>', 'the workspace it opens (made if it does not exist)')
    .requiredOption('--role <role>', 'owner, admin, editor or viewer')
    .option('--name <name>', 'a label for the token')
    .option('--expires-in-days <days>', 'make it expire')
    .option('--data-dir <dir>', 'the server’s data dir (LETHE_DATA_DIR, default ./data)')
    .action(
      async (options: {
        workspace: string;
        role: string;
        name?: string;
        dataDir?: string;
        expiresInDays?: string;
      }) => {
        setExitCode(await tokenCreateCommand(options));
      },
    );

  const dlq = program
    .command('dlq')
    .description('the dead-letter queue of a server: runs that ended incomplete, kept for a retry');
  withServerOptions(dlq.command('list').description('list incomplete runs, newest first'))
    .option('--flow <name>', 'only runs of this flow')
    .option('--limit <n>', 'runs per page (default 50)')
    .option('--cursor <cursor>', 'the page after the one that printed this cursor')
    .action(async (options: DlqListOptions) => {
      setExitCode(await dlqListCommand(options));
    });
  for (const [action, description] of [
    ['retry', 'send an incomplete run back to the queue with fresh attempts'],
    ['discard', 'give up on an incomplete run: it becomes failed and its input is deleted'],
  ] as const) {
    withServerOptions(dlq.command(action).description(description))
      .argument('<run-id>', 'the run (from lethe dlq list)')
      .action(async (runId: string, options: RemoteOptions) => {
        setExitCode(await dlqActionCommand(action, runId, options));
      });
  }

  registerRetentionCommands(program, setExitCode);
  registerErasureCommands(program, setExitCode);
  registerInventoryCommands(program, setExitCode);
  registerKeysCommands(program, setExitCode);
  registerUserCommands(program, setExitCode);

  program
    .command('schema')
    .description('print the JSON Schema of the flow format (for editors)')
    .action(() => {
      process.stdout.write(`${JSON.stringify(flowJsonSchema(), null, 2)}\n`);
      setExitCode(EXIT.ok);
    });

  return program;
}

export async function main(argv: string[]): Promise<number> {
  let exitCode: number = EXIT.ok;
  const program = buildProgram((code) => {
    exitCode = code;
  });
  if (argv.length === 0) {
    program.outputHelp({ error: true });
    return EXIT.invalid;
  }
  try {
    await program.parseAsync(argv, { from: 'user' });
    return exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      if (
        error.code === 'commander.helpDisplayed' ||
        error.code === 'commander.version' ||
        error.code === 'commander.help'
      ) {
        return EXIT.ok;
      }
      return EXIT.invalid;
    }
    printErrors(errorsOf(error));
    return EXIT.invalid;
  }
}
