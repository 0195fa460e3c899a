/** `lethe serve` and `lethe token create`: the server's own commands. */
import { loadConfig, type ConfigFlags } from '../server/config.js';
import { createLogger, DEFAULT_WORKSPACE, startServer } from '../server/serve.js';
import { LetheError } from '../errors/index.js';
import { createToken } from '../security/tokens.js';
import { withDeployment } from './deployment.js';
import { errorsOf, EXIT, printErrors } from './report.js';

export async function serveCommand(flags: ConfigFlags): Promise<number> {
  let server;
  try {
    const config = loadConfig(flags);
    server = await startServer(config, createLogger(config.logLevel));
    const tokens = await server.context.store.tokens.list(
      (await server.context.store.workspaces.byName(DEFAULT_WORKSPACE))!.id,
    );
    if (tokens.length === 0) {
      process.stderr.write(
        `\nLethe is running at ${server.url} (data in ${config.dataDir}).\n` +
          `Make an API token with:\n  npx lethe token create --workspace ${DEFAULT_WORKSPACE} --role admin --data-dir ${config.dataDir}\n\n`,
      );
    }
  } catch (error) {
    printErrors(errorsOf(error));
    return EXIT.invalid;
  }
  const running = server;
  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (signal: NodeJS.Signals) => {
      if (stopping) return;
      stopping = true;
      running.context.logger.info({ signal }, 'signal received');
      running.close().then(
        () => resolve(EXIT.ok),
        (error: unknown) => {
          printErrors(errorsOf(error));
          resolve(EXIT.failed);
        },
      );
    };
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
}

export async function tokenCreateCommand(options: {
  workspace: string;
  role: string;
  name?: string;
  dataDir?: string;
  expiresInDays?: string;
}): Promise<number> {
  return withDeployment({ dataDir: options.dataDir }, async (opened) => {
    const days = options.expiresInDays === undefined ? undefined : Number(options.expiresInDays);
    if (days !== undefined && (!Number.isFinite(days) || days <= 0)) {
      throw new LetheError('USAGE', '--expires-in-days must be a positive number');
    }
    // A workspace that does not exist yet is made in the home region (lethe workspace create
    // --region pins one elsewhere). Tokens are the directory's: they live in the home store.
    const workspace =
      (await opened.deployment.locate(options.workspace))?.workspace ??
      (await opened.deployment.createWorkspace(options.workspace)).workspace;
    // Audited in the home region's log, as the API's tokens are (ids only: never the name), in
    // the token's own transaction.
    const created = await opened.home.audit.transaction(async (trx) => {
      const made = await createToken(
        opened.home.store.tokens,
        {
          workspaceId: workspace.id,
          role: options.role,
          name: options.name,
          expiresAt: days === undefined ? undefined : Date.now() + days * 86_400_000,
        },
        trx,
      );
      await opened.home.audit.append(
        {
          workspaceId: workspace.id,
          actor: 'cli',
          action: 'token.created',
          details: { tokenId: made.id, role: options.role, expires: days !== undefined },
        },
        trx,
      );
      return made;
    });
    // The token alone on stdout, so scripts can capture it; it is shown this once.
    process.stdout.write(`${created.token}\n`);
    return EXIT.ok;
  });
}
