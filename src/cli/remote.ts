/**
 * The CLI against a server: `lethe run <flow-name> --server URL` starts a manual run through the
 * HTTP API (and with --wait follows it to its end), and `lethe dlq list|retry|discard` works
 * the dead-letter queue. The server and token come from --server/--token or LETHE_SERVER and
 * LETHE_TOKEN. Exit codes as for local runs: 0 success, 1 the run failed (or --wait gave up),
 * 2 the request could not be made (usage, access, unknown flow, invalid params, no server).
 *
 * `--ask-credentials` asks, for each connection the flow uses, for the credentials of this run
 * (the secrets of a stored connection, or a whole connection that is not stored) and sends them
 * with the run: the server holds them in memory until the run ends and never stores them.
 * Secret answers are not echoed; when stdin is not a terminal, one line is read per question.
 */
import { createInterface, type Interface } from 'node:readline/promises';
import { Writable } from 'node:stream';
import type { Command } from 'commander';
import { CONNECTORS } from '../connectors/registry.js';
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
  /** Ask for the credentials of the flow's connections and send them with the run. */
  askCredentials?: boolean;
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
  askCredentials: '--ask-credentials',
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

/**
 * Questions on the terminal, answers to secret ones not echoed; when the input is not a
 * terminal (a pipe, a file), each question takes the next line, and an ended input answers "".
 */
export class Prompter {
  private readonly lines: string[] = [];
  private readonly waiting: ((line: string) => void)[] = [];
  private ended = false;
  private muted = false;
  private readonly rl: Interface;
  private readonly tty: boolean;

  constructor(
    input: NodeJS.ReadableStream & { isTTY?: boolean } = process.stdin,
    private readonly output: NodeJS.WritableStream = process.stderr,
  ) {
    this.tty = input.isTTY === true;
    if (this.tty) {
      // Echo goes through this stream, which keeps quiet while a secret is typed.
      const echo = new Writable({
        write: (chunk, _encoding, done) => {
          if (!this.muted) this.output.write(chunk);
          done();
        },
      });
      this.rl = createInterface({ input, output: echo, terminal: true });
    } else {
      this.rl = createInterface({ input, terminal: false });
      this.rl.on('line', (line) => {
        const waiter = this.waiting.shift();
        if (waiter) waiter(line);
        else this.lines.push(line);
      });
      this.rl.on('close', () => {
        this.ended = true;
        for (const waiter of this.waiting.splice(0)) waiter('');
      });
    }
  }

  async ask(question: string, secret: boolean): Promise<string> {
    this.output.write(question);
    if (!this.tty) {
      const answer = await new Promise<string>((resolve) => {
        const line = this.lines.shift();
        if (line !== undefined) resolve(line);
        else if (this.ended) resolve('');
        else this.waiting.push(resolve);
      });
      this.output.write('\n');
      return answer.replace(/\r$/, '');
    }
    this.muted = secret;
    try {
      return await this.rl.question('');
    } finally {
      if (secret) this.output.write('\n');
      this.muted = false;
    }
  }

  close(): void {
    this.rl.close();
  }
}

/** A connection a run of the flow uses, as GET …/flows/{name}/connections gives it. */
interface FlowConnection {
  name: string;
  stored: boolean;
  type: string | null;
  secrets: string[];
}

interface RuntimeConnection {
  type?: string;
  settings?: Record<string, unknown>;
  secrets?: Record<string, string>;
}

/** A typed answer for a setting: numbers and booleans as such, the rest as text. */
function settingValue(schema: { type?: unknown } | undefined, answer: string): unknown {
  const type = schema?.type;
  if ((type === 'integer' || type === 'number') && /^-?[0-9]+(\.[0-9]+)?$/.test(answer))
    return Number(answer);
  if (type === 'boolean') {
    if (/^(true|yes|y|1)$/i.test(answer)) return true;
    if (/^(false|no|n|0)$/i.test(answer)) return false;
  }
  return answer;
}

/**
 * Ask for the credentials of each connection: the secrets of a stored one (an empty answer
 * keeps the stored secret), or, for one that is not stored, its type and then each of its
 * settings (an empty answer leaves a setting out; an empty type leaves the connection out).
 */
export async function askCredentials(
  connections: readonly FlowConnection[],
  prompter: Prompter,
): Promise<Record<string, RuntimeConnection>> {
  const credentials: Record<string, RuntimeConnection> = {};
  for (const connection of connections) {
    let type = connection.type ?? '';
    if (!connection.stored) {
      const types = [...CONNECTORS.keys()].join(', ');
      type = (
        await prompter.ask(`connection "${connection.name}" is not stored; its type (${types}): `, false)
      ).trim();
      if (type === '') continue;
    }
    const connector = CONNECTORS.get(type);
    if (!connector) {
      // The server names the problem; the type alone is sent.
      credentials[connection.name] = { type };
      continue;
    }
    const secretFields = new Set(connector.secretSettings);
    const properties = (connector.settingsSchema as { properties?: Record<string, { type?: unknown }> })
      .properties;
    const fields = connection.stored ? connector.secretSettings : Object.keys(properties ?? {});
    const entry: RuntimeConnection = connection.stored ? {} : { type };
    for (const field of fields) {
      const secret = secretFields.has(field);
      const note = secret
        ? connection.stored && connection.secrets.includes(field)
          ? ' (hidden; empty keeps the stored one)'
          : ' (hidden; empty leaves it out)'
        : ' (empty leaves it out)';
      const label = connection.stored
        ? `connection "${connection.name}" (${type}, stored): ${field}${note}: `
        : `  ${connection.name}.${field}${note}: `;
      const answer = await prompter.ask(label, secret);
      if (answer === '') continue;
      if (secret) (entry.secrets ??= {})[field] = answer;
      else (entry.settings ??= {})[field] = settingValue(properties?.[field], answer.trim());
    }
    if (!connection.stored || entry.secrets) credentials[connection.name] = entry;
  }
  return credentials;
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
    let credentials: Record<string, RuntimeConnection> | undefined;
    if (options.askCredentials) {
      const { items } = await client.request<{ items: FlowConnection[] }>(
        'GET',
        `/flows/${encodeURIComponent(flow)}/connections`,
      );
      if (items.length === 0) process.stderr.write(`${flow}: the flow uses no connection; nothing to ask\n`);
      const prompter = new Prompter();
      try {
        credentials = await askCredentials(items, prompter);
      } finally {
        prompter.close();
      }
    }
    started = await client.request('POST', `/flows/${encodeURIComponent(flow)}/runs`, {
      body: { params, ...(credentials && Object.keys(credentials).length > 0 ? { credentials } : {}) },
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
