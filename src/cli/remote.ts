/**
 * The CLI against a server: `lethe run <flow-name> --server URL` starts a manual run through the
 * HTTP API (and with --wait follows it to its end), and `lethe dlq list|retry|discard` works
 * the dead-letter queue. The server and token come from --server/--token or LETHE_SERVER and
 * LETHE_TOKEN. Exit codes as for local runs: 0 success, 1 the run failed (or --wait gave up),
 * 2 the request could not be made (usage, access, unknown flow, invalid params, no server).
 */
import type { Command } from 'commander';
import type { StepStats } from '../engine/events.js';
import { LetheError } from '../errors/index.js';
import { formatCount, formatDuration } from './progress.js';
import { errorsOf, EXIT, printErrors, summaryTable } from './report.js';
import { parseParamOptions } from './run.js';

export interface RemoteOptions {
  server?: string;
  token?: string;
  workspace?: string;
  json?: boolean;
}

export interface RemoteRunOptions extends RemoteOptions {
  param: string[];
  wait?: boolean;
  /** Seconds --wait waits at most. */
  timeout?: string;
  idempotencyKey?: string;
  /** Options of local runs: refused with --server. */
  connections?: string;
  state?: string;
  input?: string;
}

type Env = Readonly<Record<string, string | undefined>>;

const DEFAULT_WAIT_SECONDS = 300;
const REQUEST_TIMEOUT_MS = 30_000;

/** Options that only mean something with a server. */
const REMOTE_ONLY = {
  token: '--token',
  workspace: '--workspace',
  wait: '--wait',
  timeout: '--timeout',
  idempotencyKey: '--idempotency-key',
} as const;
const LOCAL_ONLY = { connections: '--connections', state: '--state', input: '--input' } as const;

/**
 * Whether `lethe run` goes to a server: --server or LETHE_SERVER is set. Options that belong
 * to the other kind of run are a usage mistake, not silently ignored.
 */
export function isRemoteRun(options: RemoteRunOptions, env: Env = process.env): boolean {
  const remote = Boolean(options.server ?? env.LETHE_SERVER);
  const wrong = Object.entries(remote ? LOCAL_ONLY : REMOTE_ONLY).flatMap(([key, flag]) =>
    options[key as keyof RemoteRunOptions] === undefined ? [] : [flag],
  );
  if (wrong.length > 0) {
    throw new LetheError(
      'USAGE',
      remote
        ? `${wrong.join(', ')} ${wrong.length === 1 ? 'is' : 'are'} for local runs, not with --server`
        : `${wrong.join(', ')} ${wrong.length === 1 ? 'needs' : 'need'} --server (or LETHE_SERVER)`,
    );
  }
  return remote;
}

/** The options every command that talks to a server takes. */
export function withServerOptions(command: Command): Command {
  return command
    .option('--server <url>', 'the Lethe server, e.g. http://127.0.0.1:8080 (LETHE_SERVER)')
    .option('--token <token>', 'an API token of the workspace (LETHE_TOKEN)')
    .option('--workspace <name>', 'the workspace (default "default")')
    .option('--json', 'print the answer as JSON');
}

/** An error the API answered with. */
class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly hint: string | undefined,
    readonly problems: string[],
  ) {
    super(message);
  }
}

/** A client for one workspace of one server. */
export class ApiClient {
  private readonly base: string;

  constructor(
    server: string,
    private readonly token: string,
    readonly workspace: string,
  ) {
    let url: URL;
    try {
      url = new URL(server);
    } catch {
      throw new LetheError('USAGE', `--server must be a URL such as http://127.0.0.1:8080, not "${server}"`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new LetheError('USAGE', `--server must be an http:// or https:// URL, not "${server}"`);
    }
    this.base = `${url.origin}${url.pathname.replace(/\/+$/, '')}/api/v1/workspaces/${encodeURIComponent(workspace)}`;
  }

  /** Options and environment → a client, or a usage error saying what is missing. */
  static from(options: RemoteOptions, env: Env = process.env): ApiClient {
    const server = options.server ?? env.LETHE_SERVER;
    const token = options.token ?? env.LETHE_TOKEN;
    if (!server) throw new LetheError('USAGE', 'give the server with --server URL (or LETHE_SERVER)');
    if (!token) {
      throw new LetheError('USAGE', 'give an API token with --token (or LETHE_TOKEN)', {
        hint: 'make one with: lethe token create --workspace <name> --role editor',
      });
    }
    return new ApiClient(server, token, options.workspace ?? 'default');
  }

  async request<T>(
    method: string,
    path: string,
    options: { body?: unknown; headers?: Record<string, string> } = {},
  ): Promise<T> {
    const url = `${this.base}${path}`;
    let response: Response;
    try {
      response = await fetch(url, {
        method,
        headers: {
          authorization: `Bearer ${this.token}`,
          accept: 'application/json',
          ...(options.body === undefined ? {} : { 'content-type': 'application/json' }),
          ...options.headers,
        },
        body: options.body === undefined ? undefined : JSON.stringify(options.body),
        signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      });
    } catch (error) {
      const cause = (error as { cause?: { code?: string; message?: string } }).cause;
      const why = cause?.code ?? cause?.message ?? (error as Error).message;
      throw new ApiError(
        0,
        'UNREACHABLE',
        `cannot reach the server at ${new URL(url).origin}: ${why}`,
        undefined,
        [],
      );
    }
    const text = await response.text();
    let body: unknown;
    try {
      body = text === '' ? undefined : JSON.parse(text);
    } catch {
      body = undefined;
    }
    if (!response.ok) {
      const error = (body as { error?: Record<string, unknown> } | undefined)?.error;
      const problems = Array.isArray(error?.errors)
        ? (error.errors as { message?: unknown }[]).map((e) => String(e.message))
        : [];
      throw new ApiError(
        response.status,
        typeof error?.code === 'string' ? error.code : `HTTP_${response.status}`,
        typeof error?.message === 'string' ? error.message : `the server answered ${response.status}`,
        typeof error?.hint === 'string' ? error.hint : undefined,
        problems,
      );
    }
    return body as T;
  }
}

/** Print a failure: the API's message (or each of its problems) and hint, or a local error. */
function report(error: unknown): void {
  if (error instanceof ApiError) {
    const lines = error.problems.length > 0 ? error.problems : [error.message];
    for (const line of lines) process.stderr.write(`${line}\n`);
    if (error.hint) process.stderr.write(`  hint: ${error.hint}\n`);
    return;
  }
  printErrors(errorsOf(error));
}

/** The run as GET …/runs/{id} gives it. */
interface RunDetail {
  run: {
    id: string;
    flow: string;
    status: 'queued' | 'running' | 'succeeded' | 'failed' | 'incomplete';
    attempt: number;
    maxAttempts: number;
    durationMs: number | null;
    errorCode: string | null;
    errorStep: string | null;
  };
  input: { kept: boolean; stored: boolean; note?: string };
  details: { steps: StepStats[]; errorMessage: string | null } | null;
}

const ENDED = new Set(['succeeded', 'failed', 'incomplete']);

function parseTimeout(text: string | undefined): number {
  if (text === undefined) return DEFAULT_WAIT_SECONDS * 1000;
  const seconds = Number(text);
  if (!Number.isFinite(seconds) || seconds <= 0) {
    throw new LetheError('USAGE', `--timeout must be a positive number of seconds, not "${text}"`);
  }
  return seconds * 1000;
}

/** Poll the run until it ends or the time is up (undefined then); waits grow to 1 s. */
async function waitForEnd(
  client: ApiClient,
  runId: string,
  timeoutMs: number,
): Promise<RunDetail | undefined> {
  const deadline = Date.now() + timeoutMs;
  let pause = 50;
  for (;;) {
    const detail = await client.request<RunDetail>('GET', `/runs/${encodeURIComponent(runId)}`);
    if (ENDED.has(detail.run.status)) return detail;
    const left = deadline - Date.now();
    if (left <= 0) return undefined;
    await new Promise((resolve) => setTimeout(resolve, Math.min(pause, left)));
    pause = Math.min(1000, Math.round(pause * 1.5));
  }
}

function printSummary(detail: RunDetail): void {
  const { run } = detail;
  if (detail.details && detail.details.steps.length > 0) {
    process.stdout.write(`${summaryTable({ steps: detail.details.steps })}\n\n`);
  }
  const took = run.durationMs === null ? '' : ` in ${formatDuration(run.durationMs)}`;
  const attempts =
    run.maxAttempts > 1 ? ` after ${formatCount(run.attempt)} of ${run.maxAttempts} attempts` : '';
  process.stdout.write(`${run.flow}: ${run.status}${took}${attempts} (run ${run.id})\n`);
  if (run.status === 'succeeded') return;
  const message =
    detail.details?.errorMessage ??
    `${run.errorCode ?? 'the run failed'}${run.errorStep ? ` in step "${run.errorStep}"` : ''}`;
  process.stderr.write(`${message}\n`);
  if (run.status === 'incomplete') {
    process.stderr.write(`  the run is in the dead-letter queue: lethe dlq retry ${run.id} (or discard)\n`);
    if (detail.input.note) process.stderr.write(`  ${detail.input.note}\n`);
  }
}

/** `lethe run <flow-name> --server URL …` */
export async function remoteRunCommand(flow: string, options: RemoteRunOptions): Promise<number> {
  let client: ApiClient;
  let started: { runId: string; status: string; duplicate?: boolean };
  let timeoutMs: number;
  try {
    client = ApiClient.from(options);
    timeoutMs = parseTimeout(options.timeout);
    const params = parseParamOptions(options.param);
    started = await client.request('POST', `/flows/${encodeURIComponent(flow)}/runs`, {
      body: { params },
      headers: options.idempotencyKey === undefined ? {} : { 'idempotency-key': options.idempotencyKey },
    });
  } catch (error) {
    report(error);
    return EXIT.invalid;
  }
  if (!options.wait) {
    if (options.json) process.stdout.write(`${JSON.stringify(started, null, 2)}\n`);
    else {
      process.stdout.write(`${started.runId}\n`);
      process.stderr.write(
        started.duplicate
          ? `${flow}: this idempotency key started run ${started.runId} before; no new run\n`
          : `${flow}: run ${started.runId} queued\n`,
      );
    }
    return EXIT.ok;
  }
  let detail: RunDetail | undefined;
  try {
    detail = await waitForEnd(client, started.runId, timeoutMs);
  } catch (error) {
    report(error);
    return EXIT.failed;
  }
  if (!detail) {
    process.stderr.write(
      `${flow}: run ${started.runId} has not ended after ${formatDuration(timeoutMs)}; it goes on on the server\n`,
    );
    return EXIT.failed;
  }
  if (options.json) process.stdout.write(`${JSON.stringify(detail, null, 2)}\n`);
  else printSummary(detail);
  return detail.run.status === 'succeeded' ? EXIT.ok : EXIT.failed;
}

interface DlqItem {
  id: string;
  flow: string;
  attempt: number;
  finishedAt: string | null;
  errorCode: string | null;
  errorStep: string | null;
  inputKept: boolean;
}

export interface DlqListOptions extends RemoteOptions {
  flow?: string;
  limit?: string;
  cursor?: string;
}

function table(header: string[], rows: string[][]): string {
  const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i]!.length)));
  return [header, ...rows]
    .map((row) =>
      row
        .map((cell, i) => cell.padEnd(widths[i]!))
        .join('  ')
        .trimEnd(),
    )
    .join('\n');
}

/** `lethe dlq list` */
export async function dlqListCommand(options: DlqListOptions): Promise<number> {
  try {
    const client = ApiClient.from(options);
    const query = new URLSearchParams();
    if (options.flow !== undefined) query.set('flow', options.flow);
    if (options.limit !== undefined) query.set('limit', options.limit);
    if (options.cursor !== undefined) query.set('cursor', options.cursor);
    const text = query.toString();
    const page = await client.request<{ items: DlqItem[]; next: string | null }>(
      'GET',
      `/dlq${text ? `?${text}` : ''}`,
    );
    if (options.json) {
      process.stdout.write(`${JSON.stringify(page, null, 2)}\n`);
      return EXIT.ok;
    }
    if (page.items.length === 0) {
      process.stderr.write('the dead-letter queue is empty\n');
      return EXIT.ok;
    }
    const rows = page.items.map((item) => [
      item.id,
      item.flow,
      item.finishedAt ?? '',
      String(item.attempt),
      `${item.errorCode ?? ''}${item.errorStep ? ` (${item.errorStep})` : ''}`,
      item.inputKept ? 'kept' : 'not kept (confidential)',
    ]);
    process.stdout.write(`${table(['run', 'flow', 'ended', 'attempts', 'error', 'input'], rows)}\n`);
    if (page.next) process.stderr.write(`more: add --cursor ${page.next}\n`);
    return EXIT.ok;
  } catch (error) {
    report(error);
    return EXIT.invalid;
  }
}

/** `lethe dlq retry <id>` and `lethe dlq discard <id>` */
export async function dlqActionCommand(
  action: 'retry' | 'discard',
  runId: string,
  options: RemoteOptions,
): Promise<number> {
  try {
    const client = ApiClient.from(options);
    const path = `/dlq/${encodeURIComponent(runId)}`;
    if (action === 'retry') await client.request('POST', `${path}/retry`);
    else await client.request('DELETE', path);
    const done = action === 'retry' ? 'queued again' : 'discarded';
    if (options.json) process.stdout.write(`${JSON.stringify({ runId, action, ok: true })}\n`);
    else process.stderr.write(`run ${runId} ${done}\n`);
    return EXIT.ok;
  } catch (error) {
    report(error);
    return EXIT.invalid;
  }
}
